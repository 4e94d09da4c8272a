"""The bundled demo works as the README promises: each demo sketch finds its photos, with boxes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.collection import SketchIndex
from engine.demo import DEMO, run_demo

from .test_collection import iou


@pytest.fixture(scope="module")
def demo_index(tmp_path_factory):
    db = tmp_path_factory.mktemp("demo") / "index"
    with open(os.devnull, "w") as sink:
        assert run_demo(db=db, top=3, out=sink) == 0
    return SketchIndex(db)


def test_demo_collection_is_small_and_licensed():
    files = list((DEMO / "photos").iterdir())
    assert 30 <= len(files) <= 60
    assert sum(f.stat().st_size for f in DEMO.rglob("*") if f.is_file()) <= 5e6
    licence = (DEMO / "LICENSE.md").read_text()
    assert all(f.name in licence for f in files)


@pytest.mark.slow
def test_demo_sketches_find_their_photos(demo_index):
    expected = json.loads((DEMO / "expected.json").read_text())["sketches"]
    for sketch, want in expected.items():
        hits = demo_index.search(DEMO / "sketches" / sketch, top_k=6)
        names = [os.path.basename(h.path) for h in hits]
        assert set(want["photos"]) <= set(names), (sketch, names)
        for h in hits:
            name = os.path.basename(h.path)
            if name in want["boxes"]:
                assert iou(h.box, want["boxes"][name]) >= 0.5, (sketch, name, h.box)


@pytest.mark.slow
def test_demo_prints_an_image_query_that_finds_its_photo(tmp_path):
    import io

    out = io.StringIO()
    assert run_demo(db=tmp_path / "index", top=3, out=out) == 0
    text = out.getvalue()
    block = text[text.index("image query: lomiri_sunset.jpg"):]
    assert block.splitlines()[1].strip().endswith("lomiri_sunset.jpg"), block
    house = text[text.index("sketch house.png"):].splitlines()[1]  # the first house: a likely match
    assert house.split()[2].startswith("gen_house_") and house.endswith("likely match"), house
    assert "a guess" not in text


def test_the_demo_rebuilds_only_its_own_cache_folder(monkeypatch, tmp_path):
    """An older demo index in the demo's own cache folder is rebuilt; a --db the user gave is never wiped."""
    import engine.demo as demo

    calls = []

    def fake_index(folders, db, **kw):
        calls.append((db, kw.get("rebuild", False)))
        raise RuntimeError("stop here")

    monkeypatch.setattr(demo, "index_folders", fake_index)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for db in (None, tmp_path / "mine"):
        with pytest.raises(RuntimeError, match="stop here"), open(os.devnull, "w") as sink:
            run_demo(db=db, out=sink)
    assert calls == [(tmp_path / "cache" / "sketchsearch" / "demo-index", True), (tmp_path / "mine", False)]


@pytest.mark.slow
def test_queries_never_import_torch_once_the_weights_are_cached(demo_index):
    """The demo's first run indexes with torch, which caches the network's weights; from then on a fresh
    process opens the collection and answers a sketch and an image query without importing torch (seconds
    of import) or scipy's optimisers (the kernel fits are shipped; scipy.ndimage still comes with
    skimage's thinning of the sketch)."""
    code = (
        "import sys\n"
        "from engine.shards import open_collection\n"
        f"c = open_collection({str(demo_index.path)!r})\n"
        f"sketch = c.search({str(DEMO / 'sketches' / 'house.png')!r}, top_k=5)\n"
        f"image = c.search_image({str(DEMO / 'photos' / 'lomiri_sunset.jpg')!r}, top_k=5)\n"
        "assert sketch and image and image[0].path.endswith('lomiri_sunset.jpg'), (sketch, image)\n"
        "heavy = sorted(m for m in ('torch', 'scipy.optimize') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
        "print('ok')\n")
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root,
                         timeout=300)
    assert got.returncode == 0 and got.stdout.strip() == "ok", got.stderr[-2000:]
