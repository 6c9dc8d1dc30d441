"""Tests of engram_ros.core.storage.schema: creating, refusing and migrating stores."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from engram_ros.core.model.codec import FIELDS
from engram_ros.core.model.edges import PlaceEdge
from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import KINDS
from engram_ros.core.model.engram import MODALITIES
from engram_ros.core.model.engram import TIERS
from engram_ros.core.storage import SCHEMA_VERSION
from engram_ros.core.storage import SQLiteStorage
from engram_ros.core.storage import StoreOpenError

from test_storage_base import DIM
from test_storage_base import make_engram
from test_storage_base import snapshot


def test_missing_directory_is_created(tmp_path: Path) -> None:
    with SQLiteStorage(tmp_path / 'a' / 'b' / 'store') as backend:
        assert backend.count() == 0
    assert (tmp_path / 'a' / 'b' / 'store' / 'STORE').is_file()


def test_empty_directory_becomes_a_store(tmp_path: Path) -> None:
    (tmp_path / 'store').mkdir()
    with SQLiteStorage(tmp_path / 'store') as backend:
        backend.put([make_engram(1)])
    with SQLiteStorage(str(tmp_path / 'store'), create=False) as backend:
        assert backend.count() == 1


def test_missing_directory_without_create_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreOpenError, match='nothing was changed'):
        SQLiteStorage(tmp_path / 'store', create=False)
    assert not (tmp_path / 'store').exists()


@pytest.mark.parametrize('create', [True, False])
def test_non_store_directory_is_refused_and_untouched(tmp_path: Path, create: bool) -> None:
    directory = tmp_path / 'photos'
    (directory / 'sub').mkdir(parents=True)
    (directory / 'holiday.jpg').write_bytes(b'not a store')
    (directory / 'sub' / 'engrams.sqlite3').write_bytes(b'whatever')
    before = snapshot(directory)
    with pytest.raises(StoreOpenError, match='not an engram store') as info:
        SQLiteStorage(directory, create=create)
    assert str(directory) in str(info.value)
    assert snapshot(directory) == before


def test_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / 'store'
    path.write_bytes(b'x')
    with pytest.raises(StoreOpenError):
        SQLiteStorage(path)
    assert path.read_bytes() == b'x'


def _closed_store(tmp_path: Path) -> Path:
    with SQLiteStorage(tmp_path / 'store') as backend:
        backend.put([make_engram(i) for i in range(1, 301)])
    return tmp_path / 'store'


def _garbage(data: bytes) -> bytes:
    return np.random.default_rng(1).integers(0, 256, len(data), dtype=np.uint8).tobytes()


def _garbage_pages(data: bytes) -> bytes:
    page = 4096
    noise = np.random.default_rng(2).integers(0, 256, len(data) - 2 * page, dtype=np.uint8)
    return data[:2 * page] + noise.tobytes()


def _truncated(data: bytes) -> bytes:
    return data[:len(data) // 3]


@pytest.mark.parametrize('damage', [_garbage, _garbage_pages, _truncated],
                         ids=['garbage', 'garbage-pages', 'truncated'])
def test_corrupt_database_is_refused_and_left_alone(tmp_path: Path, damage) -> None:
    directory = _closed_store(tmp_path)
    db = directory / 'engrams.sqlite3'
    db.write_bytes(damage(db.read_bytes()))
    before = snapshot(directory)
    with pytest.raises(StoreOpenError) as info:
        SQLiteStorage(directory)
    message = str(info.value)
    assert str(db) in message and 'nothing was changed' in message
    assert snapshot(directory) == before


def _set_user_version(db: Path, version: int) -> None:
    conn = sqlite3.connect(db)
    conn.execute(f'PRAGMA user_version = {version}')
    conn.commit()
    conn.close()


def _set_meta_version(db: Path, version: int) -> None:
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
    conn.commit()
    conn.close()


def _set_marker(directory: Path, **changes: object) -> None:
    marker = directory / 'STORE'
    content = json.loads(marker.read_text())
    content.update(changes)
    marker.write_text(json.dumps(content))


def _lose_database(directory: Path) -> None:
    (directory / 'evidence' / 'crop.jpg').write_bytes(b'jpeg')
    (directory / 'engrams.sqlite3').unlink()


@pytest.mark.parametrize('tamper, expected', [
    (lambda d: _set_user_version(d / 'engrams.sqlite3', SCHEMA_VERSION + 1), 'newer'),
    (lambda d: _set_user_version(d / 'engrams.sqlite3', 0), 'unknown schema version'),
    (lambda d: _set_meta_version(d / 'engrams.sqlite3', SCHEMA_VERSION + 1), 'meta table'),
    (lambda d: _set_marker(d, schema_version=SCHEMA_VERSION + 1), 'newer'),
    (lambda d: _set_marker(d, schema_version='one'), 'schema_version'),
    (lambda d: _set_marker(d, format='something else'), 'not an engram store'),
    (lambda d: (d / 'STORE').write_text('{not json'), 'unreadable'),
    (lambda d: _lose_database(d), 'missing'),
], ids=['newer-user-version', 'zero-user-version', 'meta-mismatch', 'newer-marker',
        'bad-marker-version', 'foreign-marker', 'corrupt-marker', 'lost-database'])
def test_unknown_schema_is_refused_and_left_alone(tmp_path: Path, tamper, expected: str) -> None:
    directory = _closed_store(tmp_path)
    tamper(directory)
    before = snapshot(directory)
    with pytest.raises(StoreOpenError, match=expected):
        SQLiteStorage(directory)
    assert snapshot(directory) == before


def test_interrupted_creation_is_completed(tmp_path: Path) -> None:
    directory = _closed_store(tmp_path)
    for name in ('engrams.sqlite3', 'engrams.sqlite3-wal', 'engrams.sqlite3-shm'):
        (directory / name).unlink(missing_ok=True)
    with SQLiteStorage(directory) as backend:
        assert backend.count() == 0
        backend.put([make_engram(1)])


def _downgrade_to_schema_1(directory: Path) -> None:
    """Turn a closed store into exactly what schema 1 wrote (no validity/anchor columns, no
    place graph)."""
    _downgrade_to_schema_2(directory)
    conn = sqlite3.connect(directory / 'engrams.sqlite3')
    conn.execute('DROP INDEX place_edges_by_b')
    conn.execute('DROP TABLE place_edges')
    for column in ('valid_from', 'valid_to', 'successor_id', 'anchor_id', 'keyframe_id'):
        conn.execute(f'ALTER TABLE engrams DROP COLUMN {column}')
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.execute('PRAGMA user_version = 1')
    conn.commit()
    conn.close()
    _set_marker(directory, schema_version=1)


def _downgrade_to_schema_3(directory: Path) -> None:
    """Turn a closed store into exactly what schema 3 wrote (no ``changes`` table)."""
    conn = sqlite3.connect(directory / 'engrams.sqlite3')
    conn.execute('DROP TABLE changes')
    conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    conn.execute('PRAGMA user_version = 3')
    conn.commit()
    conn.close()
    _set_marker(directory, schema_version=3)


def _downgrade_to_schema_2(directory: Path) -> None:
    """Turn a closed store into exactly what schema 2 wrote (no ``dirty`` table)."""
    _downgrade_to_schema_3(directory)
    conn = sqlite3.connect(directory / 'engrams.sqlite3')
    conn.execute('DROP TABLE dirty')
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    conn.execute('PRAGMA user_version = 2')
    conn.commit()
    conn.close()
    _set_marker(directory, schema_version=2)


def test_schema_3_store_is_migrated_to_4_with_every_engram_changed(tmp_path: Path) -> None:
    directory = _closed_store(tmp_path)
    with SQLiteStorage(directory) as backend:
        ids = [e.id for e in backend.iter_all()]
    _downgrade_to_schema_3(directory)
    with SQLiteStorage(directory) as backend:
        assert backend.get_meta('schema_version') == str(SCHEMA_VERSION) == '4'
        # A first sync after the migration uploads every engram kept.
        assert backend.changes_since(0) == [(i, 1) for i in ids] != []
        backend.put([backend.get([ids[0]])[0]])
        assert backend.changes_since(1) == [(ids[0], 2)]


def test_schema_2_store_is_migrated_to_3_with_short_term_engrams_marked_changed(
        tmp_path: Path) -> None:
    directory = _closed_store(tmp_path)
    with SQLiteStorage(directory) as backend:
        expected = list(backend.iter_all())
    _downgrade_to_schema_2(directory)
    with SQLiteStorage(directory) as backend:
        assert [e.id for e in backend.iter_all()] == [e.id for e in expected]
        assert backend.get_meta('schema_version') == str(SCHEMA_VERSION) == '4'
        # Schema 2 did not record what changed since the last consolidation: the recent
        # (short-term) engrams are marked, so their duplicates are still merged.
        assert backend.dirty_ids() == [e.id for e in expected if e.tier == 'short'] != []
        backend.clear_dirty()
    assert json.loads((directory / 'STORE').read_text())['schema_version'] == 4
    with SQLiteStorage(directory) as backend:   # a plain v4 store now: nothing re-marked
        assert backend.dirty_ids() == []


def test_schema_1_store_is_migrated_without_losing_engrams(tmp_path: Path) -> None:
    directory = _closed_store(tmp_path)
    with SQLiteStorage(directory) as backend:
        expected = list(backend.iter_all())
    _downgrade_to_schema_1(directory)
    with SQLiteStorage(directory) as backend:
        migrated = list(backend.iter_all())
        assert [e.id for e in migrated] == [e.id for e in expected]
        for old, new in zip(expected, migrated):
            assert new.label == old.label and new.tags == old.tags
            np.testing.assert_array_equal(new.vector, old.vector)
            assert new.valid_from == old.first_seen and new.valid_to is None
        assert backend.get_meta('schema_version') == str(SCHEMA_VERSION) == '4'
        assert backend.edges() == []
        backend.put_edges([PlaceEdge(2, 1, 3, T_EDGE)])
        assert backend.edges() == [PlaceEdge(1, 2, 3, T_EDGE)]
    assert json.loads((directory / 'STORE').read_text())['schema_version'] == 4
    with SQLiteStorage(directory) as backend:       # and it opens again as a plain v4 store
        assert backend.count() == len(expected) and len(backend.edges()) == 1
        backend.delete([1])
        assert backend.edges() == []


T_EDGE = 1.7e9


# ---------------------------------------------------------------------------------------------
# The format is frozen: a store written before the codec reads back, and writes are identical

FIXTURE_STORE = Path(__file__).resolve().parents[1] / 'fixtures' / 'storage_v2'


#: The unit quaternions the fixture was written with, exactly (``float.hex``). The generator
#: below draws the same random quaternions, but ``np.linalg.norm``'s last bit depends on the
#: CPU's SIMD path (one of the twelve differs by an ulp between two machines of this project),
#: so their normalised values are spelt out instead of recomputed.
FIXTURE_ORIENTATIONS = (
    '-0x1.5447ab6b184c7p-3 0x1.2fd1855937ce9p-3 0x1.6c2ac6b39b1abp-5 -0x1.f29e384a752e8p-1',
    '-0x1.785d5687a4a05p-1 0x1.fe58ff1e58d26p-2 0x1.1a73622599156p-4 -0x1.d154fe9edc994p-2',
    '0x1.946dc02c8c667p-6 -0x1.da800c99ee4f1p-2 0x1.8529b2fee5a4fp-1 -0x1.d1d3f1b9f336fp-2',
    '-0x1.44b03dd9cc91ap-2 0x1.ba749268574e8p-1 0x1.5e552661ac649p-2 0x1.828a8159f97c1p-3',
    '0x1.479d93f2f7766p-3 -0x1.1aae99cff57dep-2 -0x1.472ae136dccd0p-3 0x1.de4c2d27ba666p-1',
    '-0x1.641f4cd30ceb8p-4 -0x1.c693de0555603p-2 0x1.9fd6b3d318105p-1 -0x1.794157ed275f2p-2',
    '-0x1.adcfbc1095332p-2 -0x1.7881a76510fe3p-1 0x1.40616bff90814p-3 0x1.045c163108183p-1',
    '-0x1.4ed8d0a33abf3p-1 0x1.a4489be1ed2b1p-2 0x1.08bfa8e56eabdp-1 -0x1.7a4278420e33bp-2',
    '-0x1.0f345d8e6f440p-3 0x1.1e81af283f2ffp-5 0x1.dfbcf20aae53bp-2 -0x1.beddb0d4cb377p-1',
    '0x1.3672978374b9dp-2 0x1.ee9cd732db536p-3 0x1.d5fd6307f2ef8p-1 -0x1.59dc5fb3d6cb9p-4',
    '-0x1.c906adc3ef3afp-2 -0x1.22c5d676a2738p-1 0x1.6b404e4b56fbcp-4 -0x1.5f29a50ae3b2cp-1',
    '0x1.2a8a192e03f28p-1 0x1.7e0df3cc37948p-1 0x1.48a946afb5574p-2 0x1.bb6d8d8a353b2p-7',
)


def fixture_engrams() -> list[Engram]:
    """Engrams covering every kind, tier, history, anchors, keyframes and odd strings.

    The fixture store under ``test/fixtures/storage_v2`` holds exactly these, written by the
    storage code of commit ff54d11 (before the codec); do not change them.
    """
    rng = np.random.default_rng(20261201)
    engrams = []
    for i in range(1, 13):
        rng.normal(size=4)              # the quaternion: FIXTURE_ORIENTATIONS[i - 1]
        vector = rng.normal(size=DIM).astype(np.float32)
        engrams.append(Engram(
            id=i, kind=KINDS[i % len(KINDS)], frame_id='map' if i % 5 else 'odom',
            position=rng.normal(size=3) * 10.0,
            vector=(vector / np.linalg.norm(vector)).astype(np.float32),
            first_seen=1.7e9 + i * 0.123456789, last_seen=1.7e9 + i * 1.5,
            tags=() if i % 4 == 0 else ('label:mug', f'place:p{i % 3}', 'colour:rød'),
            label=['', 'mug', 'tasse à café', 'カップ'][i % 4],
            orientation=np.array([float.fromhex(h) for h in FIXTURE_ORIENTATIONS[i - 1].split()]),
            covariance=rng.normal(size=36),
            modality=MODALITIES[i % len(MODALITIES)], confidence=float(rng.random()),
            evidence=() if i % 3 else (f'crops/{i}.jpg', f'file:///tmp/x/{i}.png'),
            observation_count=i, score=float(rng.random()),
            tier=TIERS[i % 2], pinned=i % 3 == 0, last_access=1.7e9 + i * 2.0,
            recall_count=i * 7 % 5, valid_from=1.7e9 + i,
            valid_to=None if i % 4 else 1.7e9 + i + 0.25, successor_id=0 if i % 4 else i + 1,
            anchor_id=0 if i % 2 == 0 else 2, keyframe_id=f'kf-{i}' if i % 4 == 1 else ''))
    return engrams


FIXTURE_EDGES = [PlaceEdge(2, 4, 3, 1.7e9 + 0.5), PlaceEdge(4, 8, 1, 1.7e9 + 9.75)]


def assert_every_field_equal(actual: Engram, expected: Engram) -> None:
    """Every field of the dataclass equal, with the same type (arrays: dtype and values)."""
    for name in FIELDS:
        a, e = getattr(actual, name), getattr(expected, name)
        if isinstance(e, np.ndarray):
            assert a.dtype == e.dtype and np.array_equal(a, e), name
        else:
            assert a == e and type(a) is type(e), (name, a, e)


def _table_rows(db: Path) -> dict[str, list[tuple]]:
    """The schema, and every row of every table with each value's SQLite storage class."""
    conn = sqlite3.connect(db)
    try:
        tables = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        out = {}
        for table in tables:
            columns = [row[1] for row in conn.execute(f'PRAGMA table_info({table})')]
            select = ', '.join(f'{c}, typeof({c})' for c in columns)
            out[table] = sorted(conn.execute(f'SELECT {select} FROM {table}'))
        out['sqlite_master'] = sorted(conn.execute(
            'SELECT type, name, tbl_name, sql FROM sqlite_master'))
        out['user_version'] = conn.execute('PRAGMA user_version').fetchall()
        return out
    finally:
        conn.close()


def test_a_store_written_before_the_codec_reads_back_exactly(tmp_path: Path) -> None:
    directory = tmp_path / 'store'
    shutil.copytree(FIXTURE_STORE, directory)
    with SQLiteStorage(directory, create=False) as backend:
        got = list(backend.iter_all())
        assert backend.edges() == FIXTURE_EDGES
        assert backend.get_meta('model') == 'fixture'
    expected = fixture_engrams()
    assert [e.id for e in got] == [e.id for e in expected]
    for actual, engram in zip(got, expected):
        assert_every_field_equal(actual, engram)


def test_rows_written_now_are_identical_to_the_fixture(tmp_path: Path) -> None:
    """Same tables, same rows, same values and storage classes (blobs byte for byte) as the
    fixture migrated to the current schema; only which engrams count as changed differs (all
    of them just written; the short-term ones of a migrated store)."""
    with SQLiteStorage(tmp_path / 'store') as backend:
        backend.put(fixture_engrams())
        backend.put_edges(FIXTURE_EDGES)
        backend.set_meta('model', 'fixture')
    shutil.copytree(FIXTURE_STORE, tmp_path / 'fixture')
    SQLiteStorage(tmp_path / 'fixture', create=False).close()
    now = _table_rows(tmp_path / 'store' / 'engrams.sqlite3')
    then = _table_rows(tmp_path / 'fixture' / 'engrams.sqlite3')
    assert len(now.pop('dirty')) == len(fixture_engrams())
    assert len(then.pop('dirty')) == sum(e.tier == 'short' for e in fixture_engrams())
    assert now == then


def test_integrity_check_is_skipped_only_for_a_file_unchanged_since_a_clean_close(
        tmp_path: Path) -> None:
    """quick_check reads every page (2.3 s at 1M engrams); a clean close stamps the file and
    the next open skips the check only while size, inode and change time still match."""
    directory = _closed_store(tmp_path)
    stamp = directory / 'CLEAN'
    assert stamp.is_file()
    backend = SQLiteStorage(directory)
    assert not backend.integrity_checked and not stamp.exists()   # open: no stamp
    backend.put([make_engram(999)])
    backend.close()
    assert stamp.is_file()
    # Any write to the file after the close (here through SQLite itself) is noticed.
    conn = sqlite3.connect(directory / 'engrams.sqlite3')
    conn.execute("INSERT INTO meta (key, value) VALUES ('written_elsewhere', 'yes')")
    conn.commit()
    conn.close()
    backend = SQLiteStorage(directory)
    assert backend.integrity_checked and backend.count() == 301
    # A process that dies leaves no stamp: the next open checks.
    del backend
    import gc
    gc.collect()
    assert not stamp.exists()
    backend = SQLiteStorage(directory)
    assert backend.integrity_checked
    backend.close()
    # A stamp copied from elsewhere does not match this file.
    stamp.write_text(json.dumps({'size': 1, 'ino': 2, 'dev': 3, 'mtime_ns': 4,
                                 'ctime_ns': 5}))
    backend = SQLiteStorage(directory)
    assert backend.integrity_checked
    backend.close()
