"""The results grid: a list model of hits, thumbnails loaded off the UI thread, a delegate that draws
each thumbnail with its box, score and file name."""
from __future__ import annotations

import os
from collections import OrderedDict

import numpy as np
from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPalette, QPen
from PySide6.QtWidgets import QListView, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from .workers import Runner, Task

HitRole = Qt.ItemDataRole.UserRole + 1
THUMB = 200  # px, longer side
BOX_COLOUR = QColor(255, 64, 32)


def qimage_from_pixels(pixels: np.ndarray) -> QImage:
    """(H, W, 3) float RGB in [0, 1] or (H, W) uint8 grey -> a QImage that owns its data."""
    a = np.asarray(pixels)
    if a.dtype != np.uint8:
        a = np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)
    a = np.ascontiguousarray(a)
    h, w = a.shape[:2]
    if a.ndim == 2:
        return QImage(a.data, w, h, a.strides[0], QImage.Format.Format_Grayscale8).copy()
    return QImage(a.data, w, h, a.strides[0], QImage.Format.Format_RGB888).copy()


def load_preview(path: str, max_side: int) -> tuple[QImage, tuple[int, int]]:
    """A photo reduced to ``max_side`` (the right way up) and its original (width, height)."""
    from engine.imageio import load_image

    img = load_image(path, max_side=max_side)
    pixels = img.pixels
    h, w = pixels.shape[:2]
    if max(h, w) > max_side:
        import cv2

        s = max_side / max(h, w)
        pixels = cv2.resize(pixels, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return qimage_from_pixels(pixels), img.original_size


class ThumbnailCache(QObject):
    """Thumbnails by path (LRU), loaded in the thread pool on first request; ``loaded`` says when."""

    loaded = Signal(str)

    def __init__(self, runner: Runner, *, size: int = THUMB, capacity: int = 800, parent=None) -> None:
        super().__init__(parent)
        self.runner, self.size, self.capacity = runner, size, capacity
        self._items: OrderedDict[str, tuple[QImage | None, tuple[int, int]]] = OrderedDict()
        self._pending: set[str] = set()

    def get(self, path: str) -> tuple[QImage | None, tuple[int, int]] | None:
        """(image or None when unreadable, original size), or None while it loads."""
        if path in self._items:
            self._items.move_to_end(path)
            return self._items[path]
        if path not in self._pending:
            self._pending.add(path)
            self.runner.start(Task(load_preview, path, self.size),
                              on_done=lambda res, _s, p=path: self._store(p, res),
                              on_error=lambda _msg, p=path: self._store(p, (None, (0, 0))))
        return None

    def _store(self, path: str, res) -> None:
        self._pending.discard(path)
        self._items[path] = res
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
        self.loaded.emit(path)

    def clear(self) -> None:
        self._items.clear()


class ResultsModel(QAbstractListModel):
    """The hits of the last search, filtered by a score cut-off."""

    def __init__(self, thumbs: ThumbnailCache, parent=None) -> None:
        super().__init__(parent)
        self.thumbs = thumbs
        self.kind = "sketch"
        self._all: list = []
        self.hits: list = []
        self.min_score = 0.0
        thumbs.loaded.connect(self._thumb_loaded)

    def set_hits(self, hits: list, kind: str = "sketch") -> None:
        self.beginResetModel()
        self.kind = kind
        self._all = sorted(hits, key=lambda h: -h.score)
        self.hits = [h for h in self._all if h.score >= self.min_score]
        self.endResetModel()

    def set_min_score(self, value: float) -> None:
        self.min_score = float(value)
        self.set_hits(self._all, self.kind)

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.hits)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self.hits):
            return None
        hit = self.hits[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return os.path.basename(hit.path)
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{hit.path}\nscore {hit.score:.3f}"
        if role == HitRole:
            return hit
        return None

    def _thumb_loaded(self, path: str) -> None:
        for i, h in enumerate(self.hits):
            if h.path == path:
                ix = self.index(i)
                self.dataChanged.emit(ix, ix)


class ResultDelegate(QStyledItemDelegate):
    """Thumbnail (box drawn on it) above the score and the file name."""

    def __init__(self, model: ResultsModel, parent=None) -> None:
        super().__init__(parent)
        self.model = model

    def sizeHint(self, option, index) -> QSize:
        return QSize(THUMB + 12, THUMB + 46)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        hit = index.data(HitRole)
        if hit is None:
            return
        painter.save()
        r = option.rect.adjusted(3, 3, -3, -3)
        pal = option.palette
        if option.state & QStyle.StateFlag.State_Selected:
            painter.fillRect(r, pal.color(QPalette.ColorRole.Highlight))
            text_colour = pal.color(QPalette.ColorRole.HighlightedText)
        else:
            if option.state & QStyle.StateFlag.State_MouseOver:
                painter.fillRect(r, pal.color(QPalette.ColorRole.AlternateBase))
            text_colour = pal.color(QPalette.ColorRole.Text)
        area = QRect(r.left() + 3, r.top() + 3, r.width() - 6, THUMB)
        got = self.model.thumbs.get(hit.path)
        if got is None:
            painter.setPen(pal.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(area, Qt.AlignmentFlag.AlignCenter, "…")
        elif got[0] is None:
            painter.setPen(pal.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(area, Qt.AlignmentFlag.AlignCenter, "cannot read")
        else:
            img, (ow, oh) = got
            s = min(area.width() / img.width(), area.height() / img.height())
            w, h = img.width() * s, img.height() * s
            target = QRectF(area.left() + (area.width() - w) / 2, area.top() + (area.height() - h) / 2, w, h)
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            painter.drawImage(target, img)
            if self.model.kind == "sketch" and ow and oh:
                draw_box(painter, target, hit.box, (ow, oh), width=2)
        painter.setPen(text_colour)
        text = QRect(r.left() + 4, area.bottom() + 4, r.width() - 8, 18)
        f = painter.font()
        f.setBold(True)
        painter.setFont(f)
        painter.drawText(text, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         f"{index.row() + 1}.  {hit.score:.3f}" + ("  ⇋" if hit.mirrored else ""))
        f.setBold(False)
        painter.setFont(f)
        name = painter.fontMetrics().elidedText(os.path.basename(hit.path), Qt.TextElideMode.ElideMiddle,
                                                text.width())
        painter.drawText(text.translated(0, 18), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, name)
        painter.restore()


def draw_box(painter: QPainter, target: QRectF, box, original_size: tuple[int, int], *, width: float = 2) -> QRectF:
    """Draw a box given in the photo's original pixels onto the photo drawn at ``target``."""
    ow, oh = original_size
    sx, sy = target.width() / ow, target.height() / oh
    x0, y0, x1, y1 = box
    rect = QRectF(target.left() + x0 * sx, target.top() + y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy)
    rect = rect.intersected(target)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.setPen(QPen(QColor(0, 0, 0, 140), width + 2))
    painter.drawRect(rect)
    painter.setPen(QPen(BOX_COLOUR, width))
    painter.drawRect(rect)
    return rect


class ResultsView(QListView):
    """A grid of results; arrows/Home/End move, Enter activates."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)
        self.setWrapping(True)
        self.setMouseTracking(True)
        self.setSelectionMode(QListView.SelectionMode.SingleSelection)
        self.setVerticalScrollMode(QListView.ScrollMode.ScrollPerPixel)

    def resizeEvent(self, event) -> None:
        # share the width out between the columns, so the grid has no ragged empty strip on its right
        cell = THUMB + 12
        width = self.viewport().width() - 2
        columns = max(1, width // (cell + 8))
        self.setGridSize(QSize(max(cell, width // columns), THUMB + 52))
        super().resizeEvent(event)
