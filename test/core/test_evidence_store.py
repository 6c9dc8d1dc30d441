"""Evidence files: one API to write and read them, encryption at rest, no silent plaintext."""

from __future__ import annotations

import pytest

from engram_ros.core.evidence import EncryptionKeyError
from engram_ros.core.evidence import EvidenceError
from engram_ros.core.evidence import EvidenceStore
from engram_ros.core.evidence import load_key

PLAINTEXT = b'PLAINTEXT-OF-A-BEDROOM-CROP-' * 8


def test_plain_write_read_delete(tmp_path):
    evidence = EvidenceStore(tmp_path / 'evidence')
    uri = evidence.write('../../etc/passwd', b'abc', 'audio')
    path = evidence.path_of(uri)
    assert path.parent == tmp_path / 'evidence' / 'audio'      # the name cannot escape
    assert evidence.read(uri) == b'abc' and evidence.kind_of(path) == 'audio'
    assert (path.stat().st_mode & 0o777) == 0o600
    assert evidence.delete(uri) and not path.exists()
    with pytest.raises(EvidenceError):
        evidence.read('file:///etc/hostname')                  # outside the store
    with pytest.raises(ValueError):
        evidence.write('x', b'', 'smell')


def test_encrypted_files_never_hold_the_plaintext(tmp_path):
    key = EvidenceStore.generate_key()
    evidence = EvidenceStore(tmp_path / 'evidence', key)
    uris = [evidence.write(f'crop{i}.png', PLAINTEXT + bytes([i]), 'image') for i in range(5)]
    for path in (tmp_path / 'evidence').rglob('*'):
        if path.is_file():
            assert PLAINTEXT[:16] not in path.read_bytes()
    assert [evidence.read(u) for u in uris] == [PLAINTEXT + bytes([i]) for i in range(5)]
    with pytest.raises(EvidenceError, match='encrypted'):
        EvidenceStore(tmp_path / 'evidence').read(uris[0])     # no key: no plaintext
    with pytest.raises(EvidenceError, match='cannot be decrypted'):
        EvidenceStore(tmp_path / 'evidence', EvidenceStore.generate_key()).read(uris[0])


def test_missing_or_bad_key_is_an_error(tmp_path):
    with pytest.raises(EncryptionKeyError, match='no key'):
        load_key('', environ={})
    with pytest.raises(EncryptionKeyError, match='cannot be read'):
        load_key(tmp_path / 'missing.key', environ={})
    (tmp_path / 'bad.key').write_text('not a key')
    with pytest.raises(EncryptionKeyError, match='not a valid key'):
        load_key(tmp_path / 'bad.key', environ={})
    key = EvidenceStore.generate_key()
    assert load_key('', environ={'ENGRAM_KEY': key.decode()}) == key
    (tmp_path / 'good.key').write_bytes(key + b'\n')
    assert EvidenceStore.from_settings(tmp_path, True, str(tmp_path / 'good.key')).encrypted
    assert not EvidenceStore.from_settings(tmp_path, False, '').encrypted
