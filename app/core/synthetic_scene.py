"""Drawing of the procedural street scenes: the camera, the painter and the street's contents.

A scene is a small 3-D world (a straight street seen by a pinhole camera: road, sidewalks, buildings, trees,
poles, signs, vehicles, people) laid out by `SceneBuilder` and painted far to near by its `Painter`, so
every label and instance mask holds visible pixels only. `app.core.synthetic` textures the result and
writes it in the Cityscapes layout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
from PIL import Image, ImageDraw

from app.core.labels import LABEL_BY_NAME, RGB

_L = {name: label.id for name, label in LABEL_BY_NAME.items()}
EGO, BORDER, STATIC, DYNAMIC, GROUND = (
    _L[n] for n in ("ego vehicle", "rectification border", "static", "dynamic", "ground")
)
ROAD, SIDEWALK, PARKING, BUILDING, WALL, FENCE = (
    _L[n] for n in ("road", "sidewalk", "parking", "building", "wall", "fence")
)
POLE, LIGHT, SIGN, VEG, TERRAIN, SKY = (
    _L[n] for n in ("pole", "traffic light", "traffic sign", "vegetation", "terrain", "sky")
)
PERSON, RIDER, CAR, TRUCK, BUS, MOTO, BIKE = (
    _L[n] for n in ("person", "rider", "car", "truck", "bus", "motorcycle", "bicycle")
)

Pt = tuple[float, float]

_FACADES = (
    (150, 150, 150),
    (192, 180, 160),
    (172, 118, 88),
    (205, 195, 175),
    (118, 110, 100),
    (212, 204, 190),
    (160, 150, 140),
    (140, 88, 70),
    (182, 170, 148),
    (100, 100, 106),
    (170, 160, 120),
)
_CAR_PAINT = (
    (30, 30, 32),
    (200, 200, 205),
    (150, 152, 158),
    (90, 92, 98),
    (160, 30, 30),
    (30, 50, 120),
    (235, 235, 232),
    (40, 70, 50),
    (120, 100, 80),
    (20, 90, 140),
)
_CLOTHES = (
    (30, 30, 35),
    (50, 55, 90),
    (140, 30, 40),
    (200, 200, 195),
    (90, 90, 95),
    (160, 120, 70),
    (40, 90, 60),
    (200, 150, 40),
    (70, 40, 90),
    (110, 60, 40),
)
_SKIN = ((230, 190, 160), (200, 150, 120), (150, 100, 70), (100, 70, 50), (240, 205, 180))


def _jit(rng: np.random.Generator, base: Sequence[float], spread: float, scale: float = 1.0) -> RGB:
    v = (np.asarray(base, dtype=np.float64) + rng.normal(0, spread * 0.4, 3) + rng.normal(0, spread)) * scale
    c = np.clip(v, 0, 255).astype(int)
    return (int(c[0]), int(c[1]), int(c[2]))


def _mul(color: RGB, k: float) -> RGB:
    return (min(255, int(color[0] * k)), min(255, int(color[1] * k)), min(255, int(color[2] * k)))


@dataclass(frozen=True)
class _Cam:
    f: float
    cx: float
    cy: float
    h: float

    def p(self, x: float, y: float, z: float) -> Pt:
        return (self.cx + self.f * x / z, self.cy + self.f * (self.h - y) / z)

    def plane_x(self, x: float, y0: float, y1: float, z0: float, z1: float) -> list[Pt]:
        return [self.p(x, y0, z0), self.p(x, y0, z1), self.p(x, y1, z1), self.p(x, y1, z0)]

    def plane_z(self, z: float, x0: float, x1: float, y0: float, y1: float) -> list[Pt]:
        return [self.p(x0, y0, z), self.p(x1, y0, z), self.p(x1, y1, z), self.p(x0, y1, z)]

    def plane_y(self, y: float, x0: float, x1: float, z0: float, z1: float) -> list[Pt]:
        return [self.p(x0, y, z0), self.p(x1, y, z0), self.p(x1, y, z1), self.p(x0, y, z1)]


class Painter:
    """Draws each shape into the image, the labelIds, the instanceIds and the shade map at once."""

    def __init__(self, sky: np.ndarray) -> None:
        h, w = sky.shape[:2]
        self.rgb = Image.fromarray(sky, "RGB")
        self.lab = Image.new("L", (w, h), SKY)
        self.inst = Image.new("I", (w, h), SKY)
        self.shade = Image.new("L", (w, h), 255)
        self._d = [ImageDraw.Draw(im) for im in (self.rgb, self.lab, self.inst, self.shade)]

    def poly(
        self, pts: list[Pt], color: RGB | None, label: int | None = None, inst: int | None = None
    ) -> None:
        """A polygon; color None draws the label only (see-through parts), label None the image only."""
        if color is not None:
            self._d[0].polygon(pts, fill=color)
        if label is not None:
            self._d[1].polygon(pts, fill=label)
            self._d[2].polygon(pts, fill=label if inst is None else inst)
            self._d[3].polygon(pts, fill=255)  # an object in front is not in the shadow behind it

    def ellipse(
        self,
        box: Sequence[float],
        color: RGB | None,
        label: int | None = None,
        inst: int | None = None,
        width: int = 0,
    ) -> None:
        """An ellipse (filled, or an outline of `width` pixels) in the same layers as `poly`."""
        x0, y0, x1, y1 = box
        bb = (min(x0, x1), min(y0, y1), max(x0, x1, min(x0, x1) + 1), max(y0, y1, min(y0, y1) + 1))
        fill_args = {"outline": color, "width": width} if width else {"fill": color}
        if color is not None:
            self._d[0].ellipse(bb, **fill_args)
        if label is not None:
            lab_inst = label if inst is None else inst
            if width:
                self._d[1].ellipse(bb, outline=label, width=width)
                self._d[2].ellipse(bb, outline=lab_inst, width=width)
            else:
                self._d[1].ellipse(bb, fill=label)
                self._d[2].ellipse(bb, fill=lab_inst)
                self._d[3].ellipse(bb, fill=255)

    def line(
        self, pts: list[Pt], color: RGB, width: float, label: int | None = None, inst: int | None = None
    ) -> None:
        """A polyline at least one pixel wide."""
        wd = max(1, round(width))
        self._d[0].line(pts, fill=color, width=wd)
        if label is not None:
            self._d[1].line(pts, fill=label, width=wd)
            self._d[2].line(pts, fill=label if inst is None else inst, width=wd)

    def shadow(self, pts: list[Pt], value: int) -> None:
        """Darken whatever ends up visible there (objects drawn later clear it)."""
        self._d[3].polygon(pts, fill=value)


@dataclass(frozen=True)
class _Street:
    lane: float
    lanes: int
    left: float  # road edge X (negative: left of the camera)
    right: float
    walk_l: float  # outer sidewalk edge X
    walk_r: float
    far: float


class SceneBuilder:
    """Lays out one street and paints it far to near."""

    def __init__(self, rng: np.random.Generator, height: int, width: int) -> None:
        self.rng, self.h, self.w = rng, height, width
        r = rng
        self.cam = _Cam(
            f=width * r.uniform(0.95, 1.25),
            cx=width * r.uniform(0.38, 0.62),
            cy=height * r.uniform(0.36, 0.5),
            h=r.uniform(1.15, 1.45),
        )
        lane = r.uniform(3.0, 3.7)
        lanes = int(r.integers(2, 5))
        left = -lane * (lanes - 0.5) - r.uniform(0, 0.6)
        right = lane * 0.5 + r.uniform(0.2, 2.6)
        self.st = _Street(
            lane,
            lanes,
            left,
            right,
            left - r.uniform(2.2, 5.0),
            right + r.uniform(2.2, 5.0),
            r.uniform(110, 220),
        )
        self.sun = float(r.choice([-1.0, 1.0]))
        self.sunny = bool(r.random() < 0.65)
        self.counters: dict[int, int] = {}
        self.setback: dict[int, float] = {}
        self.crossing: float | None = None
        self.objs: list[tuple[float, int, Callable[[], None]]] = []
        self.paint = Painter(self._sky())

    # -- helpers -------------------------------------------------------------------------------------
    def next_inst(self, label: int) -> int:
        k = self.counters.get(label, 0)
        self.counters[label] = k + 1
        return label * 1000 + k

    def add(self, z: float, draw: Callable[[], None]) -> None:
        self.objs.append((z, len(self.objs), draw))

    def ground(
        self, x0: float, x1: float, z0: float, z1: float, color: RGB | None, label: int | None
    ) -> None:
        self.paint.poly(self.cam.plane_y(0.0, x0, x1, max(z0, 0.8), z1), color, label)

    def px(self, meters: float, z: float) -> float:
        return self.cam.f * meters / z

    # -- background --------------------------------------------------------------------------------
    def _sky(self) -> np.ndarray:
        r, h, w = self.rng, self.h, self.w
        if self.sunny:
            top, bottom = _jit(r, (70, 120, 190), 15), _jit(r, (185, 205, 225), 12)
        else:
            g = r.uniform(150, 215)
            top, bottom = _jit(r, (g - 15, g - 8, g), 6), _jit(r, (g + 20, g + 22, g + 25), 6)
        t = np.linspace(0.0, 1.0, h, dtype=np.float32) / max(self.cam.cy / h, 0.2)
        t = np.clip(t, 0, 1)[:, None, None]
        img = np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t
        img = np.broadcast_to(img, (h, w, 3)).copy()
        cover = smooth_noise(r, h, w, (3, 6)) + 0.5 * smooth_noise(r, h, w, (8, 16))
        cloud = np.clip((cover - r.uniform(0.1, 1.0)) * 1.2, 0, 1)[..., None] * (0.85 if self.sunny else 0.4)
        img = img * (1 - cloud) + np.float32(r.uniform(215, 250)) * cloud
        return np.clip(img, 0, 255).astype(np.uint8)

    def layout_ground(self) -> None:
        r, st, cam = self.rng, self.st, self.cam
        grass = _jit(r, (95, 120, 60), 18)
        self.ground(-600, 600, 0.8, 5000, grass, TERRAIN)
        asphalt = _jit(r, (105, 105, 108), 14)
        self.ground(st.left, st.right, 0.8, st.far, asphalt, ROAD)
        for _ in range(int(r.integers(2, 7))):  # patched asphalt
            x0, z0 = r.uniform(st.left, st.right - 1.5), r.uniform(3, 50)
            patch = _mul(asphalt, r.uniform(0.8, 1.1))
            self.ground(x0, x0 + r.uniform(1, 4), z0, z0 + r.uniform(2, 10), patch, None)
        walk = _jit(r, r.choice(np.array([(150, 148, 145), (165, 140, 130), (125, 125, 128)])), 12)
        for side, edge, outer in ((-1, st.left, st.walk_l), (1, st.right, st.walk_r)):
            self.ground(min(edge, outer), max(edge, outer), 0.8, st.far, walk, SIDEWALK)
            self.paint.poly(cam.plane_x(edge, 0, 0.13, 0.8, st.far), _mul(walk, 1.2), SIDEWALK)  # curb face
            self.ground(edge + side * 0.13, edge + side * 0.3, 0.8, st.far, _mul(walk, 1.12), SIDEWALK)
            for z in np.arange(2.0, 45.0, r.uniform(1.2, 2.2)):  # paving joints
                self.paint.line([cam.p(edge, 0, z), cam.p(outer, 0, z)], _mul(walk, 0.8), self.px(0.02, z))
            setback = r.uniform(0, 3.5)
            kind = r.choice([TERRAIN, SIDEWALK, GROUND], p=[0.55, 0.3, 0.15])
            dirt = _jit(r, (125, 105, 80), 12)
            color = {TERRAIN: _mul(grass, 1.1), SIDEWALK: _mul(walk, 0.95), GROUND: dirt}
            self.setback[side] = setback
            self.ground(
                min(outer, outer + side * setback),
                max(outer, outer + side * setback),
                0.8,
                st.far,
                color[int(kind)],
                int(kind),
            )
        if r.random() < 0.35:  # a parking strip along the right edge
            z0 = r.uniform(4, 25)
            self.ground(st.right - 2.3, st.right, z0, z0 + r.uniform(10, 40), _mul(asphalt, 1.12), PARKING)
        self._markings()

    def _markings(self) -> None:
        r, st = self.rng, self.st
        paint = _jit(r, (215, 215, 205), 10)
        for k in range(st.lanes - 1):
            x = st.lane * 0.5 - st.lane * (k + 1)
            dash, gap = r.uniform(2.5, 4), r.uniform(5, 9)
            solid = k == st.lanes // 2 - 1 and r.random() < 0.5
            z = r.uniform(1, 6)
            while z < st.far:
                z1 = st.far if solid else z + dash
                self.ground(x - 0.07, x + 0.07, z, z1, paint, None)
                z = z1 + gap
        for x in (st.left + 0.3, st.right - 0.3):
            self.ground(x - 0.07, x + 0.07, 1, st.far, paint, None)
        if r.random() < 0.45:  # a zebra crossing
            self.crossing = r.uniform(9, 25)
            for x in np.arange(st.left + 0.4, st.right - 0.4, 1.0):
                self.ground(x, x + 0.5, self.crossing, self.crossing + 3.5, paint, None)

    def shadows(self) -> None:
        if not self.sunny:
            return
        st, r = self.st, self.rng
        edge = st.walk_l if self.sun > 0 else st.walk_r
        reach = r.uniform(3, 14) * -self.sun
        for z0 in np.arange(0.8, st.far, 30.0):
            z1 = z0 + r.uniform(12, 30)
            self.paint.shadow(self.cam.plane_y(0, edge, edge - reach, z0, z1), int(r.uniform(130, 175)))

    def backdrop(self) -> None:
        r, z, x = self.rng, self.st.far, -self.st.far * 1.6
        while x < self.st.far * 1.6:
            wid = r.uniform(6, 25)
            if r.random() < 0.3:
                for _ in range(3):
                    cx, cy, rad = x + r.uniform(0, wid), r.uniform(3, 8), r.uniform(3, 7)
                    (u0, v0), (u1, v1) = self.cam.p(cx - rad, cy + rad, z), self.cam.p(cx + rad, cy - rad, z)
                    self.paint.ellipse((u0, v0, u1, v1), _jit(r, (70, 95, 50), 12), VEG)
            else:
                self.paint.poly(
                    self.cam.plane_z(z, x, x + wid, 0, r.uniform(6, 40)),
                    _jit(r, _FACADES[int(r.integers(len(_FACADES)))], 10, 0.9),
                    BUILDING,
                )
            x += wid

    # -- buildings and things along the property line ---------------------------------------------------
    def buildings(self, side: int) -> None:
        r = self.rng
        base = (self.st.walk_l if side < 0 else self.st.walk_r) + side * self.setback[side]
        blocks: list[tuple[float, float, float, float]] = []
        z = r.uniform(-6, 4)
        while z < self.st.far:
            z1 = z + r.uniform(8, 32)
            if r.random() < 0.13:
                self.add(z + 3, partial(self.tree, base - side * 0.5, (z + z1) / 2))
            else:
                blocks.append((max(z, 0.9), z1, base + side * r.uniform(0, 1.2), r.uniform(6, 28)))
            z = z1
        light = 1.1 if side == -self.sun or not self.sunny else 0.72
        for z0, z1, x, height in reversed(blocks):
            self.facade(side, x, z0, z1, height, light)

    def facade(self, side: int, x: float, z0: float, z1: float, height: float, light: float) -> None:
        r, cam, p = self.rng, self.cam, self.paint
        wall = _jit(r, _FACADES[int(r.integers(len(_FACADES)))], 14)
        p.poly(cam.plane_z(z0, x, x + side * 15, 0, height), _mul(wall, 0.92), BUILDING)
        p.poly(cam.plane_x(x, 0, height, z0, z1), _mul(wall, light), BUILDING)
        p.poly(cam.plane_x(x, height - 0.6, height, z0, z1), _mul(wall, light * 0.8), None)  # cornice
        glass = _jit(r, (55, 65, 80), 12)
        floor, col = r.uniform(2.9, 3.6), r.uniform(2.4, 4.0)
        ww, wh = col * r.uniform(0.35, 0.6), floor * r.uniform(0.4, 0.6)
        for zc in np.arange(z0 + col * 0.6, z1 - col * 0.4, col):
            if self.px(ww, zc) < 1.3:
                break
            for yc in np.arange(floor * 1.3, height - 1.0, floor):
                tone = _mul(glass, r.uniform(0.7, 1.6 if r.random() < 0.15 else 1.15))
                p.poly(cam.plane_x(x, yc - wh / 2, yc + wh / 2, zc - ww / 2, zc + ww / 2), tone, None)
            if r.random() < 0.5:  # shop window or door on the ground floor
                p.poly(cam.plane_x(x, 0.2, 2.6, zc - col * 0.4, zc + col * 0.4), _mul(glass, 0.8), None)

    def property_line(self, side: int) -> None:
        r, st, cam, p = self.rng, self.st, self.cam, self.paint
        x = (st.walk_l if side < 0 else st.walk_r) + side * 0.1
        for _ in range(int(r.integers(0, 3))):
            z0 = r.uniform(3, 40)
            z1 = z0 + r.uniform(5, 30)
            kind = int(r.choice([FENCE, WALL, VEG]))
            ht = r.uniform(0.8, 2.0)
            if kind == WALL:
                color = _jit(r, (150, 145, 135), 15)
                p.poly(cam.plane_x(x, 0, ht, z0, z1), color, WALL)
                p.poly(cam.plane_z(z0, x, x + side * 0.3, 0, ht), _mul(color, 0.85), WALL)
                p.poly(cam.plane_x(x, ht - 0.1, ht, z0, z1), _mul(color, 1.15), None)
            elif kind == FENCE:
                color = _jit(r, r.choice(np.array([(60, 60, 60), (120, 110, 95), (90, 110, 90)])), 10)
                p.poly(cam.plane_x(x, 0, ht, z0, z1), None, FENCE)
                for y in (ht * 0.15, ht * 0.9):  # rails and slats; the gaps stay see-through
                    p.line([cam.p(x, y, z0), cam.p(x, y, z1)], color, self.px(0.05, z0))
                for z in np.arange(z0, z1, r.uniform(0.12, 0.3)):
                    p.line([cam.p(x, 0, z), cam.p(x, ht, z)], color, self.px(0.03, z))
            else:
                zs = np.linspace(z0, z1, 12)
                top = [cam.p(x, ht + r.uniform(-0.2, 0.2), z) for z in zs]
                p.poly([cam.p(x, 0, z1), cam.p(x, 0, z0), *top], _jit(r, (60, 90, 45), 12), VEG)

    # -- street furniture, vegetation ---------------------------------------------------------------------
    def tree(self, x: float, z: float) -> None:
        r, cam, p = self.rng, self.cam, self.paint
        trunk_h, rad = r.uniform(2.0, 3.8), r.uniform(1.4, 3.5)
        p.shadow(cam.plane_y(0, x - rad, x + rad, max(z - rad * 0.5, 0.9), z + rad * 0.5), 150)
        p.poly(cam.plane_z(z, x - 0.14, x + 0.14, 0, trunk_h + rad), _jit(r, (80, 65, 50), 10), VEG)
        leaf = _jit(r, (70, 105, 45), 16)
        for _ in range(int(r.integers(6, 12))):
            cx, cy = x + r.normal(0, rad * 0.45), trunk_h + rad + r.normal(0, rad * 0.35)
            rr = rad * r.uniform(0.35, 0.7)
            (u0, v0), (u1, v1) = cam.p(cx - rr, cy + rr * 0.9, z), cam.p(cx + rr, cy - rr * 0.9, z)
            p.ellipse((u0, v0, u1, v1), _mul(leaf, r.uniform(0.75, 1.25)), VEG)

    def pole(self, x: float, z: float, kind: str) -> None:
        r, cam, p = self.rng, self.cam, self.paint
        grey = _jit(r, (120, 122, 125), 18)
        top = {"lamp": r.uniform(6.5, 9), "sign": r.uniform(2.3, 3.2), "light": r.uniform(3.2, 4.5)}[kind]
        wid = 0.07 if kind == "sign" else 0.1
        p.poly(cam.plane_z(z, x - wid, x + wid, 0, top), grey, POLE)
        if kind == "lamp":
            arm = -1.6 if x > 0 else 1.6
            p.poly(cam.plane_z(z, min(x, x + arm), max(x, x + arm), top - 0.12, top), grey, POLE)
            p.poly(cam.plane_z(z, x + arm - 0.3, x + arm + 0.3, top - 0.3, top), _mul(grey, 0.8), POLE)
        elif kind == "sign":
            (u0, v0), (u1, v1) = cam.p(x - 0.32, top + 0.6, z), cam.p(x + 0.32, top - 0.02, z)
            shape = int(r.integers(0, 3))
            outer = _jit(r, r.choice(np.array([(200, 30, 30), (30, 70, 170), (220, 190, 30)])), 12)
            if shape == 0:
                p.ellipse((u0, v0, u1, v1), outer, SIGN)
                d = (u1 - u0) * 0.18
                p.ellipse((u0 + d, v0 + d, u1 - d, v1 - d), (235, 235, 230), None)
            elif shape == 1:
                p.poly([((u0 + u1) / 2, v0), (u1, v1), (u0, v1)], outer, SIGN)
            else:
                p.poly([(u0, v0), (u1, v0), (u1, v1), (u0, v1)], outer, SIGN)
                ua, ub = u0 * 0.8 + u1 * 0.2, u0 * 0.2 + u1 * 0.8
                va, vb = v0 * 0.7 + v1 * 0.3, v0 * 0.6 + v1 * 0.4
                p.poly([(ua, va), (ub, va), (ub, vb), (ua, vb)], (240, 240, 240), None)
        else:
            p.poly(cam.plane_z(z, x - 0.17, x + 0.17, top, top + 0.95), _jit(r, (35, 38, 35), 6), LIGHT)
            lit = int(r.integers(0, 3))
            for i, col in enumerate(((230, 40, 30), (240, 180, 20), (40, 220, 90))):
                yl = top + 0.85 - i * 0.3
                lamp = col if i == lit else _mul(col, 0.25)
                p.ellipse((*cam.p(x - 0.1, yl, z), *cam.p(x + 0.1, yl - 0.2, z)), lamp)

    def box_thing(self, x: float, z: float, label: int) -> None:
        """A bin, kiosk or advertising column (static) or a cart or stroller (dynamic)."""
        r = self.rng
        w, ht = (r.uniform(0.5, 1.3), r.uniform(0.8, 2.6)) if label == STATIC else (0.6, r.uniform(0.8, 1.1))
        color = _jit(r, _CLOTHES[int(r.integers(len(_CLOTHES)))], 20)
        self.paint.poly(self.cam.plane_z(z, x - w / 2, x + w / 2, 0, ht), color, label)
        self.paint.poly(self.cam.plane_y(ht, x - w / 2, x + w / 2, z, z + w), _mul(color, 1.2), label)

    # -- vehicles ----------------------------------------------------------------------------------------
    def box(
        self,
        xl: float,
        xr: float,
        y0: float,
        y1: float,
        z0: float,
        z1: float,
        color: RGB,
        label: int,
        inst: int,
    ) -> float | None:
        """A lit box; returns the X of its visible side face (None when seen straight on)."""
        cam, p = self.cam, self.paint
        side_x = xl if xl > 0.3 else xr if xr < -0.3 else None
        if side_x is not None:
            p.poly(cam.plane_x(side_x, y0, y1, z0, z1), _mul(color, 0.78), label, inst)
        if y1 < cam.h:
            p.poly(cam.plane_y(y1, xl, xr, z0, z1), _mul(color, 1.15), label, inst)
        p.poly(cam.plane_z(z0, xl, xr, y0, y1), color, label, inst)
        return side_x

    def vehicle(self, x: float, z0: float, kind: int, facing: bool, inst: int | None = None) -> None:
        """A car, truck or bus centred at lateral x, its near end at z0 (facing=True: front visible)."""
        r, cam, p = self.rng, self.cam, self.paint
        wid, length, body = {CAR: (1.8, 4.4, 1.45), TRUCK: (2.5, 8.0, 3.5), BUS: (2.55, 12.0, 3.1)}[kind]
        wid *= r.uniform(0.95, 1.05)
        inst = self.next_inst(kind) if inst is None else inst
        xl, xr, z1 = x - wid / 2, x + wid / 2, z0 + length
        paint = (
            _jit(r, _CAR_PAINT[int(r.integers(len(_CAR_PAINT)))], 10)
            if kind == CAR
            else _jit(
                r, r.choice(np.array([(220, 190, 40), (200, 40, 40), (230, 230, 225), (60, 110, 170)])), 12
            )
        )
        p.shadow(cam.plane_y(0, xl - 0.15, xr + 0.25, z0 - 0.2, z1 + 0.3), 70)
        tyre = _jit(r, (28, 28, 30), 4)
        for wx in (xl, xr - 0.25):  # the far wheels show below the body
            p.poly(cam.plane_z(z0 + 0.7, wx, wx + 0.25, 0, 0.35), tyre, kind, inst)
        glass = _jit(r, (45, 55, 65), 10)
        if kind == CAR:
            side = self.box(xl, xr, 0.3, 0.95, z0, z1, paint, kind, inst)
            zc0, zc1 = (z0 + 1.0, z1 - 1.3) if facing else (z0 + 1.2, z1 - 0.9)
            cabin = self.box(xl + 0.12, xr - 0.12, 0.95, body, zc0, zc1, paint, kind, inst)
            p.poly(cam.plane_z(zc0, xl + 0.22, xr - 0.22, 1.0, body - 0.06), glass, None)
            if cabin is not None:
                p.poly(cam.plane_x(cabin, 1.0, body - 0.07, zc0 + 0.15, zc1 - 0.1), _mul(glass, 0.9), None)
        else:
            side = self.box(xl, xr, 0.35, body, z0, z1, paint, kind, inst)
            if facing or kind == BUS:  # windscreen, or the bus's rear window
                p.poly(cam.plane_z(z0, xl + 0.15, xr - 0.15, 1.3, body - 0.3), glass, None)
            else:  # the truck's cargo doors
                p.line([cam.p(x, 0.4, z0), cam.p(x, body - 0.1, z0)], _mul(paint, 0.6), self.px(0.04, z0))
            if side is not None and kind == BUS:
                for zw in np.arange(z0 + 1.0, z1 - 1.0, 1.4):
                    p.poly(cam.plane_x(side, 1.3, 2.5, zw, zw + 1.2), glass, None)
        if side is not None:
            for zw in (z0 + 0.85, z1 - 0.95):
                p.poly(cam.plane_x(side, 0, 0.62, zw - 0.33, zw + 0.33), tyre, kind, inst)
        lamp = (235, 230, 200) if facing else (200, 20, 20)
        for lx in (xl + 0.08, xr - 0.38):
            p.poly(cam.plane_z(z0 - 0.01, lx, lx + 0.3, 0.72, 0.86), lamp, None)
        p.poly(cam.plane_z(z0 - 0.01, x - 0.26, x + 0.26, 0.42, 0.54), (225, 225, 215), None)

    def person(self, x: float, z: float, label: int = PERSON, inst: int | None = None) -> None:
        r, p = self.rng, self.paint
        inst = self.next_inst(label) if inst is None else inst
        bx, by = self.cam.p(x, 0, z)
        s = self.cam.f / z * r.uniform(0.9, 1.1)
        sideways = r.random() < 0.5

        def q(pts: list[Pt]) -> list[Pt]:
            return [(bx + u * s, by - v * s) for u, v in pts]

        p.shadow(self.cam.plane_y(0, x - 0.35, x + 0.45, z - 0.2, z + 0.4), 110)
        pants, top = (_jit(r, _CLOTHES[int(r.integers(len(_CLOTHES)))], 15) for _ in range(2))
        skin = _jit(r, _SKIN[int(r.integers(len(_SKIN)))], 8)
        stride = r.uniform(0.1, 0.3) if sideways else 0.04
        for sgn in (-1, 1):
            hip = 0.0 if sideways else sgn * 0.09
            p.poly(
                q(
                    [
                        (hip - 0.07, 0.9),
                        (hip + 0.07, 0.9),
                        (hip + sgn * stride + 0.06, 0),
                        (hip + sgn * stride - 0.07, 0),
                    ]
                ),
                _mul(pants, 1 + 0.1 * sgn),
                label,
                inst,
            )
        half = 0.13 if sideways else 0.2
        p.poly(q([(-half, 1.45), (half, 1.45), (half * 0.8, 0.86), (-half * 0.8, 0.86)]), top, label, inst)
        for sgn in (-1, 1):
            ax = 0.0 if sideways else sgn * (half + 0.04)
            sw = sgn * stride * 0.8
            p.poly(
                q([(ax - 0.05, 1.42), (ax + 0.05, 1.42), (ax + sw + 0.04, 0.85), (ax + sw - 0.04, 0.85)]),
                _mul(top, 0.9),
                label,
                inst,
            )
        p.ellipse(q([(-0.1, 1.72), (0.1, 1.48)])[0] + q([(-0.1, 1.72), (0.1, 1.48)])[1], skin, label, inst)
        p.ellipse(
            q([(-0.105, 1.74), (0.105, 1.6)])[0] + q([(-0.105, 1.74), (0.105, 1.6)])[1],
            _jit(r, (50, 35, 25), 15),
            label,
            inst,
        )

    def cyclist(self, x: float, z: float, motor: bool) -> None:
        r, p = self.rng, self.paint
        kind = MOTO if motor else BIKE
        vinst, rinst = self.next_inst(kind), self.next_inst(RIDER)
        d = float(r.choice([-1.0, 1.0]))
        bx, by = self.cam.p(x, 0, z)
        s = self.cam.f / z

        def q(u: float, v: float) -> Pt:
            return (bx + d * u * s, by - v * s)

        p.shadow(self.cam.plane_y(0, x - 1.0, x + 1.0, z - 0.2, z + 0.3), 110)
        frame = _jit(r, _CAR_PAINT[int(r.integers(len(_CAR_PAINT)))], 15)
        rad = 0.34 if not motor else 0.32
        for wu in (-0.52, 0.55):
            box = (*q(wu - rad, 2 * rad), *q(wu + rad, 0))
            if motor:
                p.ellipse(box, (25, 25, 28), kind, vinst)
            else:  # a bicycle wheel is annotated as a disc but looks like a ring with spokes
                p.ellipse(box, None, kind, vinst)
                p.ellipse(box, (30, 30, 30), None, None, width=max(1, round(0.05 * s)))
                p.line([q(wu - rad, rad), q(wu + rad, rad)], (90, 90, 90), 0.01 * s)
        if motor:
            p.poly([q(-0.4, 0.35), q(0.45, 0.4), q(0.4, 0.85), q(-0.2, 0.8)], frame, kind, vinst)
        else:
            p.line([q(-0.52, rad), q(-0.1, 0.95), q(0.4, 0.95), q(0.55, rad)], frame, 0.04 * s, kind, vinst)
            p.line([q(-0.52, rad), q(0.0, 0.3), q(-0.1, 0.95)], frame, 0.04 * s, kind, vinst)
            p.line([q(0.0, 0.3), q(0.4, 0.95), q(0.42, 1.1)], frame, 0.035 * s, kind, vinst)
        pants, top = (_jit(r, _CLOTHES[int(r.integers(len(_CLOTHES)))], 15) for _ in range(2))
        p.line([q(-0.12, 1.0), q(0.15, 0.62), q(0.05, 0.25)], pants, 0.14 * s, RIDER, rinst)
        p.poly([q(-0.22, 0.95), q(0.02, 0.92), q(0.32, 1.52), q(0.1, 1.6)], top, RIDER, rinst)
        p.line([q(0.22, 1.5), q(0.42, 1.08)], top, 0.09 * s, RIDER, rinst)
        head = (*q(0.12, 1.82), *q(0.34, 1.58))
        p.ellipse(head, _jit(r, (40, 40, 45), 20) if motor else _jit(r, _SKIN[0], 20), RIDER, rinst)

    # -- placement ---------------------------------------------------------------------------------------
    def populate(self) -> None:
        r, st = self.rng, self.st
        for side, lo, hi in ((-1, st.walk_l, st.left), (1, st.right, st.walk_r)):
            curb_x = (lo + 0.6) if side > 0 else (hi - 0.6)
            for z in np.cumsum(r.uniform(12, 35, 6)) + r.uniform(-5, 5):
                self.add(z, partial(self.pole, curb_x, z, "lamp"))
            for _ in range(int(r.integers(0, 6))):
                z = r.uniform(5, 60)
                self.add(z, partial(self.tree, curb_x + side * r.uniform(0, 0.6), z))
            for kind in ("sign", "light"):
                for _ in range(int(r.integers(0, 3))):
                    z = r.uniform(6, 50) if kind == "sign" or self.crossing is None else self.crossing - 1
                    self.add(z, partial(self.pole, curb_x + side * 0.2, z, kind))
            for _ in range(int(r.integers(0, 7))):
                z = r.uniform(6, 60)
                self.add(z, partial(self.person, r.uniform(min(lo, hi) + 0.6, max(lo, hi) - 0.4), z))
            for label, prob in ((STATIC, 0.5), (DYNAMIC, 0.2)):
                if r.random() < prob:
                    z = r.uniform(5, 30)
                    self.add(z, partial(self.box_thing, (lo if side < 0 else hi) - side * 0.8, z, label))
        if self.crossing is not None:
            for _ in range(int(r.integers(0, 4))):
                z = self.crossing + r.uniform(0.5, 3)
                self.add(z, partial(self.person, r.uniform(st.left + 1, st.right - 1), z))
        self._traffic()

    def _traffic(self) -> None:
        r, st = self.rng, self.st
        for k in range(st.lanes):
            x, facing = -k * st.lane, k >= (st.lanes + 1) // 2
            z = r.uniform(12, 28) if k == 0 else r.uniform(8, 22)  # keep the car ahead at a safe distance
            while z < 90 and r.random() < 0.75:
                kind = int(r.choice([CAR, TRUCK, BUS], p=[0.84, 0.08, 0.08]))
                self.add(z, partial(self.vehicle, x + r.uniform(-0.3, 0.3), z, kind, facing))
                z += r.uniform(9, 30) + (12 if kind == BUS else 0)
        z = r.uniform(7, 14)
        for _ in range(int(r.integers(0, 6))):  # parked along the right edge
            self.add(z, partial(self.vehicle, st.right - 1.15, z, CAR, False))
            z += r.uniform(5, 12)
        if r.random() < 0.3:  # crowd: cars packed too tightly to tell apart are annotated as one region
            x, z = st.left + 1.1, r.uniform(25, 60)
            for i in range(int(r.integers(3, 6))):
                self.add(z + i * 4.7, partial(self.vehicle, x, z + i * 4.7, CAR, False, CAR))
        if r.random() < 0.15:
            x, z = st.walk_r - 1.2, r.uniform(30, 60)
            for _ in range(int(r.integers(4, 8))):
                self.add(z, partial(self.person, x + r.uniform(-1, 1), z + r.uniform(-1, 1), PERSON, PERSON))
        for motor, prob in ((False, 0.45), (True, 0.15)):
            if r.random() < prob:
                z = (self.crossing if self.crossing is not None else r.uniform(8, 30)) + 1.5
                self.add(z, partial(self.cyclist, r.uniform(st.left + 1, st.right - 1), z, motor))

    def ego_and_border(self) -> None:
        r, p, h, w = self.rng, self.paint, self.h, self.w
        if r.random() < 0.5:  # the bonnet of the recording car
            top, span = h * r.uniform(0.06, 0.14), w * r.uniform(0.55, 0.8)
            xs = np.linspace(-0.05 * w, 1.05 * w, 24)
            ys = h - top * np.clip(1 - ((xs - w * 0.5) / span) ** 2, 0.15, 1)
            pts = [(0.0, h + 1.0), *zip(xs.tolist(), ys.tolist(), strict=True), (float(w), h + 1.0)]
            p.poly(pts, _jit(r, (40, 42, 48), 15), EGO)
            rim = list(zip(xs.tolist(), (ys + 2).tolist(), strict=True))
            p.line(rim, _jit(r, (150, 155, 165), 10), w / 500)  # light catches the bonnet's edge
        if r.random() < 0.3:  # rectification leaves a curved black rim at the image edges
            ys = np.linspace(0, h, 16)
            for edge, sgn in ((0.0, 1), (float(w), -1)):
                xs = edge + sgn * w * (0.004 + 0.012 * ((ys - h / 2) / (h / 2)) ** 2)
                rim = [(edge, 0.0), *zip(xs.tolist(), ys.tolist(), strict=True), (edge, float(h))]
                p.poly(rim, (0, 0, 0), BORDER)

    def build(self) -> None:
        self.layout_ground()
        self.shadows()
        self.backdrop()
        for side in (-1, 1):
            self.buildings(side)
            self.property_line(side)
        self.populate()
        # Far to near; this is what makes every mask hold only what is visible.
        for _, _, draw in sorted(self.objs, key=lambda o: (-o[0], o[1])):
            draw()
        self.ego_and_border()


def smooth_noise(rng: np.random.Generator, h: int, w: int, cells: tuple[int, int]) -> np.ndarray:
    """Zero-mean noise varying over about `cells` periods, at full size (float32)."""
    small = Image.fromarray(rng.standard_normal(cells, dtype=np.float32), "F")
    return np.asarray(small.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)
