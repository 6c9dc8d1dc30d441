"""A store written by d893798 (the layout before the redesign) opens and answers the same.

The fixture (``test/fixtures/store_d893798``) and its answers were written by
``test/fixtures/legacy_store.py`` with the code of d893798; this test runs the same questions with
today's code on a copy. When a later change migrates the store format, this test proves the
migration: the copy opens, every record reads back, the audit chain verifies, the answers match.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engram_ros.core.audit import AuditLog

from fixtures import legacy_store

FIXTURE = legacy_store.STORE


@pytest.fixture
def store_copy(tmp_path: Path) -> Path:
    copy = tmp_path / 'store'
    shutil.copytree(FIXTURE, copy)
    return copy


def test_fixture_is_complete() -> None:
    names = {p.name for p in FIXTURE.iterdir()}
    assert {'STORE', 'engrams.sqlite3', 'audit.jsonl', 'index'} <= names


def test_old_store_answers_the_same(store_copy: Path) -> None:
    expected = json.loads(legacy_store.ANSWERS.read_text())
    store = legacy_store.open_store(store_copy)
    try:
        got = json.loads(json.dumps(legacy_store.answers(store)))
    finally:
        store.close()
    assert got == expected


def test_old_store_reopens_after_use(store_copy: Path) -> None:
    # Opened and closed by today's code (which may migrate it), it opens again and still
    # holds every engram, history and anchors included.
    store = legacy_store.open_store(store_copy)
    store.close()
    store = legacy_store.open_store(store_copy)
    try:
        listed = legacy_store.answers(store)['list']
    finally:
        store.close()
    expected = json.loads(legacy_store.ANSWERS.read_text())['list']
    assert [row[:9] for row in listed] == [row[:9] for row in expected]


def test_old_audit_log_verifies(store_copy: Path) -> None:
    store = legacy_store.open_store(store_copy)
    store.close()
    result = AuditLog(store_copy / 'audit.jsonl').verify()
    assert result.ok, result.message
    assert result.records > 0
