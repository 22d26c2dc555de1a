"""Georeferencing maths: a bounding box in map coordinates as a pixel window, through a transform or GCPs."""

from __future__ import annotations

import pytest
from affine import Affine

from sar_codec.errors import InputError
from sar_codec.georef import window_from_bbox
from sar_codec.scene import open_scene


def test_window_from_bbox(db_scene, grd_scene):
    with open_scene(db_scene) as scene:
        info = scene.info
    t = Affine(*info.georef["transform"])
    (x0, y0), (x1, y1) = t * (10.2, 30.5), t * (20.5, 5.2)  # cols 10..21, rows 5..31
    assert window_from_bbox(info, (x0, y1 if y1 < y0 else y0, x1, max(y0, y1))) == (5, 10, 26, 11)
    assert window_from_bbox(info, (-180, -90, 180, 90)) == (0, 0, 40, 56)
    with pytest.raises(InputError, match="does not intersect"):
        window_from_bbox(info, (100, 40, 101, 41))
    with open_scene(grd_scene) as scene:
        info = scene.info
    # The footprint of GCPs 7 (row 16, col 16) and 14 (row 32, col 48) in lon/lat.
    (_, _, xa, ya, *_), (_, _, xb, yb, *_) = info.georef["gcps"][6], info.georef["gcps"][13]
    xs, ys = [xa, xb], [ya, yb]
    row, col, height, width = window_from_bbox(info, (min(xs), min(ys), max(xs), max(ys)))
    assert 0 <= row <= 16 and 0 <= col <= 16 and row + height >= 32 and col + width >= 48
    assert height < 48 and width < 64
