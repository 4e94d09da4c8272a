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


def display_problem() -> str | None:
    """Why Qt could not open a window here (one line starting ``no display``), or None.

    Qt aborts the process (SIGABRT) when its platform plugin finds no display; this checks first.  On
    Linux/BSD the default plugins (``xcb``, ``wayland``) need ``DISPLAY`` or ``WAYLAND_DISPLAY``; any other
    ``QT_QPA_PLATFORM`` (offscreen, vnc, eglfs, ...) is taken as the user's choice, as is every other system.
    """
    if not sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return None
    # QT_QPA_PLATFORM may list fallbacks ("wayland;xcb") and plugin options ("xcb:option=value")
    wanted = [p.split(":", 1)[0].strip() for p in os.environ.get("QT_QPA_PLATFORM", "").split(";") if p.strip()]
    needs = {"xcb": "DISPLAY", "wayland": "WAYLAND_DISPLAY", "wayland-egl": "WAYLAND_DISPLAY"}
    if not wanted:
        if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
            return None
        return ("no display: neither DISPLAY nor WAYLAND_DISPLAY is set (the app needs a desktop session; the "
                "command line works without one)")
    if any(p not in needs or os.environ.get(needs[p]) for p in wanted):
        return None
    missing = " nor ".join(sorted({needs[p] for p in wanted}))
    return f"no display: QT_QPA_PLATFORM={os.environ['QT_QPA_PLATFORM']} needs {missing}, which is not set"


def make_app(argv: list[str] | None = None):
    """The QApplication (created once), named so QSettings and the data folder have a home."""
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from .mainwindow import window_icon

    app = QApplication.instance()
    if app is None:
        QCoreApplication.setOrganizationName("sketchsearch")
        QCoreApplication.setApplicationName("sketchsearch")
        QGuiApplication.setDesktopFileName("sketchsearch")
        app = QApplication(argv if argv is not None else sys.argv[:1])
        app.setWindowIcon(window_icon())
        app.styleHints().colorSchemeChanged.connect(lambda _scheme: follow_colour_scheme(app))
        follow_colour_scheme(app)
    return app


def follow_colour_scheme(app) -> None:
    """Dark palette when the desktop asks for the dark scheme (or ``SKETCHSEARCH_THEME=dark``) but the
    platform theme kept a light palette (e.g. a bare X session); the platform's own palette elsewhere."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QColor, QPalette

    forced = os.environ.get("SKETCHSEARCH_THEME", "").lower()  # dark | light; anything else: the desktop's
    dark = forced == "dark" or (forced != "light" and app.styleHints().colorScheme() == Qt.ColorScheme.Dark)
    light_palette = app.palette().color(QPalette.ColorRole.Window).lightness() > 128
    if dark and light_palette:
        app.setStyle("Fusion")
        p = QPalette()
        roles = {QPalette.ColorRole.Window: "#2b2d30", QPalette.ColorRole.WindowText: "#dfe1e5",
                 QPalette.ColorRole.Base: "#1e1f22", QPalette.ColorRole.AlternateBase: "#2b2d30",
                 QPalette.ColorRole.Text: "#dfe1e5", QPalette.ColorRole.Button: "#393b40",
                 QPalette.ColorRole.ButtonText: "#dfe1e5", QPalette.ColorRole.Highlight: "#2f65ca",
                 QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.ToolTipBase: "#393b40",
                 QPalette.ColorRole.ToolTipText: "#dfe1e5", QPalette.ColorRole.PlaceholderText: "#8c8f94",
                 QPalette.ColorRole.Link: "#589df6"}
        for role, colour in roles.items():
            p.setColor(role, QColor(colour))
        p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#6f737a"))
        p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText, QColor("#6f737a"))
        p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#6f737a"))
        app.setPalette(p)
    elif not dark and not light_palette and app.property("sketchsearch_dark"):
        app.setPalette(app.style().standardPalette())
    app.setProperty("sketchsearch_dark", dark and light_palette)


def run_gui(db: str | os.PathLike | None = None, *, folder: str | os.PathLike | None = None,
            sketch: str | os.PathLike | None = None, qt_args: list[str] | None = None) -> int:
    """Open the window (on ``db``, or the last collection; ``folder``: index it; ``qt_args``: Qt's own
    command-line options, such as ``-style fusion``), run the event loop.

    Raises
    ------
    engine.errors.SketchSearchError
        ``no display: ...`` where no window can be shown (see :func:`display_problem`).
    """
    from engine.errors import SketchSearchError

    problem = display_problem()
    if problem:
        raise SketchSearchError(problem)
    app = make_app([sys.argv[0], *qt_args] if qt_args else None)
    start_window(db, folder=folder, sketch=sketch)
    return app.exec()


def start_window(db: str | os.PathLike | None = None, *, folder: str | os.PathLike | None = None,
                 sketch: str | os.PathLike | None = None, settings=None):
    """The main window as ``sketchsearch gui`` shows it (:func:`run_gui`'s arguments; ``settings``: a
    ``QSettings`` in place of the user's, for tests).

    With ``folder`` and a ``db`` that does not exist yet, the run creates ``db``: the window does not open it
    first (that was a "no such index" dialog) nor the last collection (its opening would race the run's)."""
    from .mainwindow import MainWindow, is_collection

    new_db = folder is not None and db is not None and not is_collection(db)
    win = MainWindow(db=None if new_db else db, settings=settings, open_last=not new_db)
    win.show()
    if folder is not None:
        win.index_folder(folder, db)
    if sketch is not None:
        win.canvas.load_image(sketch)
    return win


if __name__ == "__main__":
    from engine.errors import SketchSearchError

    try:
        sys.exit(run_gui(sys.argv[1] if len(sys.argv) > 1 else None))
    except SketchSearchError as e:
        print(f"sketchsearch: error: {e}", file=sys.stderr)
        sys.exit(2)
