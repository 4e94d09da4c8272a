"""Start the app: ``sketchsearch gui [--db PATH]`` (or ``python -m app``)."""
from __future__ import annotations

import os
import sys


def has_screen() -> bool:
    """Whether a window can be shown (a display on Linux/BSD; always elsewhere, or with a Qt platform set)."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform.startswith(("offscreen", "minimal")):
        return False
    if platform:
        return True
    if sys.platform.startswith(("linux", "freebsd", "openbsd")):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def make_app(argv: list[str] | None = None):
    """The QApplication (created once), named so QSettings and the data folder have a home."""
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtGui import QGuiApplication, QIcon
    from PySide6.QtWidgets import QApplication

    from .mainwindow import icon

    app = QApplication.instance()
    if app is None:
        QCoreApplication.setOrganizationName("sketchsearch")
        QCoreApplication.setApplicationName("sketchsearch")
        QGuiApplication.setDesktopFileName("sketchsearch")
        app = QApplication(argv if argv is not None else sys.argv[:1])
        app.setWindowIcon(QIcon(icon("sketchsearch")))
    return app


def run_gui(db: str | os.PathLike | None = None, *, folder: str | os.PathLike | None = None,
            sketch: str | os.PathLike | None = None) -> int:
    """Open the window (on ``db``, or the last collection; ``folder``: index it), run the event loop."""
    from .mainwindow import MainWindow

    app = make_app()
    win = MainWindow(db=db)
    win.show()
    if folder is not None:
        win.index_folder(folder, db)
    if sketch is not None:
        win.canvas.load_image(sketch)
    return app.exec()


if __name__ == "__main__":
    sys.exit(run_gui(sys.argv[1] if len(sys.argv) > 1 else None))
