"""Procedural indoor-like scenes: the data the shipped visual vocabulary and compressor learn from.

A scene is a seeded random "room wall": a base colour, a floor band, framed pictures with
textures (checkers, stripes, blobs, noise), furniture-like blocks and round objects, each at
its own depth. :func:`render_view` renders it from a jittered viewpoint (shift, zoom, small
roll, lighting, sensor noise), so two views of one scene are a positive pair for contrastive
training and views of different scenes are negatives. Nothing is downloaded; everything is a
deterministic function of the seed.
"""

from __future__ import annotations

import cv2
import numpy as np

_CANVAS = (960, 720)        # rendered larger than a view, so views can shift and zoom


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    kind = rng.integers(5)
    c1, c2 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    yy, xx = np.mgrid[0:h, 0:w]
    if kind == 0:                                       # checkers
        s = int(rng.integers(6, 30))
        m = ((xx // s + yy // s) % 2).astype(bool)
    elif kind == 1:                                     # stripes at an angle
        a, s = rng.uniform(0, np.pi), rng.uniform(5, 25)
        m = (np.sin((xx * np.cos(a) + yy * np.sin(a)) / s * np.pi) > 0)
    elif kind == 2:                                     # blobs
        m = np.zeros((h, w), bool)
        for _ in range(int(rng.integers(3, 12))):
            cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(4, max(5, h // 3))
            m |= (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    elif kind == 3:                                     # low-frequency noise
        n = cv2.resize(rng.random((max(2, h // 16), max(2, w // 16))).astype(np.float32), (w, h))
        m = n > 0.5
    else:                                               # text-like rows of dashes
        m = np.zeros((h, w), bool)
        for row in range(4, h - 4, int(rng.integers(8, 16))):
            x = 2
            while x < w - 4:
                ln = int(rng.integers(3, 20))
                m[row:row + 3, x:x + ln] = True
                x += ln + int(rng.integers(2, 8))
    img = np.where(m[..., None], c1, c2).astype(np.uint8)
    return img


def render_scene(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The canonical (canvas-size) RGB image and depth [m] of scene ``seed``."""
    rng = np.random.default_rng(seed)
    w, h = _CANVAS
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[:] = rng.integers(40, 230, 3)
    wall_depth = float(rng.uniform(2.5, 6.0))
    depth = np.full((h, w), wall_depth, np.float32)
    floor = int(h * rng.uniform(0.6, 0.8))
    rgb[floor:] = rng.integers(20, 200, 3)
    depth[floor:] = np.linspace(wall_depth, 1.0, h - floor, dtype=np.float32)[:, None]
    for _ in range(int(rng.integers(3, 9))):            # pictures, shelves, windows
        ph, pw = int(rng.integers(40, 220)), int(rng.integers(40, 260))
        y, x = int(rng.integers(0, max(1, floor - ph))), int(rng.integers(0, w - pw))
        rgb[y:y + ph, x:x + pw] = _texture(rng, ph, pw)
        cv2.rectangle(rgb, (x, y), (x + pw, y + ph), tuple(int(c) for c in rng.integers(0, 80, 3)),
                      int(rng.integers(1, 6)))
        depth[y:y + ph, x:x + pw] = wall_depth - float(rng.uniform(0.0, 0.2))
    for _ in range(int(rng.integers(1, 5))):            # furniture blocks standing on the floor
        bh, bw = int(rng.integers(60, 260)), int(rng.integers(60, 300))
        x = int(rng.integers(0, w - bw))
        y = max(0, floor + int(rng.integers(-20, 60)) - bh)
        d = float(rng.uniform(1.2, wall_depth - 0.3))
        rgb[y:y + bh, x:x + bw] = _texture(rng, bh, bw) if rng.random() < 0.5 else \
            rng.integers(0, 256, 3)
        depth[y:y + bh, x:x + bw] = d
    for _ in range(int(rng.integers(1, 6))):            # round objects
        cx, cy, r = int(rng.integers(0, w)), int(rng.integers(h // 3, h)), int(rng.integers(8, 50))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.circle(rgb, (cx, cy), r, colour, -1)
        cv2.circle(depth, (cx, cy), r, float(rng.uniform(0.8, 3.0)), -1)
    return rgb, depth


def render_view(seed: int, view_seed: int, size: tuple[int, int] = (640, 480),
                jitter: float = 1.0, scene: tuple[np.ndarray, np.ndarray] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """A jittered view (RGB uint8, depth float32 [m]) of scene ``seed`` at ``size`` (w, h).

    ``jitter`` scales the viewpoint and lighting changes (0 gives the centred view); ``scene``
    is ``render_scene(seed)`` when the caller already has it.
    """
    rgb, depth = scene if scene is not None else render_scene(seed)
    rng = np.random.default_rng((seed, view_seed))
    w, h = _CANVAS
    zoom = 1.0 + jitter * rng.uniform(-0.12, 0.12)
    angle = jitter * rng.uniform(-4.0, 4.0)
    dx, dy = jitter * rng.uniform(-0.1, 0.1) * w, jitter * rng.uniform(-0.06, 0.06) * h
    scale = zoom / 1.2 * size[0] / 640.0
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    m[:, 2] += (size[0] / 2 - w / 2 + dx * scale, size[1] / 2 - h / 2 + dy * scale)
    out = cv2.warpAffine(rgb, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    d = cv2.warpAffine(depth, m, size, flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT)
    gain = 1.0 + jitter * rng.uniform(-0.25, 0.25)
    bias = jitter * rng.uniform(-20, 20)
    noise = rng.normal(0.0, 3.0 * jitter, out.shape) if jitter > 0 else 0.0
    out = np.clip(out.astype(np.float32) * gain + bias + noise, 0, 255).astype(np.uint8)
    return out, d.astype(np.float32)


def rgbd_with_objects(k, t_map_optical: np.ndarray, objects, background_seed: int = 0,
                      wall_depth: float = 4.0) -> tuple[np.ndarray, np.ndarray, list]:
    """An RGB-D view of square, camera-facing object faces in front of a textured wall.

    :param k: :class:`~engram_ros.perception.geometry.Intrinsics` of the view.
    :param objects: ``(centre_in_map, half_size_m, rgb)`` per object; the face is centred on
        the point, perpendicular to the optical axis.
    :returns: ``(rgb, depth [m], boxes)``, a box ``(x_min, y_min, x_max, y_max)`` per object or
        ``None`` when it is behind the camera.
    """
    rgb, _ = render_view(background_seed, 0, size=(k.width, k.height), jitter=0.0)
    rgb = rgb.copy()
    depth = np.full((k.height, k.width), wall_depth, np.float32)
    inverse = np.linalg.inv(t_map_optical)
    boxes = []
    for centre, half, colour in objects:
        c = inverse[:3, :3] @ np.asarray(centre, float) + inverse[:3, 3]
        if c[2] <= 0.05:
            boxes.append(None)
            continue
        x0 = k.fx * (c[0] - half) / c[2] + k.cx
        x1 = k.fx * (c[0] + half) / c[2] + k.cx
        y0 = k.fy * (c[1] - half) / c[2] + k.cy
        y1 = k.fy * (c[1] + half) / c[2] + k.cy
        # pixel centres inside the face
        c0, c1 = int(np.ceil(x0 - 0.5)), int(np.floor(x1 - 0.5)) + 1
        r0, r1 = int(np.ceil(y0 - 0.5)), int(np.floor(y1 - 0.5)) + 1
        depth[max(r0, 0):max(r1, 0), max(c0, 0):max(c1, 0)] = c[2]
        rgb[max(r0, 0):max(r1, 0), max(c0, 0):max(c1, 0)] = colour
        boxes.append((float(c0), float(r0), float(c1), float(r1)))
    return rgb, depth, boxes


def depth_of_solids(k, t_map_optical: np.ndarray, cylinders=(), boxes=()
                    ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Ray-cast depth of solid objects of known size and place, with a mask per object.

    Unlike :func:`rgbd_with_objects` (camera-facing faces), these have depth: what the camera
    sees of them is their near side only, as with real objects.

    :param k: :class:`~engram_ros.perception.geometry.Intrinsics` of the view.
    :param cylinders: upright cylinders ``(x, y, radius, z_bottom, z_top)`` in the map frame,
        closed at the top.
    :param boxes: axis-aligned boxes ``(lo, hi)`` (corners, map frame).
    :returns: ``(depth [m], masks)``: depth 0 where nothing is hit; a boolean mask per object,
        cylinders first, of the pixels where it is the nearest thing.
    """
    v, u = np.mgrid[0:k.height, 0:k.width].astype(np.float64)
    optical = np.stack(((u - k.cx) / k.fx, (v - k.cy) / k.fy, np.ones_like(u)), axis=-1)
    d = optical @ t_map_optical[:3, :3].T     # map-frame rays scaled so that t is the depth
    o = t_map_optical[:3, 3]
    hits = []
    with np.errstate(invalid='ignore', divide='ignore'):
        for x, y, r, z0, z1 in cylinders:
            a = d[..., 0] ** 2 + d[..., 1] ** 2
            b = 2.0 * ((o[0] - x) * d[..., 0] + (o[1] - y) * d[..., 1])
            c = (o[0] - x) ** 2 + (o[1] - y) ** 2 - r * r
            side = (-b - np.sqrt(b * b - 4.0 * a * c)) / (2.0 * a)
            z = o[2] + side * d[..., 2]
            t = np.where((side > 0) & (z >= z0) & (z <= z1), side, np.inf)
            top = (z1 - o[2]) / d[..., 2]
            tx, ty = o[0] + top * d[..., 0] - x, o[1] + top * d[..., 1] - y
            hits.append(np.where((top > 0) & (tx * tx + ty * ty <= r * r), np.fmin(t, top), t))
        for lo, hi in boxes:
            a, b = (np.asarray(lo) - o) / d, (np.asarray(hi) - o) / d
            near = np.nanmax(np.minimum(a, b), axis=-1)
            far = np.nanmin(np.maximum(a, b), axis=-1)
            hits.append(np.where((near <= far) & (near > 0), near, np.inf))
    if not hits:
        return np.zeros((k.height, k.width), np.float32), []
    stack = np.stack(hits)
    nearest = stack.min(axis=0)
    depth = np.where(np.isfinite(nearest), nearest, 0.0).astype(np.float32)
    return depth, [np.isfinite(h) & (h == nearest) for h in stack]
