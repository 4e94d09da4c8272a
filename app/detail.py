"""The detail panel of the selected result: the photo with its box (and the sketch drawn over it at the
matched place, size and mirror), the polar plot of similarity versus rotation read out in words, the
path and scores, and what can be done with the photo (among it: drag a region on the photo and search with it).

The region selection's shared parts live here (:data:`REGION_MODES`, :func:`region_mode_combo`,
:func:`widget_rect_to_original`, :func:`original_to_widget`, :func:`clip_box`, :func:`draw_region`); the full
window photo viewer (``app.viewer``) imports them from this module, never the other way round."""
from __future__ import annotations

import html
import os
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, QUrl, Signal
from PySide6.QtGui import QColor, QDesktopServices, QGuiApplication, QImage, QPainter, QPalette, QPen
from PySide6.QtWidgets import (
    QApplication,
    QBoxLayout,
    QCheckBox,
    QComboBox,
    QFrame,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from .paths import same_path
from .results import box_is_sure, draw_box, format_hit, format_score, is_likely, likely_cut, load_preview
from .workers import Runner, Task

PREVIEW = 1024  # px, longer side of the photo shown
#: another angle matches clearly better than the one shown when its similarity exceeds the one at 0 deg by
#: this fraction of the best.  Chosen on Sketchy (scripts/rotation_margin.py: sketches drawn upright over
#: their own photo, whose hit is right at 0 deg): the smallest margin that reads at most 5 % of those
#: upright matches as "turned", fitted on 5 classes at even positions (2.9 %) and reported on 5 at odd
#: positions (0 % of 33; the same sketches turned by 90 or 180 deg are read "turned" by the right angle
#: in 70 %; the misses are mostly round or symmetric shapes, alarm clocks and butterflies, and bears
#: upside down)
MARGIN = 0.08
#: a curve is flat (no preferred angle) when no angle is clearly better than any other: (max - min) is
#: below MARGIN of the max.  None of those upright Sketchy matches is flat (their spread is >= 0.10, 5th
#: percentile 0.17); a circle sketch on a circle photo spreads 0.005
FLAT = MARGIN
MIN_TURN = 10.0  # degrees: a best angle nearer 0 than this is the match as shown
#: turns whose similarity peaks within this fraction of the best are equally good (a star's five, a symmetric
#: shape's two): the smallest of them is the one said and drawn (a quarter of MARGIN: well below a clear gain)
EQUAL = MARGIN / 4
#: the modes of a search with a region of a photo, as offered: (label, mode of ``engine.region``); the first is
#: the default
REGION_MODES = (("Shape and image", "both"), ("Shape", "shape"), ("Image", "image"))
Box = tuple[float, float, float, float]


def region_mode_combo(parent=None) -> QComboBox:
    """A combo box of :data:`REGION_MODES` (the mode is its ``currentData()``), the default chosen."""
    combo = QComboBox(parent)
    for label, mode in REGION_MODES:
        combo.addItem(label, mode)
    combo.setCurrentIndex(0)
    combo.setToolTip("What the region is searched by: its shape (edges, as a sketch), its image, or both")
    return combo


def clip_box(box, original_size) -> Box | None:
    """``box`` = (x0, y0, x1, y1) in any corner order, clipped to a photo of ``original_size`` = (width,
    height) -> floats (x0 < x1, y0 < y1); None when nothing of it (no area) is left, or the size is unknown."""
    ow, oh = original_size
    if box is None or ow <= 0 or oh <= 0:
        return None
    x0, y0, x1, y1 = (float(v) for v in box)
    x0, x1 = sorted((min(max(x0, 0.0), ow), min(max(x1, 0.0), ow)))
    y0, y1 = sorted((min(max(y0, 0.0), oh), min(max(y1, 0.0), oh)))
    if not (x1 > x0 and y1 > y0):
        return None
    return x0, y0, x1, y1


def widget_rect_to_original(rect: QRectF, target: QRectF, original_size) -> Box | None:
    """A rectangle in widget pixels (e.g. a rubber band) over a photo drawn at ``target`` (widget pixels) ->
    the box (x0, y0, x1, y1) in the photo's original pixels (``original_size`` = (width, height), after EXIF
    orientation), clipped to the photo; None for a rectangle of no area on it."""
    ow, oh = original_size
    if target.width() <= 0 or target.height() <= 0 or ow <= 0 or oh <= 0:
        return None
    r = rect.normalized()
    sx, sy = ow / target.width(), oh / target.height()
    return clip_box(((r.left() - target.left()) * sx, (r.top() - target.top()) * sy,
                     (r.right() - target.left()) * sx, (r.bottom() - target.top()) * sy), original_size)


def original_to_widget(box, target: QRectF, original_size) -> QRectF:
    """A box in the photo's original pixels -> where it is drawn when the photo is drawn at ``target``."""
    ow, oh = original_size
    sx, sy = target.width() / ow, target.height() / oh
    x0, y0, x1, y1 = box
    return QRectF(target.left() + x0 * sx, target.top() + y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy)


def draw_region(painter: QPainter, rect: QRectF, palette: QPalette) -> None:
    """A selected region (or the rubber band being dragged) at ``rect``: tinted with the palette's highlight,
    a dashed outline over a contrasting one (it shows on light and dark photos)."""
    painter.save()
    hi = palette.color(QPalette.ColorRole.Highlight)
    fill = QColor(hi)
    fill.setAlpha(50)
    painter.setBrush(fill)
    painter.setPen(QPen(QColor(255, 255, 255, 200), 1))
    painter.drawRect(rect)
    pen = QPen(hi, 2, Qt.PenStyle.DashLine)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.setPen(pen)
    painter.drawRect(rect)
    painter.restore()


def drag_is_click(a: QPointF, b: QPointF) -> bool:
    """A press and release this close together are a click, not a drag (the platform's drag distance)."""
    return (b - a).manhattanLength() < QApplication.startDragDistance()


def format_turn(degrees: float) -> str:
    """A rotation as a person reads it: signed, in (-180, 180], whole degrees, never "-0°"."""
    d = int(round(float(degrees))) % 360
    if d > 180:
        d -= 360
    if d in (0, 180):
        return f"{d}°"
    return f"{d:+d}°"


@dataclass(frozen=True)
class CurveReading:
    """What a rotation curve says about the hit as it is shown.

    ``verdict``: "flat" (no angle is preferred), "as_shown" (no other angle matches clearly better than
    the match as drawn, 0°) or "turned" (the query turned by ``best_angle`` matches clearly better).
    Angles are signed degrees in (-180, 180], counter-clockwise on screen.
    """

    verdict: str
    at_zero: float
    best_angle: float
    best: float
    low: float
    mirrored: bool


def read_curve(curve, *, flat: float = FLAT, margin: float = MARGIN, min_turn: float = MIN_TURN) -> CurveReading:
    """Read a :class:`engine.rotation.RotationCurve` (or any object with ``angles`` in degrees,
    ``similarities``, ``best_angle``, ``best_similarity`` and ``mirrored``) relative to 0°, the hit as
    shown.

    Flat: ``max - min < flat * max`` (or a maximum <= 0).  Turned: ``best - at_zero >= margin * best``
    and the best angle at least ``min_turn`` degrees from 0.
    """
    angles = np.asarray(curve.angles, float) % 360
    sims = np.asarray(curve.similarities, float)
    order = np.argsort(angles)
    angles, sims = angles[order], sims[order]
    at_zero = float(np.interp(0.0, angles, sims, period=360))
    best = max(float(curve.best_similarity), float(sims.max()))
    best_angle = float(curve.best_angle) % 360
    if best_angle > 180:
        best_angle -= 360
    signed = np.where(angles > 180, angles - 360, angles)
    peaks = np.flatnonzero((sims >= np.roll(sims, 1)) & (sims >= np.roll(sims, -1)) & (sims >= best - EQUAL * best))
    if len(peaks):  # among equally good turns, the smallest (a star matches at five)
        i = peaks[np.argmin(np.abs(signed[peaks]))]
        if abs(signed[i]) < abs(best_angle) - 1.0:
            best_angle, best = float(signed[i]), float(sims[i])
    low = float(sims.min())
    mirrored = bool(getattr(curve, "mirrored", False))
    if best <= 0 or best - low < flat * best:
        verdict = "flat"
    elif best - at_zero >= margin * best and abs(best_angle) >= min_turn:
        verdict = "turned"
    else:
        verdict = "as_shown"
    return CurveReading(verdict, at_zero, best_angle, best, low, mirrored)


def describe_curve(reading: CurveReading, *, kind: str = "sketch") -> str:
    """The caption of the polar plot: what the curve says, with its numbers."""
    what = "the sketch" if kind == "sketch" else "the query photo"
    r = reading
    if r.verdict == "flat":
        text = (f"No preferred angle: {what} matches about as well at every turn "
                f"({r.low:.2f} to {r.best:.2f}).")
    elif r.verdict == "turned":
        text = f"Turned {format_turn(r.best_angle)} it matches better ({r.best:.2f} vs {r.at_zero:.2f} as shown)."
    else:
        text = f"Matches best as shown: {r.at_zero:.2f} at 0°"
        if abs(r.best_angle) >= 1 and r.best - r.at_zero >= 0.005:
            text += f" ({r.best:.2f} at {format_turn(r.best_angle)} is no clear gain)"
        text += "."
    if r.mirrored:
        text += (" The sketch is mirrored, as drawn on the photo." if kind == "sketch"
                 else " (The query photo mirrored: it matches better so.)")
    return text


def fit_aspect(rect: QRectF, width: int, height: int) -> QRectF:
    """The largest rectangle of ``width``:``height`` centred in ``rect``: the sketch keeps its own shape where the
    box follows the photo's edges (``engine.boxes``: a box of another aspect than the sketch's)."""
    if width <= 0 or height <= 0 or rect.width() <= 0 or rect.height() <= 0:
        return rect
    s = min(rect.width() / width, rect.height() / height)
    w, h = width * s, height * s
    return QRectF(rect.center().x() - w / 2, rect.center().y() - h / 2, w, h)


def overlay_rect(target: QRectF, box_rect: QRectF, frame, original_size: tuple[int, int], overlay: QImage) -> QRectF:
    """Where the sketch's strokes are drawn on a photo drawn at ``target``: the hit's ``frame`` (where the sketch
    was placed, in the photo's original pixels), else its own shape centred in the box drawn at ``box_rect``
    (hits without a frame)."""
    if frame is None or min(original_size) <= 0:
        return fit_aspect(box_rect, overlay.width(), overlay.height())
    return original_to_widget(frame, target, original_size)


def ink_overlay(sketch: np.ndarray, *, mirrored: bool, colour=(255, 40, 20)) -> QImage | None:
    """The sketch's strokes cropped to their bounding box as a transparent ARGB image (None: no ink)."""
    ink = np.asarray(sketch) < 128
    if ink.ndim == 3:
        ink = ink.any(axis=2)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if not len(rows):
        return None
    ink = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    if mirrored:
        ink = ink[:, ::-1]
    h, w = ink.shape
    argb = np.zeros((h, w, 4), np.uint8)  # B, G, R, A in memory (Format_ARGB32 on little-endian)
    argb[ink] = (colour[2], colour[1], colour[0], 230)
    argb = np.ascontiguousarray(argb)
    return QImage(argb.data, w, h, 4 * w, QImage.Format.Format_ARGB32).copy()


class RegionSelection:
    """What a photo widget with a selectable region shares (``PhotoView`` here, ``viewer.PhotoCanvas``): it has
    ``region`` (original pixels or None), ``original_size``, ``has_photo()`` and a ``regionChanged`` signal."""

    def set_region(self, box) -> None:
        """Select ``box`` (original pixels, clipped to the photo; None or no area: none)."""
        region = clip_box(box, self.original_size) if self.has_photo() else None
        changed = region != self.region
        self.region = region
        self.update()
        if changed:
            self.regionChanged.emit(region)

    def end_band(self, end: QPointF) -> None:
        """The rubber band released at ``end``: its rectangle, in original pixels, becomes the region (a click, or
        a band of no area, leaves the region as it is)."""
        start = self._band[0]
        self._band = None
        self.update()
        if not drag_is_click(start, end):
            region = widget_rect_to_original(QRectF(start, end), self.photo_rect(), self.original_size)
            if region is not None:
                self.set_region(region)


class PhotoView(RegionSelection, QWidget):
    """A photo fitted to the widget, with the hit's box and, optionally, the sketch where it was placed
    (``overlay_rect``; turned by ``overlay_angle`` degrees counter-clockwise about that place's centre).

    A left-drag on the photo selects a region (a rubber band), kept in the photo's original pixels:
    ``regionChanged(box or None)``; Escape (with the focus here) clears it, and so does a new photo."""

    regionChanged = Signal(object)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.region: Box | None = None
        self._band: tuple[QPointF, QPointF] | None = None  # press and current point of a drag, widget pixels
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.image: QImage | None = None
        self.original_size = (0, 0)
        self.box = None
        self.frame = None  # where the sketch overlay goes (the hit's frame), None: in the box
        self.box_sure = True
        self.overlay: QImage | None = None
        self.overlay_angle = 0.0
        self.show_overlay = True
        self.max_height = 2000  # px: the panel keeps room below the photo for its details
        self.message = "Select a result"
        self.setMinimumSize(200, 150)
        policy = QSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)

    def hasHeightForWidth(self) -> bool:  # noqa: N802 (Qt)
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802 (Qt)
        if self.image is None or self.image.isNull():
            return max(150, min(width * 3 // 4, self.max_height))
        return max(150, min(width * self.image.height() // self.image.width(), 2 * width, self.max_height))

    def set_max_height(self, px: int) -> None:
        if px != self.max_height:
            self.max_height = px
            self.updateGeometry()

    def set_photo(self, image: QImage | None, original_size, box, overlay: QImage | None, message: str = "", *,
                  box_sure: bool = True, frame=None) -> None:
        """Show a photo (None: ``message`` in its place) with a box (dashed where not ``box_sure``) and the sketch
        ``overlay`` drawn at ``frame`` (``overlay_rect``); any region selected on the previous one is cleared."""
        self.image, self.original_size, self.box, self.overlay = image, original_size, box, overlay
        self.frame = frame
        self.box_sure = box_sure
        self.message = message
        self._band = None
        self.set_region(None)
        if self.has_photo():
            self.setCursor(Qt.CursorShape.CrossCursor)
            self.setToolTip("Drag on the photo to select a region to search with")
        else:
            self.unsetCursor()
            self.setToolTip("")
        self.updateGeometry()  # the height follows the photo's aspect
        self.update()

    def has_photo(self) -> bool:
        return self.image is not None and not self.image.isNull() and self.original_size[0] > 0

    def mousePressEvent(self, event) -> None:
        pos = event.position()
        if event.button() == Qt.MouseButton.LeftButton and self.has_photo() and self.photo_rect().contains(pos):
            self._band = (pos, pos)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:
        if self._band is not None:
            self._band = (self._band[0], event.position())
            self.update()
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        if self._band is not None and event.button() == Qt.MouseButton.LeftButton:
            self.end_band(event.position())
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Escape and (self.region is not None or self._band is not None):
            self._band = None
            self.set_region(None)
            event.accept()
            return
        super().keyPressEvent(event)

    def set_overlay_angle(self, degrees: float) -> None:
        """Draw the sketch turned by ``degrees`` (counter-clockwise on screen) about the box's centre."""
        self.overlay_angle = float(degrees)
        self.update()

    def photo_rect(self) -> QRectF:
        if self.image is None or self.image.isNull():
            return QRectF()
        s = min(self.width() / self.image.width(), self.height() / self.image.height())
        w, h = self.image.width() * s, self.image.height() * s
        return QRectF((self.width() - w) / 2, 0, w, h)  # at the top: the details follow right below

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        if self.image is None or self.image.isNull():
            p.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.message)
            return
        target = self.photo_rect()
        p.drawImage(target, self.image)
        if self.box is not None and self.original_size[0]:
            rect = draw_box(p, target, self.box, self.original_size, width=3, sure=self.box_sure)
            if self.show_overlay and self.overlay is not None:
                rect = overlay_rect(target, rect, self.frame, self.original_size, self.overlay)
                p.save()
                p.setOpacity(0.9)
                p.setClipRect(target)  # the placed sketch may reach past the photo's edge
                if self.overlay_angle:
                    p.translate(rect.center())
                    p.rotate(-self.overlay_angle)  # Qt turns clockwise on screen (y down)
                    rect = QRectF(-rect.width() / 2, -rect.height() / 2, rect.width(), rect.height())
                p.drawImage(rect, self.overlay)
                p.restore()
        if self._band is not None:
            draw_region(p, QRectF(*self._band).normalized().intersected(target), self.palette())
        elif self.region is not None:
            draw_region(p, original_to_widget(self.region, target, self.original_size), self.palette())


class RotationPlot(QWidget):
    """Polar plot of similarity versus rotation relative to the hit as shown (0° at the top is the
    overlay as drawn; counter-clockwise turns go counter-clockwise), read out in words below it.

    ``overlayAngleChanged(degrees)``: the "show it turned" button asks to draw the overlay at that angle
    (0: as matched).
    """

    overlayAngleChanged = Signal(float)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        from PySide6.QtCharts import (
            QCategoryAxis,
            QChart,
            QChartView,
            QPolarChart,
            QScatterSeries,
            QSplineSeries,
            QValueAxis,
        )

        self.kind = "sketch"
        self.chart = QPolarChart()
        self.chart.legend().hide()
        self.chart.setBackgroundRoundness(0)
        self.chart.setMargins(self.chart.margins() * 0)
        self.curve = QSplineSeries()
        self.shown = QScatterSeries()  # 0 deg: the match as shown
        self.shown.setMarkerSize(9)
        self.best = QScatterSeries()  # the clearly better angle
        self.best.setMarkerSize(11)
        for s in (self.curve, self.shown, self.best):
            self.chart.addSeries(s)
        # the angular axis runs clockwise from the top: a turn of a degrees counter-clockwise is drawn at
        # 360 - a, and labelled with the turn it stands for
        self.angle_axis = QCategoryAxis()
        self.angle_axis.setRange(0, 360)
        self.angle_axis.setStartValue(0)
        for label, at in (("-90°", 90), ("180°", 180), ("+90°", 270), ("0°", 360)):
            self.angle_axis.append(label, at)
        self.angle_axis.setLabelsPosition(QCategoryAxis.AxisLabelsPosition.AxisLabelsPositionOnValue)
        self.radial_axis = QValueAxis()
        self.radial_axis.setRange(0, 1)
        self.radial_axis.setTickCount(3)
        self.radial_axis.setLabelsVisible(False)  # the numbers are in the caption, never over the curve
        self.chart.addAxis(self.angle_axis, QPolarChart.PolarOrientation.PolarOrientationAngular)
        self.chart.addAxis(self.radial_axis, QPolarChart.PolarOrientation.PolarOrientationRadial)
        for s in (self.curve, self.shown, self.best):
            s.attachAxis(self.angle_axis)
            s.attachAxis(self.radial_axis)
        self.chart.setTheme(QChart.ChartTheme.ChartThemeDark if _dark(self.palette())
                            else QChart.ChartTheme.ChartThemeLight)
        self.chart.setBackgroundVisible(False)
        text = self.palette().color(QPalette.ColorRole.WindowText)
        self.shown.setColor(QColor(text.red(), text.green(), text.blue(), 200))  # after the theme
        self.best.setColor(QColor(255, 64, 32))
        self.view = QChartView(self.chart)
        self.view.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.view.setMinimumSize(200, 200)
        self.view.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.view.setFixedHeight(230)
        self.heading = QLabel()
        self.heading.setWordWrap(True)
        self.heading.setEnabled(False)  # a quieter colour: what the plot is
        self.caption = QLabel()
        self.caption.setWordWrap(True)
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.turn_button = QPushButton()
        self.turn_button.setCheckable(True)
        self.turn_button.toggled.connect(self._turn_toggled)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.heading)
        lay.addWidget(self.view)
        lay.addWidget(self.caption)
        lay.addWidget(self.turn_button)
        self.best_angle: float | None = None
        self.reading: CurveReading | None = None
        self.set_curve(None)

    def set_kind(self, kind: str) -> None:
        """"sketch" (0° is the overlay as drawn; the overlay can be shown turned), "image" or "region" (of a
        photo, turned as an image)."""
        self.kind = kind
        query = "region" if kind == "region" else "photo"
        self.heading.setText("Rotation similarity versus turning the sketch (0° = as drawn on the photo; its own "
                             "measure, not the shape alignment above)" if kind == "sketch"
                             else f"Rotation similarity versus turning the query {query} (0° = upright)")

    def set_curve(self, curve) -> None:
        """``curve``: a :class:`engine.rotation.RotationCurve` of the shown hit; None: none (yet)."""
        self.curve.clear()
        self.shown.clear()
        self.best.clear()
        self.turn_button.blockSignals(True)
        self.turn_button.setChecked(False)
        self.turn_button.blockSignals(False)
        self.turn_button.setVisible(False)
        self.set_kind(self.kind)
        if curve is None:
            self.best_angle, self.reading = None, None
            self.view.setVisible(False)
            self.caption.setText("Similarity versus rotation: computing…")
            self.overlayAngleChanged.emit(0.0)
            return
        reading = read_curve(curve)
        self.reading = reading
        self.best_angle = reading.best_angle
        angles = np.asarray(curve.angles, float) % 360
        sims = np.asarray(curve.similarities, float)
        order = np.argsort(angles)
        angles, sims = angles[order], sims[order]
        top = max(float(sims.max()), 1e-6)
        self.radial_axis.setRange(min(0.0, float(sims.min())), top * 1.05)
        pts = [QPointF((360.0 - a) % 360.0, s) for a, s in zip(angles, sims, strict=True)]
        pts.sort(key=lambda p: p.x())
        pts.append(QPointF(360.0, pts[0].y()))  # close the loop
        self.curve.replace(pts)
        self.shown.append(0.0, reading.at_zero)
        if reading.verdict == "turned":
            self.best.append((360.0 - reading.best_angle) % 360.0, reading.best)
            if self.kind == "sketch":
                self.turn_button.setText(f"Show the sketch turned {format_turn(reading.best_angle)}")
                self.turn_button.setVisible(True)
        self.view.setVisible(True)
        self.caption.setText(describe_curve(reading, kind=self.kind))
        self.overlayAngleChanged.emit(0.0)

    def unavailable(self) -> None:
        """No curve can be computed: the photo cannot be read."""
        self.best_angle, self.reading = None, None
        self.view.setVisible(False)
        self.turn_button.setVisible(False)
        self.caption.setText("Similarity versus rotation: not available (the photo cannot be read)")

    def _turn_toggled(self, on: bool) -> None:
        angle = self.reading.best_angle if on and self.reading is not None else 0.0
        self.overlayAngleChanged.emit(float(angle))


def _dark(pal: QPalette) -> bool:
    return pal.color(QPalette.ColorRole.Window).lightness() < 128


class _Buttons(QWidget):
    """Buttons side by side when they fit, one above the other when the panel is narrow."""

    def __init__(self, buttons, parent=None) -> None:
        super().__init__(parent)
        self.buttons = list(buttons)
        self.box = QBoxLayout(QBoxLayout.Direction.LeftToRight, self)
        self.box.setContentsMargins(0, 0, 0, 0)
        for b in self.buttons:
            self.box.addWidget(b)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    def _wide_enough(self, width: int) -> bool:
        need = sum(b.sizeHint().width() for b in self.buttons if not b.isHidden())
        return width >= need + self.box.spacing() * (len(self.buttons) - 1)

    def resizeEvent(self, event) -> None:
        direction = (QBoxLayout.Direction.LeftToRight if self._wide_enough(event.size().width())
                     else QBoxLayout.Direction.TopToBottom)
        if self.box.direction() != direction:
            self.box.setDirection(direction)
        super().resizeEvent(event)


class DetailPanel(QWidget):
    """Everything about one result; ``searchWithImage(path)`` asks for an image query from it;
    ``regionSearch(path, (x0, y0, x1, y1), mode)`` for a search with the region dragged on its photo (original
    pixels, floats; ``mode`` one of :data:`REGION_MODES`' "both", "shape", "image");
    ``message(text)`` says something for the status bar (e.g. that no file manager could be opened)."""

    searchWithImage = Signal(str)
    regionSearch = Signal(str, object, str)
    message = Signal(str)

    def __init__(self, runner: Runner, parent=None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.hit = None
        self.kind = "sketch"
        self.sketch: np.ndarray | None = None
        self._token = 0
        self.photo = PhotoView()
        self.overlay_box = QCheckBox("Show the sketch on the photo")
        self.overlay_box.setChecked(True)
        self.overlay_box.toggled.connect(self._toggle_overlay)
        self.title = QLabel()
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        f = self.title.font()
        f.setBold(True)
        self.title.setFont(f)
        self.path = QLabel()
        self.path.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.scores = QLabel()
        self.scores.setTextFormat(Qt.TextFormat.RichText)
        self.open_folder = QPushButton("Open containing folder")
        self.open_folder.clicked.connect(self._open_folder)
        self.copy_path = QPushButton("Copy path")
        self.copy_path.setToolTip("Copy the photo's full path to the clipboard")
        self.copy_path.clicked.connect(self._copy_path)
        self.search_with = QPushButton("Search with this photo")
        self.search_with.clicked.connect(lambda: self.hit and self.searchWithImage.emit(self.hit.path))
        self.note = QLabel()  # what became of the last action (e.g. no file manager could be opened)
        self.note.setWordWrap(True)
        self.note.setVisible(False)
        self.region_mode = region_mode_combo()
        self.region_search = QPushButton("Search with this region")
        self.region_search.setToolTip("Drag on the photo to select a region, then search with it")
        self.region_search.clicked.connect(self._search_region)
        self.region_row = _Buttons([self.region_mode, self.region_search])
        self.photo.regionChanged.connect(self._region_changed)
        self._region_changed(None)
        self.rotation = RotationPlot()
        self.rotation.overlayAngleChanged.connect(self.photo.set_overlay_angle)
        for label in (self.title, self.path, self.note):  # file names are text, never markup
            label.setTextFormat(Qt.TextFormat.PlainText)
        for label in (self.title, self.path, self.scores, self.note):  # long texts must not widen the panel
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            label.setWordWrap(True)
        self.buttons = _Buttons([self.open_folder, self.copy_path, self.search_with])
        body = QWidget()
        lay = QVBoxLayout(body)
        lay.addWidget(self.photo, 0)
        lay.addWidget(self.overlay_box)
        lay.addWidget(self.title)
        lay.addWidget(self.path)
        lay.addWidget(self.scores)
        lay.addWidget(self.buttons)
        lay.addWidget(self.region_row)
        lay.addWidget(self.note)
        lay.addWidget(self.rotation, 0)
        lay.addStretch(1)
        # small windows scroll the panel rather than squeeze its parts over each other
        self.scroll = QScrollArea()
        self.scroll.setWidget(body)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.scroll)
        self.setMinimumWidth(260)
        self.show_hit(None)

    def resizeEvent(self, event) -> None:
        # a tall photo takes at most 60 % of the panel's height: its scores and buttons show without scrolling
        self.photo.set_max_height(max(150, int(0.6 * event.size().height())))
        super().resizeEvent(event)

    def show_hit(self, hit, *, kind: str = "sketch", sketch: np.ndarray | None = None, curve=None,
                 query_path: str | None = None) -> None:
        """Show a result (None: nothing selected); ``sketch`` is the query drawing for the overlay;
        ``query_path``: an image query's file (its own photo among the results is said to be it)."""
        self.hit, self.kind, self.sketch = hit, kind, sketch
        self._token += 1
        self.buttons.setVisible(hit is not None)  # nothing selected: only the placeholder shows
        self.region_row.setVisible(hit is not None)
        self.photo.set_region(None)
        self.overlay_box.setVisible(kind == "sketch" and sketch is not None and hit is not None)
        self.note.setVisible(False)
        # the polar plot: of the sketch, or of the query photo (or region) as an image; none when browsing
        region = kind == "region" or (kind == "sketch" and sketch is None and query_path is not None)  # its shape
        self.rotation.set_kind("sketch" if kind == "sketch" and sketch is not None else "region" if region else "image")
        self.rotation.setVisible(kind != "browse")
        if hit is None:
            self.title.setText("")
            self.path.setText("")
            self.scores.setText("")
            self.photo.set_photo(None, (0, 0), None, None, "Select a result to see it here")
            self.rotation.set_curve(None)
            self.rotation.caption.setText("")
            self.rotation.heading.setText("")
            return
        self.title.setText(os.path.basename(hit.path))
        self.path.setText(hit.path)
        if kind == "browse":
            self.scores.setText(html.escape(f"taken {format_hit(hit, kind)}" if hit.taken else "no date")
                                + "<br>" + html.escape("Draw a shape, or drop a photo, to search"))
        elif kind in ("sketch", "region"):
            cut = likely_cut()
            if is_likely(hit, cut):
                verdict = "a likely match"
            elif hit.score >= cut:  # the engine's stand-out test
                verdict = "not a likely match: the best results do not stand out from the look-alikes a collection "\
                          "this size holds"
            else:
                verdict = f"not a likely match (those score ≥ {cut:.0%})"
            shape = f" · shape alignment {hit.raw_score:.2f}" if hit.raw_score is not None else ""
            x0, y0, x1, y1 = hit.box
            where = (f"box {x1 - x0:.0f}×{y1 - y0:.0f} at ({x0:.0f}, {y0:.0f}) · sketch at {hit.scale:.0%} of the "
                     "photo" + (" · mirrored" if hit.mirrored else ""))
            if not box_is_sure(hit):
                where += " · the box is uncertain (dashed): the drawn outline was not clearly found in this photo"
                if is_likely(hit, cut):  # likely all the same: said, so the two do not read as a contradiction
                    where += "; the match rests on the photo's likeness to the drawing as a whole"
            if kind == "region":  # two rankings fused: a rank score, not a probability
                verdict = ("a rank score of the region's shape and image rankings fused (on a scale where 1 is first "
                           "in both), not a probability")
            same = query_path is not None and same_path(query_path, hit.path)
            if kind == "region" or query_path is not None:  # a region (its shape alone: "sketch" with its photo)
                where = where.replace("sketch at", "region's shape at")
            self.scores.setText(html.escape(f"{format_score(hit.score, kind)}: {verdict}{shape}") + "<br>"
                                + html.escape(where)
                                + ("<br><b>This is the query photo itself: the box is the region.</b>" if same else ""))
        else:
            same = (query_path is not None and same_path(query_path, hit.path)) \
                or hit.score >= 0.995
            self.scores.setText(html.escape(f"{format_score(hit.score, kind)} (cosine of the whole photos, not a "
                                            "probability)")
                                + ("<br><b>This is the query photo itself.</b>" if same else ""))
        self.rotation.set_curve(curve)
        self.photo.set_photo(None, (0, 0), None, None, "Loading…")
        token = self._token
        self.runner.start(Task(load_preview, hit.path, PREVIEW),
                          on_done=lambda res, _s: self._loaded(token, res),
                          on_error=lambda msg: self._failed(token, msg))

    def _failed(self, token: int, msg: str) -> None:
        """The photo cannot be read (gone, damaged): said where it would show, and the rotation plot, which needs
        it too, says it is not available (found under Xvfb: "computing…" stayed for a deleted photo)."""
        if token != self._token:
            return
        self.photo.set_photo(None, (0, 0), None, None, msg)
        if self.rotation.reading is None:  # (an image hit's curve, from the stored descriptors, may have come)
            self.rotation.unavailable()

    def _loaded(self, token: int, res) -> None:
        if token != self._token or self.hit is None:
            return  # another result was selected meanwhile
        image, size = res
        overlay = None
        box = self.hit.box if self.kind in ("sketch", "region") else None
        if self.kind == "sketch" and self.sketch is not None:
            overlay = ink_overlay(self.sketch, mirrored=self.hit.mirrored)
        self.photo.show_overlay = self.overlay_box.isChecked()
        self.photo.set_photo(image, size, box, overlay, box_sure=box_is_sure(self.hit),
                             frame=getattr(self.hit, "frame", None))

    def _region_changed(self, region) -> None:
        self.region_mode.setEnabled(region is not None)
        self.region_search.setEnabled(region is not None)

    def _search_region(self) -> None:
        if self.hit is not None and self.photo.region is not None:
            self.regionSearch.emit(self.hit.path, tuple(self.photo.region), str(self.region_mode.currentData()))

    def _toggle_overlay(self, on: bool) -> None:
        self.photo.show_overlay = on
        self.photo.update()

    def _say(self, text: str) -> None:
        self.note.setText(text)
        self.note.setVisible(True)
        self.message.emit(text)

    def _open_folder(self) -> None:
        if self.hit is None:
            return
        folder = os.path.dirname(self.hit.path)
        if QDesktopServices.openUrl(QUrl.fromLocalFile(folder)):
            self.note.setVisible(False)
            return
        self._say(f"No file manager could be opened for {folder} (none is set up here). "
                  "“Copy path” puts the photo's path on the clipboard instead.")
        self.copy_path.setFocus()

    def _copy_path(self) -> None:
        if self.hit is not None:
            QGuiApplication.clipboard().setText(self.hit.path)
            self._say(f"Copied {self.hit.path}")
