"""The camera and the painter of the procedural street scenes, shared by the scene and its road users.

`Camera` projects the small 3-D street world to pixels; `Painter` draws each shape into the image, the
labelIds, the instanceIds and the shade map at once. Both `app.core.scenes.street` (the street) and
`app.core.scenes.road_users` (vehicles and people) draw through them, so they live below both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from app.core.domain.labels import LABEL_BY_NAME, RGB

SKY = LABEL_BY_NAME["sky"].id

Pt = tuple[float, float]


@dataclass(frozen=True)
class Camera:
    """A pinhole camera at height `h` looking down +z: `p` projects a world point to pixels."""

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
