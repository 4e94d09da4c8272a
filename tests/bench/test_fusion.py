"""The fusion benchmark's measurements (engine.bench.fusion)."""
import dataclasses

import numpy as np
import pytest

from engine.edges import sketch_edges
from engine.fusion import load_params


@pytest.mark.slow
@pytest.mark.xdist_group("sketchy-index")  # after test_bench_fusion_quick, whose index it reuses (pytest -n)
def test_small_collection_scores_improve_on_a_slice_of_sketchy(tmp_path):
    """The reliability-on-subsamples measurement (``engine.bench.fusion.bench_sizes``) on 8 Sketchy classes: in
    collections of 30 photos a third of one subject the correct photos score higher than with the
    collection's own statistics (which the matches drag up), and the scores are better calibrated there."""
    from engine.bench import datasets as ds
    from engine.bench import fusion as fb
    from engine.collection import SketchIndex
    from engine.imageio import load_image
    from engine.indexer import index_folders
    from engine.reference import load_reference

    try:
        data = ds.load_sketchy(ds.data_root() / "sketchy", sketch_index=1)
    except ds.DatasetMissing as e:
        pytest.skip(str(e))
    keep = set(range(8))
    photos = [p for p, c in zip(data.photo_paths, data.photo_class, strict=True) if c in keep]
    # the session's index of all Sketchy photos where the benchmark's test built it already, else these 8
    # classes alone: the pool takes these classes' columns, and a simulated collection computes everything
    # from its own photos, so either gives the same numbers
    cache = fb.bench_cache()
    if cache is not None and (cache / "sketchy-index").is_dir():
        index = fb.sketchy_index(ds.data_root(), tmp_path)
    else:
        index_folders([ds.data_root() / "sketchy" / "photo" / data.class_names[c] for c in sorted(keep)],
                      tmp_path / "index")
        index = SketchIndex(tmp_path / "index")
    pc = data.photo_class[data.photo_class < 8]
    q = [i for i, c in enumerate(data.query_class) if c in keep]
    edges = [sketch_edges(load_image(data.query_paths[i]).pixels) for i in q]
    qc = data.query_class[q]
    rel = qc[:, None] == pc[None, :]
    pool = fb.collect_pool(index, edges, photos, relevant=rel, exclude=np.zeros_like(rel), query_class=qc,
                           photo_class=pc, target=data.query_photo[q], reference=load_reference())
    after = load_params()
    before = dataclasses.replace(after, ref_k=0.0, ref_full=0, calibration_small=None)
    clus = fb.size_runs(pool, [before, after], sizes=(30,), reps=2, absent=False, share=1 / 3)
    correct = [float(r.calibrated(30, p)[r.relevant[30]].mean()) for r, p in zip(clus, (before, after), strict=True)]
    ece = [fb.expected_calibration_error(r.calibrated(30, p), r.relevant[30])
           for r, p in zip(clus, (before, after), strict=True)]
    assert correct[1] > correct[0] + 0.03, correct
    assert ece[1] < ece[0], ece
    # the stand-out table: the 0.95-quantiles of the best hit and of the hits at or above the cut of
    # collections without the query's class, so that on the collections it was fitted on, at most a tenth
    # of them show a likely match
    table = fb.fit_stand_out(pool, after, sizes=(30,), reps=1)
    assert [n for n, _, _ in table["small"]] == [30] and not table["whitened"] and table["quantile"] == 0.95
    assert table["confirmed"] is False  # every hit at or above the cut counts (the shipped rule)
    fitted = dataclasses.replace(after, stand_out=table)
    runs = fb.size_runs(pool, fitted, sizes=(30,), reps=1)
    assert len(runs.absent_best[30]) == len(pool.afm) and set(runs.absent_n[30]) == {30}
    assert np.mean(runs.best[30] >= table["small"][0][1]) > 0.05  # a collection holding the shape stands out more
    assert runs.absent_likely(30, fitted).mean() <= 0.1 + 1 / len(pool.afm)
    confirmed = dataclasses.replace(fitted, stand_out={**table, "confirmed": True})  # the rule tried, not shipped
    assert (runs.absent_counts(30, confirmed) <= runs.absent_counts(30, fitted)).all()
    assert runs.absent_counts(30, confirmed).sum() < runs.absent_counts(30, fitted).sum()
    shown = runs.likely(30, fitted)
    assert shown.sum() <= (runs.calibrated(30, fitted) >= fitted.likely).sum()
