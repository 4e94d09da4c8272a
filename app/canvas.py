"""The drawing canvas: white paper, black ink, pen and eraser, undo/redo, load and save.

Strokes are kept in widget coordinates (a resize neither moves nor scales them) and rendered with
:func:`app.sketch.render_strokes`; :meth:`SketchCanvas.to_image` is what gets searched.
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
    QPainterPath,
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


class _Command(QUndoCommand):
    """Replace the canvas's strokes and background; undo puts the previous ones back."""

    def __init__(self, canvas: SketchCanvas, text: str, strokes: list[Stroke], background: np.ndarray | None):
        super().__init__(text)
        self.canvas = canvas
        self.new = (tuple(strokes), background)
        self.old = (tuple(canvas._strokes), canvas._background)

    def redo(self) -> None:
        self.canvas._set_state(*self.new)

    def undo(self) -> None:
        self.canvas._set_state(*self.old)


class AddStroke(QUndoCommand):
    """One finished stroke (drawn onto the cached image rather than re-rendering everything)."""

    def __init__(self, canvas: SketchCanvas, stroke: Stroke):
        super().__init__("Erase" if stroke.erase else "Draw")
        self.canvas, self.stroke = canvas, stroke

    def redo(self) -> None:
        self.canvas._append(self.stroke)

    def undo(self) -> None:
        self.canvas._set_state(tuple(self.canvas._strokes[:-1]), self.canvas._background)


class Clear(_Command):
    """Remove all strokes and any loaded sketch."""

    def __init__(self, canvas: SketchCanvas):
        super().__init__(canvas, "Clear", [], None)


class LoadImage(_Command):
    """Make a loaded sketch the background, without strokes."""

    def __init__(self, canvas: SketchCanvas, background: np.ndarray):
        super().__init__(canvas, "Open Sketch", [], background)


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
        self._strokes: list[Stroke] = []
        self._background: np.ndarray | None = None
        self._cache: np.ndarray | None = None  # render of the committed strokes at the widget's size
        self._empty: bool | None = None  # no ink in the cache (None: not known yet)
        self._cache_qimage: QImage | None = None
        self._tool = "pen"
        self._pen_width = DEFAULT_WIDTH
        self._current: list[tuple[float, float]] | None = None  # the stroke being drawn
        self._current_erase = False
        self._pressures: list[float] = []
        self._hover: QPointF | None = None
        self.setAttribute(Qt.WidgetAttribute.WA_StaticContents)
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
        """Pen diameter in pixels (1..40)."""
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
        """The committed strokes, oldest first (a copy)."""
        return list(self._strokes)

    def to_image(self) -> np.ndarray:
        """The sketch as a (H, W) uint8 grey image at the widget's size (a copy): what gets searched."""
        return self._render().copy()

    def load_image(self, path: str | os.PathLike) -> None:
        """Open a sketch image, fitted and centred, as the canvas's background (one undoable step).

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

    # -- state (used by the undo commands) ----------------------------------------------------------
    def _size(self) -> tuple[int, int]:
        return max(1, self.width()), max(1, self.height())

    def _render(self) -> np.ndarray:
        size = self._size()
        if self._cache is None or self._cache.shape != (size[1], size[0]):
            self._cache = render_strokes(self._strokes, size, background=self._background)
            self._cache_qimage, self._empty = None, None
        return self._cache

    def _changed(self) -> None:
        self._cache_qimage, self._empty = None, None
        self.update()
        self.sketchChanged.emit()

    def _set_state(self, strokes, background: np.ndarray | None) -> None:
        self._strokes, self._background, self._cache = list(strokes), background, None
        self._changed()

    def _append(self, stroke: Stroke) -> None:
        if self._cache is not None:
            draw_stroke(self._cache, stroke)  # same pixels as a full render: strokes are drawn in order
        self._strokes.append(stroke)
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
        self.update()  # all of it: the hint goes

    def _extend(self, pos: QPointF, pressure: float | None = None) -> None:
        point = (pos.x(), pos.y())
        if pressure is not None and self._pressures:
            self._pressures.append(pressure)
        if point != self._current[-1]:
            self._current.append(point)
            self._update_stroke_rect(len(self._current) - 2)

    def _finish(self, pos: QPointF | None = None, pressure: float | None = None) -> None:
        if pos is not None:
            self._extend(pos, pressure)
        stroke = Stroke(np.array(self._current), self._stroke_width(), self._current_erase)
        self._current, self._pressures = None, []
        self.undo_stack.push(AddStroke(self, stroke))

    def _cancel_stroke(self) -> None:
        if self._current is not None:
            self._current, self._pressures = None, []
            self.update()

    def _update_stroke_rect(self, start: int) -> None:
        """Repaint around the segment(s) of the current stroke from point ``start`` on."""
        pts = np.array(self._current[start:])
        pad = self._stroke_width() * (1.5 if self._pressures else 1) / 2 + 2
        (x0, y0), (x1, y1) = pts.min(axis=0) - pad, pts.max(axis=0) + pad
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
        self._cache, self._cache_qimage = None, None  # re-rendered at the new size on the next paint
        super().resizeEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(event.rect(), Qt.GlobalColor.white)  # paper, whatever the theme
        if self._cache_qimage is None:
            img = self._render()
            self._cache_qimage = QImage(img.data, img.shape[1], img.shape[0], img.strides[0],
                                        QImage.Format.Format_Grayscale8).copy()
        painter.drawImage(event.rect(), self._cache_qimage, event.rect())
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if self._current is not None:
            colour = Qt.GlobalColor.white if self._current_erase else Qt.GlobalColor.black
            painter.setPen(QPen(colour, self._stroke_width(), Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap,
                                Qt.PenJoinStyle.RoundJoin))
            if len(self._current) == 1:
                painter.drawPoint(QPointF(*self._current[0]))
            else:
                path = QPainterPath(QPointF(*self._current[0]))
                for x, y in self._current[1:]:
                    path.lineTo(x, y)
                painter.drawPath(path)
        elif self.is_empty():
            painter.setPen(QColor(160, 160, 160))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, HINT)
        if self._hover is not None:
            r = self._cursor_rect(self._hover).adjusted(2, 2, -2, -2)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(QPen(QColor(255, 255, 255, 200), 3))
            painter.drawEllipse(r)
            painter.setPen(QPen(QColor(90, 90, 90), 1))
            painter.drawEllipse(r)
        painter.end()
