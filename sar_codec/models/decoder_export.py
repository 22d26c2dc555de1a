"""Writes a model's torch-free decoder (:mod:`sar_codec.models.numpy_decoder`) from its compiled codec.

Everything is taken from what :class:`~sar_codec.models.engine.TileCodec` decodes with, not derived again: the
latent coder's CDF tables, medians and scale bounds, the fixed-point hyper-synthesis's integer weights, biases
and scales (:mod:`sar_codec.models.exact`, put in polyphase form, which is exact on integers), the float gains
and the float synthesis (:mod:`sar_codec.models.polyphase`). ``python -m sar_codec.models.decoder_export``
rewrites the file of every shipped model that has one; tests/test_numpy_decoder.py checks that the shipped files
equal what this writes from the shipped weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..files import atomic_path
from .architectures import GDN
from .engine import TileCodec
from .exact import ACT_LIMIT, GAIN_BITS, ONE, ExactConv, ExactGDN, ExactReLU, polyphase
from .numpy_decoder import FORMAT, KINDS, decoder_path
from .polyphase import MAX_OUTPUT_CHANNELS, PolyphaseConvTranspose2d


def _matrix(w: torch.Tensor) -> np.ndarray:
    """(C_out', C_in, k, k) convolution weights as the (k * k * C_in, C_out') matrix the decoder multiplies by."""
    return np.ascontiguousarray(w.permute(2, 3, 1, 0).reshape(-1, w.shape[0]).numpy())


def _exact_conv(m: ExactConv, name: str) -> dict:
    """A fixed-point layer: its integer weights (float64), in polyphase form where transposed."""
    w, (p, _), s = m.w, m.padding, 1
    if m.transposed:
        poly = polyphase(m.w, m.stride, m.padding, m.output_padding)
        if poly is None:
            raise ValueError("a transposed convolution without a polyphase form has no torch-free decoder")
        w, p, s = poly[0], poly[1], m.stride[0]
    elif m.stride != (1, 1) or m.padding[0] != m.padding[1]:
        raise ValueError("only stride-1 convolutions with square padding have a torch-free decoder")
    wm = _matrix(w.double())
    if not (np.array_equal(wm, np.round(wm)) and np.abs(wm).max() < 2**31):
        raise ValueError("fixed-point weights must be integers below 2**31")
    return {f"{name}.w": wm.astype(np.int32), f"{name}.k": w.shape[2], f"{name}.s": s,
            f"{name}.pad": np.array([p] * 4), f"{name}.b_scaled": m.b_scaled.reshape(-1).numpy(),
            f"{name}.inv_scale": m.inv_scale.reshape(-1).numpy()}


def _compact(w: np.ndarray) -> np.ndarray:
    """float32 weights as float16 where that loses nothing (the shipped weights are stored in float16)."""
    half = w.astype(np.float16)
    return half if np.array_equal(half.astype(np.float32), w) else w


def _float_deconv(m: nn.ConvTranspose2d, name: str) -> dict:
    poly = PolyphaseConvTranspose2d(m.float())
    s = poly.stride
    return {f"{name}.w": _compact(_matrix(poly.weight.detach().float())), f"{name}.k": poly.weight.shape[2],
            f"{name}.s": s, f"{name}.pad": np.array(poly.pad[2:] + poly.pad[:2]),
            f"{name}.bias": poly.bias.detach().float()[::s * s].numpy()}


def _float_pixel_deconv(m: nn.ConvTranspose2d, name: str) -> dict | None:
    """A pixel layer (at most ``MAX_OUTPUT_CHANNELS`` outputs) whose kernel is a multiple of its stride and whose
    output is stride times its input, as the decoder's direct form; None for any other."""
    (k, kw), (s, sw), (p, pw) = m.kernel_size, m.stride, m.padding
    if (m.out_channels > MAX_OUTPUT_CHANNELS or k != kw or s != sw or p != pw or k % s or m.groups != 1
            or tuple(m.output_padding) != (0, 0) or m.dilation != (1, 1) or k - 2 * p != s):
        return None
    w = m.weight.detach().float()  # (C_in, C_out, k, k)
    bias = m.bias.detach().float() if m.bias is not None else torch.zeros(m.out_channels)
    return {f"{name}.w": _compact(np.ascontiguousarray(w.permute(0, 2, 3, 1).reshape(w.shape[0], -1).numpy())),
            f"{name}.k": k, f"{name}.s": s, f"{name}.p": p, f"{name}.bias": bias.numpy()}


def _gdn(m: GDN, name: str) -> dict:
    with torch.no_grad():
        beta = m.beta_reparam(m.beta.detach().float())
        gamma = m.gamma_reparam(m.gamma.detach().float())
    return {f"{name}.beta": beta.numpy(), f"{name}.gamma_t": np.ascontiguousarray(gamma.T.numpy()),
            f"{name}.inverse": np.array(bool(m.inverse))}


def _exact_gdn(m: ExactGDN, name: str) -> dict:
    if not (torch.equal(m.gamma, m.gamma.round()) and float(m.gamma.abs().max()) < 2**31
            and float(m.beta.abs().max()) < 2**53):
        raise ValueError("fixed-point GDN parameters out of range")
    return {f"{name}.gamma": m.gamma.numpy().astype(np.int32), f"{name}.beta": m.beta.numpy(),
            f"{name}.half_shift": m.half_shift, f"{name}.inverse": np.array(bool(m.inverse))}


def _sequence(seq: nn.Sequential, prefix: str) -> dict:
    out, types = {}, []
    for i, m in enumerate(seq):
        name = f"{prefix}.{i}"
        if isinstance(m, ExactConv):
            out.update(_exact_conv(m, name))
            types.append("conv")
        elif isinstance(m, nn.ConvTranspose2d) and (direct := _float_pixel_deconv(m, name)) is not None:
            out.update(direct)
            types.append("deconv")
        elif isinstance(m, nn.ConvTranspose2d):
            out.update(_float_deconv(m, name))
            types.append("conv")
        elif isinstance(m, GDN):
            out.update(_gdn(m, name))
            types.append("gdn")
        elif isinstance(m, ExactGDN):
            out.update(_exact_gdn(m, name))
            types.append("gdn")
        elif isinstance(m, (ExactReLU, nn.ReLU)):
            types.append("relu")
        else:
            raise TypeError(f"no torch-free form for {type(m).__name__}")
    out[f"{prefix}.types"] = np.array(types)
    return out


def decoder_arrays(codec: TileCodec, weights_sha256: str) -> dict[str, np.ndarray]:
    """The arrays of ``codec``'s torch-free decoder (CPU codec; one whose latent coder is in ``KINDS``)."""
    lc = codec.latent_coder
    if lc.kind not in KINDS:
        raise ValueError(f"no torch-free decoder for the {lc.kind} latent coder")
    t = lc.tables
    cdfs = np.zeros((len(t.cdfs), max(t.lengths)), dtype=np.int32)
    for row, cdf in zip(cdfs, t.cdfs):
        row[: len(cdf)] = cdf
    densities = lc.densities if lc.kind == "factorized" else lc.z
    a = {"format": np.array(FORMAT), "kind": np.array(lc.kind), "M": np.array(codec.M),
         "weights_sha256": np.array(weights_sha256), "one": np.array(ONE), "act_limit": np.array(ACT_LIMIT),
         "cdfs": cdfs, "cdf_lengths": np.array(t.lengths, dtype=np.int32),
         "cdf_offsets": np.array(t.offsets, dtype=np.int32),
         "medians": densities.medians.cpu().numpy(), "median_first": np.array(densities.first, dtype=np.int32),
         "inv_gain": codec.inv_gain_float.cpu().numpy()}
    if lc.kind != "factorized":
        a.update({"scale_bounds": lc.y.bounds.cpu().numpy(), "gaussian_first": np.array(lc.y.first)})
        a.update(_sequence(lc.h_s.cpu(), "h_s"))
    a.update(_sequence(codec._model.g_s, "g_s"))
    a.update(_sequence(codec.g_s.cpu(), "g_s_exact"))
    a.update({"inv_gain_exact": codec.inv_gain.g.cpu().numpy(), "gain_bits": GAIN_BITS})
    return {k: np.asarray(v) for k, v in a.items()}


def write_decoder(entry) -> Path | None:
    """Write the torch-free decoder of a model table row (:class:`~sar_codec.registry.ModelEntry`) beside its
    weights, atomically; None (and nothing written) for a model it cannot decode."""
    from ..registry import load_codec

    codec = load_codec(entry, "cpu")
    if codec.latent_coder.kind not in KINDS:
        return None
    path = decoder_path(entry.path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **decoder_arrays(codec, entry.sha256))
    return path


def main() -> None:
    from ..registry import model_table

    seen = set()
    for entry in model_table(retired=True):
        if entry.weights not in seen:
            seen.add(entry.weights)
            path = write_decoder(entry)
            print(f"{entry.architecture}: {path.name if path else 'decoded with torch (context model)'}")


if __name__ == "__main__":
    main()
