"""`engram --node`: the CLI against a running memory node, through its services over DDS."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

rclpy = pytest.importorskip('rclpy')

ROOT = Path(__file__).resolve().parents[2]

from memory_graph import ingest  # noqa: E402
from memory_graph import Memory  # noqa: E402
from memory_graph import observation  # noqa: E402


def engram(namespace: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'engram_ros.apps.cli', '--node',
                           '--namespace', namespace, '--as', 'alice', *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def memory(test_node, start_memory, tmp_path):
    process, namespace = start_memory(store_dir=tmp_path / 'store')
    memory = Memory(test_node, process, namespace)
    ingest(memory, [observation('mug', (1.0, 2.0, 0.8), tags=['color:red']),
                    observation('book', (4.0, 1.0, 0.5)),
                    observation('plant', (6.0, 1.0, 0.0))], expected=3)
    return memory


def test_stats_list_and_search_through_the_node(memory):
    stats = engram(memory.namespace, '--json', 'stats')
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout) == {'engrams': 3, 'kinds': {
        'place': 0, 'object': 3, 'audio': 0, 'event': 0}}

    listed = engram(memory.namespace, '--json', 'list', '--tag', 'color:red')
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r['label'] for r in rows] == ['mug']

    found = engram(memory.namespace, 'search', '--text', 'where is the book?', '-k', '3')
    assert found.returncode == 0, found.stderr
    assert 'book' in found.stdout and 'mug' not in found.stdout


def test_forget_through_the_node_is_real_and_audited(memory, tmp_path):
    preview = engram(memory.namespace, 'forget', '--tag', 'label:mug', '--dry-run')
    assert preview.returncode == 0, preview.stderr
    assert memory.count() == 3                          # a dry run changes nothing

    done = engram(memory.namespace, 'forget', '--tag', 'label:mug', '--yes')
    assert done.returncode == 0, done.stdout + done.stderr
    assert memory.count() == 2
    assert memory.client.recall(text='mug', k=5).engrams == []
    audit = (tmp_path / 'store' / 'audit.jsonl').read_text().splitlines()
    forgets = [json.loads(line) for line in audit if '"action":"forget"' in line]
    assert forgets and forgets[-1]['requester'] == 'alice'
    assert forgets[-1]['result']['count'] == 1 and not forgets[-1]['params'].get('dry_run')


def test_offline_only_commands_and_a_missing_node_fail_clearly(memory):
    offline = engram(memory.namespace, 'verify')
    assert offline.returncode != 0 and 'offline only' in offline.stderr + offline.stdout
    missing = subprocess.run([sys.executable, '-m', 'engram_ros.apps.cli', '--node',
                              '--namespace', '/nobody_here', 'stats'], cwd=ROOT,
                             capture_output=True, text=True, timeout=90)
    assert missing.returncode != 0
    assert 'not available' in missing.stderr + missing.stdout
