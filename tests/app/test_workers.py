"""Work off the UI thread: a task's outcome arrives in the UI thread, and a task that has reported is freed
(with its arguments and result), so a long session does not keep every sketch it ever searched."""
from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

pytest.importorskip("PySide6")

from app.workers import Runner, Task  # noqa: E402


def _fail(_x):
    raise ValueError("bad input")


@pytest.mark.parametrize("fn, outcome", [(np.sum, "finished"), (_fail, "failed")])
def test_a_task_that_has_reported_is_freed_with_its_arguments(qtbot, fn, outcome):
    runner = Runner()
    got = []
    big = np.ones((400, 400), np.uint8)  # like a sketch image
    task = Task(fn, big)
    ref, big_ref = weakref.ref(task), weakref.ref(big)
    signal = getattr(task.signals, outcome)
    with qtbot.waitSignal(signal, timeout=10_000):
        runner.start(task, on_done=lambda res, _s: got.append(res), on_error=got.append)
    qtbot.waitUntil(lambda: len(got) == 1 and not runner._live, timeout=10_000)
    assert got == [160_000] if outcome == "finished" else got == ["bad input"]
    runner.wait(10_000)  # the pool thread has left run()
    del task, big, signal
    qtbot.wait(10)
    gc.collect()
    assert ref() is None and big_ref() is None


def test_a_cancelled_task_is_freed_too(qtbot):
    from engine.errors import Cancelled

    def cancellable(*, progress, cancelled):
        progress(1, 2)
        raise Cancelled("stopped")

    runner = Runner()
    seen = []
    task = Task(cancellable).with_control()
    ref = weakref.ref(task)
    with qtbot.waitSignal(task.signals.cancelled, timeout=10_000):
        runner.start(task, on_progress=lambda d, t: seen.append((d, t)), on_cancelled=seen.append)
    qtbot.waitUntil(lambda: "stopped" in seen and not runner._live, timeout=10_000)
    assert seen == [(1, 2), "stopped"]
    runner.wait(10_000)
    del task
    qtbot.wait(10)
    gc.collect()
    assert ref() is None


def test_many_fast_tasks_are_all_freed(qtbot):
    """A task that finishes before ``QThreadPool.start`` has returned must be freed too: a QRunnable handed to
    the pool was made a child of the pool's wrapper after ``start`` returned, and one already deleted stayed
    there for the app's lifetime (a race: 1 task in a few hundred, the flaky ``[_fail-failed]`` above)."""
    runner = Runner()
    done = []
    refs = []
    for i in range(200):
        task = Task(_fail if i % 2 else np.sum, np.ones(10))
        refs.append(weakref.ref(task))
        runner.start(task, on_done=lambda res, _s: done.append(res), on_error=done.append)
    del task
    qtbot.waitUntil(lambda: len(done) == 200 and not runner._live, timeout=30_000)
    runner.wait(10_000)
    qtbot.wait(10)
    gc.collect()
    held = sum(r() is not None for r in refs)
    assert held == 0, f"{held} of 200 finished tasks are still held"
