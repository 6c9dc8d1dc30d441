"""The audit log: append-only, hash-chained, tampering found at the line it happened."""

from __future__ import annotations

import json

import pytest

from engram_ros.core.audit import AuditError
from engram_ros.core.audit import AuditLog
from engram_ros.core.audit import verify_log
from engram_ros.core.audit_chain import canonical
from engram_ros.core.audit_chain import line_hash
from engram_ros.core.audit_chain import seal
from engram_ros.core.keys import generate_key_text
from engram_ros.core.keys import parse_key


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
    result = again.verify()
    assert result.ok and result.records == 8
    assert again.digest('mug') == log.digest('mug')     # same salt after reopening


@pytest.mark.parametrize('line', [1, 3, 7])
def test_changing_one_line_is_found_at_that_line(log, tmp_path, line):
    path = tmp_path / 'audit.jsonl'
    lines = path.read_text().splitlines()
    lines[line - 1] = lines[line - 1].replace('"requester":"', '"requester":"x', 1)
    path.write_text('\n'.join(lines) + '\n')
    result = verify_log(path)
    assert not result.ok
    assert result.line == line, result.message


def test_rewritten_line_with_its_own_hash_fixed_is_found(log, tmp_path):
    path = tmp_path / 'audit.jsonl'
    lines = path.read_text().splitlines()
    record = json.loads(lines[3])
    record['result'] = {'ids': []}                       # hide what was returned
    lines[3] = canonical(seal({k: v for k, v in record.items() if k != 'hash'}, None))
    path.write_text('\n'.join(lines) + '\n')
    result = verify_log(path)
    assert not result.ok and result.line == 4, result.message


def test_removed_line_and_cut_tail_are_found(log, tmp_path):
    path = tmp_path / 'audit.jsonl'
    lines = path.read_text().splitlines()
    path.write_text('\n'.join(lines[:3] + lines[4:]) + '\n')
    assert not verify_log(path).ok
    path.write_text('\n'.join(lines[:-1]) + '\n')
    result = verify_log(path)                            # the saved head tells
    assert not result.ok and 'cut off the end' in result.message


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
    assert files == ['audit.head', 'audit.jsonl', 'audit.jsonl.1', 'audit.jsonl.2',
                     'audit.jsonl.3']
    assert all(p.stat().st_size < 4096 + 512 for p in tmp_path.iterdir())
    result = audit.verify()
    assert result.ok, result.message
    assert 'rotated out' in result.message and 'across 4 files' in result.message
    records = list(audit.records())
    assert records[0]['seq'] > 1                        # the oldest records are gone
    assert [r['seq'] for r in records] == list(range(records[0]['seq'], audit.head[0] + 1))
    assert sum(r['action'] == 'recall' for r in records) < 200
    # Every file starts with the salt, so a reopened log digests as before.
    for p in tmp_path.glob('audit.jsonl*'):
        first = json.loads(p.read_text().splitlines()[0])
        assert first['action'] == 'audit_rotate' and first['params']['salt']
    again = AuditLog(path, max_bytes=4096, keep_files=3)
    assert again.digest('mug') == audit.digest('mug') and again.head == audit.head


def test_keep_files_zero_keeps_the_whole_history(tmp_path):
    audit = AuditLog(tmp_path / 'audit.jsonl', max_bytes=4096, keep_files=0)
    _fill(audit, 100)
    result = audit.verify()
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
    result = verify_log(path)
    assert not result.ok and result.file == 'audit.jsonl.2' and result.file_line == 5
    assert 'line 5 of audit.jsonl.2' in result.message


def test_lines_cut_from_the_start_of_the_oldest_file_are_found(tmp_path):
    path = tmp_path / 'audit.jsonl'
    audit = AuditLog(path, max_bytes=4096, keep_files=2)
    _fill(audit, 100)
    oldest = tmp_path / 'audit.jsonl.2'
    oldest.write_text('\n'.join(oldest.read_text().splitlines()[1:]) + '\n')
    result = verify_log(path)
    assert not result.ok and 'is not the start of the log' in result.message


def test_a_crash_during_rotation_is_repaired_at_the_next_open(tmp_path):
    path = tmp_path / 'audit.jsonl'
    audit = AuditLog(path, max_bytes=4096, keep_files=0)
    _fill(audit, 10)
    head = audit.head
    for n in sorted((int(p.name.rsplit('.', 1)[1]) for p in tmp_path.glob('audit.jsonl.*')),
                    reverse=True):                      # older files shifted, as a rotation does
        (tmp_path / f'audit.jsonl.{n}').rename(tmp_path / f'audit.jsonl.{n + 1}')
    path.rename(tmp_path / 'audit.jsonl.1')             # renamed, new file not yet written
    again = AuditLog(path, max_bytes=4096, keep_files=0)
    assert again.gaps_found == []
    assert again.head[0] == head[0] + 1                 # the rotation record, chained on
    assert json.loads(path.read_text().splitlines()[0])['prev'] != '0' * 64
    result = again.verify()
    assert result.ok, result.message


@pytest.mark.parametrize('kwargs', [dict(max_bytes=10), dict(keep_files=-1)])
def test_bad_rotation_settings_are_refused(tmp_path, kwargs):
    with pytest.raises(ValueError):
        AuditLog(tmp_path / 'audit.jsonl', **kwargs)


# ----------------------------------------------------------------------------- keyed (item 10)

def _key():
    return parse_key(generate_key_text()).audit_keys()


def _plain_rechain(path, start: int, change) -> None:
    """What an attacker without the key can do: change record ``start`` (0-based) and
    recompute the rest of the chain, and the saved head, with plain SHA-256."""
    lines = path.read_text().splitlines()
    prev = line_hash(lines[start - 1]) if start else '0' * 64
    for i in range(start, len(lines)):
        record = {k: v for k, v in json.loads(lines[i]).items() if k not in ('hash', 'mac')}
        if i == start:
            change(record)
        record['prev'] = prev
        lines[i] = canonical(seal(record, None))
        prev = line_hash(lines[i])
    path.write_text('\n'.join(lines) + '\n')
    from engram_ros.core.audit_chain import Head
    from engram_ros.core.audit_chain import write_head
    last = json.loads(lines[-1])
    write_head(path, Head(int(last['seq']), prev, 1, 1, 0), None)


def _hide_result(record: dict) -> None:
    record['result'] = {'ids': []}


@pytest.mark.parametrize('start', [0, 3])
def test_a_keyed_log_rewritten_with_plain_sha256_fails(tmp_path, start):
    key = _key()
    path = tmp_path / 'audit.jsonl'
    audit = AuditLog(path, key=key)
    for i in range(6):
        audit.record('recall', 'planner', {'k': i}, {'ids': [i]})
    assert verify_log(path, key).ok
    _plain_rechain(path, start, _hide_result)
    result = verify_log(path, key)
    assert not result.ok, result.message
    # An unkeyed check of a log rewritten from its first line cannot tell, and says so.
    unkeyed = verify_log(path)
    if start == 0:
        assert unkeyed.ok and 'unkeyed: detects accidental damage only' in unkeyed.message
    else:
        assert not unkeyed.ok       # plain records after keyed ones


def test_a_keyed_log_with_macs_replaced_by_plain_hashes_fails_at_that_line(tmp_path):
    key = _key()
    path = tmp_path / 'audit.jsonl'
    audit = AuditLog(path, key=key)
    for i in range(6):
        audit.record('recall', 'planner', {'k': i}, {'ids': [i]})
    lines = path.read_text().splitlines()
    record = json.loads(lines[4])
    record['result'] = {'ids': []}
    import hashlib
    record['mac'] = hashlib.sha256(canonical(
        {k: v for k, v in record.items() if k != 'mac'}).encode()).hexdigest()
    lines[4] = canonical(record)
    path.write_text('\n'.join(lines) + '\n')
    result = verify_log(path, key)
    assert not result.ok and result.line == 5 and 'MAC' in result.message


def test_keyed_request_digests_are_not_plain_or_salted_sha256(tmp_path):
    import hashlib

    key = _key()
    audit = AuditLog(tmp_path / 'audit.jsonl', key=key)
    digest = audit.digest('mug')
    text = (tmp_path / 'audit.jsonl').read_text()
    assert 'salt' not in text                             # nothing to run a dictionary with
    assert digest != 'h:' + hashlib.sha256(b'mug').hexdigest()[:16]
    assert digest != 'h:' + hashlib.sha256(b'\0mug').hexdigest()[:16]
    unkeyed = AuditLog(tmp_path / 'other.jsonl')
    salt = json.loads((tmp_path / 'other.jsonl').read_text().splitlines()[0])['params']['salt']
    assert unkeyed.digest('mug') == 'h:' + hashlib.sha256(
        (salt + '\0mug').encode()).hexdigest()[:16]      # what a dictionary pass finds
    assert digest not in (unkeyed.digest('mug'),)
    assert AuditLog(tmp_path / 'audit.jsonl', key=key).digest('mug') == digest
    assert AuditLog(tmp_path / 'third.jsonl', key=_key()).digest('mug') != digest


def test_a_keyed_log_is_not_extended_without_its_key(tmp_path):
    path = tmp_path / 'audit.jsonl'
    AuditLog(path, key=_key()).record('recall', 'p', {}, {})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(AuditError, match='keyed'):
        AuditLog(path)
    with pytest.raises(AuditError, match='another key'):
        AuditLog(path, key=_key())
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_an_unkeyed_log_goes_on_keyed(log, tmp_path):
    key = _key()
    path = tmp_path / 'audit.jsonl'
    keyed = AuditLog(path, key=key)
    keyed.record('recall', 'p', {}, {})
    assert keyed.gaps_found == []
    actions = [r['action'] for r in keyed.records()]
    assert actions[-2] == 'audit_keyed'
    result = verify_log(path, key)
    assert result.ok, result.message


# ----------------------------------------------------------------------------- head (item 11)

def _snapshot(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_a_cut_tail_is_found_by_every_check_and_checking_changes_nothing(log, tmp_path):
    path = tmp_path / 'audit.jsonl'
    lines = path.read_text().splitlines()
    path.write_text('\n'.join(lines[:-2]) + '\n')
    before = _snapshot(tmp_path)
    first, second = verify_log(path), verify_log(path)
    assert not first.ok and not second.ok and first.message == second.message
    assert 'cut off the end' in first.message
    assert _snapshot(tmp_path) == before


def test_opening_a_cut_log_records_a_gap_that_is_reported_forever(tmp_path):
    key = _key()
    path = tmp_path / 'audit.jsonl'
    audit = AuditLog(path, key=key)
    for i in range(8):
        audit.record('recall', 'planner', {'k': i}, {'ids': [i]})
    saved_seq, saved_hash = audit.head
    lines = path.read_text().splitlines()
    path.write_text('\n'.join(lines[:-3]) + '\n')
    reopened = AuditLog(path, key=key)                    # starts: a crash must not brick it
    assert len(reopened.gaps_found) == 1 and 'cut off the end' in reopened.gaps_found[0]
    gap = list(reopened.records())[-1]
    assert gap['action'] == 'audit_gap' and gap['prev'] == saved_hash
    assert gap['seq'] == saved_seq + 1
    reopened.record('recall', 'planner', {}, {})
    for _ in range(2):
        again = AuditLog(path, key=key)
        assert again.gaps_found == [] and again.gaps == 1
        result = verify_log(path, key)
        assert not result.ok and 'gap before line' in result.message, result.message
        assert 'cut off the end' in result.message


def test_a_crash_between_a_record_and_its_head_is_not_a_gap(tmp_path):
    path = tmp_path / 'audit.jsonl'
    audit = AuditLog(path, key=_key())
    audit.record('recall', 'planner', {}, {})
    head_before = (tmp_path / 'audit.head').read_bytes()
    audit.record('recall', 'planner', {}, {})
    (tmp_path / 'audit.head').write_bytes(head_before)   # the head write never happened
    again = AuditLog(path, key=audit.key)
    assert again.gaps_found == []
    assert verify_log(path, audit.key).ok


def test_a_deleted_or_forged_head_is_a_gap(tmp_path):
    key = _key()
    path = tmp_path / 'audit.jsonl'
    audit = AuditLog(path, key=key)
    audit.record('recall', 'planner', {}, {})
    (tmp_path / 'audit.head').unlink()
    result = verify_log(path, key)
    assert not result.ok and 'audit.head is missing' in result.message
    assert AuditLog(path, key=key).gaps_found


# ----------------------------------------------------------------------------- files (item 12)

def test_deleting_a_middle_rotated_file_is_found(tmp_path):
    key = _key()
    path = tmp_path / 'audit.jsonl'
    audit = AuditLog(path, key=key, max_bytes=4096, keep_files=0)
    _fill(audit, 120)
    assert len(audit.files()) >= 6
    (tmp_path / 'audit.jsonl.2').unlink()
    for _ in range(2):
        result = verify_log(path, key)
        assert not result.ok and 'audit.jsonl.2 is missing' in result.message, result.message
    again = AuditLog(path, key=key, max_bytes=4096, keep_files=0)
    assert any('audit.jsonl.2 is missing' in p for p in again.gaps_found)
    _fill(again, 30)                                     # rotations shift the hole along
    result = verify_log(path, key)
    assert not result.ok and 'is missing' in result.message, result.message


def test_deleting_the_oldest_rotated_file_is_found(tmp_path):
    key = _key()
    path = tmp_path / 'audit.jsonl'
    audit = AuditLog(path, key=key, max_bytes=4096, keep_files=0)
    _fill(audit, 60)
    oldest = max(int(p.name.rsplit('.', 1)[1]) for p in tmp_path.glob('audit.jsonl.*'))
    (tmp_path / f'audit.jsonl.{oldest}').unlink()
    result = verify_log(path, key)
    assert not result.ok and 'oldest file(s)' in result.message, result.message
    assert AuditLog(path, key=key, max_bytes=4096, keep_files=0).gaps_found
    assert not verify_log(path, key).ok


# ----------------------------------------------------------------------------- head in place

def test_head_is_updated_in_place_not_replaced(log, tmp_path):
    """An open log rewrites its head file in place: the same file, two slots of HEAD_SLOT."""
    import os

    from engram_ros.core.audit_chain import HEAD_SLOT
    from engram_ros.core.audit_chain import read_head
    head = tmp_path / 'audit.head'
    inode = os.stat(head).st_ino
    for i in range(3):
        log.record('recall', 'planner', {'k': i}, {})
        assert os.stat(head).st_ino == inode
        assert os.stat(head).st_size == 2 * HEAD_SLOT
        saved, why = read_head(tmp_path / 'audit.jsonl', None)
        assert why == '' and (saved.seq, saved.hash) == log.head


def test_a_head_slot_cut_short_falls_back_to_the_other(log, tmp_path):
    """A head write cut short (a crash mid-write) leaves the other slot: no gap at reopening."""
    from engram_ros.core.audit_chain import HEAD_SLOT
    log.record('recall', 'planner', {}, {})   # slots now hold two different heads
    log.close()
    head = tmp_path / 'audit.head'
    data = head.read_bytes()
    for cut in (HEAD_SLOT + 100, HEAD_SLOT):
        head.write_bytes(data[:cut])
        again = AuditLog(tmp_path / 'audit.jsonl')
        assert again.gaps_found == [], again.gaps_found
        again.close()
        data = head.read_bytes()
    # Both slots torn is not a crash: it is reported.
    head.write_bytes(b'{"seq": 3')
    broken = AuditLog(tmp_path / 'audit.jsonl')
    assert broken.gaps_found and 'audit.head is not a saved head' in broken.gaps_found[0]


def test_killed_while_recording_reopens_without_gap(tmp_path):
    """kill -9 of a process recording as fast as it can: the log reopens intact, no gap."""
    import signal
    import subprocess
    import sys
    import time
    path = tmp_path / 'audit.jsonl'
    code = ('import sys\nfrom engram_ros.core.audit import AuditLog\n'
            'log = AuditLog(sys.argv[1])\nprint("ready", flush=True)\n'
            'while True:\n    log.record("recall", "planner", {"k": 10}, {"ids": [1, 2]})\n')
    proc = subprocess.Popen([sys.executable, '-c', code, str(path)], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b'ready'
    while path.stat().st_size < 200_000:   # a few hundred records in: kill mid-stream
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    proc.stdout.close()
    again = AuditLog(path)
    assert again.gaps_found == [], again.gaps_found
    result = again.verify()
    assert result.ok and result.records > 500, result.message
