"""The first-run welcome panel and the About text."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QLabel, QPushButton

from app.welcome import WelcomePanel, about_text, app_version


@pytest.fixture
def panel(qtbot):
    w = WelcomePanel()
    qtbot.addWidget(w)
    w.resize(800, 600)
    w.show()
    qtbot.waitExposed(w)
    w.activateWindow()
    return w


def test_it_says_what_the_app_does_and_offers_two_ways_in(panel):
    texts = [label.text() for label in panel.findChildren(QLabel)]
    assert "Find photos by drawing them" in texts
    buttons = {b.text() for b in panel.findChildren(QPushButton)}
    assert buttons == {"&Add a photo folder…", "&Try the demo collection"}


def test_the_buttons_emit_their_signals_when_clicked(qtbot, panel):
    with qtbot.waitSignal(panel.addFolder):
        qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(panel.tryDemo):
        qtbot.mouseClick(panel.demo_button, Qt.MouseButton.LeftButton)


def test_the_buttons_are_reached_by_tab_and_pressed_by_enter_space_and_mnemonics(qtbot, panel):
    panel.setFocus()
    assert panel.add_button.hasFocus()
    with qtbot.waitSignal(panel.addFolder):
        qtbot.keyClick(panel.add_button, Qt.Key.Key_Return)
    qtbot.keyClick(panel.add_button, Qt.Key.Key_Tab)
    assert panel.demo_button.hasFocus()
    with qtbot.waitSignal(panel.tryDemo):
        qtbot.keyClick(panel.demo_button, Qt.Key.Key_Enter)
    with qtbot.waitSignal(panel.tryDemo):
        qtbot.keyClick(panel.demo_button, Qt.Key.Key_Space)
    with qtbot.waitSignal(panel.addFolder):
        qtbot.keyClick(panel, Qt.Key.Key_A, Qt.KeyboardModifier.AltModifier)
    with qtbot.waitSignal(panel.tryDemo):
        qtbot.keyClick(panel, Qt.Key.Key_T, Qt.KeyboardModifier.AltModifier)


def _parts(panel):
    return [panel.title, panel.text, panel.next, panel.add_button, panel.demo_button]


@pytest.mark.parametrize("size", [(400, 300), (1200, 800)])
def test_nothing_is_cut_off_at_400x300_and_up(qtbot, panel, size):
    panel.resize(*size)
    qtbot.wait(10)
    assert not panel.scroll.verticalScrollBar().isVisible()
    assert not panel.scroll.horizontalScrollBar().isVisible()
    inside = panel.rect()
    for w in _parts(panel):
        r = QRect(w.mapTo(panel, w.rect().topLeft()), w.size())
        assert inside.contains(r), (w, r, inside)
    _laid_out_right(panel)
    a, d = panel.add_button.geometry(), panel.demo_button.geometry()
    assert a.top() == d.top()  # side by side where they fit
    if size[0] >= 1000:
        assert panel.text.width() <= 600  # lines of a readable length


@pytest.mark.parametrize("size", [(320, 260), (240, 200), (160, 120)])
def test_smaller_panels_stack_the_buttons_and_scroll_rather_than_squeeze(qtbot, panel, size):
    panel.resize(*size)
    qtbot.wait(10)
    fits = size[0] >= 240  # narrower than a button: it scrolls sideways too
    assert panel.scroll.horizontalScrollBar().isVisible() is not fits
    _laid_out_right(panel, within=fits)
    assert panel.demo_button.geometry().top() > panel.add_button.geometry().bottom()


def _laid_out_right(panel, within: bool = True):
    """Every part as big as it needs (wrapped text whole, buttons their size), none over another."""
    parts = _parts(panel)
    for w in parts:
        if isinstance(w, QPushButton):
            assert w.width() >= w.sizeHint().width() and w.height() >= w.sizeHint().height()
        else:
            assert w.height() >= w.heightForWidth(w.width()), w.text()
        if within:
            assert QRect(w.mapTo(panel.content, w.rect().topLeft()), w.size()).right() < panel.scroll.viewport().width()
    for i, a in enumerate(parts):
        for b in parts[i + 1:]:
            assert not a.geometry().intersects(b.geometry()), (a, b)


def test_colours_come_from_the_palette(qtbot, panel):
    dark = QPalette(panel.palette())
    for role, colour in ((QPalette.ColorRole.Base, "#1e1e1e"), (QPalette.ColorRole.Text, "#eeeeee"),
                         (QPalette.ColorRole.Window, "#2a2a2a"), (QPalette.ColorRole.WindowText, "#eeeeee")):
        dark.setColor(role, QColor(colour))
    panel.setPalette(dark)
    img = panel.grab().toImage()
    assert img.pixelColor(2, 2) == QColor("#1e1e1e")  # the background follows the palette's Base
    title = panel.title
    assert title.palette().color(title.foregroundRole()) == QColor("#eeeeee")
    assert not panel.styleSheet() and not title.styleSheet()


def test_about_names_the_version_licence_and_versions():
    text = about_text("1.2.3")
    assert "1.2.3" in text and "sketchsearch" in text and "MIT" in text
    assert "Python" in text and "Qt" in text
    assert "&lt;b&gt;" in about_text("<b>")
    assert app_version() not in ("",)
    assert app_version() in about_text()


def test_app_version_falls_back_when_not_installed(monkeypatch):
    import importlib.metadata as md

    def missing(name):
        raise md.PackageNotFoundError(name)

    monkeypatch.setattr(md, "version", missing)
    assert app_version() == "unknown"
