"""Helpers of the app's tests and of its benchmark: strokes drawn as mouse events through the app's own widgets."""
from __future__ import annotations

HOUSE = [
    [(0.05, 0.4), (0.5, 0.12), (0.95, 0.4), (0.05, 0.4)],
    [(0.14, 0.4), (0.14, 0.82), (0.86, 0.82), (0.86, 0.4)],
    [(0.42, 0.82), (0.42, 0.6), (0.58, 0.6), (0.58, 0.82)],
    [(0.22, 0.47), (0.36, 0.47), (0.36, 0.6), (0.22, 0.6), (0.22, 0.47)],
    [(0.66, 0.47), (0.8, 0.47), (0.8, 0.58), (0.66, 0.58), (0.66, 0.47)],
]
SHAPES = [
    [(0.25, 0.9), (0.25, 0.45), (0.5, 0.15), (0.75, 0.45), (0.75, 0.9), (0.25, 0.9)],
    [(0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8), (0.2, 0.2)],
    [(0.1, 0.7), (0.3, 0.3), (0.5, 0.7), (0.7, 0.3), (0.9, 0.7)],
]


def stroke_events(canvas, points, steps: int = 12) -> None:
    """A stroke through ``points`` (canvas pixels) as mouse events: press, moves with the left button
    held (``steps`` per segment), release."""
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    pts = [QPointF(x, y) for x, y in points]
    dense = [pts[0]]
    for a, b in zip(pts, pts[1:], strict=False):
        dense += [a + (b - a) * (i / steps) for i in range(1, steps + 1)]
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton

    def send(kind, p, button, buttons):
        QApplication.sendEvent(canvas, QMouseEvent(kind, p, canvas.mapToGlobal(p), button, buttons,
                                                   Qt.KeyboardModifier.NoModifier))

    send(QMouseEvent.Type.MouseButtonPress, dense[0], left, left)
    for p in dense[1:]:
        send(QMouseEvent.Type.MouseMove, p, none, left)
    send(QMouseEvent.Type.MouseButtonRelease, dense[-1], left, none)


def draw_stroke(canvas, points, steps: int = 12) -> None:
    """A stroke through ``points`` given as fractions of the largest centred square of the canvas."""
    w, h = canvas.width(), canvas.height()
    side = min(w, h)
    stroke_events(canvas, [((w - side) / 2 + x * side, (h - side) / 2 + y * side) for x, y in points], steps)


