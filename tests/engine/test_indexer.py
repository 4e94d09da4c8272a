"""The indexer's describing jobs on the CPU: the CNN runs in each job (ONNX Runtime, one thread), in worker
processes or, with one worker, in the caller's process, never in the writer."""
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine import imageindex
from engine.afm import FeatureLayout
from engine.cnn import GemDescriber, GemSettings, int8_agrees
from engine.describe import describe_file, drawing_settings
from engine.indexer import index_folders, run_jobs
from engine.settings import SketchSettings

DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo"
#: the least cosine between a stored descriptor (float16) and the float torch describer's
TOLERANCE = 0.9999


@pytest.fixture(scope="module")
def photos():
    return sorted((DEMO / "photos").glob("*.jpg"))[:6]


def cosines(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("workers", [1, 2])
def test_jobs_store_the_torch_descriptors(photos, workers):
    """One worker (in this process) and two (worker processes) store the photo's and its drawing's
    descriptors as the float torch describer computes them from the same network inputs: exactly (within
    float16) with the float network; with the int8 one (the default) the photos within its tolerance
    (engine/data/efficientnet-lite0-int8.json) and the drawings as exactly as before."""
    settings, gem = SketchSettings(), GemSettings()
    layout = FeatureLayout.from_settings(settings)
    inputs = [describe_file(p, layout, None, gem.max_side)[1] for p in photos]
    ref = GemDescriber(gem, "cpu", backend="torch").describe([x[0] for x in inputs])
    ref_sketch = GemDescriber(drawing_settings(gem.backbone), "cpu", backend="torch").describe(
        [x[1] for x in inputs])
    for int8, least in ((False, TOLERANCE), (True, 0.96)):
        results = {r.path: r for r in run_jobs([(str(p), None) for p in photos], settings, workers,
                                               cnn_json=gem.to_json(), int8=int8)}
        assert sorted(results) == sorted(str(p) for p in photos)
        assert all(r.net_input is None and r.record.gem.dtype == np.float16 for r in results.values())
        got = cosines([results[str(p)].record.gem for p in photos], ref)
        assert got.min() > least
        if int8 and int8_agrees(gem.backbone):
            assert got.max() < TOLERANCE  # the int8 graph ran
        assert cosines([results[str(p)].record.sketch for p in photos], ref_sketch).min() > TOLERANCE


def test_one_worker_runs_the_cnn_in_its_jobs_not_in_the_writer(photos, tmp_path, monkeypatch):
    """With one worker on the CPU the writer never runs the CNN (its threads, alternating with the edge code,
    made one worker six times slower than two), and the caller's OpenCV threads are left as they were."""
    monkeypatch.setattr(imageindex.Extractor, "describe",
                        lambda *a, **k: pytest.fail("the writer ran the CNN"))
    threads = cv2.getNumThreads()
    root = tmp_path / "photos"
    root.mkdir()
    for p in photos:
        (root / p.name).symlink_to(p)
    s = index_folders([root], tmp_path / "db", workers=1, device="cpu")
    assert s.indexed == s.described == len(photos)
    assert cv2.getNumThreads() == threads


def test_a_worker_that_cannot_start_stops_the_run_with_an_error_not_a_hang(tmp_path):
    """multiprocessing.Pool starts a new worker for ever when its initializer raises: the failure is kept and the
    first job raises it (a one-line WorkerError) instead."""
    import threading

    from engine.errors import WorkerError

    photo = tmp_path / "a.png"
    cv2.imwrite(str(photo), np.full((64, 64, 3), 255, np.uint8))
    jobs = [(str(photo), None)] * 4
    out: dict = {}

    def run():
        try:
            list(run_jobs(jobs, SketchSettings(), workers=2, cnn_json='{"no such setting": 1}'))
        except Exception as e:  # noqa: BLE001 - the test looks at what came out
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(120)
    assert not t.is_alive(), "the run hung"
    assert isinstance(out.get("error"), WorkerError) and "no such setting" in str(out["error"])
    with pytest.raises(ValueError, match="no such setting"):  # in the caller's process it raises at once
        list(run_jobs(jobs[:1], SketchSettings(), workers=1, cnn_json='{"no such setting": 1}'))


def test_a_worker_process_keeps_the_memory_it_frees():
    """glibc gives the free top of its heap back to the system and faults every page in again when it is taken
    back (6 ms of a 45 ms photo): a describing worker keeps it (``_keep_freed_memory``, in its own process)."""
    import platform
    import subprocess
    import sys

    code = """if 1:
        import resource, sys
        import numpy as np
        from engine.indexer import _keep_freed_memory
        kept = sys.argv[1] == "keep" and _keep_freed_memory()
        def photo():  # the arrays of a photo's description, allocated and freed
            arrays = [np.ones(1 << 18) for _ in range(8)]
            del arrays
        photo()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(20):
            photo()
        print(int(kept), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
    root = Path(__file__).resolve().parents[2]
    faults = {}
    for mode in ("keep", "default"):
        out = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, cwd=root,
                             timeout=120, check=True).stdout.split()
        faults[mode] = (bool(int(out[0])), int(out[1]))
    if not faults["keep"][0]:
        assert platform.libc_ver()[0] != "glibc"
        pytest.skip("not glibc: the allocator is left as it is")
    assert faults["keep"][1] < 100 < faults["default"][1], faults  # 0 and about 80,000 here


def test_worker_processes_are_at_most_one_per_core(monkeypatch):
    """--workers 200 on 2 cores made 200 processes contend for them (36 photos: 60 s instead of 4)."""
    from engine import search
    from engine.indexer import worker_count

    monkeypatch.setattr(search, "available_cores", lambda: 4)  # the cores this process may run on
    assert [worker_count(w) for w in (None, 1, 3, 4, 200)] == [4, 1, 3, 4, 4]
    monkeypatch.setattr(search, "available_cores", lambda: 1)
    assert [worker_count(w) for w in (None, 1, 2, 200)] == [1, 1, 2, 2]  # two asked for on one core: still two
    if hasattr(os, "sched_getaffinity"):  # taskset or a container's CPU set, not the machine's cores
        monkeypatch.undo()
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
        monkeypatch.setattr(os, "cpu_count", lambda: 64)
        assert search.available_cores() == 1 and worker_count(None) == 1
