"""Encoder-side latent refinement (``effort``): fewer bits for the same quality, decodable by any decoder."""

from __future__ import annotations

import numpy as np
import pytest

from sar_codec import codec
from sar_codec.errors import InputError
from sar_codec.registry import DEFAULT_ARCHITECTURE, lookup


def _speckled_tiles(n: int = 16, seed: int = 3) -> np.ndarray:
    """SAR-like tiles in the codec's [0, 1] domain: smooth backscatter fields times one-look speckle, in dB."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    tiles = []
    for _ in range(n):
        a, b, c = rng.uniform(-1, 1, 3)
        field = 0.05 * np.exp(1.5 * (a * xx + b * yy + c * np.sin(6 * xx * yy)))
        db = 10 * np.log10(field * rng.gamma(1.0, 1.0, (64, 64)))
        tiles.append(np.clip((db + 35) / 40, 0, 1))
    return np.stack(tiles)[:, None]


def _cost(stream: bytes, tiles: np.ndarray, decoded: np.ndarray, lmbda: float) -> float:
    """The training loss on real bytes: bits per pixel + lambda 255**2 MSE of the exact decode."""
    return len(stream) * 8 / tiles.size + lmbda * 255**2 * np.mean((decoded / 4096.0 - tiles) ** 2)


def test_refined_latents_decode_with_the_plain_decoder_and_cost_less():
    from sar_codec.registry import load_codec

    entry = lookup(DEFAULT_ARCHITECTURE, 6)
    c, tiles = load_codec(entry), _speckled_tiles()
    costs = []
    for effort in (0, 40):
        stream = c.compress(tiles, 5, effort=effort, lmbda=entry.lmbda)
        decoded = c.decompress(stream, len(tiles), 5, 64, exact=True)  # what every decoder makes of it
        costs.append(_cost(stream, tiles, decoded, entry.lmbda))
    assert costs[1] < costs[0]
    # the same effort gives the same stream on this machine (the Gumbel noise is seeded)
    assert c.compress(tiles[:4], 5, effort=5, lmbda=entry.lmbda) == c.compress(tiles[:4], 5, effort=5,
                                                                              lmbda=entry.lmbda)


def test_refinement_lowers_the_models_own_estimate():
    import torch

    from sar_codec.models.refinement import Refiner
    from sar_codec.registry import load_model

    entry = lookup(DEFAULT_ARCHITECTURE, 4)
    model = load_model(entry)
    refiner = Refiner(model, torch.device("cpu"))
    x = torch.from_numpy(_speckled_tiles(8)).float()
    q = torch.full((len(x),), 3, dtype=torch.long)
    with torch.no_grad():
        y0 = model.g_a(x) * model.gains(q)[0]
        z0 = model.h_a(model.hyper_input(y0))
    y, z = refiner.refine(x, y0, 3, 30, entry.lmbda)
    assert refiner.cost(x, y, z, 3, entry.lmbda) < refiner.cost(x, y0, z0, 3, entry.lmbda)


@pytest.mark.parametrize(("options", "words"), [
    ({"effort": -1}, "whole number"), ({"effort": 2.5}, "whole number"), ({"effort": 10**6}, "from 0 to"),
    ({"effort": 10, "reproducible": True}, "reproducible"),
    ({"effort": 10, "architecture": "mbt2018"}, "cannot be refined"),
    ({"effort": 10, "architecture": "bmshj2018-factorized"}, "cannot be refined"),
])
def test_effort_options_are_refused_before_anything_is_read(tmp_path, options, words):
    missing = tmp_path / "not-there.tif"  # the option, not the missing input, must be what is reported
    with pytest.raises(InputError, match=words):
        codec.compress_scene(missing, tmp_path / "out.sarc", device="cpu", **options)
    assert not (tmp_path / "out.sarc").exists()


def test_compress_scene_with_effort_round_trips(tmp_path, make_raster):
    rng = np.random.default_rng(9)
    db = (10 * np.log10(rng.gamma(1.0, 0.05, (2, 128, 128)))).astype("float32")
    src = make_raster(tmp_path / "s.tif", db, crs="EPSG:32631", nodata=float("nan"))
    plain = codec.compress_scene(src, tmp_path / "plain.sarc", device="cpu", overviews=False)
    refined = codec.compress_scene(src, tmp_path / "refined.sarc", device="cpu", overviews=False, effort=10)
    assert refined.bytes > 0 and refined.output.exists()
    back = codec.decompress_scene(refined.output, tmp_path / "back.tif", device="cpu")
    import rasterio

    with rasterio.open(back) as ds:
        out = ds.read()
    assert out.shape == db.shape and np.isfinite(out).all()
    assert np.sqrt(np.mean((out - db) ** 2)) < 8.0  # dB: one-look speckle coded at about 1 bpp
    assert plain.bytes > 0
