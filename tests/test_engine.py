"""The exact fixed-point tile codec: lossless entropy coding and decoding independent of batch and threads."""

import numpy as np
import pytest
import torch

from sar_codec.models.architectures import ARCHITECTURE_CLASSES, build_model
from sar_codec.models.engine import TileCodec


@pytest.fixture(scope="module", params=sorted(ARCHITECTURE_CLASSES))
def codec(request):
    torch.manual_seed(0)
    model = build_model(request.param, N=16, M=24, n_qualities=3)
    model.update(force=True)
    return request.param, model, TileCodec(model)


def _tiles(n, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.2, 0.8, (n, 1, 1, 1))
    return np.clip(base + rng.normal(0, 0.1, (n, 1, 64, 64)), 0, 1)


def _one_thread(f, *args, **kwargs):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        return f(*args, **kwargs)
    finally:
        torch.set_num_threads(threads)


def test_exact_streams_are_independent_of_batching_and_threads(codec):
    _, _, c = codec
    tiles = _tiles(7)
    whole = c.decompress(c.compress(tiles, 1, exact=True), 7, 1, 64, exact=True)
    parts = []
    for lo, hi in [(0, 1), (1, 4), (4, 7)]:
        parts.append(c.decompress(c.compress(tiles[lo:hi], 1, exact=True), hi - lo, 1, 64, exact=True))
    assert np.array_equal(np.concatenate(parts), whole)
    one_thread_stream = _one_thread(c.compress, tiles, 1, exact=True)
    assert one_thread_stream == c.compress(tiles, 1, exact=True)
    assert np.array_equal(_one_thread(c.decompress, one_thread_stream, 7, 1, 64, exact=True), whole)


def test_fast_analysis_streams_decode_the_same_with_any_threads(codec):
    _, _, c = codec
    tiles = _tiles(7, seed=1)
    stream = c.compress(tiles, 1)
    decoded = c.decompress(stream, 7, 1, 64, exact=True)
    assert np.array_equal(_one_thread(c.decompress, stream, 7, 1, 64, exact=True), decoded)
    latent = c.latent_coder.decode
    assert torch.equal(latent(stream, 7, 1, 4), _one_thread(latent, stream, 7, 1, 4))


def _psnr_codes(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2) / 4096.0**2
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def test_fast_synthesis_is_a_fraction_of_a_step_from_the_exact_one(codec):
    name, _, c = codec
    tiles = _tiles(7, seed=7)
    stream = c.compress(tiles, 1)
    fast, exact = c.decompress(stream, 7, 1, 64), c.decompress(stream, 7, 1, 64, exact=True)
    assert fast.dtype == exact.dtype == np.uint16 and fast.shape == exact.shape and fast.max() <= 4096
    assert not np.array_equal(fast, exact) or name == "bmshj2018-factorized"  # the float path really ran
    assert _psnr_codes(fast, exact) > 55, name
    assert np.abs(fast.astype(int) - exact.astype(int)).max() <= 64, name
    assert np.array_equal(c.decompress(stream, 7, 1, 64), fast)  # deterministic in one process


def test_fast_analysis_codes_like_the_exact_one(codec):
    name, _, c = codec
    tiles = _tiles(6, seed=2)
    fast, exact = c.compress(tiles, 2), c.compress(tiles, 2, exact=True)
    assert abs(len(fast) - len(exact)) <= 0.05 * len(exact) + 16, name
    a, b = c.decompress(fast, 6, 2, 64) / 4096.0, c.decompress(exact, 6, 2, 64) / 4096.0
    assert np.abs(a - b).mean() < 0.01, name


def test_exact_path_tracks_the_float_model(codec):
    name, model, c = codec
    tiles = _tiles(4, seed=3)
    codes = c.decompress(c.compress(tiles, 2), 4, 2, 64)
    assert codes.dtype == np.uint16 and codes.shape == tiles.shape and codes.max() <= 4096
    with torch.no_grad():
        ref = model(torch.from_numpy(tiles).float(), torch.full((4,), 2))["x_hat"].clamp(0, 1).numpy()
    # the fixed-point decoder quantises, the float forward pass only adds noise: close, not equal
    assert np.abs(codes / 4096.0 - ref).mean() < 0.05, name


def test_bigger_tiles_code_too(codec):
    _, _, c = codec
    tiles = np.clip(np.random.default_rng(5).uniform(0, 1, (2, 1, 128, 128)), 0, 1)
    assert c.decompress(c.compress(tiles, 0), 2, 0, 128).shape == (2, 1, 128, 128)


def test_model_without_tables_is_refused():
    with pytest.raises(ValueError, match="update"):
        TileCodec(build_model("mbt2018-mean", N=16, M=24, n_qualities=2))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cpu_and_gpu_decode_identically(codec):
    _, model, c = codec
    gpu = TileCodec(model, "cuda")
    tiles = _tiles(5, seed=9)
    s_cpu, s_gpu = c.compress(tiles, 1, exact=True), gpu.compress(tiles, 1, exact=True)
    assert s_cpu == s_gpu  # the fixed-point encoder gives the same stream on both
    assert np.array_equal(gpu.decompress(s_cpu, 5, 1, 64, exact=True), c.decompress(s_gpu, 5, 1, 64, exact=True))
    fast = gpu.compress(tiles, 1)  # the floating-point analysis on the GPU: any stream decodes the same anywhere
    assert np.array_equal(gpu.decompress(fast, 5, 1, 64, exact=True), c.decompress(fast, 5, 1, 64, exact=True))
    # the GPU's default synthesis (bfloat16 where supported) stays close to the exact codes
    assert _psnr_codes(gpu.decompress(fast, 5, 1, 64), c.decompress(fast, 5, 1, 64, exact=True)) > 40


def test_factorized_codes_each_quality_with_its_own_density():
    from sar_codec.models.exact import to_fixed

    torch.manual_seed(4)
    model = build_model("bmshj2018-factorized", N=16, M=24, n_qualities=3).eval()
    with torch.no_grad():  # distinct densities: quality q's medians on a grid shifted by q/4 of a step
        for q, eb in enumerate(model.entropy_bottlenecks):
            eb.quantiles.add_(0.25 * q)
        model.g_s[-1].bias.fill_(0.5)  # outputs inside (0, 1), where they are not clipped
    model.update(force=True)
    c = TileCodec(model)
    tiles = torch.from_numpy(_tiles(3, seed=6))
    for q, eb in enumerate(model.entropy_bottlenecks):
        assert torch.equal(c.latent_coder.densities.medians[q], to_fixed(eb._get_medians().reshape(-1)))
        codes = c.decompress(c.compress(tiles.numpy(), q), 3, q, 64) / 4096.0
        with torch.no_grad():  # the float model in eval mode rounds the latent around a density's medians
            y = model.g_a(tiles.float()) * model.gains(torch.full((3,), q))[0]
            ig = model.gains(torch.full((3,), q))[1]
            errors = []
            for other in model.entropy_bottlenecks:
                x_hat = model.g_s(other.quantize(y, "dequantize", other._get_medians()) * ig).clamp(0, 1).numpy()
                errors.append(np.abs(codes - x_hat).mean())
        assert int(np.argmin(errors)) == q, errors
