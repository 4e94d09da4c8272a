"""Soak: one window, 300 strokes with their searches, scrolling, result selection, undo/redo, long strokes and
image queries -- the process stays alive and its memory stays bounded.

The app once aborted after about six sketches (PySide6 6.12.0's None reference-count fault, see
pyproject.toml); offscreen tests of a few strokes did not show it.  The growth of the resident memory over
the last 250 strokes is printed (``-s``) and checked against a generous bound.
"""
from __future__ import annotations

import gc
import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
psutil = pytest.importorskip("psutil")

from PySide6.QtCore import QSettings  # noqa: E402

from app.bench import HOUSE, SHAPES  # noqa: E402
from app.bench import draw_stroke as draw  # noqa: E402
from app.mainwindow import MainWindow  # noqa: E402

DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo" / "photos"
STROKES = 300
GROWTH_LIMIT_MB = 150


def spiral(turns: float = 3.0, n: int = 400) -> list[tuple[float, float]]:
    """A long stroke (a few hundred points)."""
    return [(0.5 + 0.4 * t / n * math.cos(2 * math.pi * turns * t / n),
             0.5 + 0.4 * t / n * math.sin(2 * math.pi * turns * t / n)) for t in range(n)]


@pytest.mark.slow
def test_300_strokes_with_searches_keep_the_app_alive_and_its_memory_bounded(qtbot, tmp_path, demo_db):
    win = MainWindow(db=demo_db, settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat),
                     restore=False)
    qtbot.addWidget(win)
    win.resize(1440, 900)
    win.show()
    qtbot.waitExposed(win)
    qtbot.waitUntil(lambda: not win.warming_up, timeout=60_000)
    win._debounce.setInterval(20)  # each stroke still searches on its own; no need to wait 0.3 s for it
    proc = psutil.Process()
    none_before = sys.getrefcount(None)
    rss: dict[int, float] = {}
    shapes = HOUSE + SHAPES
    for i in range(1, STROKES + 1):
        with qtbot.waitSignal(win.searchFinished, timeout=60_000):
            if i % 10 == 0:
                draw(win.canvas, spiral(), steps=1)  # a long stroke: hundreds of mouse moves
            elif i % 7 == 0 and win.canvas.undo_stack.canUndo():
                win.canvas.undo()
            elif i % 11 == 0 and win.canvas.undo_stack.canRedo():
                win.canvas.redo()
            elif i % 25 == 0:
                draw(win.canvas, shapes[i % len(shapes)])
                win.canvas.clear()
                draw(win.canvas, shapes[(i + 1) % len(shapes)])
            else:
                draw(win.canvas, shapes[i % len(shapes)])
            win.canvas.repaint()
        n = win.model.rowCount()
        if n and i % 3 == 0:  # select a result: the detail panel loads the photo and its polar plot
            win.results.setCurrentIndex(win.model.index(i % n))
        if i % 4 == 0:  # scroll the grid down and back
            bar = win.results.verticalScrollBar()
            bar.setValue(bar.maximum() if i % 8 else 0)
            win.results.viewport().repaint()
        if i % 100 == 50:  # an image query, then back to the sketch
            with qtbot.waitSignal(win.searchFinished, timeout=60_000):
                win.search_image_file(str(DEMO / "skimage_coffee.jpg"))
            assert win.model.kind == "image" and win.model.rowCount() > 0
            with qtbot.waitSignal(win.searchFinished, timeout=60_000):
                win.back_to_sketch()
        if i % 50 == 0:
            win.runner.wait(30_000)
            win.thumb_runner.wait(30_000)
            qtbot.wait(20)
            gc.collect()
            rss[i] = proc.memory_info().rss / 2**20
    win.runner.wait(30_000)
    growth = rss[STROKES] - rss[50]
    print(f"\nsoak: {STROKES} strokes; resident memory (MB) at strokes {sorted(rss)}: "
          f"{[round(v) for v in rss.values()]}; growth over the last {STROKES - 50}: {growth:.1f} MB")
    assert win.isVisible() and win.model.rowCount() > 0
    if sys.version_info < (3, 12):
        assert sys.getrefcount(None) >= none_before - 100
    assert growth < GROWTH_LIMIT_MB, rss
