"""Evidence files of the SQLite storage: which engrams use a file, and removing orphans.

Evidence references are strings (``file://`` URIs, absolute paths, or paths relative to the
evidence directory); the ``engram_evidence`` table keys them by their path inside the evidence
directory (:func:`evidence_key`), so a file is found whichever way an engram spelt it. Only
regular files really inside the evidence directory are ever deleted
(:func:`engram_ros.core.evidence.delete_inside`). :class:`EvidenceFiles` is mixed into
:class:`~engram_ros.core.storage.sqlite.SQLiteStorage`, whose ``_read()`` and
``_evidence_dir`` it uses.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable
from typing import Sequence
from urllib.parse import unquote
from urllib.parse import urlparse

from engram_ros.core.evidence import delete_inside
from engram_ros.core.storage.base import CHUNK

logger = logging.getLogger(__name__)


class EvidenceFiles:
    """``evidence_users`` of :class:`~engram_ros.core.storage.base.Storage` and the removal of
    files no engram uses any more."""

    def evidence_users(self, uris: Sequence[str]) -> dict[str, list[int]]:
        """See :meth:`Storage.evidence_users`."""
        keys: dict[str, list[str]] = {}
        for uri in uris:
            key = evidence_key(uri, self._evidence_dir)
            if key is not None:
                keys.setdefault(key, []).append(uri)
        out: dict[str, list[int]] = {}
        files = list(keys)
        with self._read() as conn:
            for start in range(0, len(files), CHUNK):
                chunk = files[start:start + CHUNK]
                marks = ', '.join('?' * len(chunk))
                for key, engram_id in conn.execute(
                        f'SELECT file, engram_id FROM engram_evidence WHERE file IN ({marks})',
                        chunk):
                    for uri in keys[key]:
                        out.setdefault(uri, []).append(int(engram_id))
        return out

    def _remove_evidence(self, files: Iterable[str]) -> None:
        """Delete orphaned evidence files; only regular files really inside the evidence dir
        (:func:`engram_ros.core.evidence.delete_inside`, the one deletion every path uses)."""
        for relative in files:
            try:
                delete_inside(self._evidence_dir, relative)
            except OSError as exc:
                logger.warning('could not delete evidence file %s: %s', relative, exc)


def evidence_key(uri: str, evidence_dir: Path) -> str | None:
    """Return the path of ``uri`` relative to ``evidence_dir``, or None if it is not inside it.

    ``file:`` URIs and plain paths are understood; relative paths are relative to the evidence
    directory. The test is lexical: symlinks are checked when the file is deleted.
    """
    if uri.startswith('file:'):
        parsed = urlparse(uri)
        if parsed.netloc not in ('', 'localhost'):
            return None
        path_text = unquote(parsed.path)
    elif '://' in uri:
        return None
    else:
        path_text = uri
    if not path_text:
        return None
    path = Path(path_text)
    if not path.is_absolute():
        path = evidence_dir / path
    relative = os.path.relpath(os.path.normpath(path), os.path.normpath(evidence_dir))
    if relative == os.curdir or relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return None
    return Path(relative).as_posix()
