"""Work off the UI thread: a QRunnable that runs a plain function and reports through queued signals.

The long tasks themselves are engine functions (``index_folders``, ``SketchIndex.search``, ...) that take
``progress`` / ``cancelled`` callables; this module only carries them to a thread pool and their
outcome back to the UI thread.
"""
from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)


class TaskSignals(QObject):
    """Signals of one task; emitted from the worker thread, delivered queued in the receiver's thread."""

    progress = Signal(int, int)  # done, total
    finished = Signal(object, float)  # result, seconds
    failed = Signal(str)  # one-line message
    cancelled = Signal(str)


class Task(QRunnable):
    """Run ``fn(*args, **kwargs)`` in a pool thread.

    When ``fn`` accepts them, pass ``progress=task.report`` and ``cancelled=task.is_cancelled`` in
    ``kwargs`` (see :meth:`with_control`).  Exceptions become ``failed`` (with the message only: the
    engine's errors are one line naming the file); engine ``Cancelled`` becomes ``cancelled``.
    """

    def __init__(self, fn: Callable[..., Any], *args, **kwargs) -> None:
        super().__init__()
        self.setAutoDelete(False)  # the owner keeps a reference until the task reports
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

        t0 = time.perf_counter()
        try:
            result = self.fn(*self.args, **self.kwargs)
        except Cancelled as e:
            self.signals.cancelled.emit(str(e))
        except (SketchSearchError, OSError, ValueError) as e:
            self.signals.failed.emit(str(e))
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
        self._live.add(task)
        s = task.signals
        if on_done:
            s.finished.connect(on_done)
        if on_error:
            s.failed.connect(on_error)
        if on_progress:
            s.progress.connect(on_progress)
        if on_cancelled:
            s.cancelled.connect(on_cancelled)
        for sig in (s.finished, s.failed, s.cancelled):
            sig.connect(lambda *_a, t=task: self._live.discard(t))
        self.pool.start(task)
        return task

    def wait(self, timeout_ms: int = 30_000) -> bool:
        """Wait for every running task (tests, shutdown)."""
        return self.pool.waitForDone(timeout_ms)

    def cancel_all(self) -> None:
        for t in list(self._live):
            t.cancel()
