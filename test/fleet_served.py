"""``engram fleet serve FILE`` in a subprocess, for tests that need a milvus-lite fleet file
shared by several processes (a node and the test, two robots)."""

from __future__ import annotations

import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path


class Served:
    """``engram fleet serve FILE`` in a subprocess; ``uri`` once it listens."""

    def __init__(self, path: Path, port: int = 0) -> None:
        self.path = path
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'engram_ros.apps.cli', 'fleet', 'serve', str(path),
             '--address', f'127.0.0.1:{port}'],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = _read_line(self.proc, deadline=time.monotonic() + 60.0)
        assert line.startswith('serving '), line
        self.uri = line.split(' at ')[1].strip()
        self.port = int(self.uri.rsplit(':', 1)[1])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self.proc.stdout.close()


def _read_line(proc: subprocess.Popen, deadline: float) -> str:
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    try:
        while time.monotonic() < deadline:
            if selector.select(timeout=max(0.0, deadline - time.monotonic())):
                return proc.stdout.readline()
        raise AssertionError('engram fleet serve did not say it listens')
    finally:
        selector.close()
