"""Work off the UI thread: a task that runs a plain function in a thread pool and reports through queued
signals.

The long tasks themselves are engine functions (``index_folders``, ``SketchIndex.search``, ...) that take
``progress`` / ``cancelled`` callables; this module only carries them to a thread pool and their
outcome back to the UI thread.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, Signal

log = logging.getLogger(__name__)


class TaskSignals(QObject):
    """Signals of one task; emitted from the worker thread, delivered queued in the receiver's thread."""

    progress = Signal(int, int)  # done, total
    finished = Signal(object, float)  # result, seconds
    failed = Signal(str)  # one-line message
    cancelled = Signal(str)


class Task:
    """Run ``fn(*args, **kwargs)`` in a pool thread (:meth:`Runner.start`).

    When ``fn`` accepts them, pass ``progress=task.report`` and ``cancelled=task.is_cancelled`` in
    ``kwargs`` (see :meth:`with_control`).  Exceptions become ``failed`` (with the message only: the
    engine's errors are one line naming the file); engine ``Cancelled`` becomes ``cancelled``.
    """

    def __init__(self, fn: Callable[..., Any], *args, **kwargs) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.signals = TaskSignals()
        self._cancel = threading.Event()
        self.done = threading.Event()

    def with_control(self) -> Task:
        """Hand ``progress`` and ``cancelled`` callables to the function."""
        self.kwargs.update(progress=self.report, cancelled=self.is_cancelled)
        return self

    def report(self, done: int, total: int) -> None:
        self.signals.progress.emit(int(done), int(total))

    def cancel(self) -> None:
        self._cancel.set()

    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def run(self) -> None:  # in the pool thread
        from engine.errors import Cancelled, SketchSearchError

        from .messages import error_words

        t0 = time.perf_counter()
        try:
            result = self.fn(*self.args, **self.kwargs)
        except Cancelled as e:
            self.signals.cancelled.emit(str(e))
        except (SketchSearchError, OSError, ValueError) as e:
            self.signals.failed.emit(error_words(e))
        except Exception as e:  # a bug: keep the app alive, show it, log the trace
            log.error("task %s failed:\n%s", getattr(self.fn, "__name__", self.fn), traceback.format_exc())
            self.signals.failed.emit(f"{type(e).__name__}: {e}")
        else:
            self.signals.finished.emit(result, time.perf_counter() - t0)
        finally:
            self.done.set()


class Runner(QObject):
    """Starts tasks on a pool and keeps them alive until they report; ``latest`` drops stale results."""

    def __init__(self, pool: QThreadPool | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = pool or QThreadPool.globalInstance()
        self._live: set[Task] = set()

    def start(self, task: Task, *, on_done: Callable[[Any, float], None] | None = None,
              on_error: Callable[[str], None] | None = None,
              on_progress: Callable[[int, int], None] | None = None,
              on_cancelled: Callable[[str], None] | None = None) -> Task:
        self._live.add(task)  # until it reports
        s = task.signals
        connected = [s.finished, s.failed, s.cancelled]
        for sig, slot in ((s.finished, on_done), (s.failed, on_error), (s.progress, on_progress),
                          (s.cancelled, on_cancelled)):
            if slot:
                sig.connect(self._guarded(slot))
                if sig not in connected:
                    connected.append(sig)
        for sig in (s.finished, s.failed, s.cancelled):
            sig.connect(lambda *_a, t=task, c=connected: self._forget(t, c))  # after the callbacks: connected last
        # the pool gets the bound method, not a QRunnable: PySide holds the callable until it has run and
        # then lets go of it.  A QRunnable handed to QThreadPool.start() is made a child of the pool's
        # wrapper *after* start() returns; a task that finished and was deleted before that stayed a child
        # of the pool for the app's lifetime, with its arguments and result (a race, seen with fast tasks)
        self.pool.start(task.run)
        return task

    def _guarded(self, slot: Callable) -> Callable:
        """``slot``, called only while this runner lives: a task's report queued before its owner (a window,
        and this runner with it) was deleted is dropped instead of reaching deleted widgets."""
        from shiboken6 import Shiboken

        def call(*args) -> None:
            if Shiboken.isValid(self):
                slot(*args)

        return call

    def _forget(self, task: Task, connected: list) -> None:
        """A task has reported: drop it and its connections (the connection to this very slot holds the task,
        and Python's collector does not see cycles through Qt's connections)."""
        self._live.discard(task)
        for sig in connected:
            with contextlib.suppress(RuntimeError, TypeError):
                sig.disconnect()

    def wait(self, timeout_ms: int = 30_000) -> bool:
        """Wait for every running task (tests, shutdown)."""
        return self.pool.waitForDone(timeout_ms)

    def cancel_all(self) -> None:
        for t in list(self._live):
            t.cancel()
