"""Raw evidence files (crops, frames, clips): the one API everyone writes and reads them with.

    evidence = EvidenceStore.from_settings(store.storage.evidence_dir, encrypt, key_file)
    uri = evidence.write('mug_crop.png', png_bytes, kind='image')   # -> file:///.../evidence/...
    observation.evidence = (uri,)
    data = evidence.read(uri)                                        # decrypted bytes

Files live in ``<store>/evidence/<kind>/<name>-<random>.<ext>`` where ``kind`` is one of
:data:`engram_ros.core.privacy.EVIDENCE_KINDS`; the kind directory is what the retention limits
(:class:`engram_ros.core.privacy.PrivacyPolicy`) go by, and the file's modification time is its
age. Writes are atomic (temporary file, then rename) and private (mode 0600).

Encryption at rest (optional) uses Fernet from ``cryptography`` (AES-128-CBC + HMAC-SHA256,
authenticated): encrypted files end in ``.enc`` and never hold the plaintext. The key is
read from a key file or the ``ENGRAM_KEY`` environment variable: a master key (``engram
keygen``), from which the evidence key is derived, or an old bare Fernet key, used as it is
(:mod:`engram_ros.core.keys`); when encryption is asked for and no valid key is found,
:func:`load_key` raises :class:`EncryptionKeyError`: there is never a silent fall-back to
plaintext.

Deleting an engram deletes the evidence files only it referenced (see
:meth:`engram_ros.core.storage.Storage.delete`); :meth:`EvidenceStore.delete` removes one file.
Nothing here imports ROS.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote
from urllib.parse import urlparse

from engram_ros.core.files import private_dir
from engram_ros.core.keys import KeyFileError
from engram_ros.core.keys import parse_key
from engram_ros.core.privacy import EVIDENCE_KINDS
from engram_ros.core.privacy import PrivacyPolicy

#: Environment variable holding the evidence key when no key file is configured.
KEY_ENV = 'ENGRAM_KEY'
ENCRYPTED_SUFFIX = '.enc'
_SAFE = re.compile(r'[^A-Za-z0-9._-]+')


class EvidenceError(RuntimeError):
    """Evidence cannot be written or read (outside the store, undecryptable, missing)."""


class EncryptionKeyError(EvidenceError):
    """Encryption is on but there is no usable key; the memory must not start."""


def load_key(key_file: str | Path | None = None, environ: dict | None = None) -> bytes:
    """The evidence (Fernet) key from ``key_file`` or, when that is empty, ``$ENGRAM_KEY``.

    Either holds a master key (``engram keygen``; the evidence key is derived from it, see
    :mod:`engram_ros.core.keys`) or an old bare Fernet key, used as it is so old evidence still
    decrypts.

    :raises EncryptionKeyError: when neither gives a valid key.
    """
    environ = os.environ if environ is None else environ
    if key_file:
        path = Path(os.path.expanduser(str(key_file)))
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise EncryptionKeyError(f'evidence encryption is on but the key file {str(path)!r} '
                                     f'cannot be read ({exc.strerror})') from exc
        where = f'key file {str(path)!r}'
    else:
        text = environ.get(KEY_ENV, '').strip().encode('ascii', 'replace')
        where = f'${KEY_ENV}'
        if not text:
            raise EncryptionKeyError(f'evidence encryption is on but no key is given: set the '
                                     f'parameter encryption_key_file or ${KEY_ENV} (create one '
                                     'with: engram keygen FILE)')
    try:
        key = parse_key(text, where).evidence_key()
    except KeyFileError as exc:
        raise EncryptionKeyError(str(exc)) from None
    _fernet(key, where)
    return key


def _fernet(key: bytes, where: str = 'the key'):
    from cryptography.fernet import Fernet

    try:
        return Fernet(key)
    except (ValueError, TypeError) as exc:
        raise EncryptionKeyError(f'{where} is not a valid key (32 url-safe base64-encoded '
                                 f'bytes, as `engram keygen` writes): {exc}') from None


class EvidenceStore:
    """Evidence files under one directory, optionally encrypted. Thread-safe (no state)."""

    def __init__(self, directory: Path | str, key: bytes | None = None) -> None:
        self.directory = Path(directory).absolute()
        self._fernet = None if key is None else _fernet(key)

    @classmethod
    def from_settings(cls, directory: Path | str, encrypt: bool,
                      key_file: str | None = None) -> 'EvidenceStore':
        """The memory's evidence store; with ``encrypt`` a key is required.

        :raises EncryptionKeyError: when ``encrypt`` is set and no valid key is found.
        """
        return cls(directory, load_key(key_file) if encrypt else None)

    @staticmethod
    def generate_key() -> bytes:
        from cryptography.fernet import Fernet

        return Fernet.generate_key()

    @property
    def encrypted(self) -> bool:
        return self._fernet is not None

    def write(self, name: str, data: bytes, kind: str = 'other') -> str:
        """Store ``data`` as a new evidence file and return its ``file://`` URI.

        :param name: a hint for the file name (e.g. ``'42_crop.png'``); made safe and unique.
        :param kind: one of :data:`EVIDENCE_KINDS`; decides the retention limit.
        :raises ValueError: for an unknown kind.
        :raises EvidenceError: when the file cannot be written.
        """
        if kind not in EVIDENCE_KINDS:
            raise ValueError(f'unknown evidence kind {kind!r}; accepted: '
                             f'{", ".join(EVIDENCE_KINDS)}')
        stem, dot, ext = _SAFE.sub('_', Path(name).name or 'evidence').rpartition('.')
        stem, ext = (stem, dot + ext) if stem else (ext, '')
        filename = f'{stem[:64]}-{secrets.token_hex(6)}{ext[:16]}'
        payload = bytes(data)
        if self._fernet is not None:
            payload = self._fernet.encrypt(payload)
            filename += ENCRYPTED_SUFFIX
        folder = self.directory / kind
        path = folder / filename
        tmp = folder / ('.' + filename + '.tmp')
        try:
            private_dir(folder)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, 'wb') as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise EvidenceError(f'cannot write evidence {str(path)!r}: {exc}') from exc
        return path.as_uri()

    def read(self, uri: str) -> bytes:
        """The bytes of an evidence file, decrypted when it is encrypted.

        :raises EvidenceError: for a URI outside the evidence directory, a missing file, or an
            encrypted file without the right key.
        """
        path = self.path_of(uri)
        if path is None:
            raise EvidenceError(f'{uri!r} is not a file in {str(self.directory)!r}')
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise EvidenceError(f'cannot read evidence {str(path)!r}: {exc.strerror}') from exc
        if path.name.endswith(ENCRYPTED_SUFFIX):
            if self._fernet is None:
                raise EvidenceError(f'{str(path)!r} is encrypted; give the evidence key '
                                    f'(encryption_key_file or ${KEY_ENV})')
            from cryptography.fernet import InvalidToken

            try:
                return self._fernet.decrypt(data)
            except InvalidToken:
                raise EvidenceError(f'{str(path)!r} cannot be decrypted with this key') from None
        return data

    def path_of(self, uri: str) -> Path | None:
        """The file a URI names when it lies inside the evidence directory, else ``None``."""
        if uri.startswith('file:'):
            parsed = urlparse(uri)
            if parsed.netloc not in ('', 'localhost'):
                return None
            path = Path(unquote(parsed.path))
        elif '://' in uri:
            return None
        else:
            path = Path(uri)
        if not path.is_absolute():
            path = self.directory / path
        path = Path(os.path.normpath(path))
        if not path.is_relative_to(self.directory) or path == self.directory:
            return None
        return path

    def delete(self, uri: str) -> bool:
        """Delete the file a URI names (only inside the evidence directory, never a symlink)."""
        path = self.path_of(uri)
        if path is None or path.is_symlink() or not path.is_file():
            return False
        path.unlink()
        return True

    def kind_of(self, path: Path) -> str:
        """The evidence kind of a file: its first directory under the evidence directory."""
        parts = Path(path).relative_to(self.directory).parts
        return parts[0] if len(parts) > 1 and parts[0] in EVIDENCE_KINDS else 'other'

    def files(self) -> Iterator[Path]:
        """Every regular evidence file (temporary files excluded)."""
        if not self.directory.is_dir():
            return
        for root, _, names in os.walk(self.directory):
            for name in names:
                path = Path(root) / name
                if not name.endswith('.tmp') and path.is_file() and not path.is_symlink():
                    yield path

    def expired(self, policy: PrivacyPolicy, now: float | None = None) -> list[Path]:
        """Files older than their kind's retention limit (by modification time)."""
        now = time.time() if now is None else now
        out = []
        for path in self.files():
            limit = policy.max_age(self.kind_of(path))
            if limit is None:
                continue
            try:
                if now - path.stat().st_mtime > limit:
                    out.append(path)
            except OSError:
                continue
        return out


__all__ = ['ENCRYPTED_SUFFIX', 'EncryptionKeyError', 'EvidenceError', 'EvidenceStore',
           'KEY_ENV', 'load_key']
