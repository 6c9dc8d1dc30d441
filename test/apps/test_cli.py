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
