"""The demos' pictures: a top-down PNG of the house with the robot's trajectory, what the
memory keeps (places, objects, sounds), the simulator's true objects, and each answer ringed;
for the fleet demo (:func:`draw_fleet`), each robot's trajectory and engrams in its colour.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def draw(path: Path, truth: dict, trajectory: list[tuple[float, float]], engrams: dict,
         answers: list, scale: float = 70.0) -> None:
    """A top-down PNG: rooms, walls, trajectory, places, objects, sounds, each answer."""
    import cv2

    img, w, px = _house(truth, scale)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for obj in truth.get('objects', []):
        cx, cy = px(*obj['position'][:2])
        cv2.drawMarker(img, (cx, cy), (170, 170, 170), cv2.MARKER_TILTED_CROSS, 10, 1)
    if len(trajectory) > 1:
        pts = np.array([px(x, y) for x, y in trajectory[::2]], np.int32)
        cv2.polylines(img, [pts], False, (230, 160, 90), 1, cv2.LINE_AA)
    for e in engrams.get('place', []):
        p = e.pose.pose.position
        cv2.circle(img, px(p.x, p.y), 4, (90, 170, 60), -1, cv2.LINE_AA)
    for e in engrams.get('audio', []):
        p = e.pose.pose.position
        cv2.circle(img, px(p.x, p.y), 9, (160, 50, 150), 2, cv2.LINE_AA)
        cv2.putText(img, e.label or 'sound', (px(p.x, p.y)[0] + 10, px(p.x, p.y)[1] + 14),
                    font, 0.42, (160, 50, 150), 1, cv2.LINE_AA)
    for e in engrams.get('object', []):
        p = e.pose.pose.position
        cv2.circle(img, px(p.x, p.y), 6, (20, 130, 240), -1, cv2.LINE_AA)
        cv2.putText(img, e.label or 'object', (px(p.x, p.y)[0] + 7, px(p.x, p.y)[1] - 5),
                    font, 0.42, (20, 90, 200), 1, cv2.LINE_AA)
    _legend_and_answers(img, w, px, answers)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


def _house(truth: dict, scale: float, legend_w: int = 330):
    """A white canvas with the rooms and walls drawn, the legend's room right of them; returns
    (image, the map's width [px], ``px``: map coordinates [m] to pixels)."""
    import cv2

    rooms = truth['rooms']
    x0 = min(r['min'][0] for r in rooms) - 0.5
    y0 = min(r['min'][1] for r in rooms) - 0.5
    x1 = max(r['max'][0] for r in rooms) + 0.5
    y1 = max(r['max'][1] for r in rooms) + 0.5
    w, h = int((x1 - x0) * scale), int((y1 - y0) * scale)
    img = np.full((h, w + legend_w, 3), 255, np.uint8)

    def px(x: float, y: float) -> tuple[int, int]:
        return int((x - x0) * scale), int((y1 - y) * scale)

    font = cv2.FONT_HERSHEY_SIMPLEX
    for r in rooms:
        cv2.rectangle(img, px(r['min'][0], r['max'][1]), px(r['max'][0], r['min'][1]),
                      (240, 240, 232), -1)
        cv2.putText(img, r['name'], px(r['min'][0] + 0.15, r['max'][1] - 0.35), font, 0.55,
                    (150, 150, 150), 1, cv2.LINE_AA)
    for wx0, wy0, wx1, wy1, _ in truth['walls']:
        cv2.line(img, px(wx0, wy0), px(wx1, wy1), (40, 40, 40), 4)
    return img, w, px


#: The main demo's legend: (text, BGR colour).
LEGEND = (('trajectory (odometry)', (230, 160, 90)), ('place engram', (90, 170, 60)),
          ('object engram', (20, 130, 240)), ('sound engram', (160, 50, 150)),
          ('true object (sim)', (170, 170, 170)))
#: The fleet demo's robots, in order (BGR): orange, teal; no answer ring uses either.
ROBOT_COLOURS = ((0, 140, 255), (140, 140, 0))


def draw_fleet(path: Path, truth: dict, trajectories: dict[str, list[tuple[float, float]]],
               engrams: dict[str, dict], answers: list, scale: float = 70.0
               ) -> dict[str, tuple[int, int, int]]:
    """The fleet demo's PNG: who saw what. Each robot's trajectory and engrams (``engrams``:
    robot -> kind -> engrams) in that robot's colour, the true objects, each answer ringed.

    :returns: robot -> its colour (BGR), in the order of ``trajectories``.
    """
    import cv2

    img, w, px = _house(truth, scale)
    font = cv2.FONT_HERSHEY_SIMPLEX
    robots = list(trajectories) + [r for r in engrams if r not in trajectories]
    colours = {r: ROBOT_COLOURS[i % len(ROBOT_COLOURS)] for i, r in enumerate(robots)}
    for obj in truth.get('objects', []):
        cx, cy = px(*obj['position'][:2])
        cv2.drawMarker(img, (cx, cy), (170, 170, 170), cv2.MARKER_TILTED_CROSS, 10, 1)
    for robot, trajectory in trajectories.items():
        if len(trajectory) > 1:
            pale = tuple(int(c + (255 - c) * 0.55) for c in colours[robot])
            pts = np.array([px(x, y) for x, y in trajectory[::2]], np.int32)
            cv2.polylines(img, [pts], False, pale, 1, cv2.LINE_AA)
    for robot, kinds in engrams.items():
        colour = colours[robot]
        for e in kinds.get('place', []):
            p = e.pose.pose.position
            cv2.circle(img, px(p.x, p.y), 3, colour, -1, cv2.LINE_AA)
        for e in kinds.get('audio', []):
            p = e.pose.pose.position
            cv2.circle(img, px(p.x, p.y), 9, colour, 2, cv2.LINE_AA)
        for e in kinds.get('object', []):
            p = e.pose.pose.position
            cv2.circle(img, px(p.x, p.y), 6, colour, -1, cv2.LINE_AA)
            cv2.putText(img, e.label or 'object', (px(p.x, p.y)[0] + 7, px(p.x, p.y)[1] - 5),
                        font, 0.42, colour, 1, cv2.LINE_AA)
    legend = tuple((f'seen by {r} (its path: pale)', colours[r]) for r in robots) + (
        ('object: dot, place: small dot', (90, 90, 90)), ('sound: ring', (90, 90, 90)),
        ('true object (sim)', (170, 170, 170)))
    _legend_and_answers(img, w, px, answers, legend, title='engram_ros fleet memory')
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)
    return colours


def _legend_and_answers(img: np.ndarray, w: int, px, answers: list,
                        legend: tuple = LEGEND, title: str = 'engram_ros memory') -> None:
    """The legend right of the map (from column ``w``), and each answer's engrams ringed in its
    colour; ``px`` maps map coordinates [m] to pixels. An answer with ``robots`` (a fleet
    answer) names who saw each thing."""
    import cv2

    font = cv2.FONT_HERSHEY_SIMPLEX
    colours = [(40, 40, 220), (200, 60, 40), (150, 40, 160), (20, 150, 150), (90, 90, 90)]
    ly = 30
    cv2.putText(img, title, (w + 15, ly), font, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    for text, colour in legend:
        ly += 24
        cv2.circle(img, (w + 25, ly - 5), 6, colour, -1)
        cv2.putText(img, text, (w + 40, ly), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    ly += 16
    for i, answer in enumerate(answers):
        colour = colours[i % len(colours)]
        ly += 26
        cv2.putText(img, f'Q{i + 1}: {answer.question}', (w + 15, ly), font, 0.45, colour, 1,
                    cv2.LINE_AA)
        ly += 18
        robots = getattr(answer, 'robots', [])
        names = ', '.join(sorted({(e.label or e.kind)
                                  + (f' ({robots[j]})' if j < len(robots) else '')
                                  for j, e in enumerate(answer.engrams)})) or "I don't know"
        cv2.putText(img, f'  {names[:40]}', (w + 15, ly), font, 0.4, (60, 60, 60), 1,
                    cv2.LINE_AA)
        for e in answer.engrams:
            p = e.pose.pose.position
            cv2.circle(img, px(p.x, p.y), 13 + 3 * i, colour, 2, cv2.LINE_AA)
            cv2.putText(img, f'Q{i + 1}', (px(p.x, p.y)[0] - 10, px(p.x, p.y)[1] + 26 + 3 * i),
                        font, 0.4, colour, 1, cv2.LINE_AA)
