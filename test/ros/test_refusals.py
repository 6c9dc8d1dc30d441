"""A node that cannot run refuses to start cleanly: exit status 2, one ``[FATAL]`` line that
names what is wrong and what is accepted, no traceback, and nothing touched on disk.

Each case runs the real executable as an operator would start it, on real files: a start value
the node cannot run with (checked by the same rules as a change at run time), a corrupt store,
an unknown schema version, a missing encryption key.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import PARAMS
from conftest import ROOT

pytest.importorskip('rclpy')

from engram_ros.apps.wiring import NODES  # noqa: E402
from engram_ros.core.model.engram import Observation  # noqa: E402
from engram_ros.core.storage import DATABASE_NAME  # noqa: E402
from engram_ros.ros import memory_parameters  # noqa: E402
from engram_ros.ros.memory_parameters import STRING_ARRAY  # noqa: E402


def start(node: str, *ros_args: str) -> subprocess.CompletedProcess:
    """Run a node in its own namespace until it exits (a refusal exits at once)."""
    command = [sys.executable, '-m', NODES[node].module, '--ros-args',
               '-r', f'__ns:=/r{uuid.uuid4().hex[:8]}', *ros_args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=90)


def assert_refused(result: subprocess.CompletedProcess, *words: str) -> str:
    """Exit 2, a FATAL line holding ``words``, no traceback; returns the FATAL line."""
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert 'Traceback' not in output, output
    fatal = [line for line in output.splitlines() if '[FATAL]' in line]
    assert len(fatal) == 1, output
    for word in words:
        assert word in fatal[0], fatal[0]
    return fatal[0]


def params_file(tmp_path: Path, node: str, **values) -> str:
    """The shipped parameter file with ``values`` set in ``node``'s section."""
    doc = yaml.safe_load(PARAMS.read_text())
    doc[NODES[node].file_key]['ros__parameters'].update(values)
    path = tmp_path / f'engram_{uuid.uuid4().hex[:6]}.yaml'
    path.write_text(yaml.safe_dump(doc))
    return str(path)


# ------------------------------------------------------------------------ start values
@pytest.mark.parametrize('name, value, accepted', [
    ('budget', 0, '>= 1'),                       # used to kill the node at its first consolidation
    ('short_term_capacity', 0, '>= 1'),          # used to evict every new engram
    ('dim', 0, '>= 1'),
    ('miss_visits', -1, '>= 0'),
    ('feedback_rate', 0.0, '(0, 1]'),
    ('merge_radius.object', -0.5, 'finite and >= 0'),
    ('diagnostics_period', 0.0, 'finite and > 0'),
    ('consolidation_period', -30.0, 'finite and >= 0'),
])
def test_memory_refuses_a_bad_start_value_from_its_parameter_file(tmp_path, name, value,
                                                                  accepted):
    group, _, leaf = name.rpartition('.')
    shipped = yaml.safe_load(PARAMS.read_text())[NODES['memory'].file_key]['ros__parameters']
    values = {group: {**shipped[group], leaf: value}} if group else {name: value}
    result = start('memory', '--params-file', params_file(tmp_path, 'memory', **values),
                   '-p', 'semantic_text:=false')
    assert_refused(result, 'cannot open the memory', f'parameter {name} = {value!r}', accepted)


def test_memory_refuses_a_parameter_of_the_wrong_type():
    result = start('memory', '-p', 'budget:=lots', '-p', 'semantic_text:=false')
    assert_refused(result, "'budget'", 'INTEGER')


def test_a_bad_start_value_opens_no_store(tmp_path):
    result = start('memory', '-p', 'persist:=true', '-p', f'store_dir:={tmp_path / "store"}',
                   '-p', 'budget:=0', '-p', 'semantic_text:=false')
    assert_refused(result, 'budget')
    assert not (tmp_path / 'store').exists()


@pytest.mark.parametrize('assignment, words', [
    ('objects.min_score:=1.5', ('parameter objects.min_score = 1.5', 'in [0, 1]')),
    ('sync_queue_size:=0', ('parameter sync_queue_size = 0', '> 0')),
    ('camera_convention:=sideways', ('camera_convention', 'body or optical')),
    ('job_queue_size:=many', ("'job_queue_size'", 'INTEGER')),
])
def test_perception_refuses_a_bad_start_value(assignment, words):
    assert_refused(start('perception', '-p', assignment), 'cannot start perception', *words)


@pytest.mark.parametrize('assignment, words', [
    ('rate:=0.0', ('parameter rate = 0.0', 'finite and > 0')),
    ('width:=0', ('parameter width = 0', '>= 1')),
    ('fov_deg:=180.0', ('parameter fov_deg = 180.0', 'in (0, 180)')),
])
def test_sim_refuses_a_bad_start_value(assignment, words):
    pytest.importorskip('pybullet')
    assert_refused(start('sim', '-p', assignment, '-p', 'scenario:=small'),
                   'cannot start the simulation', *words)


# ------------------------------------------------------------------------ stores
def snapshot(directory: Path) -> dict[str, tuple]:
    """Every file and folder under ``directory``: size, modification time and content digest."""
    out = {}
    for path in sorted([directory, *directory.rglob('*')]):
        stat = path.stat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else 'dir'
        out[str(path.relative_to(directory))] = (stat.st_size, stat.st_mtime_ns, digest)
    return out


def make_store(directory: Path) -> None:
    """A real store as the memory node leaves it: an engram, its audit log, its index."""
    values = {name: (None if default is STRING_ARRAY else default)
              for name, default, _ in memory_parameters.declarations()}
    values.update(persist=True, store_dir=str(directory))
    store, _ = memory_parameters.open_store(values.get)
    vector = np.random.default_rng(0).normal(size=values['dim'])
    store.ingest(Observation(kind='object', frame_id='map', position=np.array([1.0, 2.0, 0.5]),
                             stamp=time.time(), vector=vector, label='mug'))
    store.close()
    for extra in directory.glob(f'{DATABASE_NAME}-*'):   # WAL leftovers, if any
        extra.unlink()
    time.sleep(0.01)     # so that a rewrite within the same clock tick would still show


def start_memory_on(store: Path, *extra: str) -> subprocess.CompletedProcess:
    return start('memory', '-p', 'persist:=true', '-p', f'store_dir:={store}',
                 '-p', 'semantic_text:=false', *extra)


def test_a_corrupt_store_is_refused_and_left_as_it_was(tmp_path):
    store = tmp_path / 'store'
    make_store(store)
    db = store / DATABASE_NAME
    with open(db, 'r+b') as f:           # the header and first page overwritten
        f.write(b'this is not a database' * 100)
    before = snapshot(store)
    assert_refused(start_memory_on(store), 'cannot open the memory', 'nothing was changed')
    assert snapshot(store) == before


def test_an_unknown_schema_version_is_refused_and_left_as_it_was(tmp_path):
    store = tmp_path / 'store'
    make_store(store)
    with sqlite3.connect(store / DATABASE_NAME) as conn:
        conn.execute('PRAGMA user_version = 99')
    conn.close()
    for extra in store.glob(f'{DATABASE_NAME}-*'):
        extra.unlink()
    before = snapshot(store)
    assert_refused(start_memory_on(store), 'cannot open the memory', 'schema')
    assert snapshot(store) == before


def test_a_missing_key_creates_no_store(tmp_path):
    store = tmp_path / 'store'
    key = tmp_path / 'keys' / 'engram.key'
    result = start_memory_on(store, '-p', 'encrypt_evidence:=true',
                             '-p', f'encryption_key_file:={key}')
    assert_refused(result, 'cannot open the memory', str(key))
    assert not store.exists()
    assert not key.parent.exists()


def test_a_missing_key_leaves_an_existing_store_as_it_was(tmp_path):
    store = tmp_path / 'store'
    make_store(store)
    before = snapshot(store)
    env_free = {k: v for k, v in os.environ.items() if k != 'ENGRAM_KEY'}
    result = subprocess.run(
        [sys.executable, '-m', NODES['memory'].module, '--ros-args',
         '-r', f'__ns:=/r{uuid.uuid4().hex[:8]}', '-p', 'persist:=true',
         '-p', f'store_dir:={store}', '-p', 'semantic_text:=false',
         '-p', 'encrypt_evidence:=true'],
        cwd=ROOT, capture_output=True, text=True, timeout=90, env=env_free)
    assert_refused(result, 'cannot open the memory', 'ENGRAM_KEY')
    assert snapshot(store) == before


def test_perception_without_its_key_writes_nothing(tmp_path):
    evidence = tmp_path / 'store' / 'evidence'
    result = start('perception', '-p', 'persist:=true', '-p', f'evidence_dir:={evidence}',
                   '-p', 'encrypt_evidence:=true',
                   '-p', f'encryption_key_file:={tmp_path / "missing.key"}')
    assert_refused(result, 'cannot start perception', 'missing.key')
    assert not (tmp_path / 'store').exists()
