"""``engram fleet serve FILE [--address HOST:PORT]``: host a milvus-lite fleet file for many
processes.

milvus-lite 3 keeps a database in a directory (the ``FILE`` of a ``*.db`` URI) and takes an
advisory lock on it (``FILE/LOCK``), so only one process may open it; inside that process
pymilvus starts milvus-lite's gRPC server on a free localhost port. This command runs that
same server (``milvus_lite.adapter.grpc.server``) on a chosen address, so several robot
processes share one file through it with ``fleet.uri: http://HOST:PORT``. It prints one line
``serving FILE at http://HOST:PORT`` once it listens (port 0 picks a free one) and serves
until SIGINT/SIGTERM. A real fleet uses a Milvus server instead (``docs/fleet.md``).
"""

from __future__ import annotations

import argparse
import selectors
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from engram_ros.apps.cli import fleet_ops
from engram_ros.apps.cli.common import CliError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('fleet', help='fleet memory (issue 15): host a milvus-lite file, '
                                     'consolidate or forget in a fleet collection')
    verbs = p.add_subparsers(dest='fleet_command', required=True, metavar='VERB')
    fleet_ops.add_fleet_commands(verbs)
    s = verbs.add_parser('serve', help='serve a milvus-lite database file to many processes '
                                       'over gRPC (fleet.uri: http://HOST:PORT)')
    s.add_argument('file', type=Path, help='the milvus-lite database (a directory; made '
                                           'when missing)')
    s.add_argument('--address', default='127.0.0.1:19530',
                   help='HOST:PORT to listen on (default 127.0.0.1:19530; port 0: any free)')


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port).

    :raises CliError: naming what is accepted.
    """
    host, sep, port = text.rpartition(':')
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise CliError(f'--address {text!r}: accepted HOST:PORT with PORT 0..65535')
    return host, int(port)


def cmd_fleet(args: argparse.Namespace, out: TextIO) -> int:
    if args.fleet_command != 'serve':
        return fleet_ops.run(args, out)
    host, port = parse_address(args.address)
    path: Path = args.file
    if path.exists() and not path.is_dir():
        raise CliError(f'{path} is a file, not a milvus-lite database (milvus-lite 3 keeps one '
                       f'in a directory); nothing was changed')
    from milvus_lite.adapter.grpc.server import start_server_in_thread
    try:
        server, db, bound = start_server_in_thread(data_dir=str(path), host=host, port=port)
    except Exception as exc:          # DataDirLockedError, a corrupt database, ...
        raise CliError(f'cannot serve {path}: {exc}') from None
    if not bound:
        db.close()
        raise CliError(f'cannot listen on {host}:{port} (in use, or not an address here)')
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f'serving {path} at http://{host}:{bound}', file=out, flush=True)
    try:
        stop.wait()
    finally:
        server.stop(grace=2)
        db.close()
    print(f'stopped serving {path}', file=out, flush=True)
    return 0


def serve_in_subprocess(path: Path, address: str = '127.0.0.1:0',
                        timeout: float = 60.0) -> tuple[subprocess.Popen, str]:
    """Start ``engram fleet serve PATH --address ADDRESS`` in a child process and wait until it
    says it listens (tests, benchmarks: a fleet file several processes share).

    :returns: the process (stdout piped, text) and the URI it serves (``http://HOST:PORT``).
    :raises RuntimeError: when it exits or says nothing else within ``timeout``; it is killed.
    """
    proc = subprocess.Popen([sys.executable, '-m', 'engram_ros.apps.cli', 'fleet', 'serve',
                             str(path), '--address', address],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = ''
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while not line and time.monotonic() < deadline:
            if selector.select(timeout=max(0.0, deadline - time.monotonic())):
                line = proc.stdout.readline()
                if not line:                  # end of output: it exited
                    break
    if not line.startswith(f'serving {path} at '):
        proc.kill()
        proc.wait()
        raise RuntimeError(f'engram fleet serve {path} did not start: {line!r}')
    return proc, line.split(' at ')[1].strip()
