"""Private files: every directory of a store is 0700 and every file in it 0600.

A store holds what a robot saw in someone's home (labels, positions, vectors, images, the audit
log), so no other local user may read any of it. Modes are given explicitly where a file or
directory is made (``os.open``/``os.mkdir`` with a mode) rather than by changing the process
umask: a library must not change process-global state that the rest of the program (ROS, its
loggers, other nodes in the same process) relies on. What this code does not create itself
(SQLite's ``-wal``/``-shm`` files, faiss's index file) is tightened with ``chmod`` right after,
and a store made by an older version is tightened when it is opened (:func:`tighten_tree`).

A mode only guards against other users; the files are not encrypted (evidence can be, see
:mod:`engram_ros.core.evidence`): protect the disk itself (full-disk encryption) against theft.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

_LOG = logging.getLogger(__name__)

#: Mode of every directory of a store.
DIR_MODE = 0o700
#: Mode of every file of a store.
FILE_MODE = 0o600


def private_dir(path: Path | str) -> Path:
    """Create ``path`` as 0700 (missing parents too: made here, so nobody else's), or tighten
    it when it exists.

    :raises OSError: when it cannot be created or is not a directory.
    """
    path = Path(path)
    if not path.parent.exists():
        private_dir(path.parent)
    try:
        os.mkdir(path, DIR_MODE)
    except FileExistsError:
        if not path.is_dir():
            raise
        tighten(path)
    return path


def open_private(path: Path | str, flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC) -> int:
    """``os.open`` with mode 0600 (a file that already exists is tightened); the descriptor."""
    fd = os.open(path, flags, FILE_MODE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) & ~FILE_MODE:
            os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_private(path: Path | str, data: bytes | str) -> None:
    """Write ``data`` to ``path`` as a 0600 file (replacing what was there)."""
    payload = data.encode('utf-8') if isinstance(data, str) else bytes(data)
    with os.fdopen(open_private(path), 'wb') as f:
        f.write(payload)


def tighten(path: Path | str) -> bool:
    """Make ``path`` 0700 (directory) or 0600 (file) when it is looser; True when changed.

    Symlinks are left alone (``chmod`` would change what they point to).
    """
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return False
    wanted = DIR_MODE if stat.S_ISDIR(st.st_mode) else FILE_MODE
    if stat.S_IMODE(st.st_mode) & ~wanted == 0:
        return False
    os.chmod(path, stat.S_IMODE(st.st_mode) & wanted)
    return True


def tighten_tree(root: Path | str) -> int:
    """:func:`tighten` ``root`` and everything under it (symlinks not followed); how many
    paths were changed. A path that vanishes meanwhile is skipped."""
    changed = 0
    for path in [Path(root), *_walk(Path(root))]:
        try:
            changed += tighten(path)
        except FileNotFoundError:
            continue
    if changed:
        _LOG.warning('%s: %d files or directories were readable by other users; made private '
                     '(directories 0700, files 0600)', root, changed)
    return changed


def _walk(root: Path) -> list[Path]:
    out = []
    for folder, dirs, files in os.walk(root):
        out += [Path(folder) / name for name in dirs + files]
    return out
