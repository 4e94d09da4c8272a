"""The detail panel of the selected result: the photo with its box (and the sketch drawn over it at the
matched place, size and mirror), the polar plot of similarity versus rotation, the path and scores."""
from __future__ import annotations

import os

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, QUrl, Signal
from PySide6.QtGui import QColor, QDesktopServices, QImage, QPainter, QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from .results import draw_box, load_preview
from .workers import Runner, Task

PREVIEW = 1024  # px, longer side of the photo shown


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


class PhotoView(QWidget):
    """A photo fitted to the widget, with the hit's box and, optionally, the sketch inside the box."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.image: QImage | None = None
        self.original_size = (0, 0)
        self.box = None
        self.overlay: QImage | None = None
        self.show_overlay = True
        self.message = "Select a result"
        self.setMinimumSize(200, 150)
        policy = QSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)

    def hasHeightForWidth(self) -> bool:  # noqa: N802 (Qt)
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802 (Qt)
        if self.image is None or self.image.isNull():
            return max(150, width * 3 // 4)
        return max(150, min(width * self.image.height() // self.image.width(), 2 * width))

    def set_photo(self, image: QImage | None, original_size, box, overlay: QImage | None, message: str = "") -> None:
        self.image, self.original_size, self.box, self.overlay = image, original_size, box, overlay
        self.message = message
        self.updateGeometry()  # the height follows the photo's aspect
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
            rect = draw_box(p, target, self.box, self.original_size, width=3)
            if self.show_overlay and self.overlay is not None:
                p.setOpacity(0.9)
                p.drawImage(rect, self.overlay)


class RotationPlot(QWidget):
    """Polar plot of similarity versus rotation (QtCharts QPolarChart), best angle marked."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        from PySide6.QtCharts import QChart, QChartView, QPolarChart, QScatterSeries, QSplineSeries, QValueAxis

        self.chart = QPolarChart()
        self.chart.legend().hide()
        self.chart.setBackgroundRoundness(0)
        self.chart.setMargins(self.chart.margins() * 0)
        self.curve = QSplineSeries()
        self.best = QScatterSeries()
        self.best.setMarkerSize(10)
        self.best.setColor(QColor(255, 64, 32))
        self.chart.addSeries(self.curve)
        self.chart.addSeries(self.best)
        self.angle_axis = QValueAxis()
        self.angle_axis.setRange(0, 360)
        self.angle_axis.setTickCount(9)
        self.angle_axis.setLabelFormat("%d")  # degrees (a degree sign in the format is mis-decoded)
        self.radial_axis = QValueAxis()
        self.radial_axis.setRange(0, 1)
        self.radial_axis.setTickCount(3)
        self.radial_axis.setLabelFormat("%.1f")
        self.chart.addAxis(self.angle_axis, QPolarChart.PolarOrientation.PolarOrientationAngular)
        self.chart.addAxis(self.radial_axis, QPolarChart.PolarOrientation.PolarOrientationRadial)
        for s in (self.curve, self.best):
            s.attachAxis(self.angle_axis)
            s.attachAxis(self.radial_axis)
        self.chart.setTheme(QChart.ChartTheme.ChartThemeDark if _dark(self.palette())
                            else QChart.ChartTheme.ChartThemeLight)
        self.chart.setBackgroundVisible(False)
        self.best.setColor(QColor(255, 64, 32))  # after the theme, which recolours the series
        self.view = QChartView(self.chart)
        self.view.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.view.setMinimumSize(220, 240)
        self.caption = QLabel()
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.caption.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.caption)
        self.best_angle: float | None = None
        self.set_curve(None)

    def set_curve(self, curve) -> None:
        """``curve``: an object with ``angles`` (degrees), ``similarities`` and ``best_angle``; None: none."""
        self.curve.clear()
        self.best.clear()
        if curve is None:
            self.best_angle = None
            self.view.setVisible(False)
            self.caption.setText("Similarity versus rotation: computing…")
            return
        angles = np.asarray(curve.angles, float) % 360
        sims = np.asarray(curve.similarities, float)
        order = np.argsort(angles)
        angles, sims = angles[order], sims[order]
        top = max(float(sims.max()), 1e-6)
        lo = min(0.0, float(sims.min()))
        self.radial_axis.setRange(lo, top * 1.05)
        pts = [QPointF(a, s) for a, s in zip(angles, sims, strict=True)]
        pts.append(QPointF(360.0, float(sims[0])))  # close the loop
        self.curve.replace(pts)
        self.best_angle = float(curve.best_angle) % 360
        self.best.append(self.best_angle, float(np.interp(self.best_angle, angles, sims, period=360)))
        self.view.setVisible(True)
        turn = self.best_angle if self.best_angle <= 180 else self.best_angle - 360
        self.caption.setText(f"Similarity versus rotation of the query · best {turn:+.0f}°"
                             + (" (mirrored)" if getattr(curve, "mirrored", False) else ""))


def _dark(pal: QPalette) -> bool:
    return pal.color(QPalette.ColorRole.Window).lightness() < 128


class DetailPanel(QWidget):
    """Everything about one result; ``searchWithImage(path)`` asks for an image query from it."""

    searchWithImage = Signal(str)

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
        self.path.setWordWrap(True)
        self.path.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.scores = QLabel()
        self.open_folder = QPushButton("Open containing folder")
        self.open_folder.clicked.connect(self._open_folder)
        self.search_with = QPushButton("Search with this photo")
        self.search_with.clicked.connect(lambda: self.hit and self.searchWithImage.emit(self.hit.path))
        self.rotation = RotationPlot()
        for label in (self.title, self.path, self.scores):  # long texts must not widen the panel
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            label.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_folder)
        buttons.addWidget(self.search_with)
        lay = QVBoxLayout(self)
        lay.addWidget(self.photo, 0)
        lay.addWidget(self.overlay_box)
        lay.addWidget(self.title)
        lay.addWidget(self.path)
        lay.addWidget(self.scores)
        lay.addLayout(buttons)
        lay.addWidget(self.rotation, 0)
        lay.addStretch(1)
        self.show_hit(None)

    def show_hit(self, hit, *, kind: str = "sketch", sketch: np.ndarray | None = None, curve=None) -> None:
        """Show a result (None: nothing selected); ``sketch`` is the query drawing for the overlay."""
        self.hit, self.kind, self.sketch = hit, kind, sketch
        self._token += 1
        for w in (self.open_folder, self.search_with, self.overlay_box):
            w.setEnabled(hit is not None)
        self.overlay_box.setVisible(kind == "sketch")
        if hit is None:
            self.title.setText("")
            self.path.setText("")
            self.scores.setText("")
            self.photo.set_photo(None, (0, 0), None, None, "Select a result to see it here")
            self.rotation.set_curve(None)
            self.rotation.caption.setText("")
            return
        self.title.setText(os.path.basename(hit.path))
        self.path.setText(hit.path)
        if kind == "sketch":
            x0, y0, x1, y1 = hit.box
            shape = f" (shape match {hit.raw_score:.2f})" if hit.raw_score is not None else ""
            self.scores.setText(f"score {hit.score:.3f}{shape} · box {x1 - x0:.0f}×{y1 - y0:.0f} at ({x0:.0f}, "
                                f"{y0:.0f}) · sketch at {hit.scale:.0%} of the photo"
                                + (" · mirrored" if hit.mirrored else ""))
        else:
            self.scores.setText(f"similarity {hit.score:.3f}")
        self.rotation.set_curve(curve)
        self.photo.set_photo(None, (0, 0), None, None, "Loading…")
        token = self._token
        self.runner.start(Task(load_preview, hit.path, PREVIEW),
                          on_done=lambda res, _s: self._loaded(token, res),
                          on_error=lambda msg: token == self._token and self.photo.set_photo(None, (0, 0), None,
                                                                                              None, msg))

    def _loaded(self, token: int, res) -> None:
        if token != self._token or self.hit is None:
            return  # another result was selected meanwhile
        image, size = res
        overlay = None
        box = self.hit.box if self.kind == "sketch" else None
        if self.kind == "sketch" and self.sketch is not None:
            overlay = ink_overlay(self.sketch, mirrored=self.hit.mirrored)
        self.photo.show_overlay = self.overlay_box.isChecked()
        self.photo.set_photo(image, size, box, overlay)

    def _toggle_overlay(self, on: bool) -> None:
        self.photo.show_overlay = on
        self.photo.update()

    def _open_folder(self) -> None:
        if self.hit is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(os.path.dirname(self.hit.path)))

