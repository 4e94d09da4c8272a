"""The filter bar above the results grid: a "Filter" button whose menu sets a folder, a date range or a minimum
size, and one chip per active part of the filter (its ✕ removes that part).

The bar holds an ``engine.filters.PhotoFilter``; ``changed(PhotoFilter)`` is emitted whenever it changes and
``message(str)`` carries a one-line refusal (a folder outside the collection).  Every dialog is opened through a
method of its own (``_ask_folder``, ``_ask_dates``, ``_ask_min_side``) so tests can stand in for the person.
"""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import replace

from PySide6.QtCore import QDate, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QKeyEvent, QPainter, QPalette, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QDateEdit,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMenu,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.filters import PhotoFilter

__all__ = ["FilterBar", "FilterChip", "DateRangeDialog", "PARTS", "chip_text", "chip_tooltip", "inside",
           "next_midnight", "day_start"]

PARTS = ("under", "dates", "min_side")  # one chip each, in this order; "dates" is after and before together
MIN_SIDE_MAX = 100_000
CHIP_TEXT_PX = 260  # a chip's text is elided beyond this width (the tooltip has all of it)
FIRST_DAY = QDate(1900, 1, 1)
LAST_DAY = QDate(2100, 12, 31)


# --- dates -----------------------------------------------------------------------------------------------------

def day_start(day: _dt.date) -> float:
    """Local midnight at the start of ``day``, in seconds since the epoch."""
    return _dt.datetime.combine(day, _dt.time()).timestamp()


def next_midnight(day: _dt.date) -> float:
    """Local midnight at the end of ``day`` (the start of the next day): an inclusive last day as an exclusive
    ``before``."""
    return day_start(day + _dt.timedelta(days=1))


def _is_midnight(t: float) -> bool:
    d = _dt.datetime.fromtimestamp(t)
    return (d.hour, d.minute, d.second, d.microsecond) == (0, 0, 0, 0)


def _first_day(after: float) -> str:
    d = _dt.datetime.fromtimestamp(after)
    return f"{d:%Y-%m-%d}" if _is_midnight(after) else f"{d:%Y-%m-%d %H:%M}"


def _last_day(before: float) -> _dt.date | None:
    """The last day inside an exclusive ``before`` that falls at midnight (None when it does not)."""
    if not _is_midnight(before):
        return None
    return (_dt.datetime.fromtimestamp(before) - _dt.timedelta(days=1)).date()


def _date_words(after: float | None, before: float | None) -> str:
    last = _last_day(before) if before is not None else None
    end = f"{last:%Y-%m-%d}" if last is not None else None
    if before is not None and end is None:
        end = f"before {_dt.datetime.fromtimestamp(before):%Y-%m-%d %H:%M}"
    if after is not None and before is not None:
        return f"{_first_day(after)} – {end}"
    if after is not None:
        return f"from {_first_day(after)}"
    return end if end.startswith("before") else f"until {end}"


# --- folders ---------------------------------------------------------------------------------------------------

def _real(path: str) -> str:
    return os.path.realpath(os.path.expanduser(str(path)))


def inside(folder: str, roots: list[str]) -> str | None:
    """The root (of ``roots``) that ``folder`` is in or is, links resolved; None when it is in none."""
    f = _real(folder)
    for root in roots:
        r = _real(root)
        if f == r or f.startswith(r.rstrip(os.sep) + os.sep):
            return root
    return None


def _short_folder(under: str, roots: list[str]) -> str:
    """A folder in few words: its path under its root when that is at most two parts, else its last two parts
    (the root's own name when it is a root)."""
    root = inside(under, roots)
    if root is not None:
        rel = os.path.relpath(under, _real(root))
        if rel == os.curdir:
            return os.path.basename(under.rstrip(os.sep)) or under
        if len(rel.split(os.sep)) <= 2:
            return rel
    parts = [p for p in under.split(os.sep) if p]
    if len(parts) <= 2:
        return under
    return "…" + os.sep + os.sep.join(parts[-2:])


# --- chips' words ----------------------------------------------------------------------------------------------

def chip_text(f: PhotoFilter, part: str, roots: list[str] | None = None) -> str:
    """A chip's (short) words for ``part`` of ``f``: "in Holidays/2019", "2019-06-01 – 2019-08-31", "≥ 1000 px"."""
    if part == "under":
        return f"in {_short_folder(f.under, roots or [])}"
    if part == "dates":
        return _date_words(f.after, f.before)
    if part == "min_side":
        return f"≥ {f.min_side} px"
    raise ValueError(f"no filter part {part!r}")


def chip_tooltip(f: PhotoFilter, part: str) -> str:
    """A chip's whole words (its tooltip)."""
    if part == "under":
        return f"Only photos in {f.under}"
    if part == "dates":
        words = _date_words(f.after, f.before)
        if f.after is not None and f.before is not None and _last_day(f.before) is not None:
            return f"Only photos taken from {words.replace(' – ', ' to ')} (both days included)"
        return f"Only photos taken {words}"
    if part == "min_side":
        return f"Only photos whose shorter side is at least {f.min_side} px"
    raise ValueError(f"no filter part {part!r}")


def _active_parts(f: PhotoFilter) -> list[str]:
    out = []
    if f.under is not None:
        out.append("under")
    if f.after is not None or f.before is not None:
        out.append("dates")
    if f.min_side is not None:
        out.append("min_side")
    return out


def _without(f: PhotoFilter, part: str) -> PhotoFilter:
    if part == "under":
        return replace(f, under=None)
    if part == "dates":
        return replace(f, after=None, before=None)
    if part == "min_side":
        return replace(f, min_side=None)
    raise ValueError(f"no filter part {part!r}")


# --- widgets ---------------------------------------------------------------------------------------------------

class _CloseButton(QToolButton):
    """A chip's ✕: reached by Tab, pressed with Space (as any button) or Enter/Return."""

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not event.isAutoRepeat():
            self.animateClick()
            event.accept()
            return
        super().keyPressEvent(event)


class FilterChip(QFrame):
    """One active part of the filter: its words (elided; the tooltip has all of them) and a ✕ that removes it
    (``removeRequested(part)``).  Drawn with the palette's colours, so it reads in light and dark schemes."""

    removeRequested = Signal(str)

    def __init__(self, part: str, text: str, tooltip: str, parent=None) -> None:
        super().__init__(parent)
        self.part = part
        self.full_text = text
        self.setToolTip(tooltip)
        self.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 0, 2, 0)
        lay.setSpacing(2)
        self.label = QLabel()
        self.label.setText(self.fontMetrics().elidedText(text, Qt.TextElideMode.ElideMiddle, CHIP_TEXT_PX))
        self.label.setToolTip(tooltip)
        lay.addWidget(self.label)
        self.close_button = _CloseButton()
        self.close_button.setText("✕")
        self.close_button.setAutoRaise(True)
        self.close_button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.close_button.setToolTip(f"Remove this filter ({text})")
        self.close_button.setAccessibleName(f"Remove filter {text}")
        self.close_button.clicked.connect(lambda: self.removeRequested.emit(self.part))
        lay.addWidget(self.close_button)

    def text(self) -> str:
        """The chip's whole words (before eliding)."""
        return self.full_text

    def paintEvent(self, event) -> None:
        pal = self.palette()
        base = pal.color(QPalette.ColorRole.Window)
        tint = pal.color(QPalette.ColorRole.Highlight)
        fill = QColor(*(round(0.78 * a + 0.22 * b) for a, b in zip(base.getRgb()[:3], tint.getRgb()[:3],
                                                                     strict=True)))
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(QPen(pal.color(QPalette.ColorRole.Mid), 1))
        p.setBrush(fill)
        r = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        radius = r.height() / 2
        p.drawRoundedRect(r, radius, radius)
        p.end()


class DateRangeDialog(QDialog):
    """Two dates, each on or off: "From" (its first day included) and "To (inclusive)".  From after To is
    refused (OK stays off and says why).  ``range()`` gives ``(after, before)`` in seconds, ``before`` being the
    midnight that ends the To day; None for a date that is off."""

    def __init__(self, after: float | None = None, before: float | None = None, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Date Range")
        today = QDate.currentDate()
        lay = QVBoxLayout(self)
        grid = QGridLayout()
        self.from_check = QCheckBox("From")
        self.to_check = QCheckBox("To (inclusive)")
        self.from_edit, self.to_edit = self._date_edit(), self._date_edit()
        self.from_check.setToolTip("Only photos taken on or after this day")
        self.to_check.setToolTip("Only photos taken on or before this day")
        first = _dt.datetime.fromtimestamp(after).date() if after is not None else None
        last = (_last_day(before) or _dt.datetime.fromtimestamp(before).date()) if before is not None else None
        none = after is None and before is None
        self.from_edit.setDate(QDate(first.year, first.month, first.day) if first else today.addMonths(-1))
        self.to_edit.setDate(QDate(last.year, last.month, last.day) if last else today)
        self.from_check.setChecked(first is not None or none)
        self.to_check.setChecked(last is not None or none)
        grid.addWidget(self.from_check, 0, 0)
        grid.addWidget(self.from_edit, 0, 1)
        grid.addWidget(self.to_check, 1, 0)
        grid.addWidget(self.to_edit, 1, 1)
        lay.addLayout(grid)
        self.error = QLabel()
        self.error.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        lay.addWidget(self.error)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)
        for w in (self.from_check, self.to_check):
            w.toggled.connect(self._update)
        for e in (self.from_edit, self.to_edit):
            e.dateChanged.connect(self._update)
        self._update()

    @staticmethod
    def _date_edit() -> QDateEdit:
        e = QDateEdit()
        e.setCalendarPopup(True)
        e.setDisplayFormat("yyyy-MM-dd")
        e.setDateRange(FIRST_DAY, LAST_DAY)
        return e

    def problem(self) -> str | None:
        """Why the dates cannot be taken (None when they can)."""
        if self.from_check.isChecked() and self.to_check.isChecked() and self.from_edit.date() > self.to_edit.date():
            return "The From day is after the To day."
        return None

    def _update(self) -> None:
        self.from_edit.setEnabled(self.from_check.isChecked())
        self.to_edit.setEnabled(self.to_check.isChecked())
        why = self.problem()
        self.error.setText(why or "")
        self.error.setVisible(why is not None)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(why is None)

    def accept(self) -> None:
        if self.problem() is None:
            super().accept()

    def range(self) -> tuple[float | None, float | None]:
        after = day_start(self.from_edit.date().toPython()) if self.from_check.isChecked() else None
        before = next_midnight(self.to_edit.date().toPython()) if self.to_check.isChecked() else None
        return after, before


class FilterBar(QWidget):
    """A one-line bar: the "Filter" button (menu: Folder…, Date Range…, Minimum Size…, Clear Filters) and a chip
    per active part of the filter.

    ``changed(PhotoFilter)``: the filter changed (never for a value equal to the one held).
    ``message(str)``: a one-line note for the person (a refused folder)."""

    changed = Signal(object)
    message = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._filter = PhotoFilter()
        self._roots: list[str] = []
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 2, 4, 2)
        lay.setSpacing(6)

        self.menu = QMenu(self)
        self.folder_action = self.menu.addAction("Folder…", self.choose_folder)
        self.dates_action = self.menu.addAction("Date Range…", self.choose_dates)
        self.size_action = self.menu.addAction("Minimum Size…", self.choose_min_side)
        self.menu.addSeparator()
        self.clear_action = self.menu.addAction("Clear Filters", self.clear)
        self.folder_action.setToolTip("Only photos in a folder of the collection")
        self.dates_action.setToolTip("Only photos taken between two days")
        self.size_action.setToolTip("Only photos whose shorter side has at least so many pixels")
        self.menu.setToolTipsVisible(True)

        self.filter_button = QToolButton()
        self.filter_button.setText("Filter")
        self.filter_button.setToolTip("Narrow the results to a folder, a date range or a minimum size")
        self.filter_button.setMenu(self.menu)
        self.filter_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.filter_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.filter_button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.filter_button.setAutoRaise(True)
        lay.addWidget(self.filter_button)

        self.chips_area = QWidget()
        self._chips_layout = QHBoxLayout(self.chips_area)
        self._chips_layout.setContentsMargins(0, 0, 0, 0)
        self._chips_layout.setSpacing(6)
        lay.addWidget(self.chips_area)
        lay.addStretch(1)
        self._chips: list[FilterChip] = []
        self._refresh()

    # --- the filter ----------------------------------------------------------------------------------------

    def filter(self) -> PhotoFilter:
        return self._filter

    def set_filter(self, f: PhotoFilter | None) -> None:
        """Hold ``f`` (None: no filter); ``changed`` is emitted only when it differs from the filter held."""
        f = f if f is not None else PhotoFilter()
        if f == self._filter:
            return
        self._filter = f
        self._refresh()
        self.changed.emit(f)

    def clear(self) -> None:
        self.set_filter(PhotoFilter())

    def remove(self, part: str) -> None:
        """Drop one part: "under", "dates" (after and before) or "min_side"."""
        self.set_filter(_without(self._filter, part))

    def chips(self) -> list[FilterChip]:
        return list(self._chips)

    # --- the collection's folders ---------------------------------------------------------------------------

    def roots(self) -> list[str]:
        return list(self._roots)

    def set_roots(self, folders: list[str]) -> None:
        """The collection's indexed folders.  "Folder…" accepts only folders inside them (and is off while there
        are none); a folder part outside new (non-empty) roots is dropped."""
        self._roots = [str(f) for f in folders]
        if self._roots and self._filter.under is not None and inside(self._filter.under, self._roots) is None:
            self.remove("under")
        else:
            self._refresh()

    # --- menu actions ---------------------------------------------------------------------------------------

    def choose_folder(self) -> None:
        if not self._roots:
            return
        start = self._filter.under or self._roots[0]
        chosen = self._ask_folder(start)
        if not chosen:
            return
        if inside(chosen, self._roots) is None:
            where = self._roots[0] if len(self._roots) == 1 else "the collection's folders"
            self.message.emit(f"{chosen} is not in this collection; choose a folder inside {where}.")
            return
        self.set_filter(replace(self._filter, under=chosen))

    def choose_dates(self) -> None:
        got = self._ask_dates(self._filter.after, self._filter.before)
        if got is None:
            return
        after, before = got
        self.set_filter(replace(self._filter, after=after, before=before))

    def choose_min_side(self) -> None:
        got = self._ask_min_side(self._filter.min_side)
        if got is None:
            return
        self.set_filter(replace(self._filter, min_side=int(got)))

    # --- dialogs (tests stand in for these) ----------------------------------------------------------------

    def _ask_folder(self, start: str) -> str:
        """A folder chosen by the person ("" when cancelled)."""
        return QFileDialog.getExistingDirectory(self, "Only photos in folder", start)

    def _ask_dates(self, after: float | None, before: float | None) -> tuple[float | None, float | None] | None:
        """``(after, before)`` chosen by the person (None when cancelled)."""
        d = DateRangeDialog(after, before, self)
        try:
            return d.range() if d.exec() == QDialog.DialogCode.Accepted else None
        finally:
            d.deleteLater()

    def _ask_min_side(self, current: int | None) -> int | None:
        """A minimum shorter side in pixels chosen by the person (None when cancelled)."""
        value, ok = QInputDialog.getInt(self, "Minimum Size", "Shorter side at least (px):",
                                        current or 1000, 1, MIN_SIDE_MAX, 100)
        return int(value) if ok else None

    # --- showing -------------------------------------------------------------------------------------------

    def _refresh(self) -> None:
        f = self._filter
        had_focus = any(chip.close_button.hasFocus() for chip in self._chips)
        for chip in self._chips:
            self._chips_layout.removeWidget(chip)
            chip.hide()
            chip.deleteLater()
        self._chips = []
        previous = self.filter_button
        for part in _active_parts(f):
            chip = FilterChip(part, chip_text(f, part, self._roots), chip_tooltip(f, part))
            chip.removeRequested.connect(self.remove)
            self._chips_layout.addWidget(chip)
            QWidget.setTabOrder(previous, chip.close_button)
            previous = chip.close_button
            self._chips.append(chip)
        self.chips_area.setVisible(bool(self._chips))
        self.clear_action.setEnabled(f.active)
        self.folder_action.setEnabled(bool(self._roots))
        self.folder_action.setToolTip("Only photos in a folder of the collection" if self._roots
                                      else "Open a collection to filter by folder")
        if had_focus:  # the ✕ pressed is gone: focus stays in the bar
            (self._chips[0].close_button if self._chips else self.filter_button).setFocus(
                Qt.FocusReason.OtherFocusReason)
