"""The torch-free decoder: the shipped files are what the export writes from the shipped weights, it decodes
every stream to the torch decoder's latent and exact codes bit for bit and to its float codes within float
rounding, and a decode through the library imports no torch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from sar_codec import registry
from sar_codec.errors import WeightsError
from sar_codec.models.numpy_decoder import KINDS, NumpyTileDecoder, decoder_path

ARCHITECTURES = [a for a in registry.ARCHITECTURES if a != "mbt2018"]  # mbt2018's context model decodes in torch


def _tiles(count: int, size: int, seed: int = 3) -> np.ndarray:
    """Smooth tiles with texture and an edge, in [0, 1]."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.2, 0.8, (count, 1, 1, 1)) + rng.normal(0, 0.08, (count, 1, size, size))
    base[:, :, :, size // 2 :] += 0.15
    return np.clip(base, 0, 1)


def test_every_shipped_model_but_the_context_model_has_a_decoder_file():
    shipped = {e.architecture: e for e in registry.model_table()}
    for arch, entry in shipped.items():
        assert decoder_path(entry.path).exists() == (arch != "mbt2018"), arch


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_the_shipped_decoder_file_is_what_the_export_writes_from_the_weights(architecture):
    from sar_codec.models.decoder_export import decoder_arrays

    entry = registry.lookup(architecture, 1)
    fresh = decoder_arrays(registry.load_codec(entry), entry.sha256)
    with np.load(decoder_path(entry.path)) as shipped:
        assert sorted(shipped.files) == sorted(fresh)
        for key, value in fresh.items():
            assert shipped[key].dtype == value.dtype and np.array_equal(shipped[key], value), key
    # re-run `python -m sar_codec.models.decoder_export` after training or changing the fixed point


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_streams_decode_to_the_torch_decoders_latent_exactly(architecture):
    entry = registry.lookup(architecture, registry.DEFAULT_QUALITY)
    codec = registry.load_codec(entry)
    decoder = registry.load_decoder(entry, "cpu")
    assert isinstance(decoder, NumpyTileDecoder) and decoder.kind in KINDS
    tiles = _tiles(20, 64)
    for quality in (0, codec.n_qualities // 2, codec.n_qualities - 1):
        for exact in (False, True):  # a float analysis and the reproducible one give different streams
            stream = codec.compress(tiles, quality, exact=exact)
            ref = codec.latent_coder.decode(stream, len(tiles), quality, 4).permute(0, 2, 3, 1).numpy()
            assert np.array_equal(decoder.latent(stream, len(tiles), quality, 4), ref)
            codes = decoder.decompress(stream, len(tiles), quality, 64)
            expected = codec.decompress(stream, len(tiles), quality, 64)
            assert codes.shape == expected.shape and codes.dtype == expected.dtype == np.uint16
            diff = np.abs(codes.astype(np.int64) - expected)
            assert diff.max() <= 2 and diff.mean() < 0.01  # float rounding only (measured: at most 1, mean < 0.001)


def test_larger_tiles_and_the_default_model_decode_alike():
    entry = registry.lookup(registry.DEFAULT_ARCHITECTURE, registry.DEFAULT_QUALITY)
    codec, decoder = registry.load_codec(entry), registry.load_decoder(entry, "cpu")
    tiles = _tiles(3, 128, seed=5)
    stream = codec.compress(tiles, 4)
    ref = codec.latent_coder.decode(stream, 3, 4, 8).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(decoder.latent(stream, 3, 4, 8), ref)
    codes = decoder.decompress(stream, 3, 4, 128).astype(np.int64)
    assert np.abs(codes - codec.decompress(stream, 3, 4, 128)).max() <= 2


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_exact_decoding_gives_the_torch_decoders_codes_bit_for_bit(architecture):
    import hashlib

    from test_latent_coders import GOLDEN

    entry = registry.lookup(architecture, 6)
    codec, decoder = registry.load_codec(entry), registry.load_decoder(entry, "cpu")
    rng = np.random.default_rng(16)  # the pinned golden streams' tiles (tests/test_latent_coders.py)
    tiles = np.clip(rng.uniform(0.2, 0.8, (2, 1, 1, 1)) + rng.normal(0, 0.1, (2, 1, 128, 128)), 0, 1)
    stream = codec.compress(tiles, 5, exact=True)
    codes = decoder.decompress(stream, 2, 5, 128, exact=True)
    assert (hashlib.sha256(stream).hexdigest(), hashlib.sha256(codes.tobytes()).hexdigest()) == GOLDEN[architecture]
    other = _tiles(20, 64)
    for quality in (0, codec.n_qualities - 1):
        stream = codec.compress(other, quality)
        assert np.array_equal(decoder.decompress(stream, 20, quality, 64, exact=True),
                              codec.decompress(stream, 20, quality, 64, exact=True))


def test_the_context_model_and_other_devices_keep_the_compiled_codec():
    from sar_codec.models.engine import TileCodec

    assert isinstance(registry.load_decoder(registry.lookup("mbt2018", 1), "cpu"), TileCodec)


def _table_beside(tmp_path, monkeypatch, decoder_bytes: bytes | None):
    """A model table in ``tmp_path`` with the default model's weights and the given decoder file."""
    entry = registry.lookup(registry.DEFAULT_ARCHITECTURE, 1)
    table = json.loads(registry.TABLE_FILE.read_text())
    (tmp_path / "models.json").write_text(json.dumps(table))
    (tmp_path / entry.weights).write_bytes(entry.path.read_bytes())
    if decoder_bytes is not None:
        decoder_path(tmp_path / entry.weights).write_bytes(decoder_bytes)
    monkeypatch.setattr(registry, "TABLE_FILE", tmp_path / "models.json")
    registry._cached_numpy_decoder.cache_clear()
    return registry.lookup(registry.DEFAULT_ARCHITECTURE, 1)


def test_a_decoder_file_of_other_weights_is_not_used(tmp_path, monkeypatch):
    from sar_codec.models.engine import TileCodec

    entry = registry.lookup(registry.DEFAULT_ARCHITECTURE, 1)
    with np.load(decoder_path(entry.path)) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["weights_sha256"] = np.array("0" * 64)
    path = tmp_path / "other.npz"
    np.savez(path, **arrays)
    try:
        moved = _table_beside(tmp_path, monkeypatch, path.read_bytes())
        assert isinstance(registry.load_decoder(moved, "cpu"), TileCodec)
    finally:
        registry._cached_numpy_decoder.cache_clear()


def test_a_damaged_decoder_file_is_one_clear_error(tmp_path, monkeypatch):
    entry = registry.lookup(registry.DEFAULT_ARCHITECTURE, 1)
    data = bytearray(decoder_path(entry.path).read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # inside a compressed member: its CRC fails
    try:
        moved = _table_beside(tmp_path, monkeypatch, bytes(data))
        with pytest.raises(WeightsError, match="cannot be read .*reinstall sar-codec"):
            registry.load_decoder(moved, "cpu")
    finally:
        registry._cached_numpy_decoder.cache_clear()


DECODE_WITHOUT_TORCH = """
import sys
import numpy as np
from sar_codec.codec import decompress_scene
from sar_codec.reader import open as open_sarc
decompress_scene(sys.argv[1], sys.argv[2])
decompress_scene(sys.argv[1], sys.argv[2] + ".exact.tif", exact=True, device="cpu")
with open_sarc(sys.argv[1]) as r:
    r.read(1)
print("torch" in sys.modules, "compressai.entropy_models" in sys.modules)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="auto means the CPU without torch on Linux")
def test_decoding_a_container_on_the_cpu_imports_no_torch(speckled_db_scene, tmp_path, monkeypatch):
    import rasterio

    from sar_codec.codec import compress_scene, decompress_scene
    from sar_codec.device import no_gpu_here

    if not no_gpu_here():
        pytest.skip("this machine has an NVIDIA driver: auto may mean the GPU")
    sarc = tmp_path / "scene.sarc"
    compress_scene(speckled_db_scene, sarc)
    out = tmp_path / "out.tif"
    run = subprocess.run([sys.executable, "-c", DECODE_WITHOUT_TORCH, str(sarc), str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["False", "False"]
    registry._cached_numpy_decoder.cache_clear()
    monkeypatch.setattr(registry, "_cached_numpy_decoder", lambda *args: None)  # the compiled codec, in torch
    with_torch = decompress_scene(sarc, tmp_path / "torch.tif")
    with rasterio.open(out) as a, rasterio.open(with_torch) as b:
        x, y = a.read(), b.read()
    valid = np.isfinite(y)
    assert np.array_equal(np.isfinite(x), valid)
    assert np.abs(x[valid] - y[valid]).max() < 0.05  # dB: float rounding of the synthesis only
