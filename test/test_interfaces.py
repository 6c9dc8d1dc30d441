"""The msg/srv interfaces stay wire-compatible with the recorded ones.

``test/fixtures/interfaces.json`` holds every field and constant line of ``msg/*.msg`` and
``srv/*.srv`` (comments and spacing stripped), as last recorded (first at d893798). A change
here is an interface change: record it in CHANGELOG.md and refresh the fixture in the same
commit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECORDED = json.loads((ROOT / 'test' / 'fixtures' / 'interfaces.json').read_text())


def definition(path: Path) -> list[str]:
    """The field and constant lines of one interface file, without comments."""
    lines = []
    for line in path.read_text().splitlines():
        line = line.split('#', 1)[0].strip()
        if line:
            lines.append(' '.join(line.split()))
    return lines


def test_no_interface_added_or_removed() -> None:
    present = sorted(str(p.relative_to(ROOT)) for p in
                     [*ROOT.glob('msg/*.msg'), *ROOT.glob('srv/*.srv')])
    assert present == sorted(RECORDED)


@pytest.mark.parametrize('name', sorted(RECORDED))
def test_interface_fields_unchanged(name: str) -> None:
    assert definition(ROOT / name) == RECORDED[name]
