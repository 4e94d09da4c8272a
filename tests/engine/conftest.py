"""Shared fixtures of the engine tests."""
import pytest

from engine.afm import FeatureLayout
from engine.settings import SketchSettings


@pytest.fixture(scope="module", params=["compact", "quality"])
def any_layout(request):
    """The feature layout of each descriptor preset: 243-D (5, 2) and 605-D (6, 3)."""
    return FeatureLayout.from_settings(SketchSettings.preset(request.param))
