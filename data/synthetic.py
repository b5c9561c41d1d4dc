"""Built-in generator of a small synthetic street-scene dataset (Cityscapes layout).

The dataset lets the project train and test end to end without any download.
Every image is a simple, seeded street scene:

* sky at the top (vertical gradient),
* flat-coloured building blocks of varying widths/heights along a horizon line, each an
  object of its own (instance 11000 + k) since its paint is its own,
* trees, poles and (sometimes) pedestrians,
* a sidewalk band and a perspective trapezoid road at the bottom,
* 1-3 cars in the near half of the road, each a separate instance painted in one of
  six DISTINCT paints (recorded in ``styles.json``), nearer cars occluding farther ones.

Layout under ``root``::

    train_label/synth_000000_000019_gtFine_labelIds.png      8-bit 'L', Cityscapes labelIds
    train_inst/synth_000000_000019_gtFine_instanceIds.png    16-bit, stuff = class id, building blocks
                                                             11000+k, persons 24000+k, cars 26000+k
    train_img/synth_000000_000019_leftImg8bit.png            RGB photo
    test_label/synthval_000000_000019_gtFine_labelIds.png    (same for test_inst / test_img)
    styles.json                                              {photo stem: [{"instance_id", "style", ...}]}

Photos are deliberately "learnable": flat class colours with smooth shading and no
pixel noise or fine texture (a GAN would learn grain as speckle, and a window grid is
nothing a label map says where to put), so a small model trained for a few minutes
produces output that looks like them. Apart from what a shape implies (a car's window, a
tree's trunk), every sharp colour change is told by the maps: an edge in the label or
instance map (a building block against its neighbour, a wheel standing below a car's
body) or the paint of an instance (a car, a block), which the instance features carry.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np
from PIL import Image

from util.cityscapes import LABEL_IDS as CITYSCAPES_LABEL_IDS

__all__ = [
    "LABEL_IDS",
    "ALLOWED_LABEL_IDS",
    "CAR_STYLES",
    "make_synthetic_dataset",
    "generate_sample",
    "load_styles",
    "styles_for",
]

# Cityscapes labelIds of the classes the generator paints.
LABEL_IDS: dict[str, int] = {
    name: CITYSCAPES_LABEL_IDS[name] for name in ("road", "sidewalk", "building", "pole", "vegetation", "sky", "person", "car")
}
ALLOWED_LABEL_IDS: frozenset[int] = frozenset(LABEL_IDS.values())

# Distinct car paint styles (name -> base RGB). Kept far apart in RGB (every pair more than
# 100 apart) so that instance-level style clustering has something clear to find and a change
# of paint between styles is plain to see.
CAR_STYLES: dict[str, tuple[int, int, int]] = {
    "red": (200, 30, 35),
    "blue": (35, 75, 205),
    "white": (232, 232, 232),
    "yellow": (240, 200, 30),
    "green": (35, 160, 65),
    "black": (30, 30, 34),
}

_SPLITS = (("train", "synth"), ("test", "synthval"))
_BUILDING_BASE = LABEL_IDS["building"] * 1000  # the instance id of the first building block
_FRAME = "000019"
_STYLE_NAMES = tuple(CAR_STYLES)
_NAME_RE = re.compile(r"^(synth|synthval)_\d{6}_\d{6}_(gtFine_labelIds|gtFine_instanceIds|leftImg8bit)\.png$")


def _names(city: str, index: int) -> tuple[str, str, str]:
    stem = f"{city}_{index:06d}_{_FRAME}"
    return (
        f"{stem}_gtFine_labelIds.png",
        f"{stem}_gtFine_instanceIds.png",
        f"{stem}_leftImg8bit.png",
    )


# --------------------------------------------------------------------------- #
# Scene drawing
# --------------------------------------------------------------------------- #


class _Canvas:
    """Label / instance / photo buffers; each draw overwrites all three, so the
    photo is always consistent with the (occlusion-resolved) label map."""

    def __init__(self, height: int, width: int):
        self.h, self.w = height, width
        self.yy, self.xx = np.mgrid[0:height, 0:width].astype(np.float32)
        self.label = np.zeros((height, width), np.uint8)
        self.inst = np.zeros((height, width), np.int32)
        self.img = np.zeros((height, width, 3), np.float32)

    def paint(self, mask: np.ndarray, label: int, inst: int, color) -> None:
        """color: an RGB triple or an (H, W, 3) array evaluated on the whole grid."""
        if not mask.any():
            return
        self.label[mask] = label
        self.inst[mask] = inst
        col = np.asarray(color, np.float32)
        self.img[mask] = col[mask] if col.ndim == 3 else col

    def recolor(self, mask: np.ndarray, color) -> None:
        """Change only the photo (e.g. windows); labels unchanged."""
        col = np.asarray(color, np.float32)
        self.img[mask] = col[mask] if col.ndim == 3 else col

    # shape helpers ------------------------------------------------------- #
    def rect(self, x0, y0, x1, y1) -> np.ndarray:
        return (self.xx >= x0) & (self.xx < x1) & (self.yy >= y0) & (self.yy < y1)

    def ellipse(self, cx, cy, rx, ry) -> np.ndarray:
        rx, ry = max(rx, 0.5), max(ry, 0.5)
        return ((self.xx + 0.5 - cx) / rx) ** 2 + ((self.yy + 0.5 - cy) / ry) ** 2 <= 1.0

    def vshade(self, base, top: float, bottom: float, y0: float, y1: float) -> np.ndarray:
        """(H, W, 3) colour: base scaled linearly from `top` at y0 to `bottom` at y1."""
        t = np.clip((self.yy - y0) / max(y1 - y0, 1.0), 0.0, 1.0)
        f = top + (bottom - top) * t
        return np.asarray(base, np.float32)[None, None, :] * f[..., None]


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Low-frequency noise in ~[-1, 1]: a coarse gaussian grid, bilinearly upsampled."""
    gh, gw = int(np.ceil(h / cell)) + 2, int(np.ceil(w / cell)) + 2
    g = rng.normal(size=(gh, gw)).astype(np.float32)
    ys = np.arange(h, dtype=np.float32) / cell
    xs = np.arange(w, dtype=np.float32) / cell
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    a = g[y0][:, x0]
    b = g[y0][:, x0 + 1]
    c = g[y0 + 1][:, x0]
    d = g[y0 + 1][:, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def _jitter(rng: np.random.Generator, color, amount: float) -> np.ndarray:
    return np.clip(np.asarray(color, np.float32) + rng.uniform(-amount, amount, 3), 0, 255)


class _Ground:
    """Where a scene's ground lies: the horizon, the top of the road and its trapezoid (cars stand on it)."""

    def __init__(self, height: int, horizon: float, road_top: float, cx: float, hw_top: float, hw_bot: float):
        self.h, self.horizon, self.road_top, self.cx = height, horizon, road_top, cx
        self.hw_top, self.hw_bot = hw_top, hw_bot

    def road_hw(self, y):
        """The road's half width at row(s) y."""
        return self.hw_top + (self.hw_bot - self.hw_top) * (np.asarray(y, np.float32) - self.road_top) / max(self.h - self.road_top, 1.0)


def _paint_background(cv: _Canvas, rng: np.random.Generator) -> _Ground:
    """Paint everything of a scene but its cars onto ``cv`` (sky, buildings, ground, road, trees, poles, persons)."""
    W, H = cv.w, cv.h
    L = LABEL_IDS
    u = rng.uniform

    horizon = H * u(0.38, 0.52)  # y of the horizon line
    band = max(2.0, H * u(0.05, 0.09))  # sidewalk band depth in front of the buildings
    road_top = horizon + band
    cx = W * (0.5 + u(-0.08, 0.08))  # road centre
    hw_top = W * u(0.18, 0.30)  # road half width at road_top
    hw_bot = W * u(0.55, 0.80)  # road half width at the bottom row
    geometry = _Ground(H, horizon, road_top, cx, hw_top, hw_bot)
    road_hw = geometry.road_hw

    def sidewalk_ground(x: float) -> float:
        """A y (feet position) on the sidewalk below the horizon at column x."""
        # lowest y where column x is still outside the road trapezoid
        dx = abs(x - cx)
        if dx >= hw_bot:
            y_max = H - 1.0
        elif dx <= hw_top:
            y_max = road_top - 0.5
        else:
            y_max = road_top + (dx - hw_top) / (hw_bot - hw_top) * (H - road_top) - 1.0
        y_min = horizon + 1.0
        return float(u(y_min, max(y_min + 0.5, min(y_max, y_min + 0.35 * (H - horizon)))))

    # --- sky -------------------------------------------------------------- #
    sky_top = _jitter(rng, (95, 150, 220), 12)
    sky_bot = _jitter(rng, (185, 212, 238), 10)
    t = np.clip(cv.yy / max(horizon, 1.0), 0, 1)[..., None]
    cv.paint(np.ones((H, W), bool), L["sky"], L["sky"], sky_top * (1 - t) + sky_bot * t)

    # --- buildings along the horizon ------------------------------------- #
    # Each block is an object of its own (11000 + k): its paint differs from its neighbours', which only
    # an instance edge and a per-instance feature can tell (as one stuff region, the blocks' paints
    # would average into one band). Its shading runs from the horizon up, which the label map shows.
    x = -u(0, 0.1) * W
    building_palette = [(120, 118, 115), (150, 130, 110), (105, 100, 98), (170, 160, 145), (135, 95, 75)]
    n_blocks = 0
    while x < W:
        bw = W * u(0.08, 0.24)
        if u() < 0.15:  # small gap of sky between buildings
            x += bw * 0.4
            continue
        top = horizon - H * u(0.10, 0.40)
        m = cv.rect(x, top, x + bw, horizon + 1)
        base = _jitter(rng, building_palette[rng.integers(len(building_palette))], 12)
        cv.paint(m, L["building"], _BUILDING_BASE + n_blocks, cv.vshade(base, 1.0, 0.85, horizon - 0.4 * H, horizon))
        n_blocks += 1
        x += bw

    # --- ground: sidewalk everywhere below the horizon, road trapezoid ---- #
    ground = cv.yy >= horizon
    cv.paint(ground, L["sidewalk"], L["sidewalk"], cv.vshade(_jitter(rng, (158, 152, 146), 8), 0.92, 1.05, horizon, H))
    road = (cv.yy >= road_top) & (np.abs(cv.xx + 0.5 - cx) <= road_hw(cv.yy))
    cv.paint(road, L["road"], L["road"], cv.vshade(_jitter(rng, (92, 90, 94), 6), 1.08, 0.82, road_top, H))

    # --- trees ------------------------------------------------------------ #
    veg_noise = _smooth_noise(rng, H, W, max(2.0, W / 12))  # broad light and shade, no fine texture
    for _ in range(rng.integers(1, 5)):
        side = -1 if u() < 0.5 else 1
        tx = cx + side * (hw_top + u(0.0, 0.5) * W) if u() < 0.7 else u(0, W)
        tx = float(np.clip(tx, 0, W - 1))
        feet = sidewalk_ground(tx)
        th = (feet - horizon + band) * u(2.5, 4.5) + H * 0.08  # tree height grows with nearness
        r = th * u(0.28, 0.38)
        trunk_w = max(1.0, r * 0.18)
        trunk = cv.rect(tx - trunk_w / 2, feet - th * 0.55, tx + trunk_w / 2, feet + 1)
        canopy = cv.ellipse(tx, feet - th + r, r * u(0.9, 1.2), r)
        green = _jitter(rng, (62, 112, 48), 10)
        col = green[None, None, :] * (1.0 + 0.10 * veg_noise[..., None])
        col = col * (1.1 - 0.25 * np.clip((cv.yy - (feet - th)) / max(2 * r, 1.0), 0, 1))[..., None]
        cv.paint(trunk, L["vegetation"], L["vegetation"], _jitter(rng, (80, 62, 45), 8))
        cv.paint(canopy, L["vegetation"], L["vegetation"], col)

    # --- poles ------------------------------------------------------------ #
    pole_w = max(2.0, W / 80)
    for _ in range(rng.integers(1, 4)):
        side = -1 if u() < 0.5 else 1
        px_ = float(np.clip(cx + side * (hw_top + u(0.02, 0.45) * W), 0, W - 1))
        feet = sidewalk_ground(px_)
        top = horizon - H * u(0.22, 0.40)
        cv.paint(cv.rect(px_, top, px_ + pole_w, feet + 1), L["pole"], L["pole"], _jitter(rng, (52, 52, 58), 6))

    # --- persons (sometimes) --------------------------------------------- #
    n_person = int(rng.integers(0, 3)) if u() < 0.5 else 0
    for k in range(n_person):
        side = -1 if u() < 0.5 else 1
        px_ = float(np.clip(cx + side * (hw_top + u(0.03, 0.4) * W), 1, W - 2))
        feet = sidewalk_ground(px_)
        ph = max(H * 0.14, (feet - horizon + band) * u(0.75, 0.95))
        pw = max(3.0, ph * 0.3)
        iid = 24000 + k
        body = cv.rect(px_ - pw / 2, feet - ph * 0.82, px_ + pw / 2, feet + 1)
        head = cv.ellipse(px_, feet - ph * 0.9, pw * 0.4, ph * 0.1)
        cloth = _jitter(rng, [(40, 40, 60), (120, 40, 40), (60, 90, 60), (90, 80, 70)][rng.integers(4)], 10)
        cv.paint(body, L["person"], iid, cv.vshade(cloth, 1.1, 0.8, feet - ph, feet))
        cv.paint(head, L["person"], iid, _jitter(rng, (200, 165, 140), 15))
    return geometry


def _car_specs(rng: np.random.Generator, ground: _Ground) -> list[dict]:
    """Draw 1-3 cars in the near half of the road, far to near: box (x0, y0, x1, y1), bottom yb, height ch, width cw,
    style and paint; a nearer car hides at most 30% of an earlier one."""
    u = rng.uniform
    H, horizon, road_top, cx = ground.h, ground.horizon, ground.road_top, ground.cx
    # In the near half of the road only: cars large enough to show their paint.
    n_cars = int(rng.integers(1, 4))
    y_lo = road_top + 0.45 * (H - road_top)
    bottoms = np.sort(u(y_lo, H, n_cars))
    placed: list[tuple[float, float, float, float]] = []  # (x0, y0, x1, y1) boxes of earlier cars
    specs: list[dict] = []
    for yb in bottoms:
        depth = yb - horizon
        ch = max(5.0, depth * u(0.50, 0.68))
        cw = ch * u(1.6, 2.1)
        hw = float(ground.road_hw(yb))
        box = None
        for _attempt in range(12):
            xc = cx + u(-1, 1) * max(hw - cw * 0.45, 1.0)
            cand = (xc - cw / 2, yb - ch, xc + cw / 2, yb)
            # limit how much this (nearer) car hides any earlier one
            ok = True
            for b in placed:
                ix = max(0.0, min(cand[2], b[2]) - max(cand[0], b[0]))
                iy = max(0.0, min(cand[3], b[3]) - max(cand[1], b[1]))
                if ix * iy > 0.3 * (b[2] - b[0]) * (b[3] - b[1]):
                    ok = False
                    break
            if ok:
                box = cand
                break
        if box is None:
            continue
        placed.append(box)
        style = _STYLE_NAMES[rng.integers(len(_STYLE_NAMES))]
        paint = _jitter(rng, CAR_STYLES[style], 8)
        specs.append({"box": box, "yb": float(yb), "ch": float(ch), "cw": float(cw), "style": style, "paint": paint})
    return specs


def _paint_car(cv: _Canvas, spec: dict, iid: int, dx: float = 0.0) -> None:
    """Paint one car of ``_car_specs`` with instance id ``iid``, shifted right by ``dx`` pixels."""
    x0, _, x1, _ = spec["box"]
    x0, x1 = x0 + dx, x1 + dx
    yb, ch, cw = spec["yb"], spec["ch"], spec["cw"]
    # The wheels stand below the body, so the car's outline in the label map shows where they are.
    body = cv.rect(x0, yb - ch * 0.62, x1, yb - ch * 0.22)
    cabin = cv.rect(x0 + cw * 0.14, yb - ch, x1 - cw * 0.14, yb - ch * 0.60)
    wr = max(1.5, ch * 0.2)
    wx = max(1.5, cw * 0.1)
    wheels = cv.ellipse(x0 + cw * 0.22, yb - wr, wx, wr) | cv.ellipse(x1 - cw * 0.22, yb - wr, wx, wr)
    window = cv.rect(x0 + cw * 0.19, yb - ch * 0.92, x1 - cw * 0.19, yb - ch * 0.64)
    cv.paint(body | cabin | wheels, LABEL_IDS["car"], iid, cv.vshade(spec["paint"], 1.08, 0.86, yb - ch, yb))
    cv.recolor(window & (cv.inst == iid), (42, 47, 58))
    cv.recolor(wheels & (cv.inst == iid), (20, 20, 22))


def generate_sample(width: int, height: int, rng: np.random.Generator):
    """Generate one scene.

    Returns ``(label uint8 HxW, inst uint16 HxW, photo uint8 HxWx3, cars)`` where
    ``cars`` is a list of ``{"instance_id", "style", "pixels"}`` for every car
    visible in the image (instance ids are 26000 + k, k = 0, 1, ... in drawing order).
    """
    cv = _Canvas(int(height), int(width))
    ground = _paint_background(cv, rng)
    # --- cars (far to near, so nearer cars occlude farther ones) --------- #
    cars_drawn: list[dict] = []
    for spec in _car_specs(rng, ground):
        iid = 26000 + len(cars_drawn)
        _paint_car(cv, spec, iid)
        cars_drawn.append({"instance_id": iid, "style": spec["style"]})

    # drop fully hidden cars and renumber the remaining ones consecutively
    cars: list[dict] = []
    remap = {}
    for c in cars_drawn:
        n = int((cv.inst == c["instance_id"]).sum())
        if n > 0:
            new_id = 26000 + len(cars)
            remap[c["instance_id"]] = new_id
            cars.append({"instance_id": new_id, "style": c["style"], "pixels": n})
    if any(k != v for k, v in remap.items()):
        inst = cv.inst.copy()
        for old, new in remap.items():
            inst[cv.inst == old] = new
        cv.inst = inst

    photo = np.clip(np.rint(cv.img), 0, 255).astype(np.uint8)
    return cv.label.copy(), cv.inst.astype(np.uint16), photo, cars


# --------------------------------------------------------------------------- #
# Dataset writer
# --------------------------------------------------------------------------- #


def _clear_generated(folder: str) -> None:
    """Remove files this generator wrote before (only names matching its pattern)."""
    for name in os.listdir(folder):
        if _NAME_RE.match(name):
            os.remove(os.path.join(folder, name))


def make_synthetic_dataset(
    root: str,
    n_train: int = 24,
    n_test: int = 6,
    width: int = 256,
    height: int = 128,
    seed: int = 0,
) -> dict[str, int]:
    """Write a synthetic Cityscapes-style dataset under ``root``.

    Creates ``train_label``, ``train_inst``, ``train_img``, ``test_label``,
    ``test_inst``, ``test_img`` and ``styles.json``; returns the number of files
    written per folder. Output is byte-identical for the same arguments.
    Previously generated ``synth*`` files in those folders are replaced.
    """
    if width < 32 or height < 16:
        raise ValueError(f"width/height too small: {width}x{height} (need >= 32x16)")
    if n_train < 0 or n_test < 0:
        raise ValueError("n_train and n_test must be >= 0")

    counts: dict[str, int] = {}
    styles: dict[str, list[dict]] = {}
    for split_idx, ((split, city), n) in enumerate(zip(_SPLITS, (n_train, n_test), strict=True)):
        dirs = {kind: os.path.join(root, f"{split}_{kind}") for kind in ("label", "inst", "img")}
        for kind, d in dirs.items():
            os.makedirs(d, exist_ok=True)
            _clear_generated(d)
            counts[f"{split}_{kind}"] = 0
        for i in range(n):
            rng = np.random.default_rng([int(seed), split_idx, i])
            label, inst, photo, cars = generate_sample(width, height, rng)
            label_name, inst_name, img_name = _names(city, i)
            Image.fromarray(label).save(os.path.join(dirs["label"], label_name))
            Image.fromarray(inst.astype(np.uint16)).save(os.path.join(dirs["inst"], inst_name))
            Image.fromarray(photo).save(os.path.join(dirs["img"], img_name))
            for kind in ("label", "inst", "img"):
                counts[f"{split}_{kind}"] += 1
            styles[os.path.splitext(img_name)[0]] = cars

    with open(os.path.join(root, "styles.json"), "w") as f:
        json.dump(styles, f, indent=1, sort_keys=True)
    return counts


# --------------------------------------------------------------------------- #
# Helpers for tests / demos
# --------------------------------------------------------------------------- #


def load_styles(root: str) -> dict[str, list[dict]]:
    """Read ``root/styles.json``: {photo stem: [{"instance_id", "style", "pixels"}]}."""
    with open(os.path.join(root, "styles.json")) as f:
        return json.load(f)


def styles_for(root_or_styles, path: str) -> list[dict]:
    """Car styles for the image that ``path`` (a label, instance or photo file) belongs to."""
    styles = load_styles(root_or_styles) if isinstance(root_or_styles, str) else root_or_styles
    name = os.path.basename(path)
    for suffix in ("_gtFine_labelIds.png", "_gtFine_instanceIds.png", "_leftImg8bit.png"):
        if name.endswith(suffix):
            return styles[name[: -len(suffix)] + "_leftImg8bit"]
    raise KeyError(f"not a synthetic dataset file name: {name}")
