"""The `engram` CLI, run for real (`python -m engram_ros.apps.cli`) on stores made by the
core."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engram_ros.core.evidence import EvidenceStore
from engram_ros.core.memory import MemoryStore
from engram_ros.core.memory import StoreConfig
from engram_ros.core.model.engram import Observation
from engram_ros.core.storage import SQLiteStorage

ROOT = Path(__file__).resolve().parents[2]
DIM = 16
LABELS = ('mug', 'book', 'zqxsofa', 'lamp')


def engram(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'engram_ros.apps.cli', *args], cwd=ROOT,
                          capture_output=True, text=True, input=stdin, timeout=60)


@pytest.fixture
def store_dir(tmp_path) -> Path:
    directory = tmp_path / 'store'
    store = MemoryStore(SQLiteStorage(directory), StoreConfig(dim=DIM))
    evidence = EvidenceStore(store.storage.evidence_dir)
    rng = np.random.default_rng(3)
    for i, label in enumerate(LABELS):
        uri = evidence.write(f'{label}.png', f'pixels of {label} zqxpixels'.encode(), 'image')
        store.ingest(Observation(kind='object', frame_id='map', position=np.array([i, i, 0.0]),
                                 stamp=time.time() - 3600 * i, vector=rng.normal(size=DIM),
                                 label=label, tags=('room:kitchen',), evidence=(uri,)))
    store.close()
    return directory


def test_read_commands(store_dir, tmp_path):
    out = engram('--store', str(store_dir), '--json', 'stats')
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    assert stats['engrams'] == 4 and stats['evidence_files'] == 4
    out = engram('--store', str(store_dir), '--json', 'list', '--near', '0', '0', '1.6')
    assert sorted(json.loads(line)['label'] for line in out.stdout.splitlines()) == [
        'book', 'mug']
    out = engram('--store', str(store_dir), 'show', '2')
    assert out.returncode == 0 and 'book' in out.stdout and 'evidence/image/' in out.stdout
    assert 'image/book' not in out.stdout           # evidence names carry no label (issue 11)
    out = engram('--store', str(store_dir), '--json', 'search', '--text', 'where is the lamp',
                 '-k', '2')
    assert json.loads(out.stdout.splitlines()[0])['label'] == 'lamp'
    out = engram('--store', str(store_dir), 'map', '--out', str(tmp_path / 'map.png'))
    assert out.returncode == 0, out.stderr
    import cv2
    image = cv2.imread(str(tmp_path / 'map.png'))
    assert image is not None and image.shape[1] == 1000


def test_edit_forget_and_verify(store_dir):
    out = engram('--store', str(store_dir), '--json', 'edit', '1', '--add-tag', 'color:red',
                 '--label', 'teacup', '--pin')
    assert out.returncode == 0, out.stderr
    edited = json.loads(out.stdout)
    assert edited['label'] == 'teacup' and edited['pinned'] and 'color:red' in edited['tags']
    # Without --yes and without a terminal, nothing is forgotten.
    out = engram('--store', str(store_dir), 'forget', '--tag', 'label:zqxsofa', stdin='y\n')
    assert out.returncode == 1 and 'add --yes' in out.stderr
    out = engram('--store', str(store_dir), 'forget', '--tag', 'label:zqxsofa', '--yes')
    assert out.returncode == 0 and 'forgot 1 engrams; 1 evidence files' in out.stdout
    out = engram('--store', str(store_dir), 'forget', '--id', '999', '--yes')
    assert out.returncode == 1 and 'unknown id(s) 999' in out.stdout
    for path in store_dir.rglob('*'):
        if path.is_file():
            assert b'zqxsofa' not in path.read_bytes(), path
    out = engram('--store', str(store_dir), 'verify')
    assert out.returncode == 0, out.stdout + out.stderr
    assert 'audit' in out.stdout and 'FAILED' not in out.stdout
    audit = store_dir / 'audit.jsonl'
    lines = audit.read_text().splitlines()
    lines[2] = lines[2].replace('cli:', 'clx:', 1)
    audit.write_text('\n'.join(lines) + '\n')
    out = engram('--store', str(store_dir), 'verify')
    assert out.returncode == 1 and 'line 3' in out.stdout


def test_export_import_round_trip(store_dir, tmp_path):
    target = tmp_path / 'out' / 'memory.jsonl'
    target.parent.mkdir()
    out = engram('--store', str(store_dir), 'export', str(target))
    assert out.returncode == 0, out.stderr
    assert len(target.read_text().splitlines()) == 4
    assert len(list((tmp_path / 'out' / 'memory.jsonl.evidence').rglob('*.png'))) == 4
    copy = tmp_path / 'copy'
    out = engram('--store', str(copy), 'import', str(target))
    assert out.returncode == 0, out.stderr
    out = engram('--store', str(copy), '--json', 'show', '3')
    record = json.loads(out.stdout)
    assert record['label'] == 'zqxsofa' and record['evidence_files'][0]['exists']
    assert engram('--store', str(copy), 'verify').returncode == 0


@pytest.mark.parametrize('args', [
    ['list', '--near', '1', 'nan', '2'], ['list', '--since', 'yesterday-ish'],
    ['list', '--limit', '0'], ['edit', '1'], ['show', '0'], ['forget', '--kind', 'chair'],
    ['search', '-k', '0'], ['edit', '77', '--pin'], ['forget', '--yes'], ['search'],
])
def test_bad_arguments_fail_clearly(store_dir, args, capsys):
    """In-process (the same main() as the subprocess runs), to keep the test fast."""
    from engram_ros.apps.cli import main

    try:
        code = main(['--store', str(store_dir), *args])
    except SystemExit as exc:      # argparse's own refusals
        code = exc.code
    err = capsys.readouterr().err
    assert code in (1, 2) and 'error' in err, err
    assert 'Traceback' not in err


def test_bad_argument_in_a_subprocess(store_dir):
    out = engram('--store', str(store_dir), 'list', '--near', '1', 'nan', '2')
    assert out.returncode == 2 and 'must be finite' in out.stderr
    out = engram('--store', str(store_dir), 'edit', '77', '--pin')
    assert out.returncode == 1 and 'no engram with id 77' in out.stderr


def test_a_directory_that_is_not_a_store_is_not_touched(tmp_path):
    other = tmp_path / 'photos'
    other.mkdir()
    (other / 'holiday.jpg').write_bytes(b'jpeg')
    out = engram('--store', str(other), 'stats')
    assert out.returncode == 2 and 'not an engram store' in out.stderr
    assert sorted(p.name for p in other.iterdir()) == ['holiday.jpg']


# ----------------------------------------------------------------------------- keys and verify

def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob('*')) if p.is_file()}


def test_keygen_writes_a_private_key_once(tmp_path):
    key = tmp_path / 'engram.key'
    out = engram('keygen', str(key))
    assert out.returncode == 0, out.stderr
    assert (key.stat().st_mode & 0o777) == 0o600
    first = key.read_bytes()
    out = engram('keygen', str(key))
    assert out.returncode == 1 and 'never overwritten' in out.stderr
    assert key.read_bytes() == first


def _rewrite_without_the_key(store: Path) -> None:
    """An attacker who can write the store: change a record, recompute every hash (plain
    SHA-256, no key) and the saved head."""
    from engram_ros.core.audit_chain import canonical
    from engram_ros.core.audit_chain import Head
    from engram_ros.core.audit_chain import line_hash
    from engram_ros.core.audit_chain import seal
    from engram_ros.core.audit_chain import write_head

    path = store / 'audit.jsonl'
    prev = '0' * 64
    lines = []
    for n, line in enumerate(path.read_text().splitlines()):
        record = {k: v for k, v in json.loads(line).items() if k not in ('hash', 'mac')}
        if n == 0:
            record['requester'] = 'nobody'
        record['prev'] = prev
        lines.append(canonical(seal(record, None)))
        prev = line_hash(lines[-1])
    path.write_text('\n'.join(lines) + '\n')
    write_head(path, Head(int(json.loads(lines[-1])['seq']), prev, 1, 1, 0), None)


def test_a_keyed_store_needs_its_key_and_verify_finds_a_rewrite(store_dir, tmp_path):
    key = tmp_path / 'engram.key'
    assert engram('keygen', str(key)).returncode == 0
    out = engram('--store', str(store_dir), '--key', str(key), 'stats')
    assert out.returncode == 0, out.stderr
    before = _files(store_dir)
    out = engram('--store', str(store_dir), 'stats')      # no key: refused, nothing touched
    assert out.returncode == 2 and 'keyed' in out.stderr and 'Traceback' not in out.stderr
    assert _files(store_dir) == before
    out = engram('--store', str(store_dir), 'verify', '--key', str(key))
    assert out.returncode == 0 and 'FAILED' not in out.stdout, out.stdout + out.stderr
    out = engram('--store', str(store_dir), 'verify')
    assert out.returncode == 0 and 'unkeyed: detects accidental damage only' in out.stdout
    _rewrite_without_the_key(store_dir)
    out = engram('--store', str(store_dir), '--key', str(key), 'verify')
    assert out.returncode == 1 and 'audit      FAILED' in out.stdout, out.stdout
    out = engram('--store', str(store_dir), 'verify')     # what no key can tell
    assert out.returncode == 0 and 'unkeyed: detects accidental damage only' in out.stdout


def test_verify_after_a_cut_tail_fails_every_time_and_changes_nothing(store_dir):
    for _ in range(3):
        assert engram('--store', str(store_dir), 'list').returncode == 0
    audit = store_dir / 'audit.jsonl'
    lines = audit.read_text().splitlines()
    assert len(lines) == 4
    audit.write_text('\n'.join(lines[:-2]) + '\n')
    before = _files(store_dir)
    for _ in range(2):
        out = engram('--store', str(store_dir), 'verify')
        assert out.returncode == 1 and 'cut off the end' in out.stdout, out.stdout
    assert _files(store_dir) == before


def test_deleting_a_middle_rotated_audit_file_fails_verify(store_dir):
    for _ in range(2):
        assert engram('--store', str(store_dir), 'stats').returncode == 0
    from engram_ros.core.audit import AuditLog
    audit = AuditLog(store_dir / 'audit.jsonl', max_bytes=2048, keep_files=0)
    for i in range(60):
        audit.record('recall', 'planner', {'k': i, 'pad': 'x' * 200}, {'ids': [i]})
    assert engram('--store', str(store_dir), 'verify').returncode == 0
    (store_dir / 'audit.jsonl.2').unlink()
    out = engram('--store', str(store_dir), 'verify')
    assert out.returncode == 1 and 'audit.jsonl.2 is missing' in out.stdout, out.stdout
