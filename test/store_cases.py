"""The ``make_store`` fixture shared by the store's tests: a factory of stores on both backends.

Parametrised over RAM and SQLite storage (real files in ``tmp_path``), with an in-RAM audit
log; the vector dimension is the calling test module's ``DIM``. Every store made is closed
after the test. A module that needs other settings defines its own ``make_store``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable
from typing import Iterator

import pytest

from engram_ros.core.audit import AuditLog
from engram_ros.core.memory import MemoryStore
from engram_ros.core.memory import StoreConfig
from engram_ros.core.storage import MemoryStorage
from engram_ros.core.storage import SQLiteStorage


@pytest.fixture(params=['memory', 'sqlite'])
def make_store(request, tmp_path: Path) -> Iterator[Callable[..., MemoryStore]]:
    stores: list[MemoryStore] = []
    dim = request.module.DIM

    def make(**config) -> MemoryStore:
        storage = (MemoryStorage() if request.param == 'memory'
                   else SQLiteStorage(tmp_path / f'store{len(stores)}'))
        store = MemoryStore(storage, StoreConfig(dim=dim, **config), audit=AuditLog(None))
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()
