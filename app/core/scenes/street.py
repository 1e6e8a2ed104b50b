"""Drawing of the procedural street scenes: the camera, the painter and the street's contents.

A scene is a small 3-D world (a straight street seen by a pinhole camera: road, sidewalks, buildings, trees,
poles, signs, vehicles, people) laid out by `SceneBuilder` and painted far to near by its `Painter`, so
every label and instance mask holds visible pixels only. `app.core.scenes.generator` textures the result and
writes it in the Cityscapes layout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
from PIL import Image

from app.core.domain.labels import LABEL_BY_NAME, RGB
from app.core.scenes.paint import Camera, Painter
from app.core.scenes.road_users import (
    _CLOTHES,
    BUS,
    CAR,
    PERSON,
    TRUCK,
    RoadUsers,
    _jit,
    _mul,
)
from app.core.scenes.road_users import BIKE as BIKE  # re-exported: every label id stays importable here
from app.core.scenes.road_users import MOTO as MOTO
from app.core.scenes.road_users import RIDER as RIDER

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


@dataclass(frozen=True)
class _Street:
    lane: float
    lanes: int
    left: float  # road edge X (negative: left of the camera)
    right: float
    walk_l: float  # outer sidewalk edge X
    walk_r: float
    far: float


class SceneBuilder(RoadUsers):
    """Lays out one street and paints it far to near."""

    def __init__(self, rng: np.random.Generator, height: int, width: int) -> None:
        self.rng, self.h, self.w = rng, height, width
        r = rng
        self.cam = Camera(
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
