"""Soak: one window, 300 strokes with their searches, scrolling, result selection, undo/redo, long strokes and
image queries -- the process stays alive and its memory stays bounded.

The app once aborted after about six sketches (PySide6 6.12.0's None reference-count fault, see
pyproject.toml); offscreen tests of a few strokes did not show it.

Every 50 strokes, once the background work is done, the heap is trimmed (``app.memory.trim_heap``, as the
window does when the person pauses) and the resident memory measured, with the objects Python tracks, the
blocks it has allocated and the live widgets.  The growth of the resident memory over the last 250 strokes
is printed (``-s``), named in the assertion's message and checked against a bound with a wide margin: glibc
keeps freed memory in its arenas, and untrimmed the curve rose about 90 MB before levelling off; trimmed it
stays flat.  The Python objects may grow only by what the undo history keeps (bounded by ``UNDO_LIMIT``).
"""
from __future__ import annotations

import gc
import math
import os
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app._testsupport import HOUSE, SHAPES  # noqa: E402
from app._testsupport import draw_stroke as draw  # noqa: E402
from app.mainwindow import MainWindow  # noqa: E402
from app.memory import trim_heap  # noqa: E402

DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo" / "photos"
STROKES = 300
GROWTH_LIMIT_MB = 60  # resident memory over the last 250 strokes, trimmed (measured: about 0, see the docs)
OBJECTS_PER_STROKE = 40  # Python objects kept per stroke: the undo history's commands and strokes


def resident_mb() -> float:
    """The process's resident memory in MB (/proc/self/statm; psutil elsewhere, when installed)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        psutil = pytest.importorskip("psutil")
        return psutil.Process().memory_info().rss / 2**20


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
    none_before = sys.getrefcount(None)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    rss: dict[int, float] = {}  # at stroke i, after trimming the heap
    untrimmed: dict[int, float] = {}  # the same moment, before trimming
    objects: dict[int, int] = {}  # objects tracked by Python's collector
    blocks: dict[int, int] = {}  # memory blocks Python has allocated
    widgets: dict[int, int] = {}
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
        if i % 50 == 0:  # the person pauses: the background work ends, the window would trim the heap
            qtbot.waitUntil(lambda: not win.runner._live and not win.thumb_runner._live, timeout=30_000)
            win.runner.wait(30_000)
            win.thumb_runner.wait(30_000)
            qtbot.wait(20)
            gc.collect()
            untrimmed[i] = resident_mb()
            trimmed = trim_heap()
            rss[i] = resident_mb()
            objects[i], blocks[i] = len(gc.get_objects()), sys.getallocatedblocks()
            widgets[i] = len(QApplication.allWidgets())
    win.runner.wait(30_000)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    last = STROKES - 50
    growth = rss[STROKES] - rss[50]
    report = (f"soak: {STROKES} strokes, heap trimmed: {trimmed}; resident memory (MB) at strokes {sorted(rss)}: "
              f"{[round(v, 1) for v in rss.values()]} (before the trim: {[round(v, 1) for v in untrimmed.values()]}); "
              f"growth over the last {last}: {growth:+.1f} MB (before the trim: "
              f"{untrimmed[STROKES] - untrimmed[50]:+.1f} MB); Python objects {list(objects.values())}, "
              f"blocks {list(blocks.values())}; widgets {list(widgets.values())}; {wall:.0f} s ({cpu:.0f} CPU s), "
              f"load average {os.getloadavg()[0]:.1f}")
    print("\n" + report)
    assert win.isVisible() and win.model.rowCount() > 0
    if sys.version_info < (3, 12):
        assert sys.getrefcount(None) >= none_before - 100
    assert growth < GROWTH_LIMIT_MB, report
    assert objects[STROKES] - objects[50] < OBJECTS_PER_STROKE * last, report
    assert widgets[STROKES] == widgets[50], report
