"""The filter bar, headless: set_filter/filter round trip, each menu action (dialogs stood in for) setting its
part, a folder outside the collection refused, a chip's ✕ (mouse, Space, Enter) removing only its part,
Clear Filters, and no ``changed`` for an equal filter."""
from __future__ import annotations

import datetime as dt
import os

import pytest
from PySide6.QtCore import QDate, Qt
from PySide6.QtWidgets import QApplication, QDialogButtonBox

from app.filterbar import DateRangeDialog, FilterBar, chip_text, next_midnight
from engine.filters import PhotoFilter


def midnight(y: int, m: int, d: int) -> float:
    return dt.datetime(y, m, d).timestamp()


@pytest.fixture
def roots(tmp_path):
    photos = tmp_path / "photos"
    (photos / "Holidays" / "2019" / "Beach").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    return photos


@pytest.fixture
def bar(qtbot, roots):
    b = FilterBar()
    qtbot.addWidget(b)
    b.set_roots([str(roots)])
    return b


def record(bar) -> list:
    seen = []
    bar.changed.connect(seen.append)
    return seen


def full(roots) -> PhotoFilter:
    return PhotoFilter(under=str(roots / "Holidays" / "2019"), after=midnight(2019, 6, 1),
                       before=midnight(2019, 9, 1), min_side=1000)


def test_set_filter_round_trip_and_chips(bar, roots):
    seen = record(bar)
    f = full(roots)
    bar.set_filter(f)
    assert bar.filter() == f
    assert seen == [f]
    assert [c.part for c in bar.chips()] == ["under", "dates", "min_side"]
    assert [c.text() for c in bar.chips()] == [f"in Holidays{os.sep}2019", "2019-06-01 – 2019-08-31", "≥ 1000 px"]
    assert not bar.chips_area.isHidden()
    assert bar.chips()[0].toolTip().endswith(os.path.realpath(roots / "Holidays" / "2019"))
    bar.set_filter(PhotoFilter())
    assert bar.filter() == PhotoFilter() and bar.chips() == [] and bar.chips_area.isHidden()
    assert seen == [f, PhotoFilter()]


def test_changed_not_emitted_for_equal_values(bar, roots):
    seen = record(bar)
    bar.set_filter(PhotoFilter())
    bar.clear()
    assert seen == []
    bar.set_filter(PhotoFilter(min_side=500))
    bar.set_filter(PhotoFilter(min_side=500))  # a new object, equal
    assert seen == [PhotoFilter(min_side=500)]


def test_folder_inside_the_roots_is_accepted(bar, roots, monkeypatch):
    asked = []
    target = roots / "Holidays" / "2019" / "Beach"
    monkeypatch.setattr(bar, "_ask_folder", lambda start: asked.append(start) or str(target))
    seen, messages = record(bar), []
    bar.message.connect(messages.append)
    bar.folder_action.trigger()
    assert asked == [str(roots)]  # starts at the first root
    assert bar.filter() == PhotoFilter(under=str(target))
    assert seen == [bar.filter()] and messages == []
    assert bar.chips()[0].text() == f"in …{os.sep}2019{os.sep}Beach"  # the last two parts
    assert str(os.path.realpath(target)) in bar.chips()[0].toolTip()


def test_folder_outside_the_roots_is_refused(bar, roots, monkeypatch):
    bar.set_filter(PhotoFilter(min_side=300))
    outside = roots.parent / "elsewhere"
    monkeypatch.setattr(bar, "_ask_folder", lambda start: str(outside))
    seen, messages = record(bar), []
    bar.message.connect(messages.append)
    bar.folder_action.trigger()
    assert bar.filter() == PhotoFilter(min_side=300)
    assert seen == []
    assert len(messages) == 1 and "\n" not in messages[0] and str(outside) in messages[0]


def test_folder_cancelled_changes_nothing_and_no_roots_turns_it_off(bar, monkeypatch):
    monkeypatch.setattr(bar, "_ask_folder", lambda start: "")
    seen = record(bar)
    bar.folder_action.trigger()
    assert seen == [] and bar.filter() == PhotoFilter()
    bar.set_roots([])
    assert not bar.folder_action.isEnabled()


def test_new_roots_drop_a_folder_outside_them(bar, roots):
    bar.set_filter(PhotoFilter(under=str(roots / "Holidays"), min_side=10))
    seen = record(bar)
    bar.set_roots([str(roots.parent / "elsewhere")])
    assert seen == [PhotoFilter(min_side=10)]


def test_date_range_inclusive_end_is_next_local_midnight(bar, monkeypatch):
    got = (midnight(2019, 6, 1), next_midnight(dt.date(2019, 8, 31)))
    monkeypatch.setattr(bar, "_ask_dates", lambda after, before: got)
    seen = record(bar)
    bar.dates_action.trigger()
    f = bar.filter()
    assert f.after == midnight(2019, 6, 1)
    assert f.before == midnight(2019, 9, 1)
    assert dt.datetime.fromtimestamp(f.before) == dt.datetime(2019, 9, 1, 0, 0)
    assert seen == [f]
    assert [c.text() for c in bar.chips()] == ["2019-06-01 – 2019-08-31"]


def test_date_dialog_gives_next_midnight_and_refuses_from_after_to(qtbot):
    d = DateRangeDialog()
    qtbot.addWidget(d)
    ok = d.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert d.from_edit.calendarPopup() and d.to_edit.calendarPopup()
    d.from_check.setChecked(True)
    d.to_check.setChecked(True)
    d.from_edit.setDate(QDate(2019, 6, 1))
    d.to_edit.setDate(QDate(2019, 8, 31))
    assert ok.isEnabled()
    assert d.range() == (midnight(2019, 6, 1), midnight(2019, 9, 1))
    d.to_edit.setDate(QDate(2019, 5, 31))  # From after To
    assert not ok.isEnabled() and d.problem()
    d.accept()
    assert d.result() != DateRangeDialog.DialogCode.Accepted
    d.to_check.setChecked(False)  # only From
    assert ok.isEnabled() and not d.to_edit.isEnabled()
    assert d.range() == (midnight(2019, 6, 1), None)
    d.from_edit.setDate(QDate(2019, 8, 31))
    d.to_check.setChecked(True)
    d.to_edit.setDate(QDate(2019, 8, 31))  # one day
    assert ok.isEnabled() and d.range() == (midnight(2019, 8, 31), midnight(2019, 9, 1))


def test_date_dialog_shows_the_filter_held(qtbot):
    d = DateRangeDialog(midnight(2019, 6, 1), midnight(2019, 9, 1))
    qtbot.addWidget(d)
    assert d.from_check.isChecked() and d.to_check.isChecked()
    assert d.from_edit.date() == QDate(2019, 6, 1) and d.to_edit.date() == QDate(2019, 8, 31)
    d = DateRangeDialog(None, midnight(2019, 9, 1))
    qtbot.addWidget(d)
    assert not d.from_check.isChecked() and d.to_check.isChecked()


def test_only_one_date_end(bar, monkeypatch):
    monkeypatch.setattr(bar, "_ask_dates", lambda after, before: (None, midnight(2020, 1, 1)))
    bar.dates_action.trigger()
    assert bar.filter() == PhotoFilter(before=midnight(2020, 1, 1))
    assert bar.chips()[0].text() == "until 2019-12-31"
    assert chip_text(PhotoFilter(after=midnight(2020, 1, 1)), "dates") == "from 2020-01-01"


def test_minimum_size(bar, monkeypatch):
    asked = []
    monkeypatch.setattr(bar, "_ask_min_side", lambda current: asked.append(current) or 1200)
    seen = record(bar)
    bar.size_action.trigger()
    assert bar.filter() == PhotoFilter(min_side=1200) and seen == [bar.filter()]
    assert asked == [None]
    bar.size_action.trigger()  # the same value again: nothing changes
    assert asked == [None, 1200] and len(seen) == 1
    monkeypatch.setattr(bar, "_ask_min_side", lambda current: None)  # cancelled
    bar.size_action.trigger()
    assert bar.filter() == PhotoFilter(min_side=1200)


def test_chip_close_removes_only_its_part(qtbot, bar, roots):
    f = full(roots)
    bar.set_filter(f)
    seen = record(bar)
    dates = next(c for c in bar.chips() if c.part == "dates")
    qtbot.mouseClick(dates.close_button, Qt.MouseButton.LeftButton)
    expected = PhotoFilter(under=f.under, min_side=1000)
    assert bar.filter() == expected and seen == [expected]
    assert [c.part for c in bar.chips()] == ["under", "min_side"]


@pytest.mark.parametrize("key", [Qt.Key.Key_Space, Qt.Key.Key_Return, Qt.Key.Key_Enter])
def test_chip_close_by_keyboard(qtbot, bar, roots, key):
    bar.set_filter(full(roots))
    seen = record(bar)
    chip = next(c for c in bar.chips() if c.part == "min_side")
    assert chip.close_button.focusPolicy() & Qt.FocusPolicy.TabFocus
    qtbot.keyClick(chip.close_button, key)
    qtbot.waitUntil(lambda: len(seen) == 1, timeout=2000)
    assert bar.filter() == PhotoFilter(under=full(roots).under, after=full(roots).after, before=full(roots).before)


def test_tab_reaches_the_filter_button_then_the_chips(qtbot, bar, roots):
    bar.set_filter(full(roots))
    bar.show()
    qtbot.waitExposed(bar)
    bar.activateWindow()
    bar.filter_button.setFocus(Qt.FocusReason.TabFocusReason)
    qtbot.waitUntil(bar.filter_button.hasFocus, timeout=2000)
    reached = []
    for _ in range(3):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        reached.append(QApplication.focusWidget())
    assert reached == [c.close_button for c in bar.chips()]
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Space)  # the last chip's ✕
    qtbot.waitUntil(lambda: bar.filter().min_side is None, timeout=2000)
    assert [c.part for c in bar.chips()] == ["under", "dates"]
    assert QApplication.focusWidget() in (bar.filter_button, *(c.close_button for c in bar.chips()))


def test_clear_filters(bar, roots):
    bar.set_filter(full(roots))
    assert bar.clear_action.isEnabled()
    seen = record(bar)
    bar.clear_action.trigger()
    assert bar.filter() == PhotoFilter() and seen == [PhotoFilter()]
    assert bar.chips() == [] and not bar.clear_action.isEnabled()
    bar.clear_action.trigger()
    assert seen == [PhotoFilter()]


def test_menu_and_one_line(qtbot, bar, roots):
    assert [a.text() for a in bar.menu.actions() if not a.isSeparator()] == \
        ["Folder…", "Date Range…", "Minimum Size…", "Clear Filters"]
    bar.show()
    qtbot.waitExposed(bar)
    empty = bar.sizeHint().height()
    bar.set_filter(full(roots))
    qtbot.wait(10)
    assert bar.sizeHint().height() <= empty + 8  # chips fit the line
    assert bar.sizePolicy().verticalPolicy() == bar.sizePolicy().Policy.Fixed
