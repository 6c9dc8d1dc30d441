"""The audit log: append-only, hash-chained, tampering found at the line it happened."""

from __future__ import annotations

import json

import pytest

from engram_ros.core.audit import AuditLog


@pytest.fixture
def log(tmp_path):
    audit = AuditLog(tmp_path / 'audit.jsonl')
    for i in range(6):
        audit.record('recall', f'planner{i}', {'k': i}, {'ids': [i, i + 1]})
    return audit


def test_intact_log_verifies_and_resumes(log, tmp_path):
    assert log.verify().ok and log.verify().records == 7
    again = AuditLog(tmp_path / 'audit.jsonl')          # reopened: the chain continues
    again.record('forget', 'alice', {}, {'ids': [3]})
    result = again.verify(again.head)
    assert result.ok and result.records == 8
    assert again.digest('mug') == log.digest('mug')     # same salt after reopening


@pytest.mark.parametrize('line', [1, 3, 7])
def test_changing_one_line_is_found_at_that_line(log, tmp_path, line):
    path = tmp_path / 'audit.jsonl'
    lines = path.read_text().splitlines()
    lines[line - 1] = lines[line - 1].replace('"requester":"', '"requester":"x', 1)
    path.write_text('\n'.join(lines) + '\n')
    result = AuditLog(path).verify()
    assert not result.ok
    assert result.line == line, result.message


def test_rewritten_line_with_its_own_hash_fixed_is_found(log, tmp_path):
    from engram_ros.core.audit import _self_hash

    path = tmp_path / 'audit.jsonl'
    lines = path.read_text().splitlines()
    record = json.loads(lines[3])
    record['result'] = {'ids': []}                       # hide what was returned
    record['hash'] = _self_hash(record)
    lines[3] = json.dumps(record, sort_keys=True, separators=(',', ':'))
    path.write_text('\n'.join(lines) + '\n')
    result = AuditLog(path).verify()
    assert not result.ok and result.line == 4, result.message


def test_removed_line_and_cut_tail_are_found(log, tmp_path):
    path = tmp_path / 'audit.jsonl'
    head = log.head
    lines = path.read_text().splitlines()
    path.write_text('\n'.join(lines[:3] + lines[4:]) + '\n')
    assert not AuditLog(path).verify().ok
    path.write_text('\n'.join(lines[:-1]) + '\n')
    assert AuditLog(path).verify().ok                    # alone the log cannot tell...
    assert not AuditLog(path).verify(head).ok            # ...the store's recorded head can


def test_ram_log_is_bounded_and_verifiable():
    audit = AuditLog(None, ram_records=5)
    for i in range(20):
        audit.record('recall', 'p', {}, {'ids': [i]})
    assert len(list(audit.lines())) == 5
    assert audit.verify().ok


def _fill(audit: AuditLog, n: int) -> None:
    for i in range(n):
        audit.record('recall', 'planner', {'k': i, 'pad': 'x' * 200}, {'ids': [i]})


def test_rotation_bounds_the_files_and_keeps_the_chain(tmp_path):
    path = tmp_path / 'audit.jsonl'
    audit = AuditLog(path, max_bytes=4096, keep_files=3)
    _fill(audit, 200)                                   # ~70 kB: many rotations
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ['audit.jsonl', 'audit.jsonl.1', 'audit.jsonl.2', 'audit.jsonl.3']
    assert all(p.stat().st_size < 4096 + 512 for p in tmp_path.iterdir())
    result = audit.verify(audit.head)
    assert result.ok, result.message
    assert 'rotated out' in result.message and 'across 4 files' in result.message
    records = list(audit.records())
    assert records[0]['seq'] > 1                        # the oldest records are gone
    assert [r['seq'] for r in records] == list(range(records[0]['seq'], audit.head[0] + 1))
    assert sum(r['action'] == 'recall' for r in records) < 200
    # Every file starts with the salt, so a reopened log digests as before.
    for p in tmp_path.iterdir():
        first = json.loads(p.read_text().splitlines()[0])
        assert first['action'] == 'audit_rotate' and first['params']['salt']
    again = AuditLog(path, max_bytes=4096, keep_files=3)
    assert again.digest('mug') == audit.digest('mug') and again.head == audit.head


def test_keep_files_zero_keeps_the_whole_history(tmp_path):
    audit = AuditLog(tmp_path / 'audit.jsonl', max_bytes=4096, keep_files=0)
    _fill(audit, 100)
    result = audit.verify(audit.head)
    rotations = sum(r['action'] == 'audit_rotate' for r in audit.records())
    assert rotations >= 10
    assert result.ok and result.records == audit.head[0] == 101 + rotations
    assert 'rotated out' not in result.message
    assert json.loads(next(audit.lines()))['action'] == 'audit_start'


def test_tampering_in_a_rotated_file_names_that_file(tmp_path):
    path = tmp_path / 'audit.jsonl'
    audit = AuditLog(path, max_bytes=4096, keep_files=0)
    _fill(audit, 60)
    older = tmp_path / 'audit.jsonl.2'
    lines = older.read_text().splitlines()
    lines[4] = lines[4].replace('"requester":"', '"requester":"x', 1)
    older.write_text('\n'.join(lines) + '\n')
    result = AuditLog(path, max_bytes=4096, keep_files=0).verify()
    assert not result.ok and result.file == 'audit.jsonl.2' and result.file_line == 5
    assert 'line 5 of audit.jsonl.2' in result.message


def test_lines_cut_from_the_start_of_the_oldest_file_are_found(tmp_path):
    path = tmp_path / 'audit.jsonl'
    audit = AuditLog(path, max_bytes=4096, keep_files=2)
    _fill(audit, 100)
    oldest = tmp_path / 'audit.jsonl.2'
    oldest.write_text('\n'.join(oldest.read_text().splitlines()[1:]) + '\n')
    result = AuditLog(path, max_bytes=4096, keep_files=2).verify()
    assert not result.ok and 'is not the start of the log' in result.message


def test_a_crash_during_rotation_is_repaired_at_the_next_open(tmp_path):
    path = tmp_path / 'audit.jsonl'
    audit = AuditLog(path, max_bytes=4096, keep_files=0)
    _fill(audit, 10)
    head = audit.head
    path.rename(tmp_path / 'audit.jsonl.1')             # renamed, new file not yet written
    again = AuditLog(path, max_bytes=4096, keep_files=0)
    assert again.head[0] == head[0] + 1                 # the rotation record, chained on
    assert json.loads(path.read_text().splitlines()[0])['prev'] != '0' * 64
    result = again.verify(again.head)
    assert result.ok, result.message


@pytest.mark.parametrize('kwargs', [dict(max_bytes=10), dict(keep_files=-1)])
def test_bad_rotation_settings_are_refused(tmp_path, kwargs):
    with pytest.raises(ValueError):
        AuditLog(tmp_path / 'audit.jsonl', **kwargs)
