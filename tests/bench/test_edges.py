"""The edge-map benchmark (engine.bench.edges) on SYSU-Shapes outlines."""
import pytest


@pytest.mark.slow
def test_classical_beats_canny_on_sysu_outlines():
    from engine.bench.edges import DEFAULT_SYSU_ROOT, evaluate_detector, load_sysu

    if not DEFAULT_SYSU_ROOT.is_dir():
        pytest.skip(f"SYSU-Shapes data not found at {DEFAULT_SYSU_ROOT}")
    items = load_sysu(DEFAULT_SYSU_ROOT)[::10]  # ~42 images of both classes
    assert len(items) >= 30
    images: dict = {}
    classical = evaluate_detector("classical", items=items, images=images)
    canny = evaluate_detector("canny", items=items, images=images)
    assert classical["n_images"] == canny["n_images"] == len(items)
    assert classical["f"] > canny["f"] + 0.01, (classical, canny)
    assert classical["ods_f"] > canny["ods_f"]


