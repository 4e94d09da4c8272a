"""Rebuild the demo collection in ``resources/demo/`` (the files are committed; this is for reproducibility).

Three parts:

* ``photos/gen_*.jpg`` -- scenes rendered here with numpy/OpenCV (houses, sailboats, cups, ...), seeded, so
  every run gives the same pixels for the same library versions.  Two scikit-image texture images
  (``grass.png``, ``gravel.png``, both CC0) are used as surface textures.
* ``photos/skimage_*.jpg`` and ``photos/debian_*.jpg`` -- real photos copied from files that ship inside
  installed packages (scikit-image's data directory; the Debian package ``lomiri-wallpapers-16.04``),
  resized and re-encoded.  ``LICENSE.md`` lists the source and licence of each one.
* ``sketches/*.png`` -- three demo sketches drawn as wobbly polylines, like a mouse drawing, plus
  ``expected.json`` (which photos each sketch should find, and the object's box in each).

Usage::

    python scripts/make_demo.py                  # everything it can find
    python scripts/make_demo.py --only generated # or: packaged, sketches
    python scripts/make_demo.py --debian-root /tmp/x   # where lomiri-wallpapers-16.04 was unpacked

The Debian photos are looked up under ``<debian-root>/usr/share/backgrounds/`` (default root ``/``, i.e. the
package installed with ``apt-get install lomiri-wallpapers-16.04``; or ``dpkg-deb -x`` its .deb anywhere).
When a source is missing the committed copy is left as it is.  Nothing here is used at run time.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

DEMO = Path(__file__).resolve().parents[1] / "resources" / "demo"  # (resources.DEMO; this script also runs uninstalled)
PHOTOS = DEMO / "photos"
SKETCHES = DEMO / "sketches"
JPEG_QUALITY = 85
SS = 2  # supersampling of the generated scenes

# --------------------------------------------------------------------------------------------------
# small rendering toolkit (float32 RGB in [0, 1], canvases SS times the final size)
# --------------------------------------------------------------------------------------------------


def rgb(hexstr: str) -> np.ndarray:
    h = hexstr.lstrip("#")
    return np.array([int(h[i : i + 2], 16) for i in (0, 2, 4)], np.float32) / 255.0


def fbm(
    rng: np.random.Generator,
    h: int,
    w: int,
    cell: float,
    octaves: int = 5,
    gain: float = 0.5,
    aspect: float = 1.0,
) -> np.ndarray:
    """Fractal value noise, zero mean, unit std.  ``aspect`` > 1 stretches features horizontally."""
    out = np.zeros((h, w), np.float32)
    amp = 1.0
    for o in range(octaves):
        cy = max(1.0, cell / 2**o)
        cx = max(1.0, cy * aspect)
        gh, gw = int(h / cy) + 3, int(w / cx) + 3
        g = rng.standard_normal((gh, gw)).astype(np.float32)
        up = cv2.resize(g, (int(gw * cx), int(gh * cy)), interpolation=cv2.INTER_CUBIC)
        out += amp * up[:h, :w]
        amp *= gain
    out -= out.mean()
    return out / (out.std() + 1e-6)


def vgrad(h: int, w: int, stops: list[tuple[float, np.ndarray]]) -> np.ndarray:
    """Vertical colour gradient through (position in [0, 1], colour) stops."""
    t = np.linspace(0, 1, h, dtype=np.float32)
    pos = np.array([p for p, _ in stops], np.float32)
    cols = np.stack([c for _, c in stops])
    col = np.stack([np.interp(t, pos, cols[:, k]) for k in range(3)], 1)
    return np.repeat(col[:, None, :], w, axis=1).astype(np.float32)


def _pts(pts) -> np.ndarray:
    return np.round(np.asarray(pts, np.float64) * 16).astype(np.int32).reshape(-1, 1, 2)


def poly_mask(shape, pts) -> np.ndarray:
    m = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(m, [_pts(pts)], 255, lineType=cv2.LINE_AA, shift=4)
    return m.astype(np.float32) / 255.0


def line_mask(shape, pts, thick: float, closed: bool = False) -> np.ndarray:
    m = np.zeros(shape[:2], np.uint8)
    cv2.polylines(m, [_pts(pts)], closed, 255, max(1, int(round(thick))), lineType=cv2.LINE_AA, shift=4)
    return m.astype(np.float32) / 255.0


def ellipse_pts(
    c, axes, angle_deg: float = 0.0, t0: float = 0.0, t1: float = 360.0, n: int = 180
) -> np.ndarray:
    t = np.deg2rad(np.linspace(t0, t1, n))
    a = np.deg2rad(angle_deg)
    x, y = axes[0] * np.cos(t), axes[1] * np.sin(t)
    return np.stack([c[0] + x * np.cos(a) - y * np.sin(a), c[1] + x * np.sin(a) + y * np.cos(a)], 1)


def ellipse_mask(shape, c, axes, angle_deg: float = 0.0) -> np.ndarray:
    return poly_mask(shape, ellipse_pts(c, axes, angle_deg, n=360))


def rect_pts(x0, y0, x1, y1):
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def paint(img: np.ndarray, mask: np.ndarray, color) -> None:
    """Alpha-blend ``color`` ((3,) or an image) into ``img`` where ``mask`` (in [0, 1]) is set."""
    m = np.clip(mask, 0, 1)[..., None]
    img *= 1 - m
    img += m * np.asarray(color, np.float32)


def blur(a: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(a, (0, 0), sigma) if sigma > 0 else a


def shift(a: np.ndarray, dx: float, dy: float) -> np.ndarray:
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(a, m, (a.shape[1], a.shape[0]), borderMode=cv2.BORDER_CONSTANT)


def cast_shadow(
    img: np.ndarray,
    mask: np.ndarray,
    dx: float,
    dy: float,
    sigma: float,
    strength: float,
    sx: float = 1.0,
    sy: float = 1.0,
    anchor: tuple[float, float] | None = None,
) -> None:
    """Darken ``img`` by a blurred, moved (and optionally squashed about ``anchor``) copy of ``mask``."""
    if anchor is not None and (sx != 1.0 or sy != 1.0):
        ax, ay = anchor
        m = np.float32([[sx, 0, ax - sx * ax + dx], [0, sy, ay - sy * ay + dy]])
        sh = cv2.warpAffine(mask, m, (mask.shape[1], mask.shape[0]))
    else:
        sh = shift(mask, dx, dy)
    img *= (1 - strength * np.clip(blur(sh, sigma), 0, 1))[..., None]


def dome(mask: np.ndarray, sigma: float, light=(-0.5, -0.7, 0.6), relief: float = 1.0) -> np.ndarray:
    """Lambert shading of a pillow-shaped height field made from ``mask``: values ~[0, 1]."""
    hgt = blur(mask, sigma) * relief * sigma
    gy, gx = np.gradient(hgt)
    n = np.stack([-gx, -gy, np.ones_like(gx)], -1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    L = np.asarray(light, np.float32)
    L = L / np.linalg.norm(L)
    return np.clip(n @ L, 0, 1).astype(np.float32)


def specular(mask: np.ndarray, sigma: float, light=(-0.5, -0.7, 0.6), power: float = 30.0) -> np.ndarray:
    hgt = blur(mask, sigma) * sigma
    gy, gx = np.gradient(hgt)
    n = np.stack([-gx, -gy, np.ones_like(gx)], -1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    L = np.asarray(light, np.float32)
    L = L / np.linalg.norm(L)
    hv = L + np.array([0, 0, 1], np.float32)
    hv /= np.linalg.norm(hv)
    return (np.clip(n @ hv, 0, 1) ** power).astype(np.float32) * mask


def tex(base, noise: np.ndarray, amount: float) -> np.ndarray:
    """Colour ``base`` modulated by a noise field."""
    return np.asarray(base, np.float32)[None, None, :] * (1 + amount * noise)[..., None]


def cylinder_shade(
    h: int, w: int, x0: float, x1: float, light_x: float = -0.35, amb: float = 0.35
) -> np.ndarray:
    """Brightness across a vertical cylinder spanning columns x0..x1 (outside: 1)."""
    x = np.arange(w, dtype=np.float32)
    u = np.clip((x - (x0 + x1) / 2) / ((x1 - x0) / 2 + 1e-6), -1, 1)
    nz = np.sqrt(np.clip(1 - u * u, 0, 1))
    lam = np.clip(u * light_x + nz * math.sqrt(max(0.0, 1 - light_x**2)), 0, 1)
    spec = np.clip(u * light_x + nz * math.sqrt(max(0.0, 1 - light_x**2)), 0, 1) ** 40
    row = amb + (1 - amb) * lam + 0.6 * spec
    return np.repeat(row[None, :], h, axis=0)


_SK_DATA: Path | None = None


def skimage_image(name: str) -> np.ndarray:
    """A file from scikit-image's bundled data directory, as float32 (gray or RGB)."""
    global _SK_DATA
    if _SK_DATA is None:
        import skimage

        _SK_DATA = Path(skimage.__file__).parent / "data"
    im = cv2.imread(str(_SK_DATA / name), cv2.IMREAD_UNCHANGED)
    if im is None:
        raise FileNotFoundError(_SK_DATA / name)
    if im.ndim == 3:
        im = cv2.cvtColor(im[..., :3], cv2.COLOR_BGR2RGB)
    return im.astype(np.float32) / 255.0


def texture_quad(texture: np.ndarray, shape, quad, reps=(1.0, 1.0)) -> np.ndarray:
    """Map a (tiled) gray texture onto the quadrilateral ``quad`` (TL, TR, BR, BL) of a ``shape`` canvas."""
    t = texture if texture.ndim == 2 else texture.mean(2)
    ty, tx = max(1, int(math.ceil(reps[1]))), max(1, int(math.ceil(reps[0])))
    tiled = np.tile(t, (ty, tx))
    th, tw = t.shape[0] * reps[1], t.shape[1] * reps[0]
    src = np.float32([[0, 0], [tw, 0], [tw, th], [0, th]])
    mtx = cv2.getPerspectiveTransform(src, np.float32(quad))
    return cv2.warpPerspective(
        tiled, mtx, (shape[1], shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )


def wood(
    rng: np.random.Generator,
    h: int,
    w: int,
    light,
    dark,
    plank: float = 0.0,
    angle: float = 0.0,
    ring: float = 0.08,
) -> np.ndarray:
    """Wood grain (planks ``plank`` px wide, 0 = one board), grain along ``angle`` degrees (small angles)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = np.deg2rad(angle)
    v = -xx * np.sin(a) + yy * np.cos(a)  # across the grain
    period = 2 * np.pi / ring / 4
    warp = fbm(rng, h, w, 40, 4, aspect=10) * 0.35 * period + fbm(rng, h, w, 160, 2, aspect=4) * period
    g = 0.5 + 0.5 * np.sin(2 * np.pi * (v + warp) / period)
    g = 1 - 0.55 * g**4 - 0.2 * g
    fibre = fbm(rng, h, w, 1.5, 3, aspect=25)
    broad = fbm(rng, h, w, 200, 3, aspect=4)
    g = g * (1 + 0.08 * fibre) * (1 + 0.1 * broad)
    if plank > 0:
        idx = np.floor(v / plank)
        vary = hash01(idx, idx * 0.37)
        g = g * (0.8 + 0.35 * vary)
        f = (v / plank) % 1.0
        seam = np.minimum(f, 1 - f) * plank
        g = g * (0.35 + 0.65 * np.clip(seam / 2.5, 0, 1))
    g = np.clip(g, 0, 1.3)
    col = (
        np.asarray(dark, np.float32)
        + (np.asarray(light, np.float32) - np.asarray(dark, np.float32)) * g[..., None]
    )
    return col.astype(np.float32)


def clouds(rng: np.random.Generator, h: int, w: int, cover: float = 0.0, cell: float = 220) -> np.ndarray:
    n = fbm(rng, h, w, cell, 6, aspect=2.2)
    return np.clip((n - 1.2 + 2.2 * cover) * 0.8, 0, 1)


def finish(
    img: np.ndarray,
    rng: np.random.Generator,
    size: tuple[int, int],
    vignette: float = 0.25,
    noise: float = 0.012,
    soften: float = 0.55,
    warm: float = 0.0,
) -> np.ndarray:
    """Camera look: downsample, lens softness, vignette, sensor noise -> uint8 RGB of ``size`` (w, h)."""
    w, h = size
    im = cv2.resize(np.clip(img, 0, 1.5), (w, h), interpolation=cv2.INTER_AREA)
    im = blur(im, soften)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    im *= (1 - vignette * r2 / 2)[..., None]
    if warm:
        im *= np.array([1 + warm, 1, 1 - warm], np.float32)
    im = np.clip(im, 0, None)
    im = im / (1 + 0.12 * im)  # gentle highlight roll-off
    im *= 1.12
    lum = rng.standard_normal((h, w, 1)).astype(np.float32) * noise
    chroma = rng.standard_normal((h, w, 3)).astype(np.float32) * noise * 0.5
    im = im + (lum + chroma) * np.sqrt(np.clip(im, 0.02, 1))
    return (np.clip(im, 0, 1) * 255 + 0.5).astype(np.uint8)


class Scene:
    """A supersampled canvas plus the union mask of the scene's main object (for its box)."""

    def __init__(self, w: int, h: int):
        self.size = (w, h)
        self.W, self.H = w * SS, h * SS
        self.img = np.zeros((self.H, self.W, 3), np.float32)
        self.obj = np.zeros((self.H, self.W), np.float32)

    @property
    def shape(self):
        return (self.H, self.W)

    def mark(self, mask: np.ndarray) -> None:
        self.obj = np.maximum(self.obj, mask)

    def box(self) -> list[int]:
        """Main object's box [x0, y0, x1, y1] in final pixels (x1, y1 exclusive)."""
        ys, xs = np.nonzero(self.obj > 0.5)
        return [
            int(math.floor(xs.min() / SS)),
            int(math.floor(ys.min() / SS)),
            int(math.ceil((xs.max() + 1) / SS)),
            int(math.ceil((ys.max() + 1) / SS)),
        ]

    def mirrored(self) -> None:
        self.img = self.img[:, ::-1].copy()
        self.obj = self.obj[:, ::-1].copy()


def hash01(*a) -> np.ndarray:
    v = np.zeros_like(np.asarray(a[0], np.float64))
    for i, x in enumerate(a):
        v = v + np.asarray(x, np.float64) * (12.9898 + 65.233 * i)
    return (np.sin(v) * 43758.5453) % 1.0


def bricks(
    rng: np.random.Generator, h: int, w: int, bw: float, bh: float, col, mortar, vary: float = 0.18
) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    row = np.floor(yy / bh)
    xo = xx + (row % 2) * bw / 2
    col_i = np.floor(xo / bw)
    fy = (yy / bh) % 1.0
    fx = (xo / bw) % 1.0
    mx, my = 1.6 / bw, 1.6 / bh
    inside = np.clip((np.minimum(fx, 1 - fx) - mx) * bw, 0, 1) * np.clip(
        (np.minimum(fy, 1 - fy) - my) * bh, 0, 1
    )
    r = hash01(row, col_i)
    n = fbm(rng, h, w, 3, 2)
    c = (
        np.asarray(col, np.float32)[None, None]
        * (1 - vary / 2 + vary * r[..., None])
        * (1 + 0.06 * n[..., None])
    )
    c = c * (0.85 + 0.15 * (1 - fy))[..., None]
    m = np.asarray(mortar, np.float32)[None, None] * (1 + 0.08 * n[..., None])
    return (c * inside[..., None] + m * (1 - inside[..., None])).astype(np.float32)


def roof_tiles(h: int, w: int, tw: float, th: float, col, vary: float = 0.25) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    row = np.floor(yy / th)
    xo = xx + (row % 2) * tw / 2
    ti = np.floor(xo / tw)
    fy = (yy / th) % 1.0
    fx = (xo / tw) % 1.0
    r = hash01(row * 1.7, ti)
    shade = 1 - 0.45 * np.clip((fy - 0.72) / 0.28, 0, 1) ** 1.5  # overlap shadow at each row's lower edge
    shade *= 0.75 + 0.25 * np.sin(np.pi * fx) ** 0.3  # joints
    c = np.asarray(col, np.float32)[None, None] * (1 - vary / 2 + vary * r[..., None]) * shade[..., None]
    return c.astype(np.float32)


def sky_and_lawn(
    sc: Scene,
    rng,
    horizon: float,
    sky_top,
    sky_bottom,
    grass_col,
    cover=0.35,
    cloud_col=None,
    tree_col=None,
    haze=0.0,
) -> None:
    H, W = sc.shape
    hz = int(horizon * H)
    sky = vgrad(H, W, [(0, sky_top), (horizon, sky_bottom), (1, sky_bottom)])
    cl = clouds(rng, H, W, cover)
    cc = np.ones(3, np.float32) if cloud_col is None else np.asarray(cloud_col, np.float32)
    shade = 0.93 + 0.07 * np.clip(fbm(rng, H, W, 60, 3), -1, 1)[..., None]
    sky = sky * (1 - cl[..., None]) + cc * shade * cl[..., None]
    sc.img[:] = sky
    if tree_col is not None:  # distant tree line
        prof = fbm(rng, 1, W, 40, 4)[0] * 0.025 * H + fbm(rng, 1, W, 300, 2)[0] * 0.02 * H
        top = hz - 0.06 * H - prof
        yy = np.arange(H, dtype=np.float32)[:, None]
        m = np.clip(yy - top[None, :], 0, 1) * (yy <= hz + 2)
        leaf = (
            tex(tree_col, fbm(rng, H, W, 5, 3), 0.25)
            * (0.8 + 0.2 * dome(m.astype(np.float32), 12))[..., None]
        )
        paint(sc.img, blur(m.astype(np.float32), 1.0), leaf)
    grass = skimage_image("grass.png")
    g = texture_quad(
        grass, sc.shape, [(-0.6 * W, hz), (1.6 * W, hz), (1.1 * W, H), (-0.1 * W, H)], reps=(6, 1.2)
    )
    g = (g - g.mean()) / (g.std() + 1e-6)
    depth = np.clip((np.arange(H, dtype=np.float32) - hz) / (H - hz), 0, 1)[:, None, None]
    lawn = tex(grass_col, g * 0.9 + 0.25 * fbm(rng, H, W, 120, 3), 0.22) * (0.85 + 0.3 * depth)
    lawn = lawn * (1 - haze * (1 - depth)) + haze * (1 - depth) * np.asarray(sky_bottom, np.float32)
    m = np.zeros((H, W), np.float32)
    m[hz:] = 1
    paint(sc.img, blur(m, 1.0), lawn)


def draw_window(sc: Scene, x0, y0, x1, y1, trim, lit: bool, rng) -> None:
    H, W = sc.shape
    f = 0.09 * (x1 - x0)
    paint(sc.img, poly_mask(sc.shape, rect_pts(x0 - f, y0 - f, x1 + f, y1 + f)), trim * 0.95)
    if lit:
        glass = vgrad(H, W, [(0, rgb("#ffd98a")), (1, rgb("#f0a040"))]) * 1.1
    else:
        glass = vgrad(
            H,
            W,
            [(0, rgb("#9fb7c8")), (y0 / H, rgb("#b8cad8")), (y1 / H, rgb("#2f3a44")), (1, rgb("#2f3a44"))],
        )
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
        sheen = np.clip(1 - np.abs((xx - x0) - 0.8 * (yy - y0) - 0.3 * (x1 - x0)) / (0.12 * (x1 - x0)), 0, 1)
        glass = glass + 0.18 * sheen[..., None]
    gm = poly_mask(sc.shape, rect_pts(x0, y0, x1, y1))
    paint(sc.img, gm, glass)
    cast_shadow(
        sc.img, line_mask(sc.shape, [(x0, y0 + 2), (x1, y0 + 2)], 3), 0, 3, 3, 0.35
    )  # under the lintel
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    paint(sc.img, line_mask(sc.shape, [(mx, y0), (mx, y1)], f * 0.7), trim * 0.9)
    paint(sc.img, line_mask(sc.shape, [(x0, my), (x1, my)], f * 0.7), trim * 0.9)
    sill = poly_mask(sc.shape, rect_pts(x0 - 1.6 * f, y1 + f, x1 + 1.6 * f, y1 + 2.2 * f))
    cast_shadow(sc.img, sill, 0, 2.5 * f, 2 * f, 0.35)
    paint(sc.img, sill, trim)


def draw_house(
    sc: Scene,
    rng,
    cx,
    ground,
    width,
    wall_h,
    roof_h,
    *,
    wall="plaster",
    wall_col,
    roof_col,
    trim,
    door_col,
    lit=False,
    chimney=0.28,
    ridge=0.0,
    light_dir=-1,
    windows=2,
    sun=0.3,
) -> None:
    """Front view of a house with a hipped/pyramid roof (outline: box + triangle) standing on ``ground``."""
    H, W = sc.shape
    x0, x1 = cx - width / 2, cx + width / 2
    y0 = ground - wall_h
    ov = 0.07 * width
    apex = y0 - roof_h
    eave = y0 + 0.03 * wall_h
    # chimney (behind the roof)
    if chimney:
        ccx = cx + chimney * width * (1 if light_dir < 0 else -1)
        cw = 0.085 * width
        # roof height at the chimney's centre
        slope_y = apex + (abs(ccx - cx) / (width / 2 + ov)) * (eave - apex)
        ctop = apex + 0.1 * roof_h
        cm = poly_mask(sc.shape, rect_pts(ccx - cw / 2, ctop, ccx + cw / 2, slope_y + 10))
        cb = bricks(rng, H, W, 0.05 * width, 0.018 * width, rgb("#8a4a36"), rgb("#b8aa98"))
        paint(sc.img, cm, cb)
        cap = poly_mask(sc.shape, rect_pts(ccx - cw * 0.62, ctop - 0.022 * width, ccx + cw * 0.62, ctop))
        paint(sc.img, cap, rgb("#6b6660"))
        sc.mark(cm)
        sc.mark(cap)
    # walls
    wm = poly_mask(sc.shape, rect_pts(x0, y0, x1, ground))
    if wall == "brick":
        wt = bricks(
            rng, H, W, 0.075 * width, 0.026 * width, wall_col, wall_col * 0.55 + 0.4 * rgb("#c9c0b0"), 0.12
        )
    elif wall == "siding":
        yy = np.arange(H, dtype=np.float32)[:, None]
        bh = 0.035 * width
        fy = (yy / bh) % 1.0
        wt = tex(wall_col, fbm(rng, H, W, 8, 3, aspect=8), 0.03) * (0.78 + 0.22 * fy)[..., None]
    else:
        wt = tex(wall_col, 0.6 * fbm(rng, H, W, 3, 2) + 0.4 * fbm(rng, H, W, 90, 4), 0.05)
    yy = np.arange(H, dtype=np.float32)[:, None, None]
    eave_sh = 1 - 0.35 * np.exp(-np.clip(yy - y0, 0, None) / (0.09 * wall_h))
    wt = wt * eave_sh * (1 - 0.12 * np.exp(-np.clip(ground - yy, 0, None) / (0.05 * wall_h)))
    wt = wt * (1 + sun * 0.15)
    # ground shadow
    cast_shadow(
        sc.img, wm, -light_dir * 0.12 * width, 0.02 * wall_h, 0.03 * width, 0.45, sy=0.25, anchor=(cx, ground)
    )
    paint(sc.img, wm, wt)
    sc.mark(wm)
    # door and windows
    dw, dh = 0.17 * width, 0.58 * wall_h
    dx = cx - dw / 2 if windows != 2 else cx - dw / 2
    dm = poly_mask(
        sc.shape, rect_pts(dx - 0.02 * width, ground - dh - 0.02 * width, dx + dw + 0.02 * width, ground)
    )
    paint(sc.img, dm, trim * 0.95)
    door = tex(door_col, fbm(rng, H, W, 4, 3, aspect=6), 0.08)
    dmi = poly_mask(sc.shape, rect_pts(dx, ground - dh, dx + dw, ground))
    paint(sc.img, dmi, door)
    for py0, py1 in ((0.12, 0.45), (0.55, 0.9)):
        for px0, px1 in ((0.15, 0.45), (0.55, 0.85)):
            pm = line_mask(
                sc.shape,
                rect_pts(dx + px0 * dw, ground - dh + py0 * dh, dx + px1 * dw, ground - dh + py1 * dh),
                2,
                closed=True,
            )
            paint(sc.img, pm, door_col * 0.6)
    paint(
        sc.img,
        ellipse_mask(sc.shape, (dx + 0.82 * dw, ground - 0.48 * dh), (0.014 * width, 0.014 * width)),
        rgb("#d9b65a"),
    )
    ww, wh = 0.19 * width, 0.36 * wall_h
    wy0 = y0 + 0.24 * wall_h
    for k in range(windows):
        wx = (x0 + 0.09 * width) if k == 0 else (x1 - 0.09 * width - ww)
        draw_window(sc, wx, wy0, wx + ww, wy0 + wh, trim, lit, rng)
    # roof
    if ridge > 0:
        rp = [
            (x0 - ov, eave),
            (cx - ridge * width / 2, apex),
            (cx + ridge * width / 2, apex),
            (x1 + ov, eave),
        ]
    else:
        rp = [(x0 - ov, eave), (cx, apex), (x1 + ov, eave)]
    rm = poly_mask(sc.shape, rp)
    cast_shadow(sc.img, rm * wm.max(), 0, 0.03 * wall_h, 0.02 * width, 0.4)
    rt = roof_tiles(H, W, 0.06 * width, 0.03 * width, roof_col)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    side = np.clip((xx - cx) / (width / 2), -1, 1) * (-light_dir)
    rt = rt * (1.0 - 0.12 * side)[..., None] * (0.9 + 0.15 * np.clip((yy - apex) / roof_h, 0, 1))[..., None]
    paint(sc.img, rm, rt)
    fascia = line_mask(sc.shape, [(x0 - ov, eave), (x1 + ov, eave)], 0.022 * width)
    paint(sc.img, fascia, trim * 0.85)
    edge = line_mask(sc.shape, rp, 0.012 * width)
    paint(sc.img, edge * (1 - fascia), roof_col * 0.55)
    sc.mark(rm)
    sc.mark(fascia)


def gen_house_1(rng):
    """House with a red tiled roof on a lawn, sunny sky."""
    sc = Scene(600, 480)
    sky_and_lawn(
        sc, rng, 0.66, rgb("#5d8fd0"), rgb("#cfe0ef"), rgb("#5d8a3a"), cover=0.35, tree_col=rgb("#3d5a2c")
    )
    H, W = sc.shape
    draw_house(
        sc,
        rng,
        0.5 * W,
        0.89 * H,
        0.64 * W,
        0.42 * H,
        0.31 * H,
        wall="plaster",
        wall_col=rgb("#e8dcc0"),
        roof_col=rgb("#a5402d"),
        trim=rgb("#f4f1ea"),
        door_col=rgb("#2f5d3a"),
    )
    return sc


def draw_tree(sc: Scene, rng, x, ground, height, col, trunk_col=None, light=(-0.5, -0.7, 0.6)) -> None:
    H, W = sc.shape
    trunk_col = rgb("#4a3626") if trunk_col is None else trunk_col
    tw = 0.07 * height
    tm = poly_mask(
        sc.shape,
        [
            (x - tw / 2, ground),
            (x - tw / 3, ground - 0.55 * height),
            (x + tw / 3, ground - 0.55 * height),
            (x + tw / 2, ground),
        ],
    )
    cast_shadow(sc.img, tm, 0.3 * height, 0, 6, 0.35, sy=0.15, anchor=(x, ground))
    paint(sc.img, tm, tex(trunk_col, fbm(rng, H, W, 4, 3, aspect=0.2), 0.2))
    cm = np.zeros(sc.shape, np.float32)
    r = 0.3 * height
    for _ in range(9):
        a = rng.uniform(0, 2 * np.pi)
        d = rng.uniform(0, 0.45) * r
        cm = np.maximum(
            cm,
            ellipse_mask(
                sc.shape,
                (x + d * np.cos(a), ground - 0.68 * height + 0.8 * d * np.sin(a)),
                (r * rng.uniform(0.55, 0.8), r * rng.uniform(0.5, 0.7)),
            ),
        )
    edge_n = fbm(rng, H, W, 6, 3)
    cm = np.clip(blur(cm, 4) * 2 - 0.5 + 0.35 * edge_n, 0, 1) * (blur(cm, 6) > 0.02)
    leaf = tex(col, fbm(rng, H, W, 4, 3), 0.3) * (0.35 + 0.9 * dome(cm, 0.12 * height, light))[..., None]
    paint(sc.img, cm, leaf)


def gen_house_2(rng):
    """White clapboard house with a slate hip roof and a tree, overcast."""
    sc = Scene(600, 460)
    sky_and_lawn(
        sc,
        rng,
        0.68,
        rgb("#8d9aa8"),
        rgb("#d9dde0"),
        rgb("#6f8a45"),
        cover=0.75,
        cloud_col=rgb("#e4e6e8"),
        tree_col=rgb("#55663f"),
        haze=0.2,
    )
    H, W = sc.shape
    draw_tree(sc, rng, 0.9 * W, 0.86 * H, 0.72 * H, rgb("#4f7a34"))
    draw_house(
        sc,
        rng,
        0.42 * W,
        0.9 * H,
        0.6 * W,
        0.44 * H,
        0.29 * H,
        wall="siding",
        wall_col=rgb("#f2f2ee"),
        roof_col=rgb("#4f5d6e"),
        trim=rgb("#fbfbf8"),
        door_col=rgb("#8c2f2b"),
        ridge=0.14,
        sun=0.0,
    )
    return sc


def gen_house_3(rng):
    """House at dusk with lit windows."""
    sc = Scene(600, 480)
    sky_and_lawn(
        sc,
        rng,
        0.7,
        rgb("#2a2f5a"),
        rgb("#e58c5a"),
        rgb("#2c3a22"),
        cover=0.2,
        cloud_col=rgb("#b9708a"),
        tree_col=rgb("#1c2418"),
    )
    H, W = sc.shape
    draw_house(
        sc,
        rng,
        0.54 * W,
        0.89 * H,
        0.64 * W,
        0.42 * H,
        0.31 * H,
        wall="plaster",
        wall_col=rgb("#7d8aa0"),
        roof_col=rgb("#4a3a3a"),
        trim=rgb("#c8c4bc"),
        door_col=rgb("#3a2a20"),
        lit=True,
        light_dir=1,
        sun=-0.6,
    )
    sc.img *= 0.78
    return sc


def gen_house_4(rng):
    """Brick house with a grey roof, autumn."""
    sc = Scene(600, 480)
    sky_and_lawn(
        sc, rng, 0.64, rgb("#4f86c9"), rgb("#c4d9ec"), rgb("#8a8f3a"), cover=0.15, tree_col=rgb("#7a5a2a")
    )
    H, W = sc.shape
    draw_house(
        sc,
        rng,
        0.48 * W,
        0.9 * H,
        0.66 * W,
        0.43 * H,
        0.3 * H,
        wall="brick",
        wall_col=rgb("#9b4f3a"),
        roof_col=rgb("#505458"),
        trim=rgb("#efeae0"),
        door_col=rgb("#23394f"),
        chimney=-0.3,
    )
    return sc


def sea_and_sky(
    sc: Scene,
    rng,
    horizon: float,
    sky_top,
    sky_hz,
    sea_far,
    sea_near,
    cover=0.3,
    cloud_col=None,
    sun=None,
    chop: float = 1.0,
) -> None:
    """Sky with clouds over a sea with perspective waves; ``sun`` = (x, y, colour) in canvas px."""
    H, W = sc.shape
    hz = int(horizon * H)
    sky = vgrad(H, W, [(0, sky_top), (horizon, sky_hz), (1, sky_hz)])
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    if sun is not None:
        sx, sy, scol = sun
        d = np.hypot(xx - sx, yy - sy)
        sky = (
            sky
            + np.asarray(scol, np.float32)
            * (0.55 * np.exp(-d / (0.08 * W)) + 0.25 * np.exp(-d / (0.4 * W)))[..., None]
        )
        sky = np.where((d < 0.035 * W)[..., None], np.asarray(scol, np.float32) * 1.3, sky)
    cl = clouds(rng, H, W, cover, cell=160)
    cc = np.ones(3, np.float32) if cloud_col is None else np.asarray(cloud_col, np.float32)
    sky = sky * (1 - 0.9 * cl[..., None]) + 0.9 * cc * cl[..., None]
    sc.img[:] = sky
    # sea: sample a stretched noise texture through a ground-plane perspective
    tn = fbm(rng, 1024, 1024, 24, 5, aspect=3.0)
    d = np.clip((yy - hz) / (H - hz), 1e-3, 1)
    u = ((xx - W / 2) / (W / 2)) / d * 140 + 512
    v = (1 / d) * 28
    wv = cv2.remap(tn, (u % 1024).astype(np.float32), (v % 1024).astype(np.float32), cv2.INTER_LINEAR)
    dv = np.gradient(wv, axis=0)
    sea = (
        np.asarray(sea_far, np.float32) * (1 - d[..., None] ** 0.6)
        + np.asarray(sea_near, np.float32) * d[..., None] ** 0.6
    )
    sea = sea * (1 + chop * (0.12 * wv + 2.0 * np.clip(dv, -0.5, 0.5))[..., None])
    refl = np.clip(-dv * 6 * chop, 0, 1) ** 2
    sea = sea + 0.25 * refl[..., None] * np.asarray(sky_hz, np.float32)
    if sun is not None:
        sx, sy, scol = sun
        glit = np.exp(-(((xx - sx) / (0.06 * W + 0.25 * W * d)) ** 2)) * np.clip(wv * 0.8 + 0.2, 0, 1) ** 3
        sea = sea + 0.9 * glit[..., None] * np.asarray(scol, np.float32)
    m = (yy >= hz).astype(np.float32)
    paint(sc.img, blur(m, 0.8), sea)
    sc.horizon = hz
    sc.wave = wv


def draw_sailboat(
    sc: Scene,
    rng,
    cx,
    wl,
    L,
    M,
    *,
    hull_col,
    sail_col,
    jib_col=None,
    stripe=None,
    silhouette=False,
    light=(-0.5, -0.6, 0.6),
    reflect: float = 0.35,
) -> None:
    """Side view of a sloop, bow to the right, waterline at ``wl``, hull length ``L``, mast height ``M``."""
    H, W = sc.shape
    jib_col = sail_col if jib_col is None else jib_col
    layer = sc.img.copy()
    objm = np.zeros(sc.shape, np.float32)
    deck_s, deck_b = wl - 0.11 * L, wl - 0.16 * L
    t = np.linspace(0, 1, 40)
    deck = np.stack(
        [cx - 0.5 * L + t * L, deck_s + (deck_b - deck_s) * t**1.8 + 0.02 * L * np.sin(np.pi * t)], 1
    )
    bow_curve = [
        (cx + 0.5 * L - 0.05 * L * s**1.5, deck_b + (wl + 0.02 * L - deck_b) * s)
        for s in np.linspace(0, 1, 12)
    ]
    bottom = [(cx - 0.44 * L, wl + 0.02 * L), (cx - 0.5 * L + 0.01 * L, deck_s)]
    hull = np.concatenate([deck, np.array(bow_curve[1:]), np.array(bottom)])
    hm = poly_mask(sc.shape, hull)
    mx = cx + 0.06 * L
    mtop = deck_s - M + 0.12 * L
    boom_y = deck_s - 0.07 * M
    # mainsail with a convex leech
    s = np.linspace(0, 1, 30)
    clew = (cx - 0.4 * L, boom_y)
    leech = np.stack(
        [mx + (clew[0] - mx) * s + -0.06 * L * np.sin(np.pi * s), mtop + 0.01 * M + (clew[1] - mtop) * s], 1
    )
    main = np.concatenate([[(mx - 0.004 * L, boom_y)], [(mx - 0.004 * L, mtop + 0.01 * M)], leech])
    mm = poly_mask(sc.shape, main)
    jt = (mx + 0.005 * L, mtop + 0.12 * M)
    jtack = (cx + 0.47 * L, deck_b + 0.01 * L)
    jclew = (cx + 0.12 * L, deck_s - 0.1 * M)
    jm = poly_mask(sc.shape, [jt, jtack, (jclew[0] + 0.02 * L, jclew[1] + 0.01 * M), jclew])
    mast = line_mask(sc.shape, [(mx, deck_s + 0.01 * L), (mx, mtop - 0.01 * M)], max(2, 0.012 * L))
    boom = line_mask(sc.shape, [(mx, boom_y), (clew[0] - 0.01 * L, boom_y + 0.005 * M)], max(2, 0.014 * L))
    cabin = poly_mask(
        sc.shape,
        [
            (cx - 0.2 * L, deck_s - 0.03 * L),
            (cx - 0.17 * L, deck_s - 0.085 * L),
            (cx + 0.16 * L, deck_s - 0.09 * L),
            (cx + 0.22 * L, deck_s - 0.02 * L),
        ],
    )
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    if silhouette:
        dark = np.asarray(hull_col, np.float32)
        for m in (mm, jm, cabin, hm, mast, boom):
            paint(layer, m, dark)
    else:
        # sails: cloth shading, seams, slight translucency
        for m, col, x_l, x_r in ((mm, sail_col, clew[0], mx), (jm, jib_col, mx, jtack[0])):
            u = np.clip((xx - x_l) / (x_r - x_l + 1e-6), 0, 1)
            shade = 0.8 + 0.2 * np.sin(np.pi * (0.25 + 0.75 * u)) + 0.012 * fbm(rng, H, W, 30, 2)
            seams = 1 - 0.06 * (np.abs(((yy - boom_y) / (0.09 * M)) % 1.0 - 0.5) > 0.47)
            paint(layer, m, tex(col, fbm(rng, H, W, 3, 2), 0.02) * (shade * seams)[..., None])
        cast_shadow(layer, jm, -0.02 * L, 0.01 * L, 0.01 * L, 0.25)
        paint(
            layer,
            jm,
            tex(jib_col, fbm(rng, H, W, 3, 2), 0.02)
            * (0.92 + 0.1 * np.clip((xx - mx) / (jtack[0] - mx), 0, 1))[..., None],
        )
        paint(layer, mast, rgb("#c9c9c4") * (0.7 + 0.3 * dome(mast, 2, light))[..., None])
        paint(layer, boom, rgb("#b0b0aa"))
        paint(layer, cabin, rgb("#e9e4d6") * 0.95)
        for k in range(3):
            wx = cx - 0.12 * L + k * 0.09 * L
            paint(
                layer,
                poly_mask(sc.shape, rect_pts(wx, deck_s - 0.07 * L, wx + 0.05 * L, deck_s - 0.05 * L)),
                rgb("#2a3540"),
            )
        hs = 0.45 + 0.7 * dome(hm, 0.05 * L, light)
        ht = tex(hull_col, fbm(rng, H, W, 5, 2), 0.02) * hs[..., None]
        paint(layer, hm, ht)
        if stripe is not None:
            st = line_mask(sc.shape, deck + np.array([0, 0.035 * L]), 0.012 * L) * hm
            paint(layer, st, stripe)
        rail = line_mask(sc.shape, deck, 0.008 * L)
        paint(layer, rail, rgb("#d8d8d0"))
    for m in (mm, jm, hm, mast, boom, cabin):
        objm = np.maximum(objm, m)
    # waterline foam and reflection
    refl = layer[::-1].copy()
    ry = int(round(2 * wl))
    refl = np.roll(refl, ry - H, axis=0) if ry < 2 * H else refl
    rm = np.roll(objm[::-1], ry - H, axis=0) * (yy > wl)
    wob = (sc.wave * 6).astype(np.float32)
    mapx = (xx + wob * (1 + (yy - wl) / (0.1 * H))).astype(np.float32)
    refl = cv2.remap(refl, mapx, yy, cv2.INTER_LINEAR)
    rm = cv2.remap(rm, mapx, yy, cv2.INTER_LINEAR)
    fade = np.clip(1 - (yy - wl) / (0.45 * H), 0, 1)
    paint(sc.img, blur(rm, 2) * reflect * fade, blur(refl, 2) * 0.8)
    paint(sc.img, objm, layer)
    foam = line_mask(sc.shape, [(cx - 0.45 * L, wl + 0.01 * L), (cx + 0.44 * L, wl + 0.015 * L)], 0.015 * L)
    paint(sc.img, blur(foam, 2) * 0.5 * (0.5 + 0.5 * np.clip(fbm(rng, H, W, 6, 2), 0, 1)), rgb("#f4f6f6"))
    sc.mark(objm)


def gen_sailboat_1(rng):
    """White sloop on a blue sea."""
    sc = Scene(440, 620)
    H, W = sc.shape
    sea_and_sky(sc, rng, 0.72, rgb("#3d78c4"), rgb("#bcd6ec"), rgb("#4b7da3"), rgb("#1f4f78"), cover=0.25)
    draw_sailboat(
        sc,
        rng,
        0.5 * W,
        0.83 * H,
        0.74 * W,
        0.70 * H,
        hull_col=rgb("#f3f3ef"),
        sail_col=rgb("#f7f5ee"),
        stripe=rgb("#1d3f7a"),
    )
    return sc


def draw_cup(
    sc: Scene,
    rng,
    scx,
    scy,
    A,
    *,
    k=0.78,
    cup_col,
    saucer_col=None,
    drink="espresso",
    handle="left",
    light=(-0.5, -0.7, 0.6),
    shadow_dir=(1.0, 0.8),
) -> None:
    """Cup on a saucer seen from above at an angle (ellipse ratio ``k``); saucer centre, half-width ``A``."""
    H, W = sc.shape
    saucer_col = cup_col if saucer_col is None else saucer_col
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    sd = np.asarray(shadow_dir, np.float32)
    # saucer: underside, top, well
    under = ellipse_mask(sc.shape, (scx, scy + 0.04 * A), (A * 0.985, A * k * 0.985))
    top = ellipse_mask(sc.shape, (scx, scy), (A, A * k))
    cast_shadow(sc.img, np.maximum(under, top), sd[0] * 0.06 * A, sd[1] * 0.06 * A, 0.05 * A, 0.55)
    paint(sc.img, under, saucer_col * 0.55)
    r = np.hypot((xx - scx) / A, (yy - scy) / (A * k))
    ring = np.exp(-(((r - 0.8) / 0.12) ** 2))
    lx = ((xx - scx) * light[0] + (yy - scy) * light[1] / k) / A
    stop = 0.84 + 0.14 * ring * (1 + 0.8 * lx) - 0.1 * np.clip(0.62 - r, 0, 1) * 3
    paint(sc.img, top, tex(saucer_col, fbm(rng, H, W, 6, 2), 0.006) * stop[..., None])
    spec = np.exp(-(((r - 0.86) / 0.035) ** 2)) * np.clip(lx * 2.5, 0, 1) ** 2
    paint(sc.img, top * spec * 0.85, np.ones(3, np.float32))
    well = line_mask(sc.shape, ellipse_pts((scx, scy + 0.02 * A), (0.62 * A, 0.62 * A * k)), 0.012 * A)
    paint(sc.img, blur(well, 0.01 * A) * 0.35, saucer_col * 0.5)
    sc.mark(np.maximum(top, under))
    # cup geometry
    rim_c = (scx + 0.03 * A, scy - 0.6 * A)
    ra = 0.58 * A
    bot_c = (scx + 0.01 * A, scy - 0.02 * A)
    ba = 0.36 * A
    rim = ellipse_mask(sc.shape, rim_c, (ra, ra * k))
    bot = ellipse_mask(sc.shape, bot_c, (ba, ba * k))
    side = poly_mask(
        sc.shape,
        [
            (rim_c[0] - ra, rim_c[1]),
            (rim_c[0] + ra, rim_c[1]),
            (bot_c[0] + ba, bot_c[1]),
            (bot_c[0] - ba, bot_c[1]),
        ],
    )
    # sides bulge a little (a tulip cup)
    t = np.linspace(0, 1, 30)
    bulge = 0.08 * A * np.sin(np.pi * t)
    lside = np.stack(
        [
            rim_c[0] - ra + (bot_c[0] - ba - rim_c[0] + ra) * t**1.4 - bulge,
            rim_c[1] + (bot_c[1] - rim_c[1]) * t,
        ],
        1,
    )
    rside = np.stack(
        [
            rim_c[0] + ra + (bot_c[0] + ba - rim_c[0] - ra) * t**1.4 + bulge,
            rim_c[1] + (bot_c[1] - rim_c[1]) * t,
        ],
        1,
    )
    side = np.maximum(side, poly_mask(sc.shape, np.concatenate([lside, rside[::-1]])))
    body = np.clip(rim + bot + side, 0, 1)
    # handle
    sgn = -1 if handle == "left" else 1
    hc = (rim_c[0] + sgn * 0.72 * A, scy - 0.3 * A)
    hm = line_mask(sc.shape, ellipse_pts(hc, (0.2 * A, 0.2 * A), 0, 0, 360), 0.085 * A)
    cast_shadow(sc.img, np.maximum(body, hm), sd[0] * 0.1 * A, sd[1] * 0.12 * A, 0.06 * A, 0.45)
    hs = 0.5 + 0.6 * dome(hm, 0.04 * A, light)
    paint(sc.img, hm, tex(cup_col, fbm(rng, H, W, 10, 2), 0.006) * hs[..., None])
    paint(sc.img, hm * specular(hm, 0.04 * A, light, 20) * 0.7, np.ones(3, np.float32))
    # body
    cyl = cylinder_shade(H, W, rim_c[0] - ra - 0.05 * A, rim_c[0] + ra + 0.05 * A, light[0] * 0.9, 0.3)
    vs = 0.85 + 0.2 * np.clip((yy - rim_c[1]) / (bot_c[1] - rim_c[1]), 0, 1)
    paint(sc.img, body, tex(cup_col, fbm(rng, H, W, 12, 2), 0.006) * (cyl * vs)[..., None])
    sc.mark(body)
    sc.mark(hm)
    # rim and inside
    lip = ellipse_mask(sc.shape, rim_c, (ra, ra * k))
    paint(sc.img, lip, np.asarray(cup_col) * 1.05 + 0.05)
    inner = ellipse_mask(sc.shape, rim_c, (ra * 0.92, ra * k * 0.92))
    iw = rgb("#f1efe9") if drink != "empty" else cup_col
    ilit = 0.55 + 0.45 * np.clip(((xx - rim_c[0]) * -light[0] + (yy - rim_c[1]) * -light[1] / k) / ra, -1, 1)
    paint(sc.img, inner, np.asarray(iw) * ilit[..., None])
    liq_c = (rim_c[0], rim_c[1] + 0.16 * A)
    liq = ellipse_mask(sc.shape, liq_c, (ra * 0.8, ra * k * 0.8)) * inner
    if drink == "espresso":
        lc0, lc1 = rgb("#c98a4e"), rgb("#7a4a22")
    elif drink == "tea":
        lc0, lc1 = rgb("#b5652a"), rgb("#6a2d10")
    else:
        lc0 = lc1 = None
    if lc0 is not None:
        lr = np.hypot((xx - liq_c[0]) / (ra * 0.8), (yy - liq_c[1]) / (ra * k * 0.8))
        lcol = lc0[None, None] * (1 - lr[..., None] ** 3) + lc1[None, None] * lr[..., None] ** 3
        lcol = lcol * (1 + (0.035 if drink == "espresso" else 0.01) * fbm(rng, H, W, 30, 3))[..., None]
        paint(sc.img, liq, lcol)
        hl = np.exp(
            -(
                ((xx - liq_c[0] + 0.25 * ra) / (0.18 * ra)) ** 2
                + ((yy - liq_c[1] + 0.2 * ra * k) / (0.08 * ra)) ** 2
            )
        )
        paint(sc.img, liq * hl * 0.5, np.ones(3, np.float32))
    rimline = line_mask(sc.shape, ellipse_pts(rim_c, (ra * 0.96, ra * k * 0.96)), 0.015 * A)
    paint(sc.img, rimline * 0.6, np.asarray(cup_col) * 1.2 + 0.1)


def tablecloth(rng, h, w, c1, c2, period, angle=8.0) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = np.deg2rad(angle)
    u = xx * np.cos(a) + yy * np.sin(a)
    v = -xx * np.sin(a) + yy * np.cos(a)
    bu = (np.sin(2 * np.pi * u / period) > 0).astype(np.float32)
    bv = (np.sin(2 * np.pi * v / period) > 0).astype(np.float32)
    bu, bv = blur(bu, 1.2), blur(bv, 1.2)
    dens = (bu + bv) / 2
    weave = 1 + 0.06 * np.sin(xx * 1.3) * np.sin(yy * 1.3) + 0.05 * fbm(rng, h, w, 2, 2)
    folds = 1 + 0.08 * fbm(rng, h, w, 200, 3)
    col = np.asarray(c1, np.float32) * (1 - dens[..., None]) + np.asarray(c2, np.float32) * dens[..., None]
    return col * (weave * folds)[..., None]


def gen_cup_1(rng):
    """Espresso cup on a saucer on a checked tablecloth."""
    sc = Scene(600, 420)
    H, W = sc.shape
    sc.img[:] = tablecloth(rng, H, W, rgb("#f2efe8"), rgb("#3d6fb0"), 0.075 * W)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    sc.img *= (1.05 - 0.25 * np.hypot(xx / W - 0.3, yy / H - 0.2))[..., None]
    draw_cup(sc, rng, 0.49 * W, 0.58 * H, 0.33 * W, cup_col=rgb("#f4f3ef"), drink="espresso", handle="left")
    return sc


def gen_cup_2(rng):
    """Tea cup on a saucer on a wooden table."""
    sc = Scene(600, 420)
    H, W = sc.shape
    sc.img[:] = wood(rng, H, W, rgb("#7a5236"), rgb("#3b2416"), plank=0.23 * H, angle=-4, ring=0.05)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    sc.img *= (1.1 - 0.35 * np.hypot(xx / W - 0.35, yy / H - 0.3))[..., None]
    draw_cup(
        sc,
        rng,
        0.53 * W,
        0.57 * H,
        0.3 * W,
        cup_col=rgb("#e9eef2"),
        drink="tea",
        handle="left",
        saucer_col=rgb("#e9eef2"),
    )
    return sc


def gen_cup_3(rng):
    """Red espresso cup and saucer on a green cloth."""
    sc = Scene(600, 440)
    H, W = sc.shape
    base = tex(rgb("#8e9a84"), fbm(rng, H, W, 3, 2) * 0.5 + fbm(rng, H, W, 160, 3), 0.08)
    sc.img[:] = base
    draw_cup(
        sc,
        rng,
        0.47 * W,
        0.56 * H,
        0.34 * W,
        cup_col=rgb("#c2462f"),
        saucer_col=rgb("#c2462f"),
        drink="espresso",
        handle="left",
    )
    return sc


# --------------------------------------------------------------------------------------------------
# sketches: strokes defined by hand, drawn with a smooth wobble like a mouse drawing
# --------------------------------------------------------------------------------------------------


def _resample(pts: np.ndarray, step: float) -> np.ndarray:
    seg = np.hypot(*np.diff(pts, axis=0).T)
    s = np.concatenate([[0], np.cumsum(seg)])
    n = max(2, int(s[-1] / step) + 1)
    t = np.linspace(0, s[-1], n)
    return np.stack([np.interp(t, s, pts[:, 0]), np.interp(t, s, pts[:, 1])], 1)


def wobble(pts, rng: np.random.Generator, amp: float = 1.6, step: float = 2.0) -> np.ndarray:
    p = _resample(np.asarray(pts, np.float64), step)
    n = len(p)
    s = np.arange(n) * step
    off = np.zeros(n)
    for wl in (45.0, 110.0, 260.0):
        off += amp * (wl / 110.0) ** 0.5 * np.sin(2 * np.pi * s / wl + rng.uniform(0, 2 * np.pi)) / 1.7
    off += rng.normal(0, 0.25, n)
    d = np.gradient(p, axis=0)
    nrm = np.stack([-d[:, 1], d[:, 0]], 1) / (np.linalg.norm(d, axis=1, keepdims=True) + 1e-9)
    return p + nrm * off[:, None]


def hand_ellipse(c, axes, rng, angle=0.0, t0=-100.0, sweep=375.0, grow=0.04) -> np.ndarray:
    """An ellipse as a person draws it: not quite closed, radius drifting a little over the stroke."""
    t = np.linspace(t0, t0 + sweep, 160)
    g = 1 + grow * (t - t0) / sweep
    e = ellipse_pts(c, axes, angle, t0, t0 + sweep, 160)
    cx, cy = c
    return np.stack([cx + (e[:, 0] - cx) * g, cy + (e[:, 1] - cy) * g], 1)


def render_sketch(strokes, size: int, rng, margin: int = 22, width=(2.6, 3.6)) -> np.ndarray:
    """Fit the strokes (any units) into a ``size`` px square-ish canvas and draw them in dark ink on white."""
    allp = np.concatenate([np.asarray(s, np.float64) for s in strokes])
    lo, hi = allp.min(0), allp.max(0)
    sc = (size - 2 * margin) / max(hi - lo)
    w = int(round((hi[0] - lo[0]) * sc + 2 * margin))
    h = int(round((hi[1] - lo[1]) * sc + 2 * margin))
    img = np.full((h, w), 255, np.uint8)
    for s in strokes:
        p = (np.asarray(s, np.float64) - lo) * sc + margin
        p = wobble(p, rng)
        th = int(round(rng.uniform(*width)))
        ink = int(rng.integers(20, 45))
        cv2.polylines(
            img,
            [np.round(p * 16).astype(np.int32).reshape(-1, 1, 2)],
            False,
            ink,
            th,
            lineType=cv2.LINE_AA,
            shift=4,
        )
    return img


def sketch_house(rng) -> np.ndarray:
    s = [
        [(16, 52), (15.5, 96), (86, 96.5), (85.5, 51.5)],  # walls
        [(6, 53.5), (50, 25), (95, 53), (5, 52.5)],  # roof
        [(69, 36.5), (69, 21), (78, 21.5), (78, 41)],  # chimney
        [(43, 96), (43, 74), (58, 74), (58.5, 96)],  # door
        [(22, 60), (36, 60), (36, 73), (22, 73), (22, 60)],  # windows
        [(65, 60), (79, 60), (79, 73), (65, 73), (65, 60)],
        [(29, 60), (29, 73)],
        [(22, 66.5), (36, 66.5)],
    ]
    return render_sketch(s, 400, rng)


def sketch_sailboat(rng) -> np.ndarray:
    s = [
        [(8, 80), (50, 79), (93, 75), (86, 88), (80, 92), (22, 92), (8, 80)],  # hull
        [(56, 79), (56.5, -8)],  # mast
        [(55, -5), (35, 33), (17, 71.5), (55, 72)],  # mainsail
        [(58, 4), (90, 74.5), (59, 71)],  # jib
    ]
    return render_sketch(s, 400, rng)


def sketch_coffee(rng) -> np.ndarray:
    """Cup on a saucer, drawn after looking at scikit-image's ``coffee.png`` (coordinates of that photo)."""
    s = [
        hand_ellipse(
            (278, 232), (203, 158), rng, angle=-3, t0=-30, sweep=228, grow=0.0
        ),  # saucer, front part
        hand_ellipse((291, 109), (118, 90), rng, angle=-2, t0=160, sweep=372),  # cup rim
        [
            (176, 118),
            (181, 175),
            (196, 228),
            (216, 266),
            (250, 287),
            (295, 291),
            (345, 279),
            (381, 246),
            (400, 190),
            (407, 120),
        ],  # cup body
        [(201, 228), (183, 246), (179, 274), (190, 297), (215, 306), (242, 296)],  # handle
        hand_ellipse((292, 142), (86, 52), rng, angle=-2, t0=190, sweep=340),  # coffee surface
    ]
    return render_sketch(s, 400, rng)


def gen_sailboat_2(rng):
    """Sailboat silhouette at sunset."""
    sc = Scene(460, 620)
    H, W = sc.shape
    sea_and_sky(
        sc,
        rng,
        0.74,
        rgb("#3b3560"),
        rgb("#f09a4a"),
        rgb("#8a5a48"),
        rgb("#2b2236"),
        cover=0.25,
        cloud_col=rgb("#c87a6a"),
        sun=(0.22 * W, 0.68 * H, rgb("#ffd27a")),
        chop=0.8,
    )
    draw_sailboat(
        sc,
        rng,
        0.53 * W,
        0.85 * H,
        0.72 * W,
        0.72 * H,
        hull_col=rgb("#1a1416"),
        sail_col=rgb("#1a1416"),
        silhouette=True,
        reflect=0.5,
    )
    return sc


def gen_sailboat_3(rng):
    """Sailboat with a red mainsail on a grey, choppy sea."""
    sc = Scene(560, 560)
    H, W = sc.shape
    sea_and_sky(
        sc,
        rng,
        0.7,
        rgb("#7f8c98"),
        rgb("#c9cfd3"),
        rgb("#6d7f86"),
        rgb("#2e444f"),
        cover=0.7,
        cloud_col=rgb("#d8dadc"),
        chop=1.5,
    )
    draw_sailboat(
        sc,
        rng,
        0.46 * W,
        0.84 * H,
        0.66 * W,
        0.74 * H,
        hull_col=rgb("#1f2d4a"),
        sail_col=rgb("#b8322a"),
        jib_col=rgb("#d9c7a0"),
        stripe=rgb("#e8e2d0"),
    )
    return sc


def gen_sailboat_4(rng):
    """Sailboat with a blue jib near a coast."""
    sc = Scene(440, 640)
    H, W = sc.shape
    sea_and_sky(sc, rng, 0.66, rgb("#2f7fd6"), rgb("#d2e8f4"), rgb("#3f9bb0"), rgb("#0f6a7a"), cover=0.12)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    hz = sc.horizon
    hills = hz - (0.05 * H + 0.035 * H * np.sin(xx[0] / W * 5 + 1) + 0.01 * H * fbm(rng, 1, W, 30, 3)[0])
    hm = np.clip(yy - hills[None, :], 0, 1) * (yy < hz)
    paint(sc.img, hm, tex(rgb("#6e8c7a"), fbm(rng, H, W, 8, 3), 0.08))
    draw_sailboat(
        sc,
        rng,
        0.55 * W,
        0.8 * H,
        0.68 * W,
        0.62 * H,
        hull_col=rgb("#fbfbf7"),
        sail_col=rgb("#f6f4ec"),
        jib_col=rgb("#2d6fb5"),
        stripe=rgb("#b02a2a"),
    )
    return sc


def gen_sailboat_5(rng):
    """Sailboat heading left (the sketch's mirror image), morning haze."""
    sc = Scene(480, 600)
    H, W = sc.shape
    sea_and_sky(
        sc,
        rng,
        0.7,
        rgb("#9fb4c8"),
        rgb("#e9e4da"),
        rgb("#9aa9b0"),
        rgb("#44606e"),
        cover=0.1,
        sun=(0.75 * W, 0.3 * H, rgb("#fff1d0")),
        chop=0.6,
    )
    draw_sailboat(
        sc,
        rng,
        0.5 * W,
        0.84 * H,
        0.7 * W,
        0.7 * H,
        hull_col=rgb("#7a2e22"),
        sail_col=rgb("#efe9dc"),
        stripe=rgb("#e8dcc0"),
    )
    sc.mirrored()
    return sc


def sand(rng, h, w, col, ripple=0.06) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    warp = fbm(rng, h, w, 120, 3) * 25
    rip = np.sin((yy * 0.9 + xx * 0.25 + warp) * ripple)
    grain = fbm(rng, h, w, 1.5, 2)
    return tex(col, 0.5 * grain + 0.6 * rip * 0.5 + 0.4 * fbm(rng, h, w, 150, 3), 0.1)


def draw_starfish(sc: Scene, rng, cx, cy, R, rot, col, light=(-0.5, -0.7, 0.6)) -> None:
    H, W = sc.shape
    t = np.linspace(0, 2 * np.pi, 600)
    f = ((1 + np.cos(5 * (t - rot))) / 2) ** 1.6
    r = R * (0.3 + 0.7 * f) * (1 + 0.04 * np.sin(3 * t + 1))
    tt = t + 0.06 * np.sin(5 * (t - rot) + 1.2)
    pts = np.stack([cx + r * np.cos(tt), cy + r * np.sin(tt)], 1)
    m = poly_mask(sc.shape, pts)
    cast_shadow(sc.img, m, 0.04 * R, 0.05 * R, 0.04 * R, 0.5)
    bumps = (fbm(rng, H, W, 1.8 * SS, 1) > 1.0).astype(np.float32)
    bumps = blur(bumps, 1.0)
    sh = 0.35 + 0.8 * dome(m, 0.09 * R, light) + 0.15 * bumps
    paint(sc.img, m, tex(col, fbm(rng, H, W, 6, 3), 0.12) * sh[..., None])
    paint(sc.img, m * specular(m, 0.09 * R, light, 25) * 0.35, np.ones(3, np.float32))
    sc.mark(m)


def gen_starfish_1(rng):
    """Starfish on rippled sand."""
    sc = Scene(620, 420)
    H, W = sc.shape
    sc.img[:] = sand(rng, H, W, rgb("#d8c39a"))
    sc.img *= vgrad(H, W, [(0, np.full(3, 1.05, np.float32)), (1, np.full(3, 0.85, np.float32))])
    draw_starfish(sc, rng, 0.52 * W, 0.5 * H, 0.42 * H, 0.3, rgb("#d8642e"))
    return sc


def gen_starfish_2(rng):
    """Starfish on a wet dark rock."""
    sc = Scene(560, 480)
    H, W = sc.shape
    gr = skimage_image("gravel.png")
    g = blur(cv2.resize(np.tile(gr, (2, 2)), (W, H), interpolation=cv2.INTER_AREA), 2.0)
    g = (g - g.mean()) / g.std()
    rock = tex(rgb("#4a4f52"), 0.35 * np.clip(g, -2.5, 2.5) + 0.8 * fbm(rng, H, W, 150, 4), 0.1)
    sheen = blur(np.clip(fbm(rng, H, W, 60, 3) - 1.0, 0, 1), 8)
    sc.img[:] = rock + 0.12 * sheen[..., None]
    draw_starfish(sc, rng, 0.45 * W, 0.55 * H, 0.38 * H, 1.1, rgb("#eaa23c"))
    return sc


def glass_bottle(
    sc: Scene, rng, cx, bottom, height, radius, glass, *, label=None, cap=None, light_x=-0.35
) -> None:
    H, W = sc.shape
    # profile: (fraction of height from the bottom, radius fraction)
    prof = np.array(
        [
            (0.0, 0.94),
            (0.02, 1.0),
            (0.55, 1.0),
            (0.62, 0.95),
            (0.7, 0.62),
            (0.76, 0.36),
            (0.8, 0.3),
            (0.97, 0.3),
            (0.975, 0.36),
            (1.0, 0.36),
        ]
    )
    ys = np.linspace(0, 1, 200)
    rs = np.interp(ys, prof[:, 0], prof[:, 1])
    rs = blur(rs[:, None].astype(np.float32), 3)[:, 0]
    yy = bottom - ys * height
    left = np.stack([cx - rs * radius, yy], 1)
    right = np.stack([cx + rs * radius, yy], 1)
    m = poly_mask(sc.shape, np.concatenate([left, right[::-1]]))
    cast_shadow(sc.img, m, 0.5 * radius, 0.0, 0.25 * radius, 0.35, sy=0.08, anchor=(cx, bottom))
    # see-through: squeezed, tinted background
    X, Y = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
    bg = cv2.remap(sc.img, (cx + (X - cx) * 0.55).astype(np.float32), Y, cv2.INTER_LINEAR)
    rr = np.interp(np.clip((bottom - Y) / height, 0, 1), ys, rs) * radius + 1e-3
    u = np.clip((X - cx) / rr, -1, 1)
    fres = 0.35 + 0.65 * np.sqrt(np.clip(1 - u * u, 0, 1))
    body = bg * np.asarray(glass, np.float32) * 1.6 * fres[..., None] + np.asarray(glass, np.float32) * 0.12
    hl = (
        np.exp(-(((u - light_x * 1.6) / 0.09) ** 2)) * 0.85
        + np.exp(-(((u + light_x * 1.9) / 0.05) ** 2)) * 0.3
    )
    body = body + hl[..., None]
    paint(sc.img, m, body)
    if label is not None:
        ly0, ly1 = bottom - 0.42 * height, bottom - 0.16 * height
        lm = poly_mask(sc.shape, rect_pts(cx - radius * 1.0, ly0, cx + radius * 1.0, ly1)) * m
        cyl = cylinder_shade(H, W, cx - radius, cx + radius, light_x, 0.35)
        lt = tex(label, fbm(rng, H, W, 3, 2), 0.03) * cyl[..., None]
        paint(sc.img, lm, lt)
        for k, (a, b) in enumerate(((0.25, 0.4), (0.5, 0.58), (0.66, 0.72))):
            bar = (
                poly_mask(
                    sc.shape,
                    rect_pts(
                        cx - radius * (0.55 - 0.1 * k),
                        ly0 + a * (ly1 - ly0),
                        cx + radius * (0.55 - 0.1 * k),
                        ly0 + b * (ly1 - ly0),
                    ),
                )
                * lm
            )
            paint(sc.img, bar * 0.85, np.asarray(label) * 0.35 * cyl[..., None])
    if cap is not None:
        cm = poly_mask(
            sc.shape,
            rect_pts(
                cx - 0.34 * radius,
                bottom - height - 0.01 * height,
                cx + 0.34 * radius,
                bottom - 0.93 * height,
            ),
        )
        paint(
            sc.img,
            cm,
            np.asarray(cap)
            * cylinder_shade(H, W, cx - 0.34 * radius, cx + 0.34 * radius, light_x, 0.4)[..., None],
        )
        m = np.maximum(m, cm)
    sc.mark(m)


def plaster_wall(rng, h, w, col) -> np.ndarray:
    return tex(col, 0.5 * fbm(rng, h, w, 2.5, 2) + 0.5 * fbm(rng, h, w, 60, 4), 0.05)


def gen_bottle_1(rng):
    """Green wine bottle on a wooden table."""
    sc = Scene(420, 620)
    H, W = sc.shape
    table_y = 0.8 * H
    sc.img[:] = plaster_wall(rng, H, W, rgb("#d9d2c2"))
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    sc.img *= (1.08 - 0.35 * np.hypot(xx / W - 0.2, yy / H - 0.25))[..., None]
    tm = (yy > table_y).astype(np.float32)
    paint(sc.img, blur(tm, 1), wood(rng, H, W, rgb("#9a6a44"), rgb("#4e3020"), angle=2, ring=0.04) * 0.9)
    glass_bottle(
        sc,
        rng,
        0.5 * W,
        0.9 * H,
        0.74 * H,
        0.16 * W,
        rgb("#3d7a3a"),
        label=rgb("#efe6cf"),
        cap=rgb("#8c1f1f"),
    )
    return sc


def gen_bottle_2(rng):
    """Brown bottle on a window sill."""
    sc = Scene(460, 620)
    H, W = sc.shape
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    # window light: bright backdrop with blurred foliage
    sc.img[:] = vgrad(H, W, [(0, rgb("#e8eef0")), (1, rgb("#b9c7b0"))])
    fol = blur(np.clip(fbm(rng, H, W, 90, 3) * 1.2, 0, 1), 30)
    sc.img = sc.img * (1 - 0.55 * fol[..., None]) + 0.55 * fol[..., None] * rgb("#5f7d4a")
    for _ in range(45):  # out-of-focus highlights
        bx, by, br = rng.uniform(0, W), rng.uniform(0, 0.8 * H), rng.uniform(0.02, 0.05) * W
        paint(
            sc.img,
            blur(ellipse_mask(sc.shape, (bx, by), (br, br)), 3) * rng.uniform(0.15, 0.4),
            rgb("#f4f8e8"),
        )
    sill = (yy > 0.84 * H).astype(np.float32)
    paint(
        sc.img,
        sill,
        plaster_wall(rng, H, W, rgb("#f1efe9"))
        * (0.95 - 0.2 * np.clip((yy - 0.84 * H) / (0.16 * H), 0, 1))[..., None],
    )
    glass_bottle(
        sc,
        rng,
        0.44 * W,
        0.9 * H,
        0.68 * H,
        0.15 * W,
        rgb("#7a4a1c"),
        label=rgb("#f4f1ea"),
        cap=rgb("#d0a84a"),
        light_x=0.3,
    )
    return sc


def draw_fish(
    sc: Scene, rng, cx, cy, L, body_col, belly_col, *, stripes=None, facing=1, light=(-0.4, -0.8, 0.6)
) -> None:
    H, W = sc.shape
    t = np.linspace(0, 1, 60)
    x = cx + facing * (0.5 - t) * L  # head at t = 0
    top = cy - 0.22 * L * np.sin(np.pi * np.clip(t * 1.05, 0, 1)) ** 0.8 - 0.02 * L * t
    bot = cy + 0.18 * L * np.sin(np.pi * np.clip(t * 1.05, 0, 1)) ** 0.9
    bodyp = np.concatenate([np.stack([x, top], 1), np.stack([x[::-1], bot[::-1]], 1)])
    tx = cx - facing * 0.42 * L
    tail = [
        (tx, cy - 0.02 * L),
        (tx - facing * 0.2 * L, cy - 0.2 * L),
        (tx - facing * 0.14 * L, cy),
        (tx - facing * 0.2 * L, cy + 0.17 * L),
        (tx, cy + 0.02 * L),
    ]
    dorsal = [
        (cx + facing * 0.12 * L, cy - 0.2 * L),
        (cx - facing * 0.02 * L, cy - 0.33 * L),
        (cx - facing * 0.25 * L, cy - 0.15 * L),
    ]
    anal = [
        (cx - facing * 0.12 * L, cy + 0.14 * L),
        (cx - facing * 0.2 * L, cy + 0.24 * L),
        (cx - facing * 0.3 * L, cy + 0.1 * L),
    ]
    bm = poly_mask(sc.shape, bodyp)
    fins = np.maximum.reduce(
        [poly_mask(sc.shape, tail), poly_mask(sc.shape, dorsal), poly_mask(sc.shape, anal)]
    )
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    rays = 0.75 + 0.25 * np.sin(np.arctan2(yy - cy, xx - tx) * 40)
    paint(sc.img, fins * 0.9, np.asarray(body_col) * 0.85 * rays[..., None])
    v = np.clip((yy - (cy - 0.2 * L)) / (0.4 * L), 0, 1)
    col = (
        np.asarray(body_col)[None, None] * (1 - v[..., None] ** 2)
        + np.asarray(belly_col)[None, None] * v[..., None] ** 2
    )
    if stripes is not None:
        for sx in (0.22, -0.08):
            sx_ = cx + facing * sx * L
            band = np.exp(-(((xx - sx_ - 0.05 * (yy - cy)) / (0.035 * L)) ** 6))
            col = col * (1 - band[..., None]) + np.asarray(stripes) * band[..., None]
    scales = 1 + 0.06 * np.sin(xx * 0.35) * np.sin(yy * 0.35 + xx * 0.17)
    sh = 0.45 + 0.75 * dome(bm, 0.08 * L, light)
    paint(sc.img, bm, col * (sh * scales)[..., None])
    paint(sc.img, bm * specular(bm, 0.08 * L, light, 30) * 0.5, np.ones(3, np.float32))
    ex, ey = cx + facing * 0.36 * L, cy - 0.05 * L
    paint(sc.img, ellipse_mask(sc.shape, (ex, ey), (0.045 * L, 0.045 * L)), rgb("#f0f0e8"))
    paint(
        sc.img, ellipse_mask(sc.shape, (ex + facing * 0.008 * L, ey), (0.027 * L, 0.027 * L)), rgb("#101010")
    )
    paint(sc.img, ellipse_mask(sc.shape, (ex - 0.01 * L, ey - 0.012 * L), (0.008 * L, 0.008 * L)), np.ones(3))
    gill = line_mask(
        sc.shape,
        ellipse_pts(
            (cx + facing * 0.36 * L, cy),
            (0.1 * L, 0.14 * L),
            0,
            80 if facing > 0 else 100,
            150 if facing > 0 else 30,
            20,
        )
        if facing > 0
        else ellipse_pts((cx + facing * 0.36 * L, cy), (0.1 * L, 0.14 * L), 0, 30, 100, 20),
        0.01 * L,
    )
    paint(sc.img, gill * bm * 0.5, np.asarray(body_col) * 0.4)
    sc.mark(np.maximum(bm, fins))


def gen_fish_1(rng):
    """Striped fish in an aquarium."""
    sc = Scene(640, 430)
    H, W = sc.shape
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    sc.img[:] = vgrad(H, W, [(0, rgb("#4fb0c4")), (0.7, rgb("#1f6a8a")), (1, rgb("#154a66"))])
    caus = np.abs(fbm(rng, H, W, 50, 3))
    sc.img += (np.clip(0.35 - caus, 0, 1) * 0.5 * np.clip(1 - yy / H, 0, 1))[..., None]
    gr = skimage_image("gravel.png")
    g = texture_quad(
        gr, sc.shape, [(-0.3 * W, 0.78 * H), (1.3 * W, 0.78 * H), (1.1 * W, H), (-0.1 * W, H)], (3, 0.5)
    )
    g = (g - g.mean()) / g.std()
    gm = (yy > 0.8 * H + 0.02 * H * np.sin(xx / W * 7)).astype(np.float32)
    paint(sc.img, blur(gm, 2), tex(rgb("#b59a78"), g, 0.35))
    for k in range(9):
        px = (rng.uniform(0.0, 0.12) if k % 2 else rng.uniform(0.86, 1.0)) * W
        hgt = rng.uniform(0.45, 0.8) * H
        pts = [(px + 0.03 * W * np.sin(s * 5 + k), 0.9 * H - s * hgt) for s in np.linspace(0, 1, 20)]
        paint(sc.img, blur(line_mask(sc.shape, pts, 0.016 * W), 1.5), rgb("#2f6a34") * rng.uniform(0.6, 1.1))
    draw_fish(sc, rng, 0.5 * W, 0.45 * H, 0.66 * W, rgb("#f08a24"), rgb("#f7d08a"), stripes=rgb("#f5f2ea"))
    for k in range(8):
        bx, by, br = 0.8 * W + rng.normal(0, 8) * SS, (0.15 + 0.08 * k) * H, rng.uniform(3, 7) * SS
        paint(sc.img, line_mask(sc.shape, ellipse_pts((bx, by), (br, br)), 1.5) * 0.6, np.ones(3))
    return sc


def gen_fish_2(rng):
    """Fish on a chopping board."""
    sc = Scene(620, 420)
    H, W = sc.shape
    sc.img[:] = plaster_wall(rng, H, W, rgb("#3a3f44"))
    board = poly_mask(sc.shape, rect_pts(0.06 * W, 0.1 * H, 0.94 * W, 0.92 * H))
    cast_shadow(sc.img, board, 0.01 * W, 0.02 * H, 0.015 * W, 0.6)
    paint(sc.img, board, wood(rng, H, W, rgb("#d6b58a"), rgb("#a67c52"), angle=0, ring=0.03))
    draw_fish(sc, rng, 0.5 * W, 0.52 * H, 0.74 * W, rgb("#7d8c96"), rgb("#e8ebe8"), facing=-1)
    return sc


def gen_bulb_1(rng):
    """Glowing light bulb hanging in a dark room."""
    sc = Scene(520, 560)
    H, W = sc.shape
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    sc.img[:] = plaster_wall(rng, H, W, rgb("#2a2622"))
    cx, cy, R = 0.5 * W, 0.6 * H, 0.2 * H
    d = np.hypot(xx - cx, yy - cy)
    sc.img += (
        rgb("#ffb45a")[None, None] * (0.7 * np.exp(-d / (0.25 * W)) + 0.2 * np.exp(-d / (0.8 * W)))[..., None]
    )
    # cord, socket, screw base
    paint(sc.img, line_mask(sc.shape, [(cx, 0), (cx, cy - 1.6 * R)], 0.02 * W), rgb("#141414"))
    sock = poly_mask(sc.shape, rect_pts(cx - 0.3 * R, cy - 1.75 * R, cx + 0.3 * R, cy - 1.2 * R))
    paint(
        sc.img, sock, rgb("#2a2a2a") * cylinder_shade(H, W, cx - 0.3 * R, cx + 0.3 * R, -0.4, 0.3)[..., None]
    )
    base = poly_mask(sc.shape, rect_pts(cx - 0.27 * R, cy - 1.2 * R, cx + 0.27 * R, cy - 0.8 * R))
    ridges = 0.7 + 0.3 * np.sin((yy - cy) / (0.05 * R) * np.pi)
    paint(
        sc.img,
        base,
        rgb("#b8b0a0") * (cylinder_shade(H, W, cx - 0.27 * R, cx + 0.27 * R, -0.4, 0.3) * ridges)[..., None],
    )
    # glass: neck + globe
    neck = poly_mask(
        sc.shape,
        [
            (cx - 0.28 * R, cy - 0.82 * R),
            (cx + 0.28 * R, cy - 0.82 * R),
            (cx + 0.7 * R, cy - 0.5 * R),
            (cx - 0.7 * R, cy - 0.5 * R),
        ],
    )
    globe = np.maximum(ellipse_mask(sc.shape, (cx, cy), (R, R)), neck)
    globe = np.maximum(
        globe,
        poly_mask(
            sc.shape,
            [
                (cx - 0.28 * R, cy - 0.82 * R),
                (cx + 0.28 * R, cy - 0.82 * R),
                (cx + 0.9 * R, cy - 0.4 * R),
                (cx - 0.9 * R, cy - 0.4 * R),
            ],
        ),
    )
    globe = blur(globe, 2)
    glow = np.exp(-np.hypot(xx - cx, yy - cy) / (0.5 * R))
    gcol = rgb("#ffe2a8") * 0.55 + rgb("#fff4d8")[None, None] * glow[..., None] * 0.9
    rim = 1 - dome(globe, 0.15 * R, (0, 0, 1))
    paint(sc.img, globe * 0.92, gcol + 0.3 * rim[..., None] * rgb("#ffd08a"))
    fil = line_mask(
        sc.shape,
        [(cx - 0.25 * R, cy - 0.15 * R)]
        + [
            (cx - 0.25 * R + k * 0.05 * R, cy - 0.1 * R + (0.04 * R if k % 2 else -0.04 * R))
            for k in range(11)
        ]
        + [(cx + 0.25 * R, cy - 0.15 * R)],
        0.02 * R,
    )
    paint(sc.img, blur(fil, 2), np.full(3, 1.5, np.float32))
    sup = line_mask(sc.shape, [(cx - 0.25 * R, cy - 0.15 * R), (cx - 0.1 * R, cy - 0.8 * R)], 0.015 * R)
    sup = np.maximum(
        sup, line_mask(sc.shape, [(cx + 0.25 * R, cy - 0.15 * R), (cx + 0.1 * R, cy - 0.8 * R)], 0.015 * R)
    )
    paint(sc.img, sup * 0.6, rgb("#8a7a60"))
    hl = np.exp(-(((xx - cx + 0.5 * R) / (0.1 * R)) ** 2 + ((yy - cy + 0.35 * R) / (0.25 * R)) ** 2))
    paint(sc.img, hl * globe * 0.6, np.ones(3, np.float32))
    sc.mark(np.maximum.reduce([globe > 0.5, base, sock]).astype(np.float32))
    return sc


def draw_key(sc: Scene, rng, cx, cy, L, angle_deg, col, light=(-0.5, -0.7, 0.6)) -> None:
    H, W = sc.shape
    a = np.deg2rad(angle_deg)
    ca, sa = np.cos(a), np.sin(a)

    def T(p):
        p = np.asarray(p, np.float64)
        return np.stack([cx + p[:, 0] * ca - p[:, 1] * sa, cy + p[:, 0] * sa + p[:, 1] * ca], 1)

    bow = line_mask(sc.shape, T(ellipse_pts((-0.36 * L, 0), (0.13 * L, 0.13 * L))), 0.07 * L, closed=True)
    bow = np.maximum(
        bow, line_mask(sc.shape, T(ellipse_pts((-0.36 * L, 0), (0.05 * L, 0.05 * L))), 0.03 * L, closed=True)
    )
    shaft = poly_mask(sc.shape, T(rect_pts(-0.24 * L, -0.025 * L, 0.5 * L, 0.025 * L)))
    collar = poly_mask(sc.shape, T(rect_pts(-0.22 * L, -0.045 * L, -0.17 * L, 0.045 * L)))
    bit = poly_mask(
        sc.shape,
        T(
            [
                (0.3 * L, 0.02 * L),
                (0.3 * L, 0.13 * L),
                (0.35 * L, 0.13 * L),
                (0.35 * L, 0.09 * L),
                (0.4 * L, 0.09 * L),
                (0.4 * L, 0.14 * L),
                (0.46 * L, 0.14 * L),
                (0.46 * L, 0.02 * L),
            ]
        ),
    )
    m = np.maximum.reduce([bow, shaft, collar, bit])
    cast_shadow(sc.img, m, 0.02 * L, 0.03 * L, 0.012 * L, 0.55)
    sh = 0.35 + 0.8 * dome(m, 0.012 * L, light)
    paint(sc.img, m, tex(col, fbm(rng, H, W, 3, 2), 0.1) * sh[..., None])
    paint(sc.img, m * specular(m, 0.012 * L, light, 12) * 0.7, rgb("#fff6dc"))
    sc.mark(m)


def gen_key_1(rng):
    """Old brass key on a wooden table."""
    sc = Scene(600, 400)
    H, W = sc.shape
    sc.img[:] = wood(rng, H, W, rgb("#8b6a4a"), rgb("#3f2a1c"), plank=0.3 * H, angle=3, ring=0.05)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    sc.img *= (1.15 - 0.4 * np.hypot(xx / W - 0.4, yy / H - 0.35))[..., None]
    draw_key(sc, rng, 0.5 * W, 0.5 * H, 0.78 * W, -14, rgb("#c9a045"))
    return sc


def draw_bicycle(sc: Scene, rng, cx, ground, R, frame_col, light=(-0.5, -0.7, 0.6)) -> None:
    H, W = sc.shape
    rear = (cx - 1.25 * R, ground - R)
    front = (cx + 1.25 * R, ground - R)
    bb = (cx - 0.2 * R, ground - 0.72 * R)
    seat_top = (cx - 0.55 * R, ground - 2.0 * R)
    head_top = (cx + 0.75 * R, ground - 1.95 * R)
    head_bot = (cx + 0.85 * R, ground - 1.6 * R)
    objm = np.zeros(sc.shape, np.float32)
    layer = np.zeros((H, W, 3), np.float32)
    lm = np.zeros(sc.shape, np.float32)

    def put(mask, col):
        nonlocal layer, lm
        paint(layer, mask, col)
        lm = np.maximum(lm, mask)

    for c in (rear, front):
        tyre = line_mask(sc.shape, ellipse_pts(c, (R * 0.96, R * 0.96)), 0.09 * R, closed=True)
        put(tyre, rgb("#1c1c1c"))
        rim = line_mask(sc.shape, ellipse_pts(c, (R * 0.88, R * 0.88)), 0.035 * R, closed=True)
        put(rim, rgb("#b9bcc0"))
        sp = np.zeros(sc.shape, np.float32)
        for k in range(18):
            t = k * np.pi / 9 + 0.1
            sp = np.maximum(
                sp, line_mask(sc.shape, [c, (c[0] + 0.86 * R * np.cos(t), c[1] + 0.86 * R * np.sin(t))], 1.6)
            )
        put(sp * 0.9, rgb("#c8cacc"))
        put(ellipse_mask(sc.shape, c, (0.06 * R, 0.06 * R)), rgb("#9a9da2"))
    tubes = [
        (rear, bb),
        (rear, seat_top),
        (bb, seat_top),
        (bb, head_bot),
        (seat_top, head_top),
        (head_top, head_bot),
        (head_bot, front),
    ]
    fr = np.zeros(sc.shape, np.float32)
    for p, q in tubes:
        fr = np.maximum(fr, line_mask(sc.shape, [p, q], 0.07 * R))
    put(fr, np.asarray(frame_col) * (0.55 + 0.6 * dome(fr, 0.03 * R, light))[..., None])
    put(line_mask(sc.shape, ellipse_pts(bb, (0.2 * R, 0.2 * R)), 0.04 * R, closed=True), rgb("#8d9095"))
    put(
        line_mask(
            sc.shape, [(bb[0] + 0.25 * R, bb[1] - 0.25 * R), (bb[0] - 0.25 * R, bb[1] + 0.25 * R)], 0.05 * R
        ),
        rgb("#2a2a2a"),
    )
    post = (seat_top[0] - 0.05 * R, seat_top[1] - 0.15 * R)
    put(line_mask(sc.shape, [seat_top, post], 0.05 * R), rgb("#9a9da2"))
    put(
        poly_mask(
            sc.shape,
            [
                (post[0] - 0.3 * R, post[1] - 0.02 * R),
                (post[0] + 0.22 * R, post[1] - 0.06 * R),
                (post[0] + 0.25 * R, post[1] + 0.04 * R),
                (post[0] - 0.28 * R, post[1] + 0.08 * R),
            ],
        ),
        rgb("#1e1a18"),
    )
    bar = (head_top[0] - 0.05 * R, head_top[1] - 0.15 * R)
    put(
        line_mask(sc.shape, [head_top, bar, (bar[0] - 0.25 * R, bar[1] + 0.02 * R)], 0.05 * R), rgb("#2a2a2a")
    )
    objm = lm
    cast_shadow(sc.img, objm, 0.12 * R, -0.05 * R, 0.04 * R, 0.4)
    paint(sc.img, lm, layer / np.maximum(lm, 1e-3)[..., None])
    sc.mark(objm)


def gen_bicycle_1(rng):
    """Bicycle against a brick wall."""
    sc = Scene(640, 420)
    H, W = sc.shape
    g = 0.84 * H
    sc.img[:] = bricks(rng, H, W, 0.09 * W, 0.04 * W, rgb("#a85a40"), rgb("#cfc6b8"))
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    sc.img *= (1.1 - 0.3 * np.clip(xx / W, 0, 1))[..., None]
    pave = (yy > g).astype(np.float32)
    paint(
        sc.img,
        pave,
        plaster_wall(rng, H, W, rgb("#8c8a86")) * (0.8 + 0.2 * np.clip((yy - g) / (H - g), 0, 1))[..., None],
    )
    sc.img *= (1 - 0.35 * np.exp(-np.abs(yy - g) / (0.02 * H)) * (yy < g))[..., None]
    draw_bicycle(sc, rng, 0.5 * W, 0.92 * H, 0.19 * W, rgb("#1f6f8c"))
    return sc


def gen_mug_1(rng):
    """Yellow mug on a kitchen counter."""
    sc = Scene(600, 420)
    H, W = sc.shape
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    counter = 0.72 * H
    # tiled wall
    t = 0.16 * W
    fx, fy = (xx / t) % 1.0, (yy / t) % 1.0
    grout = np.clip((np.minimum(np.minimum(fx, 1 - fx), np.minimum(fy, 1 - fy)) * t - 1.5) / 2, 0, 1)
    tcol = rgb("#dfe7e4") * (0.97 + 0.06 * hash01(np.floor(xx / t), np.floor(yy / t)))[..., None]
    sc.img[:] = tcol * grout[..., None] + rgb("#9a9a94") * (1 - grout[..., None])
    sc.img *= (1.05 - 0.3 * np.hypot(xx / W - 0.3, yy / H - 0.2))[..., None]
    cm = (yy > counter).astype(np.float32)
    stone = tex(rgb("#4a4844"), 0.6 * fbm(rng, H, W, 2, 2) + 0.5 * fbm(rng, H, W, 30, 3), 0.25)
    paint(sc.img, cm, stone)
    paint(sc.img, line_mask(sc.shape, [(0, counter), (W, counter)], 3), rgb("#6a6862"))
    # mug
    mcx, mbot, mw, mh = 0.47 * W, 0.86 * H, 0.36 * W, 0.52 * H
    x0, x1, top = mcx - mw / 2, mcx + mw / 2, mbot - mh
    e = 0.12 * mw
    handle = line_mask(
        sc.shape, ellipse_pts((x1 + 0.02 * mw, top + 0.45 * mh), (0.22 * mw, 0.26 * mh)), 0.09 * mw, True
    )
    body = np.maximum.reduce(
        [
            poly_mask(sc.shape, rect_pts(x0, top, x1, mbot - e)),
            ellipse_mask(sc.shape, (mcx, mbot - e), (mw / 2, e)),
            ellipse_mask(sc.shape, (mcx, top), (mw / 2, e)),
        ]
    )
    m = np.maximum(body, handle)
    cast_shadow(sc.img, m, 0.1 * mw, 0, 0.05 * mw, 0.45, sy=0.12, anchor=(mcx, mbot))
    col = rgb("#e2b33a")
    cyl = cylinder_shade(H, W, x0, x1, -0.45, 0.35)
    paint(sc.img, handle, col * (0.4 + 0.7 * dome(handle, 0.03 * mw))[..., None])
    paint(sc.img, body, tex(col, fbm(rng, H, W, 10, 2), 0.02) * cyl[..., None])
    inner = ellipse_mask(sc.shape, (mcx, top), (mw / 2 * 0.93, e * 0.85))
    paint(sc.img, inner, rgb("#3a2414") * (0.8 + 0.2 * np.clip((xx - x0) / mw, 0, 1))[..., None])
    sc.mark(m)
    return sc


# --------------------------------------------------------------------------------------------------
# the collection
# --------------------------------------------------------------------------------------------------

# (file name, scene function, seed); the object named in the file is the scene's main object
GENERATED: list[tuple[str, Callable, int]] = [
    ("gen_house_1.jpg", gen_house_1, 101),
    ("gen_house_2.jpg", gen_house_2, 102),
    ("gen_house_3.jpg", gen_house_3, 103),
    ("gen_house_4.jpg", gen_house_4, 104),
    ("gen_sailboat_1.jpg", gen_sailboat_1, 201),
    ("gen_sailboat_2.jpg", gen_sailboat_2, 202),
    ("gen_sailboat_3.jpg", gen_sailboat_3, 203),
    ("gen_sailboat_4.jpg", gen_sailboat_4, 204),
    ("gen_sailboat_5.jpg", gen_sailboat_5, 205),
    ("gen_cup_1.jpg", gen_cup_1, 301),
    ("gen_cup_2.jpg", gen_cup_2, 302),
    ("gen_cup_3.jpg", gen_cup_3, 303),
    ("gen_starfish_1.jpg", gen_starfish_1, 401),
    ("gen_starfish_2.jpg", gen_starfish_2, 402),
    ("gen_bottle_1.jpg", gen_bottle_1, 501),
    ("gen_bottle_2.jpg", gen_bottle_2, 502),
    ("gen_fish_1.jpg", gen_fish_1, 601),
    ("gen_fish_2.jpg", gen_fish_2, 602),
    ("gen_bulb_1.jpg", gen_bulb_1, 701),
    ("gen_key_1.jpg", gen_key_1, 801),
    ("gen_bicycle_1.jpg", gen_bicycle_1, 901),
    ("gen_mug_1.jpg", gen_mug_1, 1001),
]

# scikit-image's bundled data directory (skimage/data/ in the wheel); licences from the docstrings of
# skimage.data.<name>()
SKIMAGE: list[dict] = [
    dict(
        out="skimage_astronaut.jpg",
        src="astronaut.png",
        what="Astronaut Eileen Collins; NASA Great Images database (https://flic.kr/p/r9qvLn)",
        licence="Public domain (NASA): 'No known copyright restrictions, released into the public domain'",
    ),
    dict(
        out="skimage_camera.jpg",
        src="camera.png",
        what="Man with a camera (grayscale); photographer Lav Varshney",
        licence="CC0 by the photographer",
    ),
    dict(
        out="skimage_chelsea.jpg",
        src="chelsea.png",
        what="Chelsea the cat; photographer Stefan van der Walt",
        licence="CC0 by the photographer",
    ),
    dict(
        out="skimage_coffee.jpg",
        src="coffee.png",
        what="Coffee cup; photographer Rachel Michetti, courtesy of Pikolo Espresso Bar",
        licence="CC0 by the photographer",
    ),
    dict(
        out="skimage_rocket.jpg",
        src="rocket.jpg",
        what="Launch of DSCOVR on Falcon 9; SpaceX (https://www.flickr.com/photos/spacexphotos/16511594820/)",
        licence="Public domain (released into the public domain by SpaceX)",
    ),
]

# Debian package lomiri-wallpapers-16.04 (version 20.04.0-2, Debian 12), files in /usr/share/backgrounds/;
# licences from its /usr/share/doc/lomiri-wallpapers-16.04/copyright (upstream:
# https://gitlab.com/ubports/development/core/lomiri-wallpapers, folder 16.04/)
LOMIRI: list[dict] = [
    dict(
        out="lomiri_friends.jpg",
        src="friends_by_Aitzol_Berasategi.jpg",
        what="two dogs at a window",
        author="Aitzol Berasategi",
        year=2018,
        licence="CC-BY-4.0",
    ),
    dict(
        out="lomiri_wine.jpg",
        src="Wine_by_Jakkub_Mede.jpg",
        what="room with a wine bottle, a drum and a beanbag",
        author="Jakub Mede",
        year=2018,
        licence="CC-BY-4.0",
    ),
    dict(
        out="lomiri_fig.jpg",
        src="Picture_0B_by_freespace.jpg",
        what="a fig in a red bowl",
        author='Trevor "Freespace"',
        year=2018,
        licence="CC-BY-4.0",
    ),
    dict(
        out="lomiri_valley.jpg",
        src="aitzgorri_by_Aitzol_Berasategi.jpg",
        what="mountain valley (Aitzgorri)",
        author="Aitzol Berasategi",
        year=2018,
        licence="CC-BY-4.0",
    ),
    dict(
        out="lomiri_peaks.jpg",
        src="picosdeeuropa_by_Aitzol_Berasategi.jpg",
        what="Picos de Europa mountains",
        author="Aitzol Berasategi",
        year=2018,
        licence="CC-BY-4.0",
    ),
    dict(
        out="lomiri_stream.jpg",
        src="life_by_Aitzol_Berasategi.jpg",
        what="forest stream",
        author="Aitzol Berasategi",
        year=2018,
        licence="CC-BY-4.0",
    ),
    dict(
        out="lomiri_sunset.jpg",
        src="sunset_by_Aitzol_Berasategi.jpg",
        what="sunset over hills",
        author="Aitzol Berasategi",
        year=2018,
        licence="CC-BY-4.0",
    ),
    dict(
        out="lomiri_dandelions.jpg",
        src="seeding_by_Clements_Engelhardt.jpg",
        what="dandelion clocks",
        author="Clemens Engelhardt",
        year=2018,
        licence="CC0-1.0",
    ),
    dict(
        out="lomiri_brushes.jpg",
        src="Picture_1A_by_freespace.jpg",
        what="paint brushes in a jar",
        author='Trevor "Freespace"',
        year=2018,
        licence="CC-BY-4.0",
    ),
]

LICENCE_URLS = {
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "CC-BY-SA-4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
    "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
}

SKETCH_FUNCS = {"house.png": sketch_house, "sailboat.png": sketch_sailboat, "coffee_cup.png": sketch_coffee}
SKETCH_SEEDS = {"house.png": 11, "sailboat.png": 12, "coffee_cup.png": 13}

# which photos each sketch should find (boxes of generated photos come from the scene's object mask)
EXPECTED = {
    "house.png": ["gen_house_1.jpg", "gen_house_2.jpg", "gen_house_3.jpg", "gen_house_4.jpg"],
    "sailboat.png": ["gen_sailboat_1.jpg", "gen_sailboat_2.jpg", "gen_sailboat_3.jpg", "gen_sailboat_4.jpg"],
    "coffee_cup.png": ["skimage_coffee.jpg", "gen_cup_1.jpg", "gen_cup_2.jpg", "gen_cup_3.jpg"],
}
# boxes of real photos, read off the image by hand: cup and saucer in coffee.png (600 x 400)
MANUAL_BOXES = {"skimage_coffee.jpg": [76, 18, 480, 391]}


def save_jpeg(path: Path, img: np.ndarray) -> None:
    """``img``: uint8 RGB (H, W, 3) or gray (H, W)."""
    bgr = img[..., ::-1] if img.ndim == 3 else img
    ok, buf = cv2.imencode(
        ".jpg",
        np.ascontiguousarray(bgr),
        [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY, cv2.IMWRITE_JPEG_OPTIMIZE, 1],
    )
    if not ok:
        raise RuntimeError(f"cannot encode {path}")
    path.write_bytes(buf.tobytes())


def fit_longer_side(img: np.ndarray, lo: int = 400, hi: int = 640) -> np.ndarray:
    h, w = img.shape[:2]
    m = max(h, w)
    target = min(max(m, lo), hi)
    if target == m:
        return img
    s = target / m
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    return cv2.resize(img, (round(w * s), round(h * s)), interpolation=interp)


def make_generated() -> dict[str, list[int]]:
    boxes = {}
    for name, fn, seed in GENERATED:
        rng = np.random.default_rng(seed)
        sc = fn(rng)
        out = finish(sc.img, rng, sc.size, **getattr(sc, "finish_kw", {}))
        save_jpeg(PHOTOS / name, out)
        boxes[name] = sc.box()
        print(f"  {name:24s} {sc.size[0]}x{sc.size[1]}  object box {boxes[name]}")
    return boxes


def make_packaged(debian_root: Path) -> None:
    for item in SKIMAGE:
        im = skimage_image(item["src"])
        im = (np.clip(im, 0, 1) * 255 + 0.5).astype(np.uint8)
        if im.ndim == 3 and im.shape[2] == 4:
            im = im[..., :3]
        im = fit_longer_side(im)
        save_jpeg(PHOTOS / item["out"], im)
        print(f"  {item['out']:24s} <- skimage/data/{item['src']}")
    bg = debian_root / "usr/share/backgrounds"
    for item in LOMIRI:
        src = bg / item["src"]
        if not src.exists():
            print(
                f"  {item['out']:24s} SKIPPED: {src} not found (apt-get install lomiri-wallpapers-16.04, or "
                "--debian-root where its .deb was unpacked)",
                file=sys.stderr,
            )
            continue
        im = cv2.imread(str(src), cv2.IMREAD_COLOR)  # applies the EXIF orientation
        im = cv2.cvtColor(im, cv2.COLOR_BGR2RGB)
        im = fit_longer_side(im)
        save_jpeg(PHOTOS / item["out"], im)
        print(f"  {item['out']:24s} <- {src}")


def make_sketches() -> None:
    for name, fn in SKETCH_FUNCS.items():
        img = fn(np.random.default_rng(SKETCH_SEEDS[name]))
        cv2.imwrite(str(SKETCHES / name), img)
        print(f"  {name:24s} {img.shape[1]}x{img.shape[0]}")


def write_expected(boxes: dict[str, list[int]]) -> None:
    boxes = {**boxes, **MANUAL_BOXES}
    data = {
        "sketches": {
            sk: {"photos": photos, "boxes": {p: boxes[p] for p in photos}} for sk, photos in EXPECTED.items()
        }
    }
    text = json.dumps(data, indent=2)
    # one line per box
    text = re.sub(r"\[\s+(\d+),\s+(\d+),\s+(\d+),\s+(\d+)\s+\]", r"[\1, \2, \3, \4]", text)
    (DEMO / "expected.json").write_text(text + "\n")


LICENCE_HEAD = """\
# Demo collection: sources and licences

Every file in `resources/demo/`, where it comes from and under which licence.  `scripts/make_demo.py`
rebuilds them all (and writes this file).  The real photos were only resized (longer side at most 640 px)
and re-encoded as JPEG (quality 85).

## Made for sketchsearch: `photos/gen_*.jpg`, `sketches/*.png`, `expected.json`

Rendered by `scripts/make_demo.py` with numpy/OpenCV drawing and fixed seeds; the sketches are
polylines through hand-written coordinates, drawn with a wobble (`coffee_cup.png` was drawn after looking
at `photos/skimage_coffee.jpg`).  Licence: the project's licence (MIT).  Two CC0 texture images that ship
with scikit-image are used as surfaces: `skimage/data/grass.png` (the lawns; "Grass 01" by linolafett on
DeviantArt, CC0) and `skimage/data/gravel.png` (aquarium floor and rock; "Gravel04" from CC0Textures,
CC0).

| file | scene |
| --- | --- |
"""

LICENCE_SKIMAGE = """
## From scikit-image: `photos/skimage_*.jpg`

Files of the `skimage/data/` directory shipped inside the scikit-image wheel (0.26); the source and
licence of each are those stated in the docstring of the matching `skimage.data` function.

| file | original | what, author / source | licence |
| --- | --- | --- | --- |
"""

LICENCE_LOMIRI = """
## From Debian: `photos/lomiri_*.jpg`

Files of the Debian package `lomiri-wallpapers-16.04` (version 20.04.0-2, Debian 12 "bookworm"),
installed as `/usr/share/backgrounds/<original>`; upstream
https://gitlab.com/ubports/development/core/lomiri-wallpapers (folder `16.04/`).  Authors, years and
licences as listed in the package's `/usr/share/doc/lomiri-wallpapers-16.04/copyright`.  Changes: resized
to 640 px on the longer side and re-encoded as JPEG.  Attribution (CC BY / CC BY-SA): title = the original
file name, author and licence as in the table.

| file | original | what | author | licence |
| --- | --- | --- | --- | --- |
"""

LICENCE_TAIL = """
All real photos are public domain, CC0 or CC BY 4.0 (no ShareAlike licence, so the demo can ship under the
project's licence).
"""


def write_licence() -> None:
    out = [LICENCE_HEAD]
    for name, fn, _ in GENERATED:
        doc = (fn.__doc__ or name[4:-4].replace("_", " ")).strip()
        out.append(f"| `photos/{name}` | {doc} |\n")
    out.append("| `sketches/*.png`, `expected.json` | demo sketches and the results they should give |\n")
    out.append(LICENCE_SKIMAGE)
    for it in SKIMAGE:
        src = f"`skimage/data/{it['src']}`"
        out.append(f"| `photos/{it['out']}` | {src} | {it['what']} | {it['licence']} |\n")
    out.append(LICENCE_LOMIRI)
    for it in LOMIRI:
        lic = f"[{it['licence']}]({LICENCE_URLS[it['licence']]})"
        who = f"© {it['year']} {it['author']}"
        out.append(f"| `photos/{it['out']}` | `{it['src']}` | {it['what']} | {who} | {lic} |\n")
    out.append(LICENCE_TAIL)
    (DEMO / "LICENSE.md").write_text("".join(out))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--only",
        choices=["generated", "packaged", "sketches"],
        action="append",
        help="build only these parts (repeatable); default all",
    )
    ap.add_argument(
        "--debian-root",
        type=Path,
        default=Path("/"),
        help="root under which usr/share/backgrounds/ of lomiri-wallpapers-16.04 is found",
    )
    args = ap.parse_args(argv)
    parts = set(args.only or ["generated", "packaged", "sketches"])
    PHOTOS.mkdir(parents=True, exist_ok=True)
    SKETCHES.mkdir(parents=True, exist_ok=True)
    if "generated" in parts:
        print("generated scenes:")
        write_expected(make_generated())
    if "packaged" in parts:
        print("packaged photos:")
        make_packaged(args.debian_root)
    if "sketches" in parts:
        print("sketches:")
        make_sketches()
    write_licence()
    total = sum(f.stat().st_size for f in DEMO.rglob("*") if f.is_file())
    print(
        f"{len(list(PHOTOS.glob('*.jpg')))} photos, {len(list(SKETCHES.glob('*.png')))} sketches, "
        f"{total / 1e6:.2f} MB in {DEMO}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
