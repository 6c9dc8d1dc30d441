"""``engram fleet serve FILE`` in a subprocess, for tests that need a milvus-lite fleet file
shared by several processes (a node and the test, two robots)."""

from __future__ import annotations

import signal
from pathlib import Path

from engram_ros.apps.cli.fleet import serve_in_subprocess


class Served:
    """``engram fleet serve FILE`` in a subprocess; ``uri`` once it listens."""

    def __init__(self, path: Path, port: int = 0) -> None:
        self.path = path
        self.proc, self.uri = serve_in_subprocess(path, f'127.0.0.1:{port}')
        self.port = int(self.uri.rsplit(':', 1)[1])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self.proc.stdout.close()

