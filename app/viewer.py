"""The photo viewer: one result at a time, as large as the window allows, shown in place of the results grid.

Steps through the results (arrows, Page Up/Down, Home/End), zooms (fit, 100 %, the wheel under the cursor,
+/-) and pans (drag), draws the hit's box and the sketch in it, and selects a region of the photo (key R or
Shift+drag) to search with.  Photos are decoded off the UI thread at screen size (the neighbours in advance),
and in full only when zoomed past that.
"""
from __future__ import annotations

import logging
import os
from collections import OrderedDict

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QImage, QKeyEvent, QPainter, QPalette
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget
from shiboken6 import isValid

from .detail import (
    RegionSelection,
    draw_region,
    ink_overlay,
    original_to_widget,
    overlay_rect,
    region_mode_combo,
)
from .labels import ElidedLabel
from .paths import same_path
from .results import QUERY_SIMILARITY, box_is_sure, draw_box, format_hit, load_preview, qimage_from_pixels
from .workers import Runner, Task

log = logging.getLogger(__name__)

SCREEN_FALLBACK = 2048  # px: the decode size when the screen's is unknown
CACHE = 5  # screen-size photos kept: the one shown, its neighbours and a step back
ZOOM_STEP = 1.25  # per wheel notch or +/- key
MAX_ZOOM = 16.0  # display pixels per original pixel (1600 %)
KINDS = ("sketch", "image", "region", "browse")


def load_photo(path: str, max_side: int | None) -> tuple[QImage, tuple[int, int]]:
    """A photo (the right way up) reduced to ``max_side`` (None: in full) and its original (width, height)."""
    if max_side is not None:
        return load_preview(path, max_side)
    from engine.imageio import load_image

    img = load_image(path)
    return qimage_from_pixels(img.pixels), img.original_size


class PhotoCanvas(RegionSelection, QWidget):
    """A photo zoomed and panned, with its box, the sketch in the box, and the selected region.

    The zoom is :meth:`scale`: widget pixels per ORIGINAL pixel of the photo (whatever the resolution of the
    image drawn); None in ``_zoom`` is "fit", which follows the widget's size.  ``_center`` is the point of
    the photo (original pixels) at the widget's centre when zoomed.

    ``regionChanged(box or None)``: a region was dragged (left-drag in :attr:`region_mode`, or Shift+drag) or
    cleared; ``zoomChanged()``: the scale changed.
    """

    regionChanged = Signal(object)
    zoomChanged = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.image: QImage | None = None
        self.original_size = (0, 0)
        self.path: str | None = None  # the photo the image is of
        self.box = None
        self.box_sure = True
        self.overlay: QImage | None = None
        self.frame = None  # where the overlay goes (the hit's frame, original pixels), None: in the box
        self.show_overlay = True
        self.region = None
        self.region_mode = False
        self.message = ""
        self._zoom: float | None = None
        self._center = QPointF()
        self._band: tuple[QPointF, QPointF] | None = None
        self._pan: QPointF | None = None  # the last point of a pan drag
        self.setMinimumSize(200, 150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    # -- content ----------------------------------------------------------------------------------
    def clear(self, message: str) -> None:
        """No photo: ``message`` in its place; fit, no region."""
        self.image, self.original_size, self.path, self.box, self.overlay = None, (0, 0), None, None, None
        self.message = message
        self._band = self._pan = None
        self._zoom = None
        self.set_region(None)
        self._update_cursor()
        self.update()
        self.zoomChanged.emit()

    def set_photo(self, image: QImage, original_size, path: str, box, overlay: QImage | None, *,
                  box_sure: bool = True, frame=None) -> None:
        """Show a photo (fitted) with its ``box`` (original pixels; None: none; dashed where not ``box_sure``) and
        ``overlay`` where the sketch was placed (``frame``; the detail panel's ``overlay_rect``)."""
        self.image, self.original_size, self.path = image, tuple(original_size), path
        self.box, self.overlay, self.box_sure, self.frame = box, overlay, box_sure, frame
        self.message = ""
        self._zoom = None
        self._update_cursor()
        self.update()
        self.zoomChanged.emit()

    def swap_image(self, image: QImage) -> None:
        """The same photo at another resolution (the full decode): the view stays where it is."""
        self.image = image
        self.update()

    def has_photo(self) -> bool:
        return self.image is not None and not self.image.isNull() and self.original_size[0] > 0

    def is_full(self) -> bool:
        """Whether the image drawn has all the photo's pixels."""
        return self.has_photo() and self.image.width() >= self.original_size[0]

    def needs_full(self) -> bool:
        """Whether the photo is drawn larger than the image has pixels for (and the photo has more)."""
        if not self.has_photo() or self.is_full():
            return False
        have = self.image.width() / self.original_size[0]  # image pixels per original pixel
        return self.scale() * self.devicePixelRatioF() > have * 1.01

    def cancel_band(self) -> bool:
        """Drop a rubber band being dragged; whether there was one."""
        had = self._band is not None
        self._band = None
        self.update()
        return had

    def set_region_mode(self, on: bool) -> None:
        self.region_mode = bool(on)
        self._update_cursor()

    # -- geometry ---------------------------------------------------------------------------------
    def fit_scale(self) -> float:
        ow, oh = self.original_size
        if ow <= 0 or oh <= 0:
            return 1.0
        return max(1e-6, min(self.width() / ow, self.height() / oh))

    def is_fit(self) -> bool:
        return self._zoom is None

    def scale(self) -> float:
        """Widget pixels per original pixel."""
        return self.fit_scale() if self._zoom is None else self._zoom

    def actual_size_scale(self) -> float:
        """The scale of "100 %": one original pixel on one device pixel."""
        return 1.0 / self.devicePixelRatioF()

    def zoom_percent(self) -> float:
        return 100.0 * self.scale() * self.devicePixelRatioF()

    def _clamped_center(self, s: float, center: QPointF) -> QPointF:
        ow, oh = self.original_size
        half_w, half_h = self.width() / (2 * s), self.height() / (2 * s)
        x = ow / 2 if ow * s <= self.width() else min(max(center.x(), half_w), ow - half_w)
        y = oh / 2 if oh * s <= self.height() else min(max(center.y(), half_h), oh - half_h)
        return QPointF(x, y)

    def photo_rect(self) -> QRectF:
        """Where the whole photo is drawn (widget pixels; it may reach beyond the widget when zoomed)."""
        if not self.has_photo():
            return QRectF()
        s = self.scale()
        ow, oh = self.original_size
        c = QPointF(ow / 2, oh / 2) if self._zoom is None else self._clamped_center(s, self._center)
        return QRectF(self.width() / 2 - c.x() * s, self.height() / 2 - c.y() * s, ow * s, oh * s)

    def to_original(self, pos: QPointF) -> QPointF:
        """A widget point -> the photo's original pixels (not clipped)."""
        r, s = self.photo_rect(), self.scale()
        return QPointF((pos.x() - r.left()) / s, (pos.y() - r.top()) / s)

    def to_widget(self, box) -> QRectF:
        """A box in original pixels -> where it is drawn."""
        return original_to_widget(box, self.photo_rect(), self.original_size)

    def can_pan(self) -> bool:
        if not self.has_photo():
            return False
        r = self.photo_rect()
        return r.width() > self.width() + 0.5 or r.height() > self.height() + 0.5

    # -- zoom and pan -----------------------------------------------------------------------------
    def fit(self) -> None:
        self._zoom = None
        self._after_zoom()

    def set_zoom(self, scale: float, anchor: QPointF | None = None) -> None:
        """Zoom to ``scale`` keeping the photo's point under ``anchor`` (widget pixels; default the centre)
        where it is; within [min(fit, 100 %), 1600 %]; a scale within 1 % of fit is fit."""
        if not self.has_photo():
            return
        anchor = QPointF(self.width() / 2, self.height() / 2) if anchor is None else QPointF(anchor)
        fit = self.fit_scale()
        lo, hi = min(fit, self.actual_size_scale()), max(MAX_ZOOM, fit)
        new = min(max(float(scale), lo), hi)
        if abs(new - fit) <= 0.01 * fit:
            self.fit()
            return
        q = self.to_original(anchor)
        centre = QPointF(self.width() / 2, self.height() / 2)
        self._center = self._clamped_center(new, q + (centre - anchor) / new)
        self._zoom = new
        self._after_zoom()

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        self.set_zoom(self.scale() * factor, anchor)

    def _after_zoom(self) -> None:
        self._update_cursor()
        self.update()
        self.zoomChanged.emit()

    def _update_cursor(self) -> None:
        if not self.has_photo():
            self.unsetCursor()
        elif self.region_mode:
            self.setCursor(Qt.CursorShape.CrossCursor)
        elif self._pan is not None:
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        elif self.can_pan():
            self.setCursor(Qt.CursorShape.OpenHandCursor)
        else:
            self.unsetCursor()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._zoom is not None:
            self._center = self._clamped_center(self._zoom, self._center)
        self._update_cursor()
        self.zoomChanged.emit()  # fit follows the size

    # -- mouse ------------------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:
        pos = event.position()
        if event.button() == Qt.MouseButton.LeftButton and self.has_photo():
            if self.region_mode or event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
                self._band = (pos, pos)
            elif self.can_pan():
                self._pan = pos
                self._update_cursor()
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:
        pos = event.position()
        if self._band is not None:
            self._band = (self._band[0], pos)
            self.update()
        elif self._pan is not None and self._zoom is not None:
            s = self._zoom
            self._center = self._clamped_center(s, self._clamped_center(s, self._center) - (pos - self._pan) / s)
            self._pan = pos
            self.update()
        else:
            super().mouseMoveEvent(event)
            return
        event.accept()

    def mouseReleaseEvent(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            super().mouseReleaseEvent(event)
            return
        if self._band is not None:
            self.end_band(event.position())
        self._pan = None
        self._update_cursor()
        event.accept()

    def wheelEvent(self, event) -> None:
        notches = event.angleDelta().y() / 120
        if notches and self.has_photo():
            self.zoom_by(ZOOM_STEP ** notches, event.position())
            event.accept()
            return
        super().wheelEvent(event)

    # -- painting ---------------------------------------------------------------------------------
    def paintEvent(self, event) -> None:
        p = QPainter(self)
        pal = self.palette()
        p.fillRect(self.rect(), pal.color(QPalette.ColorRole.Window))
        if not self.has_photo():
            p.setPen(pal.color(QPalette.ColorRole.PlaceholderText))
            p.drawText(self.rect().adjusted(20, 20, -20, -20),
                       Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.message)
            return
        target = self.photo_rect()
        visible = target.intersected(QRectF(self.rect()))
        if visible.isEmpty():
            return
        kx, ky = self.image.width() / target.width(), self.image.height() / target.height()
        source = QRectF((visible.left() - target.left()) * kx, (visible.top() - target.top()) * ky,
                        visible.width() * kx, visible.height() * ky)
        # smooth while the image is not blown up much; its pixels show as pixels beyond twice their size
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, kx * self.devicePixelRatioF() > 0.5)
        p.drawImage(visible, self.image, source)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        if self.box is not None:
            rect = draw_box(p, target, self.box, self.original_size, width=3, sure=self.box_sure)
            if self.show_overlay and self.overlay is not None and not rect.isEmpty():
                p.save()
                p.setOpacity(0.9)
                p.setClipRect(target.intersected(QRectF(self.rect())))  # the sketch may reach past the photo
                p.drawImage(overlay_rect(target, rect, self.frame, self.original_size, self.overlay), self.overlay)
                p.restore()
        if self._band is not None:
            draw_region(p, QRectF(*self._band).normalized().intersected(target), pal)
        elif self.region is not None:
            draw_region(p, self.to_widget(self.region), pal)


class PhotoViewer(QWidget):
    """A page that shows one result at a time, large, in place of the results grid.

    Signals: ``currentChanged(row)`` when the hit shown changes; ``closed()`` (Escape, Space or "Back to
    results"); ``regionSearch(path, (x0, y0, x1, y1), mode)`` (a region in original pixels, floats; mode "both",
    "shape" or "image"), on "Search with this region" or Enter with a region; ``openExternally(path)`` on Enter
    without a region.

    Keys (handled here, before window-wide shortcuts such as Escape and Enter): Left/Page Up, Right/Page Down,
    Home, End step; F fit; 1 100 %; +/- zoom; O the sketch overlay; R region mode; Escape clears a region, then
    closes; Space closes; Enter searches with the region or opens the photo externally.
    """

    currentChanged = Signal(int)
    closed = Signal()
    regionSearch = Signal(str, object, str)
    openExternally = Signal(str)

    def __init__(self, runner: Runner, parent=None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.hits: list = []
        self.kind = "sketch"
        self.sketch: np.ndarray | None = None
        self.query_path: str | None = None
        self.screen_side: int | None = None  # px: the screen-size decode; None: from the screen
        self._row = -1
        self._token = 0  # one per hit shown: a full decode for an earlier one is dropped
        self._full_token = -1  # the token a full decode was asked for
        self._cache: OrderedDict[str, tuple[QImage, tuple[int, int]]] = OrderedDict()
        self._pending: set[str] = set()
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

        self.canvas = PhotoCanvas()
        self.canvas.setFocusProxy(self)
        self.canvas.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.canvas.regionChanged.connect(self._region_changed)
        self.canvas.zoomChanged.connect(self._zoom_changed)

        self.back = QPushButton("← Back to results")
        self.back.setToolTip("Back to the results grid (Escape or Space)")
        self.back.clicked.connect(self.closed.emit)
        self.caption = ElidedLabel(elide=Qt.TextElideMode.ElideRight)  # to its room (the whole text: tooltip)
        self.caption.setTextFormat(Qt.TextFormat.PlainText)  # file names are text, never markup
        f = self.caption.font()
        f.setBold(True)
        self.caption.setFont(f)
        self.zoom_label = QLabel()
        self.zoom_label.setEnabled(False)  # a quieter colour
        self.fit_button = QPushButton("Fit")
        self.fit_button.setToolTip("Fit the photo to the window (F)")
        self.fit_button.clicked.connect(self.canvas.fit)
        self.actual_button = QPushButton("100 %")
        self.actual_button.setToolTip("One photo pixel on one screen pixel (1)")
        self.actual_button.clicked.connect(lambda: self.canvas.set_zoom(self.canvas.actual_size_scale()))
        self.overlay_button = QPushButton("Sketch overlay")
        self.overlay_button.setCheckable(True)
        self.overlay_button.setChecked(True)
        self.overlay_button.setToolTip("Draw the sketch in the box, where it matched (O)")
        self.overlay_button.toggled.connect(self._toggle_overlay)
        self.region_button = QPushButton("Select a region")
        self.region_button.setCheckable(True)
        self.region_button.setToolTip("Drag on the photo to select a region to search with (R; Shift+drag "
                                      "selects at any time)")
        self.region_button.toggled.connect(self.canvas.set_region_mode)
        self.region_mode = region_mode_combo()
        self.region_search = QPushButton("Search with this region")
        self.region_search.setToolTip("Search the collection with the selected region (Enter)")
        self.region_search.clicked.connect(self.search_region)
        self.region_note = ElidedLabel(elide=Qt.TextElideMode.ElideRight)
        self.region_note.setEnabled(False)
        for w in (self.back, self.fit_button, self.actual_button, self.overlay_button, self.region_button,
                  self.region_mode, self.region_search):
            w.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the keys stay with the viewer

        # rows that fit the middle pane of a 1024-px window (some 420 px; found under Xvfb, where one row of
        # each read "Back to resul", "Sketch overla", "earch with this regio")
        top = QHBoxLayout()
        top.addWidget(self.back)
        top.addStretch(1)
        top.addWidget(self.fit_button)
        top.addWidget(self.actual_button)
        top.addWidget(self.overlay_button)
        bottom = QHBoxLayout()
        bottom.addWidget(self.region_button)
        bottom.addWidget(self.region_mode)
        bottom.addWidget(self.region_search)
        bottom.addStretch(1)
        notes = QHBoxLayout()
        notes.addWidget(self.region_note, 1)
        notes.addWidget(self.zoom_label)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(self.caption)  # a line of its own: the file name has the pane's width
        lay.addWidget(self.canvas, 1)
        lay.addLayout(bottom)
        lay.addLayout(notes)
        self._region_changed(None)
        self.set_results([], -1)

    # -- results ----------------------------------------------------------------------------------
    @property
    def current_row(self) -> int:
        """The row of the hit shown (-1: none)."""
        return self._row

    def current_hit(self):
        return self.hits[self._row] if 0 <= self._row < len(self.hits) else None

    def set_results(self, hits: list, row: int, *, kind: str = "sketch", sketch: np.ndarray | None = None,
                    query_path: str | None = None) -> None:
        """Step through ``hits`` of a ``kind`` query ("sketch", "image", "region" or "browse": no score, no
        box), showing ``hits[row]``; ``sketch``: the query drawing (grey ink) for the overlay; ``query_path``:
        an image query's file (its own photo is said to be it)."""
        self.hits, self.kind, self.sketch, self.query_path = list(hits), kind, sketch, query_path
        has_overlay = kind == "sketch" and sketch is not None
        self.overlay_button.setVisible(has_overlay)
        if not self.hits:
            self._row = -1
            self._token += 1
            self.caption.setText("")
            self.canvas.clear("No results")
            return
        self._show(min(max(int(row), 0), len(self.hits) - 1))

    def set_row(self, row: int) -> None:
        """Show ``hits[row]`` (clamped); nothing happens when it is already shown."""
        if not self.hits:
            return
        row = min(max(int(row), 0), len(self.hits) - 1)
        if row != self._row:
            self._show(row)

    def step(self, delta: int) -> None:
        self.set_row(self._row + delta)

    def _show(self, row: int) -> None:
        self._row = row
        self._token += 1
        hit = self.hits[row]
        self.canvas.clear("Loading…")
        self.caption.setText(self._caption(hit))
        self.caption.setToolTip(f"{self.caption.text()}\n{hit.path}")
        if hit.path in self._cache:
            self._display(hit.path)
        else:
            self._request(hit.path)
        for r in (row + 1, row - 1):  # the neighbours, ready when stepped to
            if 0 <= r < len(self.hits):
                self._request(self.hits[r].path)
        self.currentChanged.emit(row)

    def _caption(self, hit) -> str:
        parts = [os.path.basename(hit.path), f"{self._row + 1} of {len(self.hits)}"]
        parts.append(format_hit(hit, self.kind))  # the score, or when browsing the date
        if self.kind == "sketch" and hit.mirrored:
            parts.append("mirrored")
        if self.kind == "image":
            same = self.query_path is not None and same_path(self.query_path, hit.path)
            if same or hit.score >= QUERY_SIMILARITY:
                parts.append("the query photo")
        return "  ·  ".join(parts)

    # -- loading ----------------------------------------------------------------------------------
    def decode_side(self) -> int:
        """The longer side photos are decoded at first: the screen's (device pixels)."""
        if self.screen_side:
            return int(self.screen_side)
        scr = self.screen()
        if scr is None:
            return SCREEN_FALLBACK
        size = scr.size()
        side = int(max(size.width(), size.height()) * scr.devicePixelRatio())
        return side if side > 0 else SCREEN_FALLBACK

    def _request(self, path: str) -> None:
        if path in self._cache or path in self._pending:
            return
        self._pending.add(path)
        self.runner.start(Task(load_photo, path, self.decode_side()),
                          on_done=lambda res, _s, p=path: self._stored(p, res),
                          on_error=lambda msg, p=path: self._failed(p, msg))

    def _stored(self, path: str, res) -> None:
        if not isValid(self):
            return  # the viewer was closed for good while the photo was decoded
        self._pending.discard(path)
        self._cache[path] = res
        self._cache.move_to_end(path)
        hit = self.current_hit()
        current = hit.path if hit is not None else None
        while len(self._cache) > CACHE:
            old = next(iter(self._cache))
            if old == current:
                self._cache.move_to_end(old)
                continue
            del self._cache[old]
        if current == path and self.canvas.path != path:  # the photo shown came in (stale ones only cache)
            self._display(path)

    def _failed(self, path: str, msg: str) -> None:
        if not isValid(self):
            return
        self._pending.discard(path)
        hit = self.current_hit()
        if hit is not None and hit.path == path:
            self.canvas.clear(f"Cannot show {os.path.basename(path)}:\n{msg}")

    def _display(self, path: str) -> None:
        hit = self.current_hit()
        image, size = self._cache[path]
        self._cache.move_to_end(path)
        box = hit.box if self.kind != "browse" and not _whole_photo(hit.box, size) else None
        overlay = None
        if self.kind == "sketch" and self.sketch is not None and box is not None:
            overlay = ink_overlay(self.sketch, mirrored=hit.mirrored)
        self.canvas.show_overlay = self.overlay_button.isChecked()
        self.canvas.set_photo(image, size, path, box, overlay, box_sure=box_is_sure(hit),
                              frame=getattr(hit, "frame", None))

    def _zoom_changed(self) -> None:
        c = self.canvas
        self.zoom_label.setText("" if not c.has_photo() else
                                (f"Fit ({c.zoom_percent():.0f} %)" if c.is_fit() else f"{c.zoom_percent():.0f} %"))
        if c.needs_full() and self._full_token != self._token:
            self._full_token = token = self._token
            path = c.path
            self.runner.start(Task(load_photo, path, None),
                              on_done=lambda res, _s: self._full_loaded(token, path, res),
                              on_error=lambda msg: log.info("full decode of %s failed: %s", path, msg))

    def _full_loaded(self, token: int, path: str, res) -> None:
        if not isValid(self) or token != self._token or self.canvas.path != path:
            return  # the user moved on meanwhile
        self.canvas.swap_image(res[0])

    # -- region -----------------------------------------------------------------------------------
    def region(self):
        """The selected region (x0, y0, x1, y1) in the photo's original pixels, or None."""
        return self.canvas.region

    def set_region(self, box) -> None:
        """Select ``box`` (original pixels; clipped to the photo; None: none)."""
        self.canvas.set_region(box)

    def search_region(self) -> None:
        hit, region = self.current_hit(), self.canvas.region
        if hit is not None and region is not None:
            self.regionSearch.emit(hit.path, tuple(float(v) for v in region), str(self.region_mode.currentData()))

    def _region_changed(self, region) -> None:
        self.region_mode.setEnabled(region is not None)
        self.region_search.setEnabled(region is not None)
        if region is None:
            self.region_note.setText("")
        else:
            x0, y0, x1, y1 = region
            self.region_note.setText(f"{x1 - x0:.0f}×{y1 - y0:.0f} px at ({x0:.0f}, {y0:.0f})")

    def _toggle_overlay(self, on: bool) -> None:
        self.canvas.show_overlay = on
        self.canvas.update()

    # -- keys -------------------------------------------------------------------------------------
    def _handles(self, event: QKeyEvent) -> bool:
        mods = event.modifiers() & ~(Qt.KeyboardModifier.KeypadModifier | Qt.KeyboardModifier.ShiftModifier)
        return mods == Qt.KeyboardModifier.NoModifier and event.key() in _KEYS

    def event(self, event) -> bool:
        # the viewer's keys come here before a window-wide shortcut (Escape, Enter) takes them
        if event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent) and self._handles(event):
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event) -> None:
        if not self._handles(event):
            super().keyPressEvent(event)
            return
        k, key = event.key(), Qt.Key
        if k in (key.Key_Left, key.Key_PageUp):
            self.step(-1)
        elif k in (key.Key_Right, key.Key_PageDown):
            self.step(1)
        elif k == key.Key_Home:
            self.set_row(0)
        elif k == key.Key_End:
            self.set_row(len(self.hits) - 1)
        elif k == key.Key_Escape:
            if self.canvas.cancel_band():
                pass
            elif self.canvas.region is not None:
                self.canvas.set_region(None)
            else:
                self.closed.emit()
        elif k == key.Key_Space:
            self.closed.emit()
        elif k in (key.Key_Return, key.Key_Enter):
            hit = self.current_hit()
            if self.canvas.region is not None:
                self.search_region()
            elif hit is not None:
                self.openExternally.emit(hit.path)
        elif k == key.Key_F:
            self.canvas.fit()
        elif k == key.Key_1:
            self.canvas.set_zoom(self.canvas.actual_size_scale())
        elif k in (key.Key_Plus, key.Key_Equal):
            self.canvas.zoom_by(ZOOM_STEP)
        elif k in (key.Key_Minus, key.Key_Underscore):
            self.canvas.zoom_by(1 / ZOOM_STEP)
        elif k == key.Key_O:
            if not self.overlay_button.isHidden():  # only where there is a sketch to draw
                self.overlay_button.toggle()
        elif k == key.Key_R:
            self.region_button.toggle()
        event.accept()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.setFocus()


def _whole_photo(box, size) -> bool:
    """Whether a box covers the whole photo (image queries' hits): nothing to point at."""
    ow, oh = size
    x0, y0, x1, y1 = box
    return x0 <= 1 and y0 <= 1 and x1 >= ow - 1 and y1 >= oh - 1


_KEYS = {getattr(Qt.Key, f"Key_{n}") for n in (
    "Left", "Right", "PageUp", "PageDown", "Home", "End", "Escape", "Space", "Return", "Enter", "F", "1",
    "Plus", "Equal", "Minus", "Underscore", "O", "R")}
