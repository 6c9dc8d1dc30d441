"""Is a store private? Its modes, and what a real unprivileged process can read of it.

Root ignores file modes, so the attack runs in a child process that dropped to ``nobody``
(uid/gid 65534) before it started, using the system Python (the test's virtualenv lives under
root's 0700 home, which ``nobody`` cannot enter). The store is put in a directory everyone may
enter, so what keeps ``nobody`` out is the store's own modes; the check proves that by reading
that directory too.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

NOBODY = 65534
_PYTHON = '/usr/bin/python3' if os.path.exists('/usr/bin/python3') else shutil.which('python3')
_READ = """
import os, sys
for path in sys.argv[1:]:
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            with open(path, 'rb') as f:
                f.read(1)
    except OSError:
        continue
    print(path)
"""


def open_directory(tmp_path: Path) -> Path:
    """A new directory that everyone may enter and list (0755), removed after the test."""
    if os.geteuid() != 0:
        pytest.skip('dropping to an unprivileged user needs root')
    path = Path(tempfile.mkdtemp(prefix='engram_private_', dir='/tmp'))
    path.chmod(0o755)
    (tmp_path / 'open_directory').write_text(str(path))   # for a look after a failure
    return path


def tree(root: Path) -> list[Path]:
    """``root`` and every path under it."""
    out = [root]
    for folder, dirs, files in os.walk(root):
        out += [Path(folder) / name for name in dirs + files]
    return out


def loose(root: Path) -> list[str]:
    """Paths under ``root`` that are not 0700 (directories) or 0600 (files), with their mode."""
    out = []
    for path in tree(root):
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode != (0o700 if path.is_dir() else 0o600):
            out.append(f'{path} {oct(mode)}')
    return out


def _drop() -> None:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def readable_by_nobody(paths: list[Path]) -> list[str]:
    """Which of ``paths`` a process running as ``nobody`` can list or read."""
    done = subprocess.run([_PYTHON, '-c', _READ, *map(str, paths)], preexec_fn=_drop,
                          capture_output=True, text=True, timeout=60, cwd='/')
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def assert_private(store: Path) -> None:
    """Every directory 0700, every file 0600, and ``nobody`` reads none of them (but does read
    the directory the store lies in: the attack is real)."""
    assert loose(store) == []
    paths = tree(store)
    assert len(paths) > 3
    assert readable_by_nobody([store.parent, *paths]) == [str(store.parent)]
