"""Road users of the procedural street scenes: vehicles (cars, trucks, buses), people and riders.

`RoadUsers` is mixed into `app.core.scenes.street.SceneBuilder`, which provides the random generator, the
camera, the painter and the instance counters; the palettes and colour helpers shared with the rest of the
scene live here too; the camera and painter come from `app.core.scenes.paint`, so this module does not
import `app.core.scenes.street`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from app.core.domain.labels import LABEL_BY_NAME, RGB
from app.core.scenes.paint import Camera, Painter, Pt

_L = {name: label.id for name, label in LABEL_BY_NAME.items()}
PERSON, RIDER, CAR, TRUCK, BUS, MOTO, BIKE = (
    _L[n] for n in ("person", "rider", "car", "truck", "bus", "motorcycle", "bicycle")
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


class RoadUsers:
    """Vehicles, pedestrians and cyclists, drawn for `SceneBuilder` (which provides the attributes below)."""

    rng: np.random.Generator
    cam: Camera
    paint: Painter

    if TYPE_CHECKING:  # implemented by SceneBuilder

        def next_inst(self, label: int) -> int: ...

        def px(self, meters: float, z: float) -> float: ...

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
