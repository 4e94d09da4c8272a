"""Screenshot of the app in a real window: a sketch search on the demo collection, boxes visible.

Run under a virtual X server:  xvfb-run -s "-screen 0 1440x900x24" .venv/bin/python scripts/screenshot.py [OUT.png]
[--sharded] (the demo as a manifest of 3 shards)
(default OUT: docs/screenshot.jpg; SKETCHSEARCH_THEME=dark: in the dark colour scheme).  It indexes the
demo photos (once, copied to a neutral folder, /tmp/Pictures/demo, so that no machine path shows), opens the demo
house sketch on the canvas, waits for the results and their thumbnails, selects the best hit and grabs the screen.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(out: Path, *, sharded: bool = False) -> int:
    from PySide6.QtCore import QEventLoop, QSettings, QTimer
    from PySide6.QtGui import QGuiApplication

    from app.main import make_app
    from app.mainwindow import MainWindow
    from engine.demo import DEMO, default_demo_db
    from engine.indexer import index_folders

    app = make_app()
    photos = Path(tempfile.gettempdir()) / "Pictures" / "demo"  # a neutral path for the detail panel to show
    photos.mkdir(parents=True, exist_ok=True)
    for f in (DEMO / "photos").iterdir():
        if not (photos / f.name).exists():
            shutil.copy2(f, photos / f.name)
    db = default_demo_db().with_name("Demo photos")
    if sharded:  # the demo as a sharded collection (a manifest of 3 shards)
        from engine.shards import index_sharded

        db = db.with_name(db.name + " sharded.json")
        index_sharded([photos], db, n_shards=3)
    else:
        index_folders([photos], db)
    tmp = Path(QSettings().fileName()).with_name("screenshot-settings.ini")
    from app.history import QueryHistory
    from engine.imageio import load_sketch

    history = QueryHistory(Path(tempfile.mkdtemp()) / "history")  # a history of its own: two earlier sketches
    for name in ("sailboat.png", "coffee_cup.png"):
        ink = load_sketch(DEMO / "sketches" / name, max_side=400).pixels.mean(axis=2)
        history.add_sketch((ink * 255).astype("uint8"))
    win = MainWindow(db=db, settings=QSettings(str(tmp), QSettings.Format.IniFormat), restore=False,
                     history=history)
    win.resize(1400, 860)
    win.move(20, 20)
    win.show()
    while win.warming_up:  # the collection opens and the models load in the background
        app.processEvents()
        time.sleep(0.01)

    def wait(ms: int) -> None:
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and win.model.kind != "browse":  # the collection shown, with no query yet
        wait(100)
    wait(500)
    loop = QEventLoop()
    win.searchFinished.connect(loop.quit)
    win.canvas.load_image(DEMO / "sketches" / "house.png")
    loop.exec()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(win.thumbs.get(h.path) is None for h in win.model.hits[:12]):
        wait(100)
    win.results.setCurrentIndex(win.model.index(0))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (win.detail.photo.image is None or win.detail.rotation.best_angle is None):
        wait(100)
    wait(500)
    app.processEvents()
    shot = QGuiApplication.primaryScreen().grabWindow(0, win.x(), win.y(), win.frameGeometry().width(),
                                                      win.frameGeometry().height())
    if shot.isNull() or not shot.save(str(out)):
        shot = win.grab()
        shot.save(str(out))
    print(f"{out}: {shot.width()}x{shot.height()}, {win.model.rowCount()} results")
    win.close()
    return 0


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--sharded"]
    sys.exit(main(Path(args[0]) if args else ROOT / "docs" / "screenshot.jpg", sharded="--sharded" in sys.argv))
