"""The layers of the package and its lint, checked on every test run rather than hoped for.

`lint-imports` checks the import-linter contracts in `.importlinter` (core and perception import
no ROS, nothing outside `engram_ros.sim` imports it, no import cycles); `ruff check` applies the
small rule set in `ruff.toml`. Both run on this source tree as the tools a developer would run by
hand, so a failure here reads the same as on the command line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    """The console script installed next to this interpreter (the virtualenv's), else on PATH."""
    local = Path(sys.executable).with_name(name)
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f'{name} is not installed; run ./tools/setup.sh (requirements/base.txt)')
    return found


def _run(args: list[str]) -> subprocess.CompletedProcess:
    # This source tree first on the path, so import-linter finds this engram_ros and not the
    # copy in the colcon install space.
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (str(ROOT), env.get('PYTHONPATH', '')) if p)
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_import_contracts_are_kept():
    result = _run([_tool('lint-imports'), '--no-cache', '--no-logo',
                   '--config', str(ROOT / '.importlinter')])
    assert result.returncode == 0, (
        f'lint-imports failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}')


def test_ruff_finds_nothing():
    result = _run([_tool('ruff'), 'check', '--no-cache', '--config', str(ROOT / 'ruff.toml'),
                   str(ROOT)])
    assert result.returncode == 0, (
        f'ruff check failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}')
