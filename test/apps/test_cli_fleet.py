"""``engram fleet serve FILE``: one process hosts a milvus-lite file and two other processes
(two robots) write to and read from it by ``http://127.0.0.1:PORT``; the file stays locked to
the serving process, and bad input is refused with a message. Real processes, real
milvus-lite."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from engram_ros.apps.cli import main
from engram_ros.apps.cli.fleet import serve_in_subprocess

ROBOT = textwrap.dedent("""
    import sys
    import numpy as np
    from engram_ros.core.backends.milvus import MilvusBackend
    from engram_ros.core.model.engram import Engram
    uri, robot, engram_id = sys.argv[1], sys.argv[2], int(sys.argv[3])
    fleet = MilvusBackend(uri, 4, model='enc', robot_id=robot)
    v = np.ones(4, dtype=np.float32) / 2.0
    fleet.put([Engram(id=engram_id, kind='object', frame_id='map', position=np.zeros(3),
                      vector=v, first_seen=1.0, last_seen=1.0)])
    print(fleet.count())
    fleet.close()
""")


def test_two_robot_processes_share_one_file_through_serve(tmp_path: Path) -> None:
    path = tmp_path / 'fleet.db'
    proc, uri = serve_in_subprocess(path)
    try:
        counts = [subprocess.run([sys.executable, '-c', ROBOT, uri, robot, str(i)],
                                 capture_output=True, text=True, timeout=120, check=True)
                  .stdout.split()[-1] for i, robot in ((1, 'r1'), (2, 'r2'))]
        assert counts == ['1', '2']                # the second robot sees the first's row
        # The file is the server's: opening it directly (or serving it twice) is refused.
        err = io.StringIO()
        assert _run(['fleet', 'serve', str(path), '--address', '127.0.0.1:0'], err) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and f'stopped serving {path}' in out


def _run(argv: list[str], err: io.StringIO) -> int:
    import contextlib
    with contextlib.redirect_stderr(err):
        return main(argv, out=io.StringIO())


def test_serve_refuses_a_plain_file_and_a_bad_address(tmp_path: Path) -> None:
    plain = tmp_path / 'fleet.db'
    plain.write_text('not a database')
    err = io.StringIO()
    assert _run(['fleet', 'serve', str(plain), '--address', '127.0.0.1:0'], err) == 1
    assert 'is a file, not a milvus-lite database' in err.getvalue()
    err = io.StringIO()
    assert _run(['fleet', 'serve', str(tmp_path / 'x.db'), '--address', 'nowhere'], err) == 1
    assert 'accepted HOST:PORT' in err.getvalue()
    assert plain.read_text() == 'not a database'
