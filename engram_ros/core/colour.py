"""Colour names in a perceptual space: 8-bit sRGB -> CIELAB (D65) -> a name of the palette.

The palette is the sketch's (:data:`engram_ros.core.sketch.COLOR_SYNONYMS` values): red,
orange, yellow, green, blue, purple, pink, brown, black, white, gray. Names are decided on
lightness ``L*``, chroma ``C*`` and hue angle ``h`` (CIELCh), where equal steps look about
equally different to people, rather than on RGB distances or HSV (whose saturation calls a dark
near-grey "saturated" and whose value calls a pure blue as bright as white):

* chroma below :data:`ACHROMATIC_CHROMA` is black, gray or white by lightness alone;
* brown is dark or dull orange, or dull yellow (``C*`` low at hues 50-105 deg; ``L*`` low
  at 50-75 deg: a yellow in shade stays yellow), beige and tan included (the palette folds
  them into brown);
* pink is light red to magenta, purple its dark side.

A thing's colour (:func:`surface_colour`) is named from its own pixels (a mask, or a box's
foreground by depth: :mod:`engram_ros.perception.objects` picks them): shading only darkens a
surface, so its colour is the median of its lit part (the pixels at or above the 75th
percentile of lightness: the face turned to the light), and a white bed whose top is lit and
whose sides are in shade stays white rather than turning gray. A thing seen only on faces in
shade still looks darker than it is (a white fridge whose lit side is out of view is gray).
Nothing here imports ROS.
"""

from __future__ import annotations

import math

import numpy as np

#: Below this chroma [CIELAB units] a colour is black, gray or white.
ACHROMATIC_CHROMA = 12.0
#: Lightness bounds [L*] of the achromatic names: below ``BLACK_L`` black, above ``WHITE_L``
#: white, gray between; any colour darker than ``DARK_L`` is black whatever its chroma.
BLACK_L = 25.0
WHITE_L = 82.0
DARK_L = 10.0
#: A surface's colour is the median of its pixels at or above this percentile of lightness:
#: the face turned to the light (shading only darkens; a quarter of the pixels is enough).
LIT_PERCENTILE = 75.0

# sRGB (D65) -> XYZ
_M = np.array([[0.4124564, 0.3575761, 0.1804375],
               [0.2126729, 0.7151522, 0.0721750],
               [0.0193339, 0.1191920, 0.9503041]])
_WHITE = np.array([0.95047, 1.0, 1.08883])


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """8-bit sRGB values ``(..., 3)`` -> CIELAB ``(..., 3)`` (D65 white)."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _M.T / _WHITE
    eps = (6.0 / 29.0) ** 3
    f = np.where(xyz > eps, np.cbrt(xyz), xyz / (3.0 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)
    return np.stack((116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]),
                     200.0 * (f[..., 1] - f[..., 2])), axis=-1)


def lab_name(lightness: float, a: float, b: float) -> str:
    """The palette name of one CIELAB colour (see the module doc)."""
    chroma = math.hypot(a, b)
    hue = math.degrees(math.atan2(b, a)) % 360.0
    if lightness < DARK_L:
        return 'black'
    if chroma < ACHROMATIC_CHROMA:
        if lightness < BLACK_L:
            return 'black'
        return 'white' if lightness > WHITE_L else 'gray'
    if hue >= 355.0 or hue < 50.0:
        return 'pink' if lightness > 68.0 and chroma < 60.0 else 'red'
    if hue < 75.0:
        return 'brown' if lightness < 55.0 or chroma < 40.0 else 'orange'
    if hue < 105.0:     # a yellow in shade stays yellow; dull (beige, tan, olive) is brown
        return 'brown' if lightness < 35.0 or chroma < 40.0 else 'yellow'
    if hue < 190.0:
        return 'green'
    if hue < 309.0:
        return 'blue'
    return 'pink' if lightness > 55.0 else 'purple'


def colour_name(rgb) -> str:
    """Name an 8-bit RGB triple (see the module doc).

    :raises ValueError: unless ``rgb`` is three finite numbers in [0, 255].
    """
    if isinstance(rgb, (str, bytes)):
        raise ValueError(f'colour {rgb!r} is not three numbers')
    try:
        values = [float(c) for c in rgb]
    except (TypeError, ValueError):
        raise ValueError(f'colour {rgb!r} is not three numbers') from None
    if len(values) != 3 or not all(math.isfinite(c) and 0.0 <= c <= 255.0 for c in values):
        raise ValueError(f'colour {rgb!r} is not three numbers in 0..255')
    return lab_name(*rgb_to_lab(np.array(values)).tolist())


def surface_colour(pixels: np.ndarray) -> tuple[tuple[int, int, int], str]:
    """The colour of a surface from its pixels ``(n, 3)`` (8-bit RGB): the median RGB of its
    lit part (lightness at or above :data:`LIT_PERCENTILE`) and that colour's name.

    :raises ValueError: for no pixels.
    """
    p = np.asarray(pixels).reshape(-1, 3)
    if p.shape[0] == 0:
        raise ValueError('no pixels to name a colour from')
    lightness = rgb_to_lab(p)[:, 0]
    lit = p[lightness >= np.percentile(lightness, LIT_PERCENTILE)]
    rgb = tuple(int(round(float(c))) for c in np.median(lit, axis=0))
    return rgb, colour_name(rgb)
