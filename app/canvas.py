"""The drawing canvas: white paper, black ink, pen and eraser, undo/redo, load and save.

Strokes are kept in the coordinates of the *paper*: the canvas's size when the first stroke of a sketch
was drawn (or the sketch was loaded).  The paper is shown scaled to fit the widget and centred, so a
resize scales the drawing with the canvas and never crops it; :meth:`SketchCanvas.to_image` renders the
paper (:func:`app.sketch.render_strokes`) whatever the widget's size, and is what gets searched.

Painting is incremental: the committed strokes are rendered once into a cached image; a stroke being
drawn is painted segment by segment into that image, and a paint event copies only the damaged rectangle
(the work per mouse move does not grow with the stroke's length).
"""
from __future__ import annotations

import os

import cv2
import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QInputDevice,
    QPainter,
    QPaintEvent,
    QPen,
    QPointingDevice,
    QUndoCommand,
    QUndoStack,
)
from PySide6.QtWidgets import QWidget

from .sketch import Stroke, draw_stroke, fit_centered, render_strokes, sketch_bbox

__all__ = ["SketchCanvas"]

TOOLS = ("pen", "eraser")
MIN_WIDTH, MAX_WIDTH, DEFAULT_WIDTH = 1, 40, 4
MIN_ERASER_WIDTH = 12
HINT = "Draw a shape here"
# steps kept for undo: beyond it the oldest go (the sketch stays as it is).  Each step holds a stroke's
# points, or a clear's or load's strokes and background; a long session must not keep every one of them
UNDO_LIMIT = 500


class _Command(QUndoCommand):
    """Replace the canvas's strokes, background and paper; undo puts the previous ones back."""

    def __init__(self, canvas: SketchCanvas, text: str, strokes: list[Stroke], background: np.ndarray | None,
                 paper: tuple[int, int] | None):
        super().__init__(text)
        self.canvas = canvas
        self.new = (tuple(strokes), background, paper)
        self.old = (tuple(canvas._strokes), canvas._background, canvas._paper)

    def redo(self) -> None:
        self.canvas._set_state(*self.new)

    def undo(self) -> None:
        self.canvas._set_state(*self.old)


class AddStroke(QUndoCommand):
    """One finished stroke (drawn onto the cached image rather than re-rendering everything)."""

    def __init__(self, canvas: SketchCanvas, stroke: Stroke, paper: tuple[int, int]):
        super().__init__("Erase" if stroke.erase else "Draw")
        self.canvas, self.stroke = canvas, stroke
        self.paper, self.old_paper = paper, canvas._paper  # a first stroke sets the paper

    def redo(self) -> None:
        self.canvas._append(self.stroke, self.paper)

    def undo(self) -> None:
        c = self.canvas
        c._set_state(tuple(c._strokes[:-1]), c._background, self.old_paper)


class Clear(_Command):
    """Remove all strokes and any loaded sketch."""

    def __init__(self, canvas: SketchCanvas):
        super().__init__(canvas, "Clear", [], None, None)


class LoadImage(_Command):
    """Make a loaded sketch the background, without strokes."""

    def __init__(self, canvas: SketchCanvas, background: np.ndarray):
        super().__init__(canvas, "Open Sketch", [], background, (background.shape[1], background.shape[0]))


class SketchCanvas(QWidget):
    """A drawing surface that always looks like white paper with black ink.

    Signals
    -------
    sketchChanged()
        After a finished stroke, undo, redo, clear or load (not during a stroke).
    strokeStarted()
        When the pen goes down.
    """

    sketchChanged = Signal()
    strokeStarted = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.undo_stack = QUndoStack(self)
        self.undo_stack.setUndoLimit(UNDO_LIMIT)  # only while the stack is empty
        self._strokes: list[Stroke] = []  # in paper coordinates
        self._background: np.ndarray | None = None  # (H, W) grey at the paper's size
        self._paper: tuple[int, int] | None = None  # (width, height); None: blank, set by the first stroke
        self._cache: np.ndarray | None = None  # render of the paper (what is searched)
        self._empty: bool | None = None  # no ink in the cache (None: not known yet)
        self._shown: QImage | None = None  # the paper as shown at the widget's size, with any live stroke
        self._tool = "pen"
        self._pen_width = DEFAULT_WIDTH
        self._current: list[tuple[float, float]] | None = None  # the stroke being drawn (widget pixels)
        self._current_erase = False
        self._pressures: list[float] = []
        self._hover: QPointF | None = None
        self.setAttribute(Qt.WidgetAttribute.WA_StaticContents)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)  # every paint covers its rectangle
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setCursor(Qt.CursorShape.CrossCursor)

    # -- public API ---------------------------------------------------------------------------------
    @property
    def tool(self) -> str:
        """The current tool, "pen" or "eraser"."""
        return self._tool

    def set_tool(self, tool: str) -> None:
        """Choose the "pen" or the "eraser"."""
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}; expected one of {TOOLS}")
        self._tool = tool
        self._update_cursor(self._hover, self._hover)

    @property
    def pen_width(self) -> int:
        """Pen diameter in pixels of the screen (1..40)."""
        return self._pen_width

    @property
    def eraser_width(self) -> int:
        """Eraser diameter in pixels: 4 x the pen width, at least 12."""
        return max(MIN_ERASER_WIDTH, 4 * self._pen_width)

    def set_pen_width(self, px: int) -> None:
        """Set the pen width in pixels (clamped to 1..40); the eraser follows."""
        old = self._hover
        self._update_cursor(old, None)
        self._pen_width = int(min(MAX_WIDTH, max(MIN_WIDTH, int(px))))
        self._update_cursor(None, old)

    def undo(self) -> None:
        """Undo the last change (stroke, clear or load)."""
        self.undo_stack.undo()

    def redo(self) -> None:
        """Redo the last undone change."""
        self.undo_stack.redo()

    def clear(self) -> None:
        """Remove all strokes and any loaded sketch (undoable; nothing happens when already blank)."""
        if self._strokes or self._background is not None:
            self.undo_stack.push(Clear(self))

    def is_empty(self) -> bool:
        """True when the sketch has no visible ink."""
        if not self._strokes and self._background is None:
            return True
        img = self._render()
        if self._empty is None:
            self._empty = sketch_bbox(img) is None
        return self._empty

    def strokes(self) -> list[Stroke]:
        """The committed strokes, oldest first, in paper coordinates (a copy)."""
        return list(self._strokes)

    @property
    def paper_size(self) -> tuple[int, int]:
        """(width, height) of the paper: what :meth:`to_image` renders (the widget's size while blank)."""
        return self._paper or self._size()

    def to_image(self) -> np.ndarray:
        """The sketch as a (H, W) uint8 grey image of the paper (a copy): what gets searched.

        Its size is the canvas's when the sketch was begun, whatever the widget's size is now, so
        resizing the window neither crops nor changes the sketch that is searched."""
        return self._render().copy()

    def load_image(self, path: str | os.PathLike) -> None:
        """Open a sketch image, fitted and centred on paper of the canvas's size, as the canvas's background
        (one undoable step).

        Raises
        ------
        engine.imageio.ImageError
            When the file cannot be read (the message names the file).
        """
        from engine.imageio import load_image

        size = self._size()
        rgb = load_image(path, max_side=max(size)).pixels
        grey = np.clip(rgb @ np.array([0.299, 0.587, 0.114], np.float32) * 255 + 0.5, 0, 255).astype(np.uint8)
        self._cancel_stroke()
        self.undo_stack.push(LoadImage(self, fit_centered(grey, size, margin=0.05)))

    def set_sketch(self, grey: np.ndarray) -> None:
        """Put back a sketch as it was searched: ``grey`` is a (H, W) uint8 image of its paper (e.g. from the
        search history); the paper takes its size, so :meth:`to_image` gives these very pixels and the search
        ranks as it did (one undoable step)."""
        grey = np.ascontiguousarray(grey, np.uint8)
        if grey.ndim != 2 or min(grey.shape) < 1:
            raise ValueError(f"a sketch is a (H, W) grey image, not an array of shape {grey.shape}")
        self._cancel_stroke()
        self.undo_stack.push(LoadImage(self, grey.copy()))

    def save_png(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_image` as a PNG file.

        Raises
        ------
        OSError
            When the file cannot be written (the message names the file).
        """
        ok, data = cv2.imencode(".png", self.to_image())
        if not ok:
            raise OSError(f"{os.fspath(path)}: could not encode the sketch as PNG")
        try:
            with open(path, "wb") as f:
                f.write(data.tobytes())
        except OSError as e:
            raise OSError(e.errno, f"could not save the sketch: {e.strerror or e}", os.fspath(path)) from e

    def sizeHint(self) -> QSize:
        return QSize(480, 480)

    def minimumSizeHint(self) -> QSize:
        return QSize(200, 200)

    # -- paper <-> widget ---------------------------------------------------------------------------
    def _size(self) -> tuple[int, int]:
        return max(1, self.width()), max(1, self.height())

    def _view(self) -> tuple[float, float, float]:
        """(scale, x offset, y offset) that show the paper fitted and centred in the widget."""
        if self._paper is None:
            return 1.0, 0.0, 0.0
        (pw, ph), (w, h) = self._paper, self._size()
        if (pw, ph) == (w, h):
            return 1.0, 0.0, 0.0
        s = min(w / pw, h / ph)
        return s, (w - pw * s) / 2, (h - ph * s) / 2

    def _to_paper(self, points: np.ndarray, width: float) -> tuple[np.ndarray, float]:
        s, ox, oy = self._view()
        return (np.asarray(points, np.float64) - (ox, oy)) / s, width / s

    @staticmethod
    def _on_widget(stroke: Stroke, view: tuple[float, float, float]) -> Stroke:
        s, ox, oy = view
        if (s, ox, oy) == (1.0, 0.0, 0.0):
            return stroke
        return Stroke(stroke.points * s + (ox, oy), stroke.width * s, stroke.erase)

    # -- state (used by the undo commands) ----------------------------------------------------------
    def _render(self) -> np.ndarray:
        """The paper with every committed stroke (cached)."""
        if self._cache is None:
            self._cache = render_strokes(self._strokes, self.paper_size, background=self._background)
            self._shown, self._empty = None, None
        return self._cache

    def _render_shown(self) -> QImage:
        """The paper as shown at the widget's size (cached; a live stroke is painted into it)."""
        if self._shown is None or (self._shown.width(), self._shown.height()) != self._size():
            view = self._view()
            if view == (1.0, 0.0, 0.0):
                img = self._render()
            else:
                (w, h), (pw, ph) = self._size(), self.paper_size
                img = np.full((h, w), 255, np.uint8)
                if self._background is not None:
                    s, ox, oy = view
                    bw, bh = max(1, round(pw * s)), max(1, round(ph * s))
                    x, y = int(round(ox)), int(round(oy))
                    bg = cv2.resize(self._background, (bw, bh), interpolation=cv2.INTER_AREA)
                    img[y:y + bh, x:x + bw] = bg[:h - y, :w - x]
                for stroke in self._strokes:
                    draw_stroke(img, self._on_widget(stroke, view))
            self._shown = QImage(img.data, img.shape[1], img.shape[0], img.strides[0],
                                 QImage.Format.Format_Grayscale8).convertToFormat(QImage.Format.Format_RGB32)
        return self._shown

    def _changed(self) -> None:
        self._empty = None
        self.update()
        self.sketchChanged.emit()

    def _set_state(self, strokes, background: np.ndarray | None, paper: tuple[int, int] | None) -> None:
        self._strokes, self._background, self._paper = list(strokes), background, paper
        self._cache, self._shown = None, None
        self._changed()

    def _append(self, stroke: Stroke, paper: tuple[int, int]) -> None:
        if self._paper != paper:
            self._paper, self._cache = paper, None
        if self._cache is not None:
            draw_stroke(self._cache, stroke)  # same pixels as a full render: strokes are drawn in order
        self._strokes.append(stroke)
        self._shown = None  # the live preview gives way to the committed stroke
        self._changed()

    # -- drawing --------------------------------------------------------------------------------------
    def _width(self, erase: bool) -> float:
        return float(self.eraser_width if erase else self._pen_width)

    def _stroke_width(self) -> float:
        width = self._width(self._current_erase)
        if self._pressures:  # tablet: 0.5x at no pressure .. 1.5x at full pressure
            width *= 0.5 + float(np.clip(np.mean(self._pressures), 0.0, 1.0))
        return max(1.0, width)

    def _begin(self, pos: QPointF, *, erase: bool, pressure: float | None = None) -> None:
        self._current = [(pos.x(), pos.y())]
        self._current_erase = erase
        self._pressures = [] if pressure is None else [pressure]
        self.strokeStarted.emit()
        self._paint_segment(0)
        self.update()  # all of it: the hint goes

    def _extend(self, pos: QPointF, pressure: float | None = None) -> None:
        point = (pos.x(), pos.y())
        if pressure is not None and self._pressures:
            self._pressures.append(pressure)
        if point != self._current[-1]:
            self._current.append(point)
            self._paint_segment(len(self._current) - 2)

    def _finish(self, pos: QPointF | None = None, pressure: float | None = None) -> None:
        if pos is not None:
            self._extend(pos, pressure)
        points, width = self._to_paper(np.array(self._current), self._stroke_width())
        stroke = Stroke(points, width, self._current_erase)
        paper = self.paper_size
        self._current, self._pressures = None, []
        self.undo_stack.push(AddStroke(self, stroke, paper))

    def _cancel_stroke(self) -> None:
        if self._current is not None:
            self._current, self._pressures = None, []
            self._shown = None  # drop the live preview
            self.update()

    def _paint_segment(self, start: int) -> None:
        """Paint the current stroke from point ``start`` on into the shown image, and repaint around it."""
        img = self._render_shown()
        pts = self._current[start:]
        width = self._stroke_width()
        colour = Qt.GlobalColor.white if self._current_erase else Qt.GlobalColor.black
        painter = QPainter(img)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(colour, width, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap,
                            Qt.PenJoinStyle.RoundJoin))
        if len(pts) == 1:
            painter.drawPoint(QPointF(*pts[0]))
        else:
            painter.drawLine(QPointF(*pts[0]), QPointF(*pts[1]))
        painter.end()
        a = np.array(pts)
        pad = width * (1.5 if self._pressures else 1) / 2 + 2
        (x0, y0), (x1, y1) = a.min(axis=0) - pad, a.max(axis=0) + pad
        self.update(QRectF(x0, y0, x1 - x0, y1 - y0).toAlignedRect())

    def _cursor_rect(self, pos: QPointF) -> QRectF:
        r = self._width(self._tool == "eraser") / 2 + 2
        return QRectF(pos.x() - r, pos.y() - r, 2 * r, 2 * r)

    def _update_cursor(self, old: QPointF | None, new: QPointF | None) -> None:
        for p in (old, new):
            if p is not None:
                self.update(self._cursor_rect(p).toAlignedRect())
        self._hover = new

    # -- events ---------------------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self._current is None:
            self._begin(event.position(), erase=self._tool == "eraser")
            event.accept()
        else:
            super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:
        self._update_cursor(self._hover, event.position())
        if self._current is not None:
            self._extend(event.position())
        event.accept()

    def mouseReleaseEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self._current is not None:
            self._finish(event.position())
            event.accept()
        else:
            super().mouseReleaseEvent(event)

    def tabletEvent(self, event) -> None:
        device = event.pointingDevice()
        has_pressure = device is not None and bool(device.capabilities() & QInputDevice.Capability.Pressure)
        pressure = float(event.pressure()) if has_pressure else None
        kind, pos = event.type(), event.position()
        if kind == QEvent.Type.TabletPress and event.button() == Qt.MouseButton.LeftButton and self._current is None:
            erase = self._tool == "eraser" or event.pointerType() == QPointingDevice.PointerType.Eraser
            self._begin(pos, erase=erase, pressure=pressure)
        elif kind == QEvent.Type.TabletMove:
            self._update_cursor(self._hover, pos)
            if self._current is not None:
                self._extend(pos, pressure)
        elif kind == QEvent.Type.TabletRelease and self._current is not None:
            self._finish(pos)
        event.accept()  # no synthesized mouse events

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Escape and self._current is not None:
            self._cancel_stroke()  # Esc drops the stroke being drawn
            event.accept()
        else:
            super().keyPressEvent(event)

    def leaveEvent(self, event) -> None:
        self._update_cursor(self._hover, None)
        super().leaveEvent(event)

    def resizeEvent(self, event) -> None:
        if self._current is not None:  # the stroke being drawn is in widget pixels: finish it as it is
            self._finish()
        if self._paper is None:
            self._cache = None  # blank paper follows the widget
        self._shown = None  # re-made at the new size on the next paint
        super().resizeEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.drawImage(event.rect(), self._render_shown(), event.rect())  # paper, whatever the theme
        if self._current is None and self.is_empty():
            painter.setPen(QColor(160, 160, 160))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, HINT)
        if self._hover is not None:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            r = self._cursor_rect(self._hover).adjusted(2, 2, -2, -2)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(QPen(QColor(255, 255, 255, 200), 3))
            painter.drawEllipse(r)
            painter.setPen(QPen(QColor(90, 90, 90), 1))
            painter.drawEllipse(r)
        painter.end()
