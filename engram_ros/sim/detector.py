"""A simulated object detector: boxes and masks from the segmentation image, with noise.

It stands in for a learned detector so that perception and memory can be tested against ground
truth: every labelled body covering at least ``min_pixels`` pixels is reported unless missed
(``miss_rate``), its label may be swapped for another label of the world (``label_noise``), and
spurious boxes appear at a Poisson rate (``false_positives`` per image) with a low score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping
from typing import Sequence

import numpy as np

from engram_ros.sim.scenario import DetectorNoise


@dataclass
class SimDetection:
    label: str
    score: float
    box: tuple[float, float, float, float]        # x_min, y_min, x_max, y_max [px]
    mask: np.ndarray | None                       # H x W bool, None for a false positive
    true_label: str = ''                          # ground truth ('' for a false positive)
    pixels: int = 0


class SimDetector:
    """Detections from a segmentation mask of body ids (see :class:`DetectorNoise`)."""

    def __init__(self, noise: DetectorNoise, labels: Sequence[str]) -> None:
        self.noise = noise
        self.vocabulary = sorted(set(labels))
        self.rng = np.random.default_rng(noise.seed)

    def detect(self, seg: np.ndarray, labels: Mapping[int, str],
               with_masks: bool = True) -> list[SimDetection]:
        """Detections in ``seg`` (H x W body ids) for the bodies named in ``labels``."""
        noise, rng = self.noise, self.rng
        height, width = seg.shape
        ids, counts = np.unique(seg, return_counts=True)
        out: list[SimDetection] = []
        for body, count in zip(ids.tolist(), counts.tolist()):
            label = labels.get(body)
            if label is None or count < noise.min_pixels:
                continue
            if rng.random() < noise.miss_rate:
                continue
            mask = seg == body
            rows = np.flatnonzero(mask.any(axis=1))
            cols = np.flatnonzero(mask.any(axis=0))
            box = (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))
            reported = label
            if len(self.vocabulary) > 1 and rng.random() < noise.label_noise:
                reported = str(rng.choice([v for v in self.vocabulary if v != label]))
            # bigger views are surer; never quite 1
            score = float(np.clip(0.6 + 0.35 * min(count / 5000.0, 1.0)
                                  + rng.normal(scale=0.03), 0.05, 0.99))
            out.append(SimDetection(reported, score, box, mask if with_masks else None,
                                    true_label=label, pixels=int(count)))
        for _ in range(rng.poisson(noise.false_positives) if noise.false_positives else 0):
            w = rng.uniform(0.05, 0.3) * width
            h = rng.uniform(0.05, 0.3) * height
            x0 = rng.uniform(0.0, width - w)
            y0 = rng.uniform(0.0, height - h)
            out.append(SimDetection(str(rng.choice(self.vocabulary)) if self.vocabulary else
                                    'thing', float(rng.uniform(0.3, 0.6)),
                                    (float(x0), float(y0), float(x0 + w), float(y0 + h)), None))
        return out
