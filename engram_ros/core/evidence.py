"""Raw evidence files (crops, frames, clips): the one API everyone writes and reads them with.

    evidence = EvidenceStore.from_settings(store.storage.evidence_dir, encrypt, key_file)
    uri = evidence.write('crop.png', png_bytes, kind='image')   # file:///.../image/<random>.png
    observation.evidence = (uri,)
    data = evidence.read(uri)                                        # decrypted bytes

Files live in ``<store>/evidence/<kind>/<random>.<ext>`` where ``kind`` is one of
:data:`engram_ros.core.privacy.EVIDENCE_KINDS`; the kind directory is what the retention limits
(:class:`engram_ros.core.privacy.PrivacyPolicy`) go by, and the file's modification time is its
age. Names reveal nothing: 128 random bits and a media extension from a short list (never the
caller's name, which carried labels such as ``mug_crop``). Writes are atomic (temporary file,
then rename) and private (mode 0600).

Encryption at rest (optional) uses Fernet from ``cryptography`` (AES-128-CBC + HMAC-SHA256,
authenticated): encrypted files end in ``.enc`` and never hold the plaintext. The key is
read from a key file or the ``ENGRAM_KEY`` environment variable: a master key (``engram
keygen``), from which the evidence key is derived, or an old bare Fernet key, used as it is
(:mod:`engram_ros.core.keys`); when encryption is asked for and no valid key is found,
:func:`load_key` raises :class:`EncryptionKeyError`: there is never a silent fall-back to
plaintext.

Deleting an engram deletes the evidence files only it referenced (see
:meth:`engram_ros.core.storage.Storage.delete`); :meth:`EvidenceStore.delete` removes one file.
Every deletion of evidence, by any path (forget, eviction, merge, privacy drop, retention), goes
through :func:`delete_inside`, which walks from the evidence directory one component at a time
without following symlinks, so nothing outside the store is ever deleted, whatever a symlink
inside it points to. Nothing here imports ROS.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import time
from pathlib import Path
from typing import Callable
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
#: Extensions a file name may keep (they say the format, as the kind directory does); any other
#: extension is dropped, so a caller's hint cannot smuggle a label into the name.
MEDIA_EXTENSIONS = frozenset({'.jpg', '.jpeg', '.png', '.wav', '.flac', '.txt', '.json',
                              '.npy', '.npz', '.pcd', '.ply', '.bin'})


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

    def __init__(self, directory: Path | str, key: bytes | None = None,
                 names: Callable[[], str] | None = None) -> None:
        """:param names: makes the opaque part of each new file name (default: 128 random
            bits); an offline ingest passes a seeded one so that the same input gives the
            same files."""
        self.directory = Path(directory).absolute()
        self._fernet = None if key is None else _fernet(key)
        self._names = names or (lambda: secrets.token_hex(16))

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

        :param name: a hint whose extension (one of :data:`MEDIA_EXTENSIONS`) is kept; the
            rest of the name is not used: the file gets an opaque random name.
        :param kind: one of :data:`EVIDENCE_KINDS`; decides the retention limit.
        :raises ValueError: for an unknown kind.
        :raises EvidenceError: when the file cannot be written.
        """
        if kind not in EVIDENCE_KINDS:
            raise ValueError(f'unknown evidence kind {kind!r}; accepted: '
                             f'{", ".join(EVIDENCE_KINDS)}')
        filename = self._names() + _extension(name)
        payload = bytes(data)
        if self._fernet is not None:
            payload = self._fernet.encrypt(payload)
            filename += ENCRYPTED_SUFFIX
        folder = self.directory / kind
        path = folder / filename
        tmp = folder / ('.' + filename + '.tmp')
        if path.exists():       # only a seeded name can repeat; never overwrite evidence
            raise EvidenceError(f'cannot write evidence {str(path)!r}: the name exists')
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
        """Delete the file a URI names: only a regular file really inside the evidence
        directory (see :func:`delete_inside`); ``False`` when nothing was deleted.

        :raises OSError: when the file exists but cannot be deleted.
        """
        path = self.path_of(uri)
        if path is None:
            return False
        return delete_inside(self.directory, path.relative_to(self.directory))

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


def _extension(name: str) -> str:
    ext = os.path.splitext(Path(name).name)[1].lower()
    return ext if ext in MEDIA_EXTENSIONS else ''


def delete_inside(root: Path | str, relative: Path | str) -> bool:
    """Delete the regular file ``root/relative``, never anything outside ``root``.

    The one deletion of evidence files (every path uses it). From a descriptor of ``root``,
    each directory of ``relative`` is opened with ``O_NOFOLLOW``, so a symlinked folder inside
    the evidence directory (pointing anywhere) stops the walk, and the last component is removed
    only when it is a regular file (a symlink is left alone). Race-free against a directory
    swapped for a symlink while it runs: nothing is resolved by name twice.

    :param relative: a path relative to ``root``, without ``..`` components.
    :returns: True when a file was deleted; False when it is missing, not a regular file, or
        not reachable without following a symlink or leaving ``root``.
    :raises OSError: when the file exists but cannot be deleted (permissions, I/O).
    """
    parts = Path(relative).parts
    if not parts or Path(relative).is_absolute() or any(p in ('', '.', '..') for p in parts):
        return False
    flags = os.O_RDONLY | os.O_DIRECTORY | getattr(os, 'O_CLOEXEC', 0)
    try:
        fd = os.open(root, flags)
    except FileNotFoundError:
        return False
    try:
        for part in parts[:-1]:
            try:
                child = os.open(part, flags | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    return False        # missing, or a symlink / file where a folder was
                raise
            os.close(fd)
            fd = child
        try:
            info = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if not stat.S_ISREG(info.st_mode):
            return False
        os.unlink(parts[-1], dir_fd=fd)
        return True
    finally:
        os.close(fd)


__all__ = ['ENCRYPTED_SUFFIX', 'EncryptionKeyError', 'EvidenceError', 'EvidenceStore',
           'KEY_ENV', 'MEDIA_EXTENSIONS', 'delete_inside', 'load_key']
