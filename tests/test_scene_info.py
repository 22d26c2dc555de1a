"""SceneInfo: a JSON round trip that loses nothing, and the info of a window of the scene."""

from __future__ import annotations

import json

import pytest
from affine import Affine

from sar_codec.scene import open_scene
from sar_codec.scene_info import SceneInfo


def test_info_json_round_trip(db_scene, grd_scene):
    for path in (db_scene, grd_scene):
        with open_scene(path) as scene:
            info = scene.info
        text = json.dumps(info.to_json(), allow_nan=False)
        again = SceneInfo.from_json(json.loads(text))
        assert again == info and again.to_json() == info.to_json()
    assert '"nodata": "nan"' in json.dumps(open_scene(db_scene).info.to_json())


def test_for_window_shifts_transform_and_gcps(db_scene, grd_scene):
    with open_scene(db_scene) as scene:
        info = scene.info
    sub = info.for_window(4, 10, 20, 30)
    assert (sub.height, sub.width, sub.count) == (20, 30, 2)
    assert Affine(*sub.georef["transform"]) * (0, 0) == Affine(*info.georef["transform"]) * (10, 4)
    with open_scene(grd_scene) as scene:
        info = scene.info
    sub = info.for_window(4, 10, 20, 30)
    assert len(sub.georef["gcps"]) == len(info.georef["gcps"]) == 20  # all kept, even outside
    for (r, c, *rest), (r0, c0, *rest0) in zip(sub.georef["gcps"], info.georef["gcps"]):
        assert (r, c, rest) == (r0 - 4, c0 - 10, rest0)
    with pytest.raises(ValueError):
        info.for_window(40, 0, 20, 10)
