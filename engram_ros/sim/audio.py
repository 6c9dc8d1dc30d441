"""Synthesised sound sources and what a microphone on the robot hears of them.

Each source plays its synth (a two-tone doorbell chime, an alarm beep, speech-like voiced
syllables) for ``duration`` seconds every ``period`` seconds. Signals are pure functions of the
simulation time, so consecutive chunks join without clicks and runs repeat exactly. The level at
the microphone falls as ``ref_distance / distance`` (inverse distance law, capped at the source
gain inside ``ref_distance``) and by ``wall_loss`` for every wall between source and robot.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from engram_ros.sim.scenario import AudioSettings
from engram_ros.sim.world import segment_hits_rect
from engram_ros.sim.world import SoundSpec
from engram_ros.sim.world import Wall


def _chime(t: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Ding (660 Hz) then dong (523 Hz), each decaying."""
    ding = np.sin(2 * np.pi * 660.0 * t) * np.exp(-tau / 0.25) * (tau < 0.5)
    tau2 = tau - 0.5
    dong = np.sin(2 * np.pi * 523.25 * t) * np.exp(-np.maximum(tau2, 0) / 0.3) * (tau2 >= 0)
    return ding + dong


def _beep(t: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """A 2.8 kHz square-ish beep, 0.15 s on, 0.1 s off."""
    gate = (np.mod(tau, 0.25) < 0.15).astype(np.float64)
    tone = np.sin(2 * np.pi * 2800.0 * t)
    return np.clip(3.0 * tone, -1.0, 1.0) * gate * 0.8


def _speech(t: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Voiced syllables: harmonics of a wandering pitch, formant weights changing per syllable."""
    syllable = np.floor(tau * 4.0)
    # a deterministic pseudo-random number per syllable
    seed = np.sin(syllable * 12.9898 + 78.233) * 43758.5453
    r = seed - np.floor(seed)
    f0 = 110.0 + 30.0 * r
    envelope = np.sin(np.pi * np.mod(tau * 4.0, 1.0)) ** 2 * (r > 0.15)
    formant1 = 400.0 + 500.0 * r
    formant2 = 1200.0 + 900.0 * (1.0 - r)
    out = np.zeros_like(t)
    for h in range(1, 25):
        f = h * f0
        weight = (np.exp(-((f - formant1) / 200.0) ** 2)
                  + 0.6 * np.exp(-((f - formant2) / 300.0) ** 2) + 0.05 / h)
        out += weight * np.sin(2 * np.pi * f * t)
    return 0.6 * envelope * out / 2.0


_SYNTHS = {'chime': _chime, 'beep': _beep, 'speech': _speech}


def source_signal(sound: SoundSpec, t: np.ndarray) -> np.ndarray:
    """The source's signal (full scale 1, before gain) at times ``t`` [s since start]."""
    tau = np.mod(t - sound.phase, sound.period)
    active = (t >= sound.phase) & (tau < sound.duration)
    return _SYNTHS[sound.synth](t, tau) * active


def walls_between(a: Sequence[float], b: Sequence[float], walls: Sequence[Wall]) -> int:
    """How many walls the straight line between a and b (x, y) crosses."""
    return sum(segment_hits_rect((a[0], a[1]), (b[0], b[1]), w.rect()) for w in walls)


def attenuation(distance: float, walls: int, settings: AudioSettings) -> float:
    """Amplitude factor at ``distance`` [m] through ``walls`` walls."""
    return (settings.ref_distance / max(distance, settings.ref_distance)
            * settings.wall_loss ** walls)


class Microphone:
    """Mixes every source as heard at the robot's position."""

    def __init__(self, sounds: Sequence[SoundSpec], walls: Sequence[Wall],
                 settings: AudioSettings, sample_rate: int = 16000, seed: int = 0,
                 height: float = 1.0) -> None:
        self.sounds = list(sounds)
        self.walls = list(walls)
        self.settings = settings
        self.sample_rate = int(sample_rate)
        self.height = height
        self.rng = np.random.default_rng(seed)

    def levels(self, position: Sequence[float]) -> dict[str, float]:
        """Amplitude factor of each source at ``position`` (x, y)."""
        out = {}
        mic = np.array([position[0], position[1], self.height])
        for sound in self.sounds:
            d = float(np.linalg.norm(np.asarray(sound.position) - mic))
            out[sound.label] = sound.gain * attenuation(
                d, walls_between(mic, sound.position, self.walls), self.settings)
        return out

    def active(self, t0: float, duration: float) -> list[str]:
        """Labels of the sources playing at some point of [t0, t0 + duration)."""
        t = t0 + np.arange(0.0, duration, 0.01)
        return [s.label for s in self.sounds if np.any(source_signal(s, t) != 0.0)]

    def chunk(self, t0: float, duration: float, position: Sequence[float]) -> np.ndarray:
        """Mono int16 samples of [t0, t0 + duration) heard at ``position``."""
        n = max(1, int(round(duration * self.sample_rate)))
        t = t0 + np.arange(n) / self.sample_rate
        mix = self.settings.noise_floor * self.rng.standard_normal(n)
        levels = self.levels(position)
        for sound in self.sounds:
            level = levels[sound.label]
            if level > 1e-5:
                mix += level * source_signal(sound, t)
        return (np.clip(mix, -1.0, 1.0) * 32767.0).astype(np.int16)


def rms(samples: np.ndarray) -> float:
    """Root mean square of int16 samples, full scale 1."""
    x = np.asarray(samples, dtype=np.float64) / 32767.0
    return float(math.sqrt(np.mean(x * x))) if x.size else 0.0
