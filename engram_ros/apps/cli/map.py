"""``engram map``: a top-down picture of the memory (PNG), one dot per engram, coloured by kind.

For a person looking at what the robot believes where: labels beside the dots, pinned engrams
ringed, bigger dots for things seen more often, a metric grid.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TextIO

import numpy as np

from engram_ros.apps.cli.common import CliError
from engram_ros.apps.cli.common import positive_int
from engram_ros.apps.cli.common import progress
from engram_ros.core.memory import MemoryStore

#: BGR colours of the map, per kind.
_MAP_COLOURS = {'place': (255, 128, 50), 'object': (30, 150, 255), 'audio': (230, 50, 150),
                'event': (80, 200, 80)}
_MARGIN = 60


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('map', help='draw a top-down picture of the memory')
    p.add_argument('--out', type=Path, required=True, help='PNG file to write')
    p.add_argument('--size', type=positive_int, default=1000, help='image width [px]')


class _Canvas:
    """A white image and the map from metres (x right, y up) to pixels."""

    def __init__(self, positions: list[np.ndarray], width: int) -> None:
        if positions:
            xy = np.array([p[:2] for p in positions])
            self.lo, self.hi = xy.min(axis=0) - 0.5, xy.max(axis=0) + 0.5
        else:
            self.lo, self.hi = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
        self.span = float(max(self.hi[0] - self.lo[0], self.hi[1] - self.lo[1], 1e-3))
        self.scale = (width - 2 * _MARGIN) / self.span
        self.width = width
        self.height = int((self.hi[1] - self.lo[1]) * self.scale) + 2 * _MARGIN
        self.image = np.full((self.height, width, 3), 255, dtype=np.uint8)

    def pixel(self, x: float, y: float) -> tuple[int, int]:
        return (int(_MARGIN + (x - self.lo[0]) * self.scale),
                int(self.height - _MARGIN - (y - self.lo[1]) * self.scale))

    def grid(self) -> float:
        """Draw grid lines at a round step; return the step [m]."""
        import cv2

        lo, hi = self.lo, self.hi
        step = 10 ** math.floor(math.log10(self.span / 2)) if self.span > 0 else 1.0
        for gx in np.arange(math.floor(lo[0] / step) * step, hi[0] + step, step):
            cv2.line(self.image, self.pixel(gx, lo[1]), self.pixel(gx, hi[1]), (230, 230, 230), 1)
        for gy in np.arange(math.floor(lo[1] / step) * step, hi[1] + step, step):
            cv2.line(self.image, self.pixel(lo[0], gy), self.pixel(hi[0], gy), (230, 230, 230), 1)
        return step


def cmd_map(store: MemoryStore, args: argparse.Namespace, out: TextIO) -> int:
    import cv2

    engrams = list(store.storage.iter_all(batch_size=5000))
    canvas = _Canvas([e.position for e in engrams], args.size)
    image = canvas.image
    step = canvas.grid()
    font = cv2.FONT_HERSHEY_SIMPLEX
    with progress(len(engrams), 'drawing') as bar:
        for e in engrams:
            centre = canvas.pixel(float(e.position[0]), float(e.position[1]))
            colour = _MAP_COLOURS.get(e.kind, (128, 128, 128))
            radius = 4 + 2 * min(e.observation_count, 5)
            cv2.circle(image, centre, radius, colour, -1, cv2.LINE_AA)
            if e.pinned:
                cv2.circle(image, centre, radius + 3, (0, 0, 0), 1, cv2.LINE_AA)
            cv2.putText(image, e.label or f'#{e.id}', (centre[0] + radius + 2, centre[1] + 4),
                        font, 0.4, (40, 40, 40), 1, cv2.LINE_AA)
            bar.update()
    for i, (kind, colour) in enumerate(_MAP_COLOURS.items()):
        cv2.circle(image, (15, 15 + 18 * i), 6, colour, -1, cv2.LINE_AA)
        cv2.putText(image, kind, (28, 20 + 18 * i), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, f'{len(engrams)} engrams, grid {step:g} m, x right, y up '
                       f'({store.config.frame_id})', (10, canvas.height - 15), font, 0.45,
                (0, 0, 0), 1, cv2.LINE_AA)
    if not cv2.imwrite(str(args.out), image):
        raise CliError(f'cannot write {args.out} (does the folder exist, does it end in .png?)')
    print(f'wrote {args.out} ({canvas.width}x{canvas.height}, {len(engrams)} engrams)', file=out)
    return 0


COMMANDS = {'map': cmd_map}
