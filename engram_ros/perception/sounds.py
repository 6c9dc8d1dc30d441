"""Synthesised household sounds: what the shipped sound prototypes are built from, and test input.

Each generator takes a random generator (for pitch, timing and level jitter) and a sample rate
and returns float32 mono samples in [-1, 1]. The classes are those of the sketch's sound
vocabulary that a rule of thumb can synthesise convincingly and that start with an onset
(steady sounds such as running water are not events for an onset segmenter).
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def _t(duration: float, sr: int) -> np.ndarray:
    return np.arange(int(duration * sr), dtype=np.float64) / sr


def _tone(freq: float, duration: float, sr: int, harmonics: tuple[float, ...] = (1.0,)
          ) -> np.ndarray:
    t = _t(duration, sr)
    return sum(a * np.sin(2 * np.pi * freq * (k + 1) * t) for k, a in enumerate(harmonics))


def doorbell(rng: np.random.Generator, sr: int) -> np.ndarray:
    """Ding-dong: two decaying bell tones a major third apart."""
    f = rng.uniform(550, 800)
    out = []
    for freq in (f, f * 0.8):
        d = rng.uniform(0.5, 0.8)
        out.append(_tone(freq, d, sr, (1.0, 0.4, 0.2)) * np.exp(-_t(d, sr) * rng.uniform(3, 6)))
    return np.concatenate(out)


def alarm(rng: np.random.Generator, sr: int) -> np.ndarray:
    """Smoke alarm: loud high beeps (about 3 kHz) repeated fast."""
    f = rng.uniform(2800, 3400)
    on, off = rng.uniform(0.08, 0.2), rng.uniform(0.05, 0.15)
    beep = _tone(f, on, sr, (1.0, 0.0, 0.3))
    return np.concatenate([np.concatenate([beep, np.zeros(int(off * sr))])
                           for _ in range(int(rng.integers(4, 8)))])


def microwave_beep(rng: np.random.Generator, sr: int) -> np.ndarray:
    """Three (or so) medium pure beeps of about 1-2 kHz with longer gaps."""
    f = rng.uniform(1000, 2000)
    on, off = rng.uniform(0.25, 0.45), rng.uniform(0.25, 0.4)
    beep = _tone(f, on, sr)
    return np.concatenate([np.concatenate([beep, np.zeros(int(off * sr))])
                           for _ in range(int(rng.integers(2, 4)))])


def phone_ring(rng: np.random.Generator, sr: int) -> np.ndarray:
    """A trill: two tones alternating at about 20 Hz, in bursts."""
    f1 = rng.uniform(800, 1100)
    f2 = f1 * rng.uniform(1.15, 1.3)
    d = rng.uniform(0.8, 1.2)
    t = _t(d, sr)
    trill = np.where(np.sin(2 * np.pi * rng.uniform(15, 25) * t) > 0,
                     np.sin(2 * np.pi * f1 * t), np.sin(2 * np.pi * f2 * t))
    return np.concatenate([trill, np.zeros(int(0.3 * sr)), trill])


def knock(rng: np.random.Generator, sr: int) -> np.ndarray:
    """Three or four knocks: short damped low resonances with a noisy attack."""
    out = []
    for _ in range(int(rng.integers(3, 5))):
        d = 0.06
        t = _t(d, sr)
        k = (np.sin(2 * np.pi * rng.uniform(120, 250) * t) + 0.5 * rng.normal(size=t.size)
             ) * np.exp(-t * rng.uniform(50, 90))
        out += [k, np.zeros(int(rng.uniform(0.12, 0.25) * sr))]
    return np.concatenate(out)


def speech(rng: np.random.Generator, sr: int) -> np.ndarray:
    """Voiced babble: harmonics of f0 90-250 Hz shaped by moving formants, 4-6 syllables/s."""
    f0 = rng.uniform(90, 250)
    n_syll = int(rng.integers(5, 10))
    vowels = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480),
              (570, 840, 2410), (660, 1720, 2410))
    out = []
    for _ in range(n_syll):
        d = rng.uniform(0.15, 0.25)
        t = _t(d, sr)
        formants = vowels[int(rng.integers(len(vowels)))]
        pitch = f0 * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(1, 3) * t))
        phase = 2 * np.pi * np.cumsum(pitch) / sr
        s = np.zeros_like(t)
        for k in range(1, int(4000 / f0)):
            fk = k * f0
            amp = sum(np.exp(-((fk - f) / 120.0) ** 2) * w
                      for f, w in zip(formants, (1.0, 0.6, 0.3))) + 0.02
            s += amp * np.sin(k * phase)
        env = np.sin(np.pi * t / d) ** 0.6
        out += [s * env, np.zeros(int(rng.uniform(0.02, 0.08) * sr))]
    return np.concatenate(out)


def background(rng: np.random.Generator, sr: int) -> np.ndarray:
    """Sounds that are none of the classes: noise bursts, steady tones, chirps, rumble."""
    d = rng.uniform(0.5, 2.0)
    t = _t(d, sr)
    kind = rng.integers(4)
    if kind == 0:
        return rng.normal(size=t.size) * np.exp(-t * rng.uniform(1, 8))
    if kind == 1:
        return _tone(rng.uniform(100, 4000), d, sr, tuple(rng.uniform(0, 1, 3)))
    if kind == 2:
        f = rng.uniform(200, 1000) * np.exp(t * rng.uniform(-1.5, 1.5))
        return np.sin(2 * np.pi * np.cumsum(f) / sr)
    n = np.convolve(rng.normal(size=t.size), np.ones(int(rng.integers(2, 30))), mode='same')
    return n * (1 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.5, 8) * t))


#: The sound classes the shipped prototypes know (canonical ``sound:`` values) -> generator.
GENERATORS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    'doorbell': doorbell, 'alarm': alarm, 'microwave_beep': microwave_beep,
    'phone_ring': phone_ring, 'knock': knock, 'speech': speech,
}


def synthesise(name: str, seed: int, sr: int = 16000, level: float = 0.5,
               snr_db: float = 30.0, pad: float = 0.3) -> np.ndarray:
    """A sound of class ``name`` (or ``'background'``) with ``pad`` seconds of quiet noise on
    both sides.

    :raises KeyError: for a class not in :data:`GENERATORS`.
    """
    rng = np.random.default_rng(seed)
    s = background(rng, sr) if name == 'background' else GENERATORS[name](rng, sr)
    s = s / (np.max(np.abs(s)) + 1e-9) * level
    quiet = np.zeros(int(pad * sr))
    s = np.concatenate([quiet, s, quiet])
    noise_rms = np.sqrt(np.mean(s ** 2)) / (10 ** (snr_db / 20))
    return np.clip(s + rng.normal(0, noise_rms, s.size), -1, 1).astype(np.float32)
