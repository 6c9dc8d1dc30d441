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
