"""The command line's search output, byte for byte, against outputs recorded before the redesign of issue 19.

``search --json`` (sketch, image, ``--sketch-list``, ``--rotation any``, ``--no-fusion``) on the demo collection
and on a 300-photo Sketchy index (12 classes x 25 photos; skipped where the data set is absent). Paths are written
relative to the photo folder, so a recording holds no machine path. A change meant to alter what search returns
rewrites the recordings on purpose: ``SKETCHSEARCH_RECORD=1 pytest tests/app/test_cli_output.py``, and the diff of
``tests/app/recorded/`` shows what changed.
"""
from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

RECORDED = Path(__file__).parent / "recorded"
DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo"
SKETCHY = Path(os.environ.get("SKETCHSEARCH_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")
SKETCHY = SKETCHY / "sketchy"
CLASSES = ("ant", "bicycle", "cabin", "fish", "hat", "knife", "penguin", "pizza", "scissors", "starfish", "teapot",
           "windmill")  # 12 x 25 = 300 photos

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cli_output")]


_DRIVER = """
import contextlib, io, json, sys
from app.cli import main
outs = []
for argv in json.load(open(sys.argv[1])):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(argv)
    if rc != 0:
        sys.exit(f"exit {rc}: {argv}")
    outs.append(out.getvalue())
json.dump(outs, open(sys.argv[2], "w"))
"""


def _cli(tmp: Path, *commands: list[str]) -> list[str]:
    """The output of each command, run in order in one process computing on one thread (several threads sum
    in another order: the last digit of a score can differ)."""
    todo, done = tmp / "commands.json", tmp / "outputs.json"
    todo.write_text(json.dumps(commands), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", _DRIVER, str(todo), str(done)], check=True, env=env,
                   cwd=Path(__file__).resolve().parents[2])
    return json.loads(done.read_text(encoding="utf-8"))


def _check(name: str, text: str, photos: Path) -> None:
    text = text.replace(str(photos) + os.sep, "").replace(str(photos), ".")
    text = text.replace(str(SKETCHY), "<sketchy>").replace(str(DEMO), "<demo>")
    path = RECORDED / f"{name}.jsonl"
    if os.environ.get("SKETCHSEARCH_RECORD"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"{path} is not recorded (SKETCHSEARCH_RECORD=1 records it)"
    recorded = path.read_text(encoding="utf-8")
    if text != recorded:
        diff = difflib.unified_diff(recorded.splitlines(), text.splitlines(), "recorded", "now", lineterm="", n=0)
        pytest.fail(f"search output changed: {name}\n" + "\n".join(list(diff)[:12]))


def _queries(db: Path, photos: Path, sketches: list[Path], image: Path, tmp: Path, name: str,
             index: list[str]) -> None:
    listing = tmp / f"{name}-sketches.txt"
    listing.write_text("".join(f"{s}\n" for s in sketches), encoding="utf-8")
    search = ["search", "--db", str(db), "--json"]
    runs = {f"{name}-sketch-{i}": [*search, "--sketch", str(s)] for i, s in enumerate(sketches)}
    runs |= {f"{name}-no-fusion": [*search, "--sketch", str(sketches[0]), "--no-fusion"],
             f"{name}-rotation-sketch": [*search, "--sketch", str(sketches[0]), "--rotation", "any"],
             f"{name}-image": [*search, "--image", str(image)],
             f"{name}-rotation-image": [*search, "--image", str(image), "--rotation", "any"],
             f"{name}-sketch-list": [*search, "--sketch-list", str(listing)]}
    outputs = _cli(tmp, ["index", *index, "--db", str(db)], *runs.values())
    for key, text in zip(runs, outputs[1:], strict=True):
        _check(key, text, photos)


def test_demo_search_output_unchanged(tmp_path):
    photos = DEMO / "photos"
    sketches = sorted((DEMO / "sketches").glob("*.png"))
    _queries(tmp_path / "demo-index", photos, sketches, photos / "lomiri_sunset.jpg", tmp_path, "demo",
             [str(photos)])


@pytest.mark.skipif(not SKETCHY.is_dir(), reason="the Sketchy data set is absent")
def test_benchmark_search_output_unchanged(tmp_path):
    photos = SKETCHY / "photo"
    sketches = [sorted((SKETCHY / "sketch" / c).glob("*-1.png"))[3] for c in CLASSES[::3]]
    image = sorted((photos / "teapot").iterdir())[5]
    _queries(tmp_path / "sketchy-300", photos, sketches, image, tmp_path, "sketchy",
             [str(photos / c) for c in CLASSES])
