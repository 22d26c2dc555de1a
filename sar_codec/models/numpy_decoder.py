"""The torch-free decoder: a shipped model's decoding side as arrays, run with numpy and CompressAI's rANS coder.

Why: decoding needs no gradient, no GPU and no torch, yet importing torch (a CUDA build) costs a process 1-2 s
and about 500 MB before it decodes a byte (docs/benchmarks.md). On the CPU every model without a context model
decodes here (:func:`sar_codec.registry.load_decoder`), with the same arguments and results as
:class:`~sar_codec.models.engine.TileCodec`'s ``decompress``.

What must be exact is exact here too. The hyper-synthesis, and with ``exact`` the synthesis, run on the
fixed-point integer weights, biases, gains and GDN parameters of :mod:`sar_codec.models.exact` (exported from the
compiled codec, not derived again), in float64: every product and partial sum is an integer below 2**53 (the
weight-sum bounds of that module), so any summation order, BLAS or thread count gives the same integers;
rescaling is a multiplication by a power of two and a floor, GDN's square root and division single correctly
rounded operations. So the symbols, the probability tables, the latent and the exact codes are those of the torch
decoder, bit for bit (tests/test_numpy_decoder.py). By default the synthesis, which only shapes pixels, runs in
float32, each transposed convolution in its polyphase form (:mod:`sar_codec.models.polyphase`) as one matrix
product over 16 tiles at a time; its codes differ from the exact ones by float rounding, and their last bit can
differ between BLAS builds and thread counts (docs/benchmarks.md).

A model's arrays live beside its weights as ``<weights stem>.decoder.npz``, written by
:mod:`sar_codec.models.decoder_export` from the weights whose SHA-256 they carry; a file that does not match the
installed weights is not used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .compressai_ans import RansDecoder

FORMAT = 1  # of the arrays below; the export writes it and a reader takes no other
KINDS = ("factorized", "scale-hyperprior", "mean-scale-hyperprior")  # latent coders decoded here
CHUNK_TILES = 16  # tiles synthesised together: a layer's activations stay in the caches (as in the engine)


def decoder_path(weights: Path) -> Path:
    """Where the arrays of a weights file live."""
    return weights.with_name(weights.stem + ".decoder.npz")


class _Conv:
    """A convolution over channels-last (B, H, W, C) arrays as one matrix product, followed by a pixel shuffle of
    stride ``s`` (a transposed convolution in polyphase form; ``s == 1`` for an ordinary one)."""

    def __init__(self, a: dict, name: str):
        self.w = a[f"{name}.w"]  # (k * k * C_in, C_out * s * s), rows in (ky, kx, c_in) order
        self.k, self.s = int(a[f"{name}.k"]), int(a[f"{name}.s"])
        self.pad = tuple(int(p) for p in a[f"{name}.pad"])  # top, bottom, left, right

    def __call__(self, x: np.ndarray) -> np.ndarray:
        b, k, s = x.shape[0], self.k, self.s
        t, bo, le, ri = self.pad
        xp = np.pad(x, ((0, 0), (t, bo), (le, ri), (0, 0))) if any(self.pad) else x
        h, w = xp.shape[1] - k + 1, xp.shape[2] - k + 1
        if k == 1:
            cols = xp.reshape(-1, xp.shape[3])
        else:
            win = sliding_window_view(xp, (k, k), axis=(1, 2))  # (B, H, W, C, k, k)
            cols = np.ascontiguousarray(win.transpose(0, 1, 2, 4, 5, 3)).reshape(b * h * w, -1)
        out = cols @ self.w
        c = out.shape[1] // (s * s)
        if s == 1:
            return out.reshape(b, h, w, c)
        return out.reshape(b, h, w, c, s, s).transpose(0, 1, 4, 2, 5, 3).reshape(b, h * s, w * s, c)


class _FloatConv(_Conv):
    def __init__(self, a: dict, name: str):
        super().__init__(a, name)
        self.w = self.w.astype(np.float32)  # stored as float16 where that is exact
        self.bias = a[f"{name}.bias"]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = super().__call__(x)
        out += self.bias
        return out


class _FloatDeconv:
    """A transposed convolution with few output channels (a pixel layer) whose kernel is ``m`` times its stride:
    one matrix product (every input position times every tap) and ``m * m`` shifted adds of whole arrays, which
    skips the zero taps that its polyphase form multiplies."""

    def __init__(self, a: dict, name: str):
        self.w = a[f"{name}.w"].astype(np.float32)  # (C_in, k * k * C_out), columns in (ky, kx, c_out) order
        self.k, self.s, self.p = int(a[f"{name}.k"]), int(a[f"{name}.s"]), int(a[f"{name}.p"])
        self.bias = a[f"{name}.bias"]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        b, h, w, _ = x.shape
        k, s, p = self.k, self.s, self.p
        m, c = k // s, self.bias.shape[0]
        y = (x.reshape(-1, x.shape[3]) @ self.w).reshape(b, h, w, m, s, m, s, c)
        full = np.zeros((b, h + m - 1, s, w + m - 1, s, c), dtype=np.float32)
        for i in range(m):
            for j in range(m):
                full[:, i : i + h, :, j : j + w] += y[:, :, :, i, :, j].transpose(0, 1, 3, 2, 4, 5)
        full = full.reshape(b, (h + m - 1) * s, (w + m - 1) * s, c)
        return full[:, p : p + h * s, p : p + w * s] + self.bias


class _ExactConv(_Conv):
    """:class:`~sar_codec.models.exact.ExactConv`: integer activations in and out (float64), floor((acc + b) /
    2**shift) per output channel, clamped to the activation range."""

    def __init__(self, a: dict, name: str):
        super().__init__(a, name)
        self.w = self.w.astype(np.float64)  # integers, stored as int32
        self.b_scaled, self.inv_scale = a[f"{name}.b_scaled"], a[f"{name}.inv_scale"]
        self.limit = float(a["act_limit"])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = super().__call__(x)
        out *= self.inv_scale
        out += self.b_scaled
        return np.clip(np.floor(out, out=out), -self.limit, self.limit, out=out)


class _GDN:
    """GDN or inverse GDN in float32: x / sqrt(beta + gamma . x**2), or x times it."""

    def __init__(self, a: dict, name: str):
        self.beta, self.gamma_t = a[f"{name}.beta"], a[f"{name}.gamma_t"]
        self.inverse = bool(a[f"{name}.inverse"])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        norm = (x * x).reshape(-1, x.shape[-1]) @ self.gamma_t
        norm += self.beta
        root = np.sqrt(norm, out=norm).reshape(x.shape)
        return x * root if self.inverse else x / root


class _ExactGDN:
    """:class:`~sar_codec.models.exact.ExactGDN`: in float64, every step exact or one correctly rounded IEEE-754
    operation (square root, division), as there."""

    def __init__(self, a: dict, name: str):
        self.gamma, self.beta = a[f"{name}.gamma"].astype(np.float64), a[f"{name}.beta"].astype(np.float64)
        self.half_shift, self.inverse = int(a[f"{name}.half_shift"]), bool(a[f"{name}.inverse"])
        self.one, self.limit = float(a["one"]), float(a["act_limit"])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        sq = np.minimum(np.floor(x * x * (1.0 / self.one)), float(2**31))
        root = sq.reshape(-1, x.shape[-1]) @ self.gamma
        root += self.beta
        root = np.sqrt(root, out=root).reshape(x.shape)
        if self.inverse:
            y = root * x
            y *= 2.0**-self.half_shift
        else:
            y = x / root
            y *= 2.0**self.half_shift
        return np.clip(np.floor(y, out=y), -self.limit, self.limit, out=y)


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0, out=x)


def _sequence(a: dict, prefix: str, exact: bool) -> list:
    layers = []
    for i, kind in enumerate(str(t) for t in a[f"{prefix}.types"]):
        name = f"{prefix}.{i}"
        if kind == "conv":
            layers.append(_ExactConv(a, name) if exact else _FloatConv(a, name))
        elif kind == "deconv":
            layers.append(_FloatDeconv(a, name))
        elif kind == "gdn":
            layers.append(_ExactGDN(a, name) if exact else _GDN(a, name))
        elif kind == "relu":
            layers.append(_relu)
        else:
            raise ValueError(f"unknown layer {kind!r} in a decoder file")
    return layers


def _run(layers: list, x: np.ndarray) -> np.ndarray:
    for layer in layers:
        x = layer(x)
    return x


class NumpyTileDecoder:
    """Decodes the streams of :class:`~sar_codec.models.engine.TileCodec` (``decompress`` with the same
    arguments and result) for one model, from its exported arrays."""

    def __init__(self, arrays: dict):
        a = arrays
        if int(a["format"]) != FORMAT:
            raise ValueError(f"decoder arrays of format {int(a['format'])}, not {FORMAT}")
        self.kind, self.M = str(a["kind"]), int(a["M"])
        if self.kind not in KINDS:
            raise ValueError(f"no torch-free decoder for the {self.kind} latent coder")
        self.weights_sha256 = str(a["weights_sha256"])
        self.one, self.limit = float(a["one"]), float(a["act_limit"])  # the fixed point of sar_codec.models.exact
        lengths = a["cdf_lengths"].astype(np.int64)
        self.cdfs = [row[:n].tolist() for row, n in zip(a["cdfs"], lengths)]
        self.lengths, self.offsets = lengths.tolist(), a["cdf_offsets"].astype(np.int64).tolist()
        self.medians, self.median_first = a["medians"], a["median_first"].astype(np.int64)  # (D, C), (D,)
        self.inv_gain = a["inv_gain"]  # (qualities, M) float32
        self.g_s = _sequence(a, "g_s", exact=False)
        self.g_s_exact = _sequence(a, "g_s_exact", exact=True)
        self.inv_gain_exact = a["inv_gain_exact"].astype(np.float64)
        self.gain_bits = int(a["gain_bits"])
        if self.kind != "factorized":
            self.bounds, self.gaussian_first = a["scale_bounds"], int(a["gaussian_first"])
            self.h_s = _sequence(a, "h_s", exact=True)

    @classmethod
    def load(cls, path: Path) -> NumpyTileDecoder:
        with np.load(path, allow_pickle=False) as f:
            return cls({k: f[k] for k in f.files})

    # --- entropy decoding ---------------------------------------------------------------------------
    def _read(self, decoder: RansDecoder, indexes: np.ndarray) -> np.ndarray:
        values = decoder.decode_stream(indexes.reshape(-1).tolist(), self.cdfs, self.lengths, self.offsets)
        return np.fromiter(values, dtype=np.int32, count=len(values))  # symbols; int32 reads 1.2x faster

    def _density(self, quality: int) -> int:
        return quality if len(self.medians) > 1 else 0

    def _factorized(self, decoder: RansDecoder, positions: int, quality: int) -> np.ndarray:
        """``positions`` runs of every channel, coded with the factorized densities; (positions, C) values."""
        d = self._density(quality)
        channels = self.medians.shape[1]
        first = int(self.median_first[d])
        indexes = np.tile(np.arange(first, first + channels, dtype=np.int64), positions)
        return self._read(decoder, indexes).reshape(positions, channels) * self.one + self.medians[d]

    def latent(self, data: bytes, count: int, quality: int, size: int) -> np.ndarray:
        """The fixed-point latent of a stream, channels-last (count, size, size, M), float64: the torch
        decoder's latent coder's, permuted."""
        decoder = RansDecoder()
        decoder.set_stream(data)
        if self.kind == "factorized":
            y = self._factorized(decoder, count * size * size, quality)
            return y.reshape(size, size, count, self.M).transpose(2, 0, 1, 3)
        zs = size // 4  # h_a downsamples 4x
        z = self._factorized(decoder, count * zs * zs, quality).reshape(count, zs, zs, -1)
        params = _run(self.h_s, np.clip(z, -self.limit, self.limit))
        if self.kind == "mean-scale-hyperprior":
            scales, means = params[..., : self.M], params[..., self.M :]
        else:
            scales, means = params, None
        indexes = np.searchsorted(self.bounds, np.ascontiguousarray(scales.transpose(1, 2, 0, 3)), side="left")
        symbols = self._read(decoder, indexes + self.gaussian_first).reshape(size, size, count, self.M)
        y = symbols.transpose(2, 0, 1, 3) * self.one
        return y if means is None else y + means

    # --- synthesis ----------------------------------------------------------------------------------
    def decompress(self, data: bytes, count: int, quality: int, tile_size: int, exact: bool = False) -> np.ndarray:
        """Decode a stream of ``count`` tiles; returns (count, C, T, T) uint16 codes in [0, one] (the fixed point's
        one, 2**12)."""
        y_hat = self.latent(data, count, quality, tile_size // 16)
        if exact:  # integers all the way: the exact layers floor their outputs
            x = np.floor(y_hat * self.inv_gain_exact[quality] * 2.0**-self.gain_bits)
            return self._codes(self.g_s_exact, np.clip(x, -self.limit, self.limit, out=x), scale=False)
        x = (y_hat * (self.inv_gain[quality] / np.float32(self.one))).astype(np.float32)
        return self._codes(self.g_s, x, scale=True)

    def _codes(self, layers: list, x: np.ndarray, scale: bool) -> np.ndarray:
        """The synthesis of ``x`` (channels-last) in chunks of tiles that keep a layer's activations in the
        caches, as codes: scaled to the fixed point and rounded down (``scale``: a float synthesis) and clamped."""
        parts = []
        for i in range(0, len(x), CHUNK_TILES):
            out = _run(layers, x[i : i + CHUNK_TILES])
            if scale:
                out *= np.float32(self.one)
                np.floor(out, out=out)
            parts.append(np.clip(out, 0.0, self.one, out=out).astype(np.uint16))
        return np.ascontiguousarray(np.concatenate(parts).transpose(0, 3, 1, 2))


__all__ = ["FORMAT", "KINDS", "NumpyTileDecoder", "decoder_path"]
