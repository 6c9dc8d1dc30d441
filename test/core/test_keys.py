"""Key files: one master key, separate sub-keys by HKDF, old Fernet key files still work."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat

import pytest
from cryptography.fernet import Fernet

from engram_ros.core.evidence import EncryptionKeyError
from engram_ros.core.evidence import EvidenceStore
from engram_ros.core.evidence import load_key
from engram_ros.core.keys import KEY_PREFIX
from engram_ros.core.keys import KeyFileError
from engram_ros.core.keys import parse_key
from engram_ros.core.keys import read_key_file
from engram_ros.core.keys import write_key_file


def _rfc5869(secret: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 written out from RFC 5869 (no salt: a zero-filled one)."""
    prk = hmac.new(b'\0' * 32, secret, hashlib.sha256).digest()
    out, block, i = b'', b'', 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
        i += 1
    return out[:length]


def test_a_new_key_file_is_private_and_yields_separate_sub_keys(tmp_path):
    path = write_key_file(tmp_path / 'engram.key')
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert KEY_PREFIX in path.read_text()
    with pytest.raises(FileExistsError):
        write_key_file(path)
    master = read_key_file(path)
    keys = master.audit_keys()
    assert keys.mac == _rfc5869(master.secret, b'engram_ros/audit-mac/v1')
    evidence = master.evidence_key()
    assert len({keys.mac, keys.digest, evidence, master.secret}) == 4
    assert read_key_file(path).audit_keys() == keys       # deterministic
    assert read_key_file(write_key_file(tmp_path / 'other.key')).audit_keys() != keys


def test_evidence_written_with_a_new_key_file_reads_back(tmp_path):
    path = write_key_file(tmp_path / 'engram.key')
    store = EvidenceStore(tmp_path / 'evidence', load_key(path, environ={}))
    uri = store.write('frame.png', b'zqxpixels', 'image')
    again = EvidenceStore(tmp_path / 'evidence', load_key(path, environ={}))
    assert again.read(uri) == b'zqxpixels'


def test_an_old_fernet_key_file_still_decrypts_old_evidence(tmp_path):
    old_key = Fernet.generate_key()                      # what `engram keygen` wrote before
    path = tmp_path / 'old.key'
    path.write_bytes(old_key + b'\n')
    os.chmod(path, 0o600)
    old_store = EvidenceStore(tmp_path / 'evidence', old_key)
    uri = old_store.write('frame.png', b'zqxpixels', 'image')
    assert load_key(path, environ={}) == old_key
    assert EvidenceStore(tmp_path / 'evidence', load_key(path, environ={})).read(uri) == \
        b'zqxpixels'
    assert load_key('', environ={'ENGRAM_KEY': old_key.decode()}) == old_key
    master = read_key_file(path)                         # and it keys an audit log too
    assert master.legacy_fernet == old_key and master.audit_keys().mac != old_key


@pytest.mark.parametrize('text', ['', 'hello', KEY_PREFIX + 'c2hvcnQ=', '# only a comment\n'])
def test_malformed_keys_are_refused(tmp_path, text):
    with pytest.raises(KeyFileError):
        parse_key(text)
    path = tmp_path / 'bad.key'
    path.write_text(text)
    with pytest.raises(EncryptionKeyError):
        load_key(path, environ={})


def test_a_key_others_may_read_or_inside_the_store_is_refused(tmp_path):
    path = write_key_file(tmp_path / 'engram.key')
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match='chmod 600'):
        read_key_file(path)
    os.chmod(path, 0o600)
    store = tmp_path / 'store'
    store.mkdir()
    inside = write_key_file(store / 'engram.key')
    with pytest.raises(KeyFileError, match='inside the store'):
        read_key_file(inside, store_dir=store)
    assert read_key_file(path, store_dir=store)
    with pytest.raises(KeyFileError, match='cannot be read'):
        read_key_file(tmp_path / 'missing.key')
