"""The scene header's schema: what compress writes passes, and each kind of edit is one ContainerError sentence."""

from __future__ import annotations

import copy

import pytest

from sar_codec.errors import ContainerError
from sar_codec.overviews import plan_levels
from sar_codec.scene import open_scene
from sar_codec.scene_header import FORMAT_NAME, SceneHeader, parse_scene_header


@pytest.fixture
def header(grd_scene):
    with open_scene(grd_scene) as scene:
        info = scene.info
    return {"format": FORMAT_NAME, "scene": info.to_json(), "tile_size": 64, "block_size": 128,
            "mappings": [{"knots_db": [-30.0, 0.0, 40.0], "knots_norm": [0.0, 0.8, 1.0]}] * info.count,
            "model": {"architecture": "bmshj2018-hyperprior", "quality": 6, "weights": "w.pt", "sha256": "ab" * 32,
                      "arithmetic": 2}}


def test_a_valid_header_gives_the_scene_grid_and_model(header, grd_scene):
    parsed = parse_scene_header(header, "x.sarc")
    with open_scene(grd_scene) as scene:
        assert parsed.info == scene.info
    assert (parsed.grid.rows, parsed.grid.cols, parsed.grid.tile_size) == (1, 1, 64)
    assert len(parsed.mappings) == 2 and parsed.model["quality"] == 6


@pytest.mark.parametrize("nodata", [None, 0, -99.5, "nan", "inf", "-inf"])
def test_every_nodata_the_writer_stores_is_valid(header, nodata):
    header["scene"]["nodata"] = nodata
    parsed = parse_scene_header(header, "x.sarc").info.nodata
    if nodata is None:
        assert parsed is None
    else:  # the value written, NaN and the infinities included ("nan".hex() compares where NaN != NaN)
        assert isinstance(parsed, float) and parsed.hex() == float(nodata).hex()


@pytest.mark.parametrize("edit", [
    lambda h: h["scene"]["georef"].pop("gcps"),
    lambda h: h["scene"]["georef"].update(gcp_crs="EPSG:nonsense"),
    lambda h: h["scene"]["georef"]["gcps"][0].__setitem__(2, "east"),
    lambda h: h["scene"].update(width=0),
    lambda h: h["scene"].update(band_names=["VV", "VV"]),
    lambda h: h["scene"]["band_tags"].append({}),
    lambda h: h["mappings"][0].update(knots_norm=[0.0, 1.0]),
    lambda h: h["model"].update(arithmetic="2"),
    lambda h: h.update(block_size=96),
    lambda h: h.update(max_error_db=0),
    lambda h: h.update(max_error_db="0.5"),
    lambda h: h.update(max_error_db=None),
    lambda h: h.update(overviews={"level": 1}),
    lambda h: h.update(overviews=[{"level": 1, "width": 1, "height": 1, "first_block": 1}]),
    lambda h: h.update(overviews=[{"level": 1, "width": 1, "height": 1, "first_block": 1, "block_count": 1.5}]),
    lambda h: h.update(overviews=[{"level": 2, "width": 1, "height": 1, "first_block": 1, "block_count": 1}]),
])
def test_an_invalid_header_is_one_sentence(header, edit):
    bad = copy.deepcopy(header)
    edit(bad)
    with pytest.raises(ContainerError, match=r"^x\.sarc has an invalid header \(.+\); it was edited or damaged\.$"):
        parse_scene_header(bad, "x.sarc")


def _paths(value, prefix=()):
    yield prefix
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from _paths(child, (*prefix, key))


def test_random_edits_are_accepted_or_one_container_error(header):
    import random

    values = [None, 0, -1, 1.5, "x", "nan", True, [], {}, [1], {"a": 1}, [[1, 2, 3]], 10**12, float("inf")]
    paths = [p for p in _paths(header) if p]
    rng = random.Random(0)
    refused = 0
    for _ in range(1000):
        edited = copy.deepcopy(header)
        for _ in range(rng.randint(1, 3)):
            *parents, last = rng.choice(paths)
            target = edited
            try:
                for key in parents:
                    target = target[key]
                if isinstance(target, dict) and rng.random() < 0.3:
                    target.pop(last, None)
                else:
                    target[last] = rng.choice(values)
            except (KeyError, IndexError, TypeError):
                pass  # an earlier edit removed or replaced the parent
        try:
            parse_scene_header(edited, "x.sarc")
        except ContainerError:
            refused += 1
    assert refused > 800  # most random edits break the schema, and none raises anything else


def test_a_header_built_by_scene_header_parses_back_to_the_same_facts(header):
    header["scene"].update(width=2000, height=1500)
    header["block_size"] = 512
    parsed = parse_scene_header(header, "x.sarc")
    levels = tuple(plan_levels(2000, 1500, 512, 64, parsed.grid.count))
    assert len(levels) == 2
    built = SceneHeader(parsed.info, parsed.mappings, parsed.grid, parsed.model, 0.25, levels).to_json()
    assert built["format"] == FORMAT_NAME and built["software"].startswith("sar-codec ")
    assert parse_scene_header(built, "x.sarc") == SceneHeader(parsed.info, parsed.mappings, parsed.grid,
                                                                parsed.model, 0.25, levels)
    plain = SceneHeader(parsed.info, parsed.mappings, parsed.grid, parsed.model).to_json()
    assert "max_error_db" not in plain and "overviews" not in plain
    assert parse_scene_header(plain, "x.sarc").max_error_db is None
