"""Key files: the one secret an operator holds, and the sub-keys derived from it.

A memory is keyed by one master key kept in a file *outside* the store directory (mode 0600,
written by ``engram keygen FILE``). Someone who can write the store but cannot read that file
cannot rewrite the audit history unseen, nor read digested request words back. Each use gets
its own sub-key, derived with HKDF-SHA256 (RFC 5869) under a distinct ``info`` label, so one
sub-key never reveals another:

* ``audit``: HMAC-SHA256 of every audit record and of the saved audit head,
* ``digest``: HMAC-SHA256 of request strings (tags, labels, query text) in the audit log,
* ``evidence``: the Fernet key that encrypts evidence files.

File format (text; blank lines and lines starting with ``#`` are ignored)::

    # engram_ros master key ...
    engram-key-v1:<32 random bytes, url-safe base64>

A file that holds a bare Fernet key (what ``engram keygen`` wrote before this format) is read
as a *legacy* key: its evidence key is that Fernet key itself, so evidence encrypted with it
still decrypts, and its 32 decoded bytes are the master secret for the other sub-keys. The same
text is accepted in ``$ENGRAM_KEY``. Nothing here imports ROS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

_LOG = logging.getLogger(__name__)

KEY_PREFIX = 'engram-key-v1:'
_HEADER = ('# engram_ros master key: keeps the audit log tamper-evident and encrypts evidence.\n'
           '# Keep it outside the store directory, mode 0600; without it encrypted evidence\n'
           '# cannot be read and the audit log cannot be verified or extended.\n')
_INFO = {'audit': b'engram_ros/audit-mac/v1', 'digest': b'engram_ros/audit-digest/v1',
         'evidence': b'engram_ros/evidence-fernet/v1'}


class KeyFileError(ValueError):
    """A key file that is missing, unreadable, malformed, readable by others or in the store."""


@dataclass(frozen=True)
class AuditKeys:
    """The audit log's sub-keys and a short public fingerprint that names the key."""

    mac: bytes
    digest: bytes
    key_id: str


@dataclass(frozen=True)
class MasterKey:
    """One master secret; ``legacy_fernet`` is set when it was read from an old Fernet key."""

    secret: bytes
    legacy_fernet: bytes | None = None

    def derive(self, use: str) -> bytes:
        """The 32-byte sub-key for ``use`` (``'audit'``, ``'digest'`` or ``'evidence'``)."""
        return hkdf_sha256(self.secret, _INFO[use])

    def audit_keys(self) -> AuditKeys:
        mac = self.derive('audit')
        key_id = hmac.new(mac, b'engram_ros key id', hashlib.sha256).hexdigest()[:16]
        return AuditKeys(mac=mac, digest=self.derive('digest'), key_id=key_id)

    def evidence_key(self) -> bytes:
        """The Fernet key for evidence: the legacy key itself, or a derived one."""
        if self.legacy_fernet is not None:
            return self.legacy_fernet
        return base64.urlsafe_b64encode(self.derive('evidence'))


def hkdf_sha256(secret: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 (extract and expand, no salt) from ``cryptography``."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(secret)


def parse_key(text: str | bytes, where: str = 'the key') -> MasterKey:
    """The master key a key file's text holds (new format or a legacy Fernet key).

    :raises KeyFileError: when it holds neither.
    """
    if isinstance(text, bytes):
        text = text.decode('ascii', 'replace')
    lines = [ln.strip() for ln in text.splitlines()
             if ln.strip() and not ln.strip().startswith('#')]
    if len(lines) != 1:
        raise KeyFileError(f'{where} holds no key (expected one line, as `engram keygen` '
                           'writes)')
    line = lines[0]
    legacy = not line.startswith(KEY_PREFIX)
    body = line if legacy else line[len(KEY_PREFIX):]
    try:
        secret = base64.urlsafe_b64decode(body.encode('ascii'))
    except (ValueError, UnicodeEncodeError):
        secret = b''
    if len(secret) != 32:
        raise KeyFileError(f'{where} is not a valid key ({KEY_PREFIX}<32 url-safe base64 '
                           'bytes>, or an old Fernet key; create one with: engram keygen FILE)')
    return MasterKey(secret, body.encode('ascii') if legacy else None)


def generate_key_text() -> str:
    """The text of a new key file."""
    return _HEADER + KEY_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode() + '\n'


def write_key_file(path: Path | str) -> Path:
    """Create a new key file, mode 0600; an existing file is never overwritten.

    :raises FileExistsError: when ``path`` exists.
    """
    path = Path(os.path.expanduser(str(path)))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, 'w') as f:
        f.write(generate_key_text())
        f.flush()
        os.fsync(f.fileno())
    return path


def read_key_file(path: Path | str, *, store_dir: Path | str | None = None,
                  private: bool = True) -> MasterKey:
    """Read a key file.

    :param store_dir: the store the key protects: a key inside it is refused (whoever can
        write the store could read it).
    :param private: refuse a file that its group or others may read (``chmod 600 FILE``).
    :raises KeyFileError: for a missing, unreadable, malformed or exposed key file.
    """
    path = Path(os.path.expanduser(str(path)))
    where = f'key file {str(path)!r}'
    try:
        data = path.read_bytes()
        mode = path.stat().st_mode
    except OSError as exc:
        raise KeyFileError(f'{where} cannot be read ({exc.strerror})') from exc
    if store_dir is not None:
        store = Path(os.path.expanduser(str(store_dir))).resolve()
        if path.resolve().is_relative_to(store):
            raise KeyFileError(f'{where} lies inside the store {str(store)!r}; keep the key '
                               'outside it, where whoever can write the store cannot read it')
    if private and stat.S_IMODE(mode) & 0o077:
        raise KeyFileError(f'{where} may be read by others (mode '
                           f'{stat.S_IMODE(mode):04o}); run: chmod 600 {path}')
    return parse_key(data, where)


__all__ = ['AuditKeys', 'KEY_PREFIX', 'KeyFileError', 'MasterKey', 'generate_key_text',
           'hkdf_sha256', 'parse_key', 'read_key_file', 'write_key_file']
