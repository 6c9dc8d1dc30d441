"""Durable storage of engrams behind a small interface.

:class:`Storage` (:mod:`.base`) is the contract the memory needs from a backend;
:class:`SQLiteStorage` (:mod:`.sqlite`) keeps a store on local disk and :class:`MemoryStorage`
(:mod:`.memory`) keeps it in RAM only. The on-disk format, its versions and migrations are in
:mod:`.schema`; how each engram field becomes a column is :mod:`engram_ros.core.model.codec`.
The names below are the package's public API.
"""

from __future__ import annotations

from engram_ros.core.storage.base import Storage
from engram_ros.core.storage.base import StoreClosedError
from engram_ros.core.storage.base import StoreOpenError
from engram_ros.core.storage.memory import MemoryStorage
from engram_ros.core.storage.schema import DATABASE_NAME
from engram_ros.core.storage.schema import EVIDENCE_DIR_NAME
from engram_ros.core.storage.schema import FIRST_ID
from engram_ros.core.storage.schema import INDEX_DIR_NAME
from engram_ros.core.storage.schema import MARKER_NAME
from engram_ros.core.storage.schema import META_DIM
from engram_ros.core.storage.schema import META_NEXT_ID
from engram_ros.core.storage.schema import META_SCHEMA_VERSION
from engram_ros.core.storage.schema import MIGRATABLE_VERSIONS
from engram_ros.core.storage.schema import SCHEMA_VERSION
from engram_ros.core.storage.schema import STORE_FORMAT
from engram_ros.core.storage.sqlite import SQLiteStorage
from engram_ros.core.storage.sqlite import SYNCHRONOUS_MODES

__all__ = ['DATABASE_NAME', 'EVIDENCE_DIR_NAME', 'FIRST_ID', 'INDEX_DIR_NAME',
           'MARKER_NAME', 'MemoryStorage', 'META_DIM', 'META_NEXT_ID', 'META_SCHEMA_VERSION',
           'MIGRATABLE_VERSIONS', 'SCHEMA_VERSION', 'SQLiteStorage', 'Storage',
           'STORE_FORMAT', 'StoreClosedError', 'StoreOpenError', 'SYNCHRONOUS_MODES']
