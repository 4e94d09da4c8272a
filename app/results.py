"""The results grid: a list model of hits split into sections (likely matches / other photos), thumbnails
loaded off the UI thread at the size shown, a delegate that draws each thumbnail with its box, score and
file name, and a grid view that fills its width, draws the section headers and walks the results in rank
order; several results can be selected (Ctrl/Shift-click, Ctrl+A, dragging on empty space), copied (Ctrl+C) and
dragged out of the window as files."""
from __future__ import annotations

import math
import os
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PySide6.QtCore import (
    QAbstractListModel,
    QEvent,
    QItemSelection,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QRectF,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QDrag,
    QImage,
    QKeyEvent,
    QKeySequence,
    QPainter,
    QPalette,
    QPen,
    QPixmap,
    QRegion,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QRubberBand,
    QSlider,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionRubberBand,
    QStyleOptionViewItem,
)

from .actions import copy_paths, selection_mime, unique_paths
from .paths import same_path
from .workers import Runner, Task

HitRole = Qt.ItemDataRole.UserRole + 1
THUMB = 180  # px, default thumbnail size (longer side)
THUMB_MIN, THUMB_MAX = 96, 400  # the range of ResultsView.set_thumb_size
LOAD_STEP = 64  # thumbnails are loaded at the shown size rounded up to this many px (fewer reloads)
QUERY_SIMILARITY = 0.995  # image queries: a hit this similar to the query is the query photo itself
BOX_COLOUR = QColor(255, 64, 32)
PAD, GAP = 6, 6  # px around the grid and between its cells
DRAG_THUMB = 128  # px, the longer side of the thumbnail that follows the mouse in a drag


@lru_cache(maxsize=1)
def likely_cut() -> float:
    """The calibrated sketch score from which a hit is a likely match (``engine.fusion``'s ``likely``)."""
    from engine.fusion import load_params

    return float(getattr(load_params(), "likely", 0.5))


def is_likely(hit, cut: float | None = None) -> bool:
    """Whether a sketch hit is a likely match: as the engine says (its calibrated score at or above the cut,
    and the query's best hit standing out from what the best of as many photos without the shape reach:
    ``engine.fusion``), else by the score alone (hits made before the engine said)."""
    said = getattr(hit, "likely", None)
    if said is not None:
        return bool(said)
    return hit.score >= (likely_cut() if cut is None else cut)


def format_score(score: float, kind: str) -> str:
    """How a score reads: a calibrated sketch score is a probability (``match 73%``); an image query's
    cosine similarity is not, and reads ``similarity 0.87``; a region query's fused rank score (both rankings
    agreeing; 1: first in both) reads ``fused 0.95``."""
    if kind == "image":
        return f"similarity {score:.2f}"
    if kind == "region":
        return f"fused {score:.2f}"
    # rounded down, so a result below the likely-match cut never reads as reaching it (29.6 % is "29%")
    return f"match {math.floor(100 * score + 1e-9):d}%" if score >= 0.01 or score == 0 else "match <1%"


def format_hit(hit, kind: str) -> str:
    """A result's headline: its score, or when browsing the photo's date."""
    if kind == "browse":
        import datetime

        return datetime.datetime.fromtimestamp(hit.taken).strftime("%Y-%m-%d") if hit.taken else "no date"
    return format_score(hit.score, kind)


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
    """Thumbnails by path (LRU), loaded in the thread pool on first request; ``loaded`` says when.

    ``size`` is the longer side they are loaded at; raising it (:meth:`set_size`) reloads a thumbnail
    that was loaded smaller the next time it is asked for, and serves the smaller one meanwhile.
    """

    loaded = Signal(str)

    def __init__(self, runner: Runner, *, size: int = THUMB, capacity: int = 800, parent=None) -> None:
        super().__init__(parent)
        self.runner, self.size, self.capacity = runner, int(size), capacity
        self._items: OrderedDict[str, tuple[QImage | None, tuple[int, int]]] = OrderedDict()
        self._loaded_at: dict[str, int] = {}  # path -> the size it was loaded at
        self._pending: set[str] = set()

    def set_size(self, px: int) -> None:
        """Load thumbnails at ``px`` (longer side) from now on."""
        self.size = int(px)

    def get(self, path: str) -> tuple[QImage | None, tuple[int, int]] | None:
        """(image or None when unreadable, original size), or None while it loads."""
        got = self._items.get(path)
        if got is not None:
            self._items.move_to_end(path)
            if got[0] is not None and self._loaded_at.get(path, 0) < self.size:
                self._load(path)  # shown larger than it was loaded: reload, show this one meanwhile
            return got
        self._load(path)
        return None

    def _load(self, path: str) -> None:
        if path in self._pending:
            return
        self._pending.add(path)
        size = self.size
        self.runner.start(Task(load_preview, path, size),
                          on_done=lambda res, _s, p=path: self._store(p, res, size),
                          on_error=lambda _msg, p=path: self._store(p, (None, (0, 0)), size))

    def _store(self, path: str, res, size: int) -> None:
        self._pending.discard(path)
        self._items[path] = res
        self._items.move_to_end(path)
        self._loaded_at[path] = size
        while len(self._items) > self.capacity:
            old, _ = self._items.popitem(last=False)
            self._loaded_at.pop(old, None)
        self.loaded.emit(path)

    def clear(self) -> None:
        self._items.clear()
        self._loaded_at.clear()


@dataclass(frozen=True)
class Section:
    """A run of the model's rows under one header: rows ``first`` .. ``first + count - 1``."""

    title: str
    first: int
    count: int
    note: str = ""  # said after the title, in a quieter colour


class ResultsModel(QAbstractListModel):
    """The hits of the last search, best first, filtered by a score cut-off and split into sections.

    Sketch queries: "Likely matches" (calibrated score >= :attr:`likely`) then "Other photos".  Image
    queries: one section "Most similar" (their score is a cosine similarity, not a probability); the
    query photo itself (same path as ``query_path``, or similarity >= 0.995) is marked.
    """

    def __init__(self, thumbs: ThumbnailCache, parent=None) -> None:
        super().__init__(parent)
        self.thumbs = thumbs
        self.kind = "sketch"
        self._given: list = []  # as the engine ordered them
        self._all: list = []
        self.hits: list = []
        self.min_score = 0.0
        self.likely = likely_cut()
        self.query_path: str | None = None
        self.n_likely = 0
        self._rows_of: dict[str, list[int]] = {}
        thumbs.loaded.connect(self._thumb_loaded)

    def set_hits(self, hits: list, kind: str = "sketch", *, query_path: str | None = None) -> None:
        """Show ``hits`` of a ``kind`` ("sketch" | "image" | "region" query, or "browse": the collection newest
        first); ``query_path``: the query photo's file (image and region queries from a file), to mark it among
        the results."""
        self.beginResetModel()
        self.kind = kind
        self.query_path = os.path.normcase(os.path.abspath(query_path)) if query_path else None
        self._given = list(hits)
        if kind in ("browse", "region"):  # region: the engine's order (a shape ranking confirms as a sketch's does)
            self._all = self._given
        elif kind == "sketch":  # the engine's order within each section (confirmed hits first: engine.fusion)
            self._all = ([h for h in self._given if self._likely(h)]
                         + [h for h in self._given if not self._likely(h)])
        else:
            self._all = sorted(self._given, key=lambda h: -h.score)
        self.hits = self._all if kind == "browse" else [h for h in self._all if h.score >= self.min_score]
        self.n_likely = sum(self._likely(h) for h in self.hits) if kind == "sketch" else 0
        self._rows_of = {}
        for i, h in enumerate(self.hits):
            self._rows_of.setdefault(h.path, []).append(i)
        self.endResetModel()

    def _likely(self, hit) -> bool:
        return is_likely(hit, self.likely)

    def set_min_score(self, value: float) -> None:
        self.min_score = float(value)
        self.set_hits(self._given, self.kind, query_path=self.query_path)

    def set_likely_cut(self, value: float) -> None:
        """The calibrated score from which a sketch hit is a likely match."""
        self.likely = float(value)
        self.set_hits(self._given, self.kind, query_path=self.query_path)

    def set_query_path(self, path: str | None) -> None:
        """Mark the query photo (an image query's file) among the current results."""
        self.set_hits(self._given, self.kind, query_path=path)

    def is_query(self, hit) -> bool:
        """Whether ``hit`` is the image (or region) query's own photo (a region searched as a shape: "sketch"
        hits with a ``query_path``)."""
        if self.kind == "browse":
            return False
        if self.query_path is not None and same_path(hit.path, self.query_path):
            return True
        return self.kind == "image" and hit.score >= QUERY_SIMILARITY

    def sections(self) -> list[Section]:
        """The sections of the grid, in row order (a section may be empty, to say so)."""
        n = len(self.hits)
        if self.kind == "image":
            return [Section(f"Most similar ({n})", 0, n, "similarity of the whole photo, not a probability")] \
                if n else []
        if self.kind == "browse":
            return [Section(f"The collection, newest first ({n})", 0, n,
                            "date taken (EXIF), else the file's date")] \
                if n else []
        if self.kind == "region":
            return [Section(f"Region matches ({n})", 0, n, "shape and look fused; not a probability")] if n else []
        if not self._all:
            return []
        cut = f"{100 * self.likely:.0f}%"

        def note(first: int, count: int) -> str:  # where the engine put confirmed hits ahead of higher scores
            scores = [h.score for h in self.hits[first:first + count]]
            moved = any(a < b for a, b in zip(scores, scores[1:], strict=False))
            return " · where the shape stands out first" if moved else ""

        # the engine's stand-out test: scores at or above the cut that are not likely matches, because the best
        # hit does not stand out from what the best of as many photos without the shape reach
        look_alikes = any(h.score >= self.likely and not self._likely(h) for h in self._all)
        hidden_likely = sum(self._likely(h) for h in self._all) - self.n_likely  # below the score cut-off
        if self.n_likely:
            likely = Section(f"Likely matches ({self.n_likely})", 0, self.n_likely,
                             f"match ≥ {cut}" + note(0, self.n_likely))
        elif hidden_likely:
            likely = Section("No likely matches shown", 0, 0, f"{hidden_likely} hidden by the score cut-off "
                                                              f"(≥ {self.min_score:.2f})")
        elif look_alikes:
            likely = Section("No likely matches", 0, 0, "nothing stands out from the look-alikes: the shape "
                                                        "may not be here")
        else:
            likely = Section("No likely matches", 0, 0, f"no photo scores ≥ {cut}")
        out = [likely]
        if n > self.n_likely:
            why = ("" if look_alikes else f"below {cut}: ") + "less likely to contain the shape"
            out.append(Section(f"Other photos ({n - self.n_likely})", self.n_likely, n - self.n_likely,
                               why + note(self.n_likely, n - self.n_likely)))
        return out

    def counts(self) -> tuple[int, int, int]:
        """(likely matches, other photos shown, hidden by the score cut-off); image queries count all
        shown results as other photos."""
        n = len(self.hits)
        return self.n_likely, n - self.n_likely, len(self._all) - n

    def summary(self) -> str:
        """What the results are, for the window's count label (e.g. "3 likely matches · 57 other photos")."""
        likely, other, hidden = self.counts()
        if not self._all:
            return "No results"
        if self.kind == "browse":
            return f"{other} photo{'s' if other != 1 else ''}, newest first"
        if self.kind in ("image", "region"):
            text = f"{other} photo{'s' if other != 1 else ''} by {'similarity' if self.kind == 'image' else 'region'}"
            if any(self.is_query(h) for h in self.hits):
                text += " (the query photo among them)"
        else:
            text = (f"{likely} likely match{'es' if likely != 1 else ''} · "
                    f"{other} other photo{'s' if other != 1 else ''}")
        if hidden:
            text += f" · {hidden} below {self.min_score:.2f} hidden"
        return text

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.hits)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self.hits):
            return None
        hit = self.hits[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return os.path.basename(hit.path)
        if role == Qt.ItemDataRole.ToolTipRole:
            extra = "\nthe query photo" if self.is_query(hit) else ""
            return f"{hit.path}\n{format_hit(hit, self.kind)}{extra}"
        if role == HitRole:
            return hit
        return None

    def flags(self, index: QModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled

    def mimeTypes(self) -> list[str]:  # noqa: N802 (Qt)
        return ["text/uri-list", "text/plain"]

    def mimeData(self, indexes) -> object:  # noqa: N802 (Qt)
        """The photos of ``indexes`` (in rank order, each once) as file URLs and their paths as text."""
        rows = sorted({ix.row() for ix in indexes if ix.isValid() and ix.row() < len(self.hits)})
        return selection_mime(self.hits[r].path for r in rows)

    def supportedDragActions(self) -> Qt.DropAction:  # noqa: N802 (Qt)
        return Qt.DropAction.CopyAction | Qt.DropAction.LinkAction  # never Move: the photos are not ours

    def _thumb_loaded(self, path: str) -> None:
        for i in self._rows_of.get(path, ()):
            ix = self.index(i)
            self.dataChanged.emit(ix, ix)


class ResultDelegate(QStyledItemDelegate):
    """Thumbnail (box drawn on it) above the score and the file name, in whatever cell the view gives."""

    def __init__(self, model: ResultsModel, parent=None) -> None:
        super().__init__(parent)
        self.model = model

    @staticmethod
    def text_height(option_or_metrics) -> int:
        fm = getattr(option_or_metrics, "fontMetrics", option_or_metrics)
        return 2 * (fm.height() + 2) + 6

    def sizeHint(self, option, index) -> QSize:
        view = self.parent()
        thumb = view.thumb_size() if isinstance(view, ResultsView) else THUMB
        return QSize(thumb + 12, thumb + 12 + self.text_height(option))

    def image_rect(self, area: QRect, width: int, height: int) -> QRectF:
        """Where a ``width`` x ``height`` thumbnail goes in a cell's picture ``area``: fitted and centred, and
        never larger than the view's thumbnail size (it was loaded for that size: no blurred blow-ups)."""
        view = self.parent()
        most = view.thumb_size() if isinstance(view, ResultsView) else max(area.width(), area.height())
        s = min(area.width() / width, area.height() / height, most / max(width, height))
        w, h = width * s, height * s
        return QRectF(area.left() + (area.width() - w) / 2, area.top() + (area.height() - h) / 2, w, h)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        hit = index.data(HitRole)
        if hit is None:
            return
        painter.save()
        r = option.rect.adjusted(2, 2, -2, -2)
        pal = option.palette
        if option.state & QStyle.StateFlag.State_Selected:
            painter.fillRect(r, pal.color(QPalette.ColorRole.Highlight))
            text_colour = pal.color(QPalette.ColorRole.HighlightedText)
        else:
            if option.state & QStyle.StateFlag.State_MouseOver:
                painter.fillRect(r, pal.color(QPalette.ColorRole.AlternateBase))
            text_colour = pal.color(QPalette.ColorRole.Text)
        if option.state & QStyle.StateFlag.State_HasFocus:  # where the keyboard is: a frame, seen in any scheme
            pen = QPen(text_colour, 2, Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.drawRect(r.adjusted(1, 1, -1, -1))
        line = option.fontMetrics.height() + 2
        area = QRect(r.left() + 4, r.top() + 4, r.width() - 8, r.height() - 8 - self.text_height(option) + 6)
        got = self.model.thumbs.get(hit.path)
        if got is None or got[0] is None:
            painter.setPen(pal.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(area, Qt.AlignmentFlag.AlignCenter, "…" if got is None else "cannot read")
        else:
            img, (ow, oh) = got
            target = self.image_rect(area, img.width(), img.height())
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            painter.drawImage(target, img)
            if self.model.kind in ("sketch", "region") and ow and oh:
                draw_box(painter, target, hit.box, (ow, oh), width=2, sure=box_is_sure(hit))
            if self.model.is_query(hit):
                _badge(painter, target, "query", pal)
        painter.setPen(text_colour)
        text = QRect(r.left() + 4, area.bottom() + 4, r.width() - 8, line)
        f = painter.font()
        f.setBold(True)
        painter.setFont(f)
        head = f"{index.row() + 1}.  {format_hit(hit, self.model.kind)}" + ("  ⇋" if hit.mirrored else "")
        painter.drawText(text, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         painter.fontMetrics().elidedText(head, Qt.TextElideMode.ElideRight, text.width()))
        f.setBold(False)
        painter.setFont(f)
        name = painter.fontMetrics().elidedText(os.path.basename(hit.path), Qt.TextElideMode.ElideMiddle,
                                                text.width())
        painter.drawText(text.translated(0, line), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, name)
        painter.restore()


def _badge(painter: QPainter, target: QRectF, text: str, pal: QPalette) -> None:
    """A small filled label in the top-left corner of ``target``."""
    f = painter.font()
    f.setBold(True)
    painter.setFont(f)
    fm = painter.fontMetrics()
    rect = QRectF(target.left() + 4, target.top() + 4, fm.horizontalAdvance(text) + 10, fm.height() + 2)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(pal.color(QPalette.ColorRole.Highlight))
    painter.drawRoundedRect(rect, 4, 4)
    painter.setPen(pal.color(QPalette.ColorRole.HighlightedText))
    painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)


def draw_box(painter: QPainter, target: QRectF, box, original_size: tuple[int, int], *, width: float = 2,
             sure: bool = True) -> QRectF:
    """Draw a box given in the photo's original pixels onto the photo drawn at ``target``: solid where the
    shape alignment stands out there (``sure``), dashed where it does not (the photo may be right for other
    reasons, its box is uncertain)."""
    ow, oh = original_size
    sx, sy = target.width() / ow, target.height() / oh
    x0, y0, x1, y1 = box
    rect = QRectF(target.left() + x0 * sx, target.top() + y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy)
    rect = rect.intersected(target)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    for colour, w in ((QColor(0, 0, 0, 140), width + 2), (BOX_COLOUR, width)):
        pen = QPen(colour, w)
        if not sure:  # the same dashes (6 px on, 6 off) for the outline and the colour, whatever their widths
            pen.setCapStyle(Qt.PenCapStyle.FlatCap)
            pen.setDashPattern([6.0 / w, 6.0 / w])
        painter.setPen(pen)
        painter.drawRect(rect)
    return rect


def box_is_sure(hit) -> bool:
    """Whether a hit's box is drawn as sure (hits that do not say, e.g. from older scripts, are)."""
    return getattr(hit, "box_sure", None) is not False


@dataclass(frozen=True)
class _Band:
    """A section placed in the grid (content coordinates): its header's top and its first cell row's top."""

    section: Section
    header_top: int
    top: int
    n_rows: int


class ResultsView(QAbstractItemView):
    """A grid of results in sections, filling its width with as many columns as fit.

    Arrows, Home/End and Page Up/Down walk the results in rank order (headers are not items); Enter emits
    ``openRequested(hit)`` (the desktop's viewer), a double click or Space ``viewRequested(hit)`` (the app's
    viewer); Ctrl+wheel (or :class:`ThumbSizeSlider`) changes the
    thumbnail size, which ``thumbSizeChanged(px)`` reports.

    Selection as in a photo app: a click selects one result, Ctrl-click toggles one, Shift-click (and
    Shift+arrows) extends a range in rank order, Ctrl+A selects all, dragging on empty space selects the
    results the band touches; :meth:`selected_hits` says which.  Ctrl+C copies the selected photos
    (:func:`app.actions.copy_paths`) and emits ``pathsCopied(paths)``; dragging a selected thumbnail drags
    the selected photos out as files; a right click (or the menu key) emits ``contextMenuRequested(global
    position, selected hits)``.
    """

    openRequested = Signal(object)  # Enter: open the photo in the desktop's viewer
    viewRequested = Signal(object)  # double click or Space: show the photo large in the app
    thumbSizeChanged = Signal(int)
    contextMenuRequested = Signal(QPoint, list)  # global position, the selected hits in rank order
    pathsCopied = Signal(list)  # Ctrl+C: the paths now on the clipboard

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._thumb = THUMB
        self._bands: list[_Band] = []
        self._cols = 1
        self._cell = QSize(THUMB + 12, THUMB + 12)
        self._height = 0
        self._hover = QModelIndex()
        self._linear = False  # Shift held in a press or key press: setSelection selects a range of rows
        self._band: tuple[QPoint, QPoint] | None = None  # rubber band (content coordinates) while dragged
        self._band_start: QPoint | None = None
        self._pressed = QPersistentModelIndex()
        self.setMouseTracking(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectItems)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    # -- model and size ---------------------------------------------------------------------------
    def setModel(self, model) -> None:  # noqa: N802 (Qt)
        super().setModel(model)
        for sig in (model.modelReset, model.rowsInserted, model.rowsRemoved, model.layoutChanged):
            sig.connect(self._relayout)
        thumbs = getattr(model, "thumbs", None)
        if thumbs is not None:
            thumbs.set_size(self._load_size())
        self._relayout()

    def thumb_size(self) -> int:
        """The thumbnails' longer side in px."""
        return self._thumb

    def set_thumb_size(self, px: int) -> None:
        """Show thumbnails at ``px`` (96..400) and load them at that size; the current result stays in view."""
        px = int(min(THUMB_MAX, max(THUMB_MIN, px)))
        if px == self._thumb:
            return
        self._thumb = px
        thumbs = getattr(self.model(), "thumbs", None)
        if thumbs is not None:
            thumbs.set_size(self._load_size())
        self._relayout()
        if self.currentIndex().isValid():
            self.scrollTo(self.currentIndex())
        self.thumbSizeChanged.emit(px)

    def _load_size(self) -> int:
        px = self._thumb * self.devicePixelRatioF()
        return int(math.ceil(px / LOAD_STEP) * LOAD_STEP)

    def _sections(self) -> list[Section]:
        model = self.model()
        if model is None:
            return []
        if hasattr(model, "sections"):
            return model.sections()
        n = model.rowCount()
        return [Section("", 0, n)] if n else []

    def _header_height(self) -> int:
        return self.fontMetrics().height() + 14

    def _relayout(self, *_args) -> None:
        """Place the sections: columns of equal width filling the viewport, each section's header above
        its cells.  The width left for the scroll bar is kept whether it shows or not (no flip-flop)."""
        sb = self.verticalScrollBar()
        width = self.viewport().width() - (0 if sb.isVisible() else sb.sizeHint().width())
        avail = max(1, width - 2 * PAD)
        fm = self.fontMetrics()
        min_w = self._thumb + 12
        self._cols = cols = max(1, (avail + GAP) // (min_w + GAP))
        cell_w = (avail - (cols - 1) * GAP) // cols  # narrower than a thumbnail only when one does not fit
        self._cell = QSize(max(40, cell_w), self._thumb + 12 + ResultDelegate.text_height(fm))
        self._hover = QModelIndex()
        y = PAD
        bands = []
        for sec in self._sections():
            header_top = y
            if sec.title:
                y += self._header_height()
            rows = (sec.count + cols - 1) // cols
            bands.append(_Band(sec, header_top, y, rows))
            y += rows * (self._cell.height() + GAP)
            if rows:
                y += GAP
        self._bands = bands
        self._height = y + PAD
        self.updateGeometries()
        self.viewport().update()

    def updateGeometries(self) -> None:  # noqa: N802 (Qt)
        sb = self.verticalScrollBar()
        page = self.viewport().height()
        sb.setPageStep(max(1, page))
        sb.setSingleStep(max(1, (self._cell.height() + GAP) // 4))
        sb.setRange(0, max(0, self._height - page))
        super().updateGeometries()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._relayout()

    def _band_of(self, row: int) -> _Band | None:
        for b in self._bands:
            if b.section.first <= row < b.section.first + b.section.count:
                return b
        return None

    def _content_rect(self, row: int) -> QRect:
        b = self._band_of(row)
        if b is None:
            return QRect()
        i = row - b.section.first
        r, c = divmod(i, self._cols)
        w, h = self._cell.width(), self._cell.height()
        return QRect(PAD + c * (w + GAP), b.top + r * (h + GAP), w, h)

    def header_rects(self) -> list[tuple[Section, QRect]]:
        """(section, header rectangle in viewport coordinates) of each titled section."""
        off = self.verticalOffset()
        w = self.viewport().width() - 2 * PAD
        return [(b.section, QRect(PAD, b.header_top - off, w, self._header_height()))
                for b in self._bands if b.section.title]

    def columns(self) -> int:
        """How many columns the grid has at its current width."""
        return self._cols

    # -- QAbstractItemView's geometry -------------------------------------------------------------
    def visualRect(self, index: QModelIndex) -> QRect:  # noqa: N802 (Qt)
        if not index.isValid():
            return QRect()
        return self._content_rect(index.row()).translated(0, -self.verticalOffset())

    def indexAt(self, point: QPoint) -> QModelIndex:  # noqa: N802 (Qt)
        model = self.model()
        if model is None:
            return QModelIndex()
        x, y = point.x(), point.y() + self.verticalOffset()
        w, h = self._cell.width(), self._cell.height()
        for b in self._bands:
            if b.top <= y < b.top + b.n_rows * (h + GAP):
                r, dy = divmod(y - b.top, h + GAP)
                c, dx = divmod(x - PAD, w + GAP)
                if dy >= h or dx >= w or x < PAD or c >= self._cols:
                    return QModelIndex()
                i = r * self._cols + c
                return model.index(b.section.first + i, 0) if i < b.section.count else QModelIndex()
        return QModelIndex()

    def scrollTo(self, index: QModelIndex, hint=QAbstractItemView.ScrollHint.EnsureVisible) -> None:  # noqa: N802
        if not index.isValid():
            return
        rect = self._content_rect(index.row())
        b = self._band_of(index.row())
        if b is not None and index.row() - b.section.first < self._cols:
            rect.setTop(b.header_top)  # the first row of a section comes with its header
        sb = self.verticalScrollBar()
        top, page = sb.value(), self.viewport().height()
        if hint == QAbstractItemView.ScrollHint.PositionAtTop:
            sb.setValue(rect.top() - PAD)
        elif hint == QAbstractItemView.ScrollHint.PositionAtCenter:
            sb.setValue(rect.center().y() - page // 2)
        elif rect.top() < top:
            sb.setValue(rect.top() - PAD)
        elif rect.bottom() > top + page:
            sb.setValue(min(rect.top() - PAD, rect.bottom() + PAD - page))

    def horizontalOffset(self) -> int:  # noqa: N802 (Qt)
        return 0

    def verticalOffset(self) -> int:  # noqa: N802 (Qt)
        return self.verticalScrollBar().value()

    def isIndexHidden(self, index: QModelIndex) -> bool:  # noqa: N802 (Qt)
        return False

    def setSelection(self, rect: QRect, flags) -> None:  # noqa: N802 (Qt)
        """Select the results ``rect`` touches (a rubber band); with Shift held in a click or a key press
        (Qt passes the rectangle from the anchor's centre to the new point), the range of results between the
        two in rank order instead, as a photo app does."""
        model, sm = self.model(), self.selectionModel()
        if model is None or sm is None:
            return
        rows: list[int] = []
        if self._linear:
            a, b = self.indexAt(rect.topLeft()), self.indexAt(rect.bottomRight())
            if a.isValid() and b.isValid():
                lo, hi = sorted((a.row(), b.row()))
                rows = list(range(lo, hi + 1))
            elif b.isValid():  # no anchor (nothing was current): the result clicked alone
                rows = [b.row()]
        if not rows:
            band = rect.normalized()
            rows = [r for r in range(model.rowCount()) if self.visualRect(model.index(r, 0)).intersects(band)]
        sel = QItemSelection()
        start = prev = None
        for r in [*rows, None]:  # contiguous rows as one range
            if r is not None and prev is not None and r == prev + 1:
                prev = r
                continue
            if start is not None:
                sel.select(model.index(start, 0), model.index(prev, 0))
            start = prev = r
        sm.select(sel, flags)

    def visualRegionForSelection(self, selection: QItemSelection) -> QRegion:  # noqa: N802 (Qt)
        region = QRegion()
        view = self.viewport().rect()
        for rng in selection:
            for row in range(rng.top(), rng.bottom() + 1):
                r = self.visualRect(self.model().index(row, 0))
                if r.intersects(view):
                    region += r
        return region

    def selected_hits(self) -> list:
        """The selected results in rank order; the current one when none is selected; [] when neither."""
        model, sm = self.model(), self.selectionModel()
        if model is None or sm is None:
            return []
        rows = sorted({ix.row() for ix in sm.selectedIndexes()})
        if not rows and self.currentIndex().isValid():
            rows = [self.currentIndex().row()]
        hits = [model.index(r, 0).data(HitRole) for r in rows]
        return [h for h in hits if h is not None]

    def selected_paths(self) -> list[str]:
        """The selected results' photos, each once, in rank order."""
        return unique_paths(h.path for h in self.selected_hits())

    def moveCursor(self, action, modifiers) -> QModelIndex:  # noqa: N802 (Qt)
        model = self.model()
        n = model.rowCount() if model is not None else 0
        if n == 0:
            return QModelIndex()
        cur = self.currentIndex()
        if not cur.isValid():
            return model.index(0, 0)
        row = cur.row()
        A = QAbstractItemView.CursorAction
        if action in (A.MoveLeft, A.MovePrevious):
            row -= 1
        elif action in (A.MoveRight, A.MoveNext):
            row += 1
        elif action == A.MoveHome:
            row = 0
        elif action == A.MoveEnd:
            row = n - 1
        elif action in (A.MoveUp, A.MoveDown):
            row = self._vertical_neighbour(row, -1 if action == A.MoveUp else 1)
        elif action in (A.MovePageUp, A.MovePageDown):
            steps = max(1, self.viewport().height() // (self._cell.height() + GAP))
            for _ in range(steps):
                row = self._vertical_neighbour(row, -1 if action == A.MovePageUp else 1)
        return model.index(min(n - 1, max(0, row)), 0)

    def _vertical_neighbour(self, row: int, step: int) -> int:
        """The result above (step -1) or below (+1) ``row`` in the grid's visual rows, across sections;
        the nearest column when that row is shorter; ``row`` itself at the top or bottom."""
        rows: list[tuple[int, int]] = []  # (first model row, count) of each visual row, top to bottom
        for b in self._bands:
            for r in range(b.n_rows):
                first = b.section.first + r * self._cols
                rows.append((first, min(self._cols, b.section.first + b.section.count - first)))
        for k, (first, count) in enumerate(rows):
            if first <= row < first + count:
                j = k + step
                if not 0 <= j < len(rows):
                    return row
                f2, c2 = rows[j]
                return f2 + min(row - first, c2 - 1)
        return row

    # -- painting and input -----------------------------------------------------------------------
    empty_text = ""  # said in the middle of the grid when it has no results (set by the window)

    def set_empty_text(self, text: str) -> None:
        self.empty_text = text
        self.viewport().update()

    def focusInEvent(self, event) -> None:  # noqa: N802 (Qt): the focus frame of the current result
        super().focusInEvent(event)
        self.viewport().update()

    def focusOutEvent(self, event) -> None:  # noqa: N802 (Qt)
        super().focusOutEvent(event)
        self.viewport().update()

    def paintEvent(self, event) -> None:
        model = self.model()
        if model is None:
            return
        painter = QPainter(self.viewport())
        if model.rowCount() == 0 and self.empty_text:
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(self.viewport().rect().adjusted(24, 24, -24, -24),
                             Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.empty_text)
        clip, region = event.rect(), event.region()
        off = self.verticalOffset()
        pal = self.palette()
        for sec, rect in self.header_rects():
            if rect.intersects(clip):
                self._paint_header(painter, sec, rect, pal)
        option = QStyleOptionViewItem()
        self.initViewItemOption(option)
        delegate = self.itemDelegate()
        current, h = self.currentIndex(), self._cell.height()
        sel = self.selectionModel()
        for b in self._bands:
            top = b.top - off
            if top > clip.bottom() or top + b.n_rows * (h + GAP) < clip.top():
                continue
            r0 = max(0, (clip.top() - top) // (h + GAP))
            r1 = min(b.n_rows, (clip.bottom() - top) // (h + GAP) + 1)
            for i in range(r0 * self._cols, min(b.section.count, r1 * self._cols)):
                ix = model.index(b.section.first + i, 0)
                option.rect = self.visualRect(ix)
                if not region.intersects(option.rect):
                    continue  # only the cells that changed are painted
                state = QStyle.StateFlag.State_Enabled
                if sel is not None and sel.isSelected(ix):
                    state |= QStyle.StateFlag.State_Selected
                if ix == self._hover:
                    state |= QStyle.StateFlag.State_MouseOver
                if ix == current and self.hasFocus():
                    state |= QStyle.StateFlag.State_HasFocus
                option.state = state
                delegate.paint(painter, option, ix)
        band = self._band_rect()
        if band is not None and band.intersects(clip):
            opt = QStyleOptionRubberBand()
            opt.initFrom(self.viewport())
            opt.shape = QRubberBand.Shape.Rectangle
            opt.opaque = False
            opt.rect = band
            painter.save()
            self.style().drawControl(QStyle.ControlElement.CE_RubberBand, opt, painter, self)
            painter.restore()
        painter.end()

    def _band_rect(self) -> QRect | None:
        """The rubber band in viewport coordinates, while one is dragged."""
        if self._band is None:
            return None
        a, b = self._band
        off = QPoint(0, self.verticalOffset())
        return QRect(a - off, b - off).normalized()

    def _paint_header(self, painter: QPainter, sec: Section, rect: QRect, pal: QPalette) -> None:
        painter.save()
        f = painter.font()
        f.setBold(True)
        painter.setFont(f)
        painter.setPen(pal.color(QPalette.ColorRole.WindowText))
        fm = painter.fontMetrics()
        text_rect = rect.adjusted(2, 0, -2, -4)
        title = fm.elidedText(sec.title, Qt.TextElideMode.ElideRight, text_rect.width())
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom, title)
        used = fm.horizontalAdvance(title) + 12
        f.setBold(False)
        painter.setFont(f)
        if sec.note and used < text_rect.width():
            painter.setPen(pal.color(QPalette.ColorRole.PlaceholderText))
            note = painter.fontMetrics().elidedText(sec.note, Qt.TextElideMode.ElideRight, text_rect.width() - used)
            painter.drawText(text_rect.adjusted(used, 0, 0, 0), Qt.AlignmentFlag.AlignLeft
                             | Qt.AlignmentFlag.AlignBottom, note)
        painter.setPen(QPen(pal.color(QPalette.ColorRole.Mid), 1))
        painter.drawLine(rect.left(), rect.bottom() - 1, rect.right(), rect.bottom() - 1)
        painter.restore()

    def mousePressEvent(self, event) -> None:
        pos = event.position().toPoint()
        ix = self.indexAt(pos)
        self._pressed = QPersistentModelIndex(ix)
        self._band_start = (pos + QPoint(0, self.verticalOffset())
                            if not ix.isValid() and event.button() == Qt.MouseButton.LeftButton else None)
        self._linear = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        try:
            super().mousePressEvent(event)
        finally:
            self._linear = False

    def mouseMoveEvent(self, event) -> None:
        ix = self.indexAt(event.position().toPoint())
        if ix != self._hover:
            for old in (self._hover, ix):
                if old.isValid():
                    self.viewport().update(self.visualRect(old))
            self._hover = ix
        super().mouseMoveEvent(event)
        if self._band_start is not None and self.state() == QAbstractItemView.State.DragSelectingState:
            self._band = (self._band_start, event.position().toPoint() + QPoint(0, self.verticalOffset()))
            self.viewport().update()

    def mouseReleaseEvent(self, event) -> None:
        super().mouseReleaseEvent(event)
        self._band_start = None
        if self._band is not None:
            self._band = None
            self.viewport().update()

    def contextMenuEvent(self, event) -> None:  # noqa: N802 (Qt)
        pos = event.globalPos()
        if event.reason() != event.Reason.Mouse and self.currentIndex().isValid():
            pos = self.viewport().mapToGlobal(self.visualRect(self.currentIndex()).center())
        self.contextMenuRequested.emit(pos, self.selected_hits())
        event.accept()

    # -- dragging the photos out --------------------------------------------------------------------------
    def drag_pixmap(self, hits: list) -> QPixmap:
        """The thumbnail of the first of ``hits`` (reduced), with their count on it when there are several;
        a null pixmap while no thumbnail is loaded."""
        thumbs = getattr(self.model(), "thumbs", None)
        got = thumbs.get(hits[0].path) if thumbs is not None and hits else None
        if got is None or got[0] is None:
            return QPixmap()
        img = got[0].scaled(DRAG_THUMB, DRAG_THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                            Qt.TransformationMode.SmoothTransformation)
        pm = QPixmap.fromImage(img)
        if len(hits) > 1:
            painter = QPainter(pm)
            _badge(painter, QRectF(pm.rect()), str(len(hits)), self.palette())
            painter.end()
        return pm

    def drag_for_selection(self) -> QDrag | None:
        """A drag of the selected photos (file URLs and paths as text, the pressed or first one's thumbnail
        following the mouse); None when nothing is selected."""
        model, sm = self.model(), self.selectionModel()
        if model is None or sm is None:
            return None
        indexes = sorted((ix for ix in sm.selectedIndexes() if model.flags(ix) & Qt.ItemFlag.ItemIsDragEnabled),
                         key=lambda ix: ix.row())
        if not indexes:
            return None
        hits = [ix.data(HitRole) for ix in indexes]
        pressed = self._pressed.data(HitRole) if self._pressed.isValid() else None
        if pressed is not None and pressed in hits:
            hits.remove(pressed)
            hits.insert(0, pressed)
        drag = QDrag(self)
        drag.setMimeData(model.mimeData(indexes))
        pm = self.drag_pixmap(hits)
        if not pm.isNull():
            drag.setPixmap(pm)
            drag.setHotSpot(QPoint(pm.width() // 2, pm.height() // 2))
        return drag

    def startDrag(self, supportedActions) -> None:  # noqa: N802,N803 (Qt)
        drag = self.drag_for_selection()
        if drag is not None:
            # copy or link only; unlike QAbstractItemView's, a drop never removes results from the grid
            drag.exec(Qt.DropAction.CopyAction | Qt.DropAction.LinkAction, Qt.DropAction.CopyAction)

    def leaveEvent(self, event) -> None:
        if self._hover.isValid():
            self.viewport().update(self.visualRect(self._hover))
        self._hover = QModelIndex()
        super().leaveEvent(event)

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802 (Qt)
        super().mouseDoubleClickEvent(event)
        if event.button() == Qt.MouseButton.LeftButton:
            self._open(self.indexAt(event.position().toPoint()), self.viewRequested)

    def wheelEvent(self, event) -> None:
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            notches = event.angleDelta().y() / 120
            if notches:
                self.set_thumb_size(round(self._thumb * 1.1 ** notches))
            event.accept()
            return
        super().wheelEvent(event)

    def event(self, event) -> bool:
        # Enter on a result opens it, before a window-wide Enter shortcut (Search Now) takes the key
        # and so do Ctrl+C (copy the selected photos) and Ctrl+A (select all the results)
        if event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent):
            if _plain_enter(event) and self.currentIndex().isValid():
                event.accept()
                return True
            model = self.model()
            if ((event.matches(QKeySequence.StandardKey.Copy) or event.matches(QKeySequence.StandardKey.SelectAll))
                    and model is not None and model.rowCount() > 0):
                event.accept()
                return True
        return super().event(event)

    def keyPressEvent(self, event) -> None:
        if _plain_enter(event) and self.currentIndex().isValid():
            self._open(self.currentIndex())
            event.accept()
            return
        if event.key() == Qt.Key.Key_Space and not event.modifiers() and self.currentIndex().isValid():
            self._open(self.currentIndex(), self.viewRequested)
            event.accept()
            return
        if event.matches(QKeySequence.StandardKey.Copy):
            self.copy_selection()
            event.accept()
            return
        if event.key() == Qt.Key.Key_F10 and event.modifiers() == Qt.KeyboardModifier.ShiftModifier \
                and self.currentIndex().isValid():  # the context menu's other key, as on most desktops
            centre = self.viewport().mapToGlobal(self.visualRect(self.currentIndex()).center())
            self.contextMenuRequested.emit(centre, self.selected_hits())
            event.accept()
            return
        self._linear = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        try:
            super().keyPressEvent(event)
        finally:
            self._linear = False

    def copy_selection(self) -> list[str]:
        """Put the selected photos on the clipboard (paths as text, and as files) and emit ``pathsCopied``;
        the paths copied ([] when nothing is selected, and the clipboard is left alone)."""
        paths = self.selected_paths()
        if paths:
            copy_paths(paths)
            self.pathsCopied.emit(paths)
        return paths

    def _open(self, index: QModelIndex, signal=None) -> None:
        hit = index.data(HitRole) if index.isValid() else None
        if hit is not None:
            (signal or self.openRequested).emit(hit)


def _plain_enter(event) -> bool:
    """Return or Enter without Ctrl, Alt or Shift (the keypad's Enter included): the grid's own "open"."""
    mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
    return event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and mods == Qt.KeyboardModifier.NoModifier


class ThumbSizeSlider(QSlider):
    """A horizontal slider bound to a :class:`ResultsView`'s thumbnail size (both ways)."""

    def __init__(self, view: ResultsView, parent=None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.setRange(THUMB_MIN, THUMB_MAX)
        self.setSingleStep(8)
        self.setPageStep(40)
        self.setValue(view.thumb_size())
        self.setToolTip("Thumbnail size (Ctrl+wheel on the results)")
        self.setMaximumWidth(140)
        self.valueChanged.connect(view.set_thumb_size)
        view.thumbSizeChanged.connect(self.setValue)
