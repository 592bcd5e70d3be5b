"""Point labels that do not overlap: a greedy placement for the bench scatter plot.

Small models cluster (a dozen points within a millisecond and a million parameters), and labels drawn at one
fixed offset pile on each other. Each label takes the first candidate offset, nearest first (beside its point,
then stacked above and below), whose box overlaps no label placed before it, no plotted point and stays inside
the axes; with no free candidate, the least crowded one. A label placed away from its point gets a thin leader
line back to it.
"""

from __future__ import annotations

import itertools
import math

FONT_SIZE = 6.5
POINT_RADIUS_PX = 4
NEAR = 9  # points: a label placed further than this from its point gets a leader line


def candidate_offsets():
    """Offsets in points, nearest first: beside the point, then stacked above and below it in label-height steps."""
    offsets = itertools.product((4, -4, 0, 30, -30), range(-72, 73, 4))
    return sorted(((dx, dy) for dx, dy in offsets if dx or abs(dy) >= 4), key=lambda o: (math.hypot(*o), -o[0], -o[1]))


def _alignment(dx, dy):
    return ("left" if dx > 0 else "right" if dx < 0 else "center"), (
        "bottom" if dy > 0 else "top" if dy < 0 else "center"
    )


def _overlap(box, others) -> float:
    total = 0.0
    for other in others:
        width = min(box.x1, other.x1) - max(box.x0, other.x0)
        height = min(box.y1, other.y1) - max(box.y0, other.y0)
        if width > 0 and height > 0:
            total += width * height
    return total


def _outside(box, frame) -> float:
    inside_width = max(0.0, min(box.x1, frame.x1) - max(box.x0, frame.x0))
    inside_height = max(0.0, min(box.y1, frame.y1) - max(box.y0, frame.y0))
    return box.width * box.height - inside_width * inside_height


def place_labels(ax, labels) -> list:
    """Annotate ``labels`` ([(x, y, text)] in data coordinates) on ``ax``; return the labels' boxes (display).

    Call it last, once the axes' limits and the figure's layout are final: boxes are measured in pixels.
    """
    from matplotlib.transforms import Bbox

    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    points = []
    for x, y, _ in labels:
        px, py = ax.transData.transform((x, y))
        points.append(Bbox.from_extents(px - POINT_RADIUS_PX, py - POINT_RADIUS_PX, px + POINT_RADIUS_PX,
                                        py + POINT_RADIUS_PX))  # fmt: skip
    placed = []
    for x, y, text in sorted(labels, key=lambda label: (label[1], label[0])):
        best = None
        for offset in candidate_offsets():
            note = _annotate(ax, text, (x, y), offset)
            box = note.get_window_extent(renderer)
            note.remove()
            cost = _overlap(box, placed) + _overlap(box, points) + 10 * _outside(box, frame)
            if best is None or cost < best[0]:
                best = (cost, offset, box)
            if cost == 0:
                break
        _, offset, box = best
        _annotate(ax, text, (x, y), offset, leader=math.hypot(*offset) > NEAR)  # far: a line says whose it is
        placed.append(box)
    return placed


def _annotate(ax, text, xy, offset, leader=False):
    ha, va = _alignment(*offset)
    arrow = dict(arrowstyle="-", lw=0.4, color="0.5") if leader else None
    return ax.annotate(text, xy, xytext=offset, textcoords="offset points", fontsize=FONT_SIZE, ha=ha, va=va,
                       arrowprops=arrow)  # fmt: skip
