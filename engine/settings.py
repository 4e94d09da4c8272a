"""Settings of a sketch index: everything that must agree between indexing and searching."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

FORMAT_VERSION = 6


class JsonSettings:
    """JSON round trip of a frozen settings dataclass (sorted keys; unknown keys refused; ``scales`` as a
    tuple)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str):
        raw = json.loads(text)
        unknown = set(raw) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}")
        if "scales" in raw:
            raw["scales"] = tuple(raw["scales"])
        return cls(**raw)


@dataclass(frozen=True)
class SketchSettings(JsonSettings):
    """Descriptor and search-geometry settings (METHOD.md sections 1-5).

    Parameters
    ----------
    n_freq_xy, n_freq_phi : int
        Number of frequencies (0 included) of the spatial and the orientation feature maps:
        (5, 2) gives the compact 243-D descriptor, (6, 3) the 605-D one.
    sigma_xy : float
        Width in working-frame pixels of the spatial RBF kernel used at query scale 1; at query scale
        ``s`` the kernel width is ``sigma_xy * s`` (smaller query, narrower kernel).
    sigma_phi : float
        Width (rad) of the Gaussian that the von Mises orientation kernel matches.
    scales : tuple of float
        Query scales, relative to a sketch whose longer side is ``max_side``.
    lam_max : float
        The spatial kernels are fitted on differences in [0, lam_max] px.
    max_side : int
        Longer side of the working frame of photos and of sketches at scale 1.
    min_strength : float
        Edge points weaker than this are dropped.
    max_shift, shift_step : float
        Candidate shifts at scale 1: -max_shift..max_shift in steps of shift_step (both axes); at scale
        ``s`` the range is ``max_shift / s`` and the step ``shift_step * s``.
    detector : str
        Name of the photo edge detector.
    """

    n_freq_xy: int = 5
    n_freq_phi: int = 2
    sigma_xy: float = 28.0
    sigma_phi: float = 0.8
    scales: tuple[float, ...] = (1.0, 0.8, 0.6)
    lam_max: float = 400.0
    max_side: int = 400
    min_strength: float = 0.2
    max_shift: float = 80.0
    shift_step: float = 20.0
    detector: str = "classical"

    def __post_init__(self) -> None:
        if self.n_freq_xy < 2 or self.n_freq_phi < 1:
            raise ValueError("need at least 2 spatial and 1 orientation frequencies")
        if not self.scales or any(not 0 < s <= 1 for s in self.scales):
            raise ValueError(f"query scales must lie in (0, 1], got {self.scales}")
        if tuple(sorted(self.scales, reverse=True)) != tuple(self.scales):
            raise ValueError("query scales must be given largest first")
        if self.sigma_xy <= 0 or self.sigma_phi <= 0 or self.max_side < 16:
            raise ValueError("kernel widths must be positive and max_side at least 16")
        if self.shift_step <= 0 or self.max_shift < 0:
            raise ValueError("shift_step must be positive and max_shift non-negative")
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))

    @property
    def dim_xy(self) -> int:
        """Dimension of the spatial feature map (per axis)."""
        return 2 * self.n_freq_xy - 1

    @property
    def dim_phi(self) -> int:
        """Dimension of the orientation feature map."""
        return 2 * self.n_freq_phi - 1

    @property
    def dim(self) -> int:
        """Dimension of the 2-D sketch descriptor."""
        return self.dim_xy * self.dim_xy * self.dim_phi

    @property
    def sigmas(self) -> tuple[float, ...]:
        """Spatial kernel width per query scale."""
        return tuple(self.sigma_xy * s for s in self.scales)

    @classmethod
    def preset(cls, name: str) -> SketchSettings:
        """Named presets: ``compact`` (5, 2) -> 243-D, ``quality`` (6, 3) -> 605-D."""
        presets = {"compact": cls(), "quality": cls(n_freq_xy=6, n_freq_phi=3)}
        try:
            return presets[name]
        except KeyError:
            raise ValueError(f"unknown descriptor preset {name!r}; known: {sorted(presets)}") from None
