"""Tile coding: fixed-point transforms plus rANS entropy coding of a batch of tiles into one bitstream.

What must be exact is what the entropy decoder depends on: the hyper-synthesis and the context model, which
give every symbol its probability table; computed in fixed point, they are the same integers on every device,
thread count and batch size, so a stream never desynchronises. The synthesis only shapes pixels: by default it
runs in floating point (float32 on the CPU, bfloat16 on recent GPUs), and ``exact=True`` runs it in fixed point
too, for the same decoded codes everywhere.
The encoder's analysis transform only decides which symbols are coded, so by default it runs in floating point
(bfloat16 where the device computes it natively, e.g. AVX-512 BF16 CPUs and Ampere or newer GPUs, else
float32; several times faster) and its latent is rounded onto the fixed-point grid; every stream still decodes
to the same bytes everywhere. ``exact=True`` runs the analysis in fixed point too, so that the same tiles also
give the same stream on every device, thread count and batch size (reproducible archives).

A batch (the tiles of one block of the container) becomes one rANS stream; the model's latent coder
(:mod:`sar_codec.models.latent_coders`) codes its latent and owns the symbol order (docs/container.md).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from .architectures import GainedModel
from .exact import ACT_LIMIT, ONE, ExactGain, ExactReLU, to_fixed
from .exact import compile_exact as _compile_exact
from .exact import exact_kernels as _exact_kernels
from .latent_coders import LatentCoder, latent_coder
from .polyphase import with_polyphase_outputs

TILE_MULTIPLE = 64  # g_a downsamples 16x and h_a 4x more
# Tile pixels transformed together on the CPU: 16 tiles of 64x64 beat all 64 tiles of a block by 1.3-1.5x with
# 2 threads, as a layer's activations stay in the caches (measured; with 1 thread 4-8 tiles are as fast).
SYNTHESIS_CHUNK_PIXELS = 16 * 64 * 64
ANALYSIS_CHUNK_PIXELS = 16 * 64 * 64


def analysis_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 where ``device`` computes it natively, else float32 (for the encoder's float analysis)."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float32
    if device.type == "cpu" and torch.backends.mkldnn.is_available():
        try:  # oneDNN's own check for AVX-512 BF16 / AMX (a private op: absent in some builds)
            native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            native = False
        return torch.bfloat16 if native else torch.float32
    return torch.float32


def synthesis_dtype(device: torch.device) -> torch.dtype:
    """What the default (not exact) synthesis computes in: float32 on the CPU, bfloat16 on GPUs that have it
    (Ampere or newer; float16 could overflow in GDN's sums of squares), else float32."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.bfloat16
    return torch.float32


def _float_copy(seq: nn.Sequential, device: torch.device) -> nn.Sequential:
    return copy.deepcopy(seq).float().eval().to(device, memory_format=torch.channels_last)


def _float_synthesis(seq: nn.Sequential, device: torch.device) -> nn.Sequential:
    """The floating-point synthesis: its pixel layers in polyphase form (:mod:`.polyphase`)."""
    out = with_polyphase_outputs(copy.deepcopy(seq).float().eval().cpu())
    return out.to(device, memory_format=torch.channels_last)

class TileCodec:
    """A trained model compiled for exact, batched tile coding on ``device``: the transforms here, the entropy
    coding in the model's latent coder (:attr:`latent_coder`)."""

    def __init__(self, model: GainedModel, device: torch.device | str = "cpu"):
        model = model.eval()
        self.device = torch.device(device)
        self.in_channels, self.M = model.in_channels, model.M
        self.n_qualities = model.n_qualities
        dev = self.device
        # the encoder's transforms and the exact synthesis are compiled on first use (_lazy): a decoder needs
        # only the hyper-synthesis, the float synthesis and the tables (30-50 MB less, docs/benchmarks.md)
        self._model, self._built, self._lock = model, {}, threading.Lock()
        self.gain_float = torch.exp(model.log_gain.detach().float()).to(dev)
        self.analysis_dtype = analysis_dtype(dev)
        self.g_s_float = _float_synthesis(model.g_s, dev)
        self.synthesis_dtype = synthesis_dtype(dev)
        self.gain = ExactGain(model.log_gain).to(dev)
        self.inv_gain = ExactGain(model.log_inv_gain).to(dev)
        self.inv_gain_float = torch.exp(model.log_inv_gain.detach().float()).to(dev)
        self.latent_coder: LatentCoder = latent_coder(model, dev)

    def _lazy(self, name: str, build) -> nn.Module:
        with self._lock:  # threads may share a codec (the registry caches one per process)
            if name not in self._built:
                self._built[name] = build()
            return self._built[name]

    @property
    def g_a(self) -> nn.Module:
        """The exact analysis (reproducible encoding)."""
        return self._lazy("g_a", lambda: _compile_exact(self._model.g_a, self.device))

    @property
    def g_a_float(self) -> nn.Module:
        return self._lazy("g_a_float", lambda: _float_copy(self._model.g_a, self.device))

    @property
    def h_a(self) -> nn.Module:
        return self._lazy("h_a", lambda: _compile_exact(self._model.h_a, self.device))

    @property
    def h_a_float(self) -> nn.Module:
        return self._lazy("h_a_float", lambda: _float_copy(self._model.h_a, self.device))

    @property
    def g_s(self) -> nn.Module:
        """The exact synthesis (``exact=True`` decoding)."""
        return self._lazy("g_s", lambda: _compile_exact(self._model.g_s, self.device))

    # --- transforms -------------------------------------------------------------------------------
    def _chunks(self, x: Tensor, pixels: int, tile_pixels: int) -> tuple[Tensor, ...]:
        """``x`` split along the batch into parts of about ``pixels`` tile pixels on the CPU (so that a layer's
        activations stay in the caches), whole on a GPU."""
        if self.device.type != "cpu":
            return (x,)
        return x.split(max(1, pixels // tile_pixels))

    def _float(self, seq: nn.Sequential, x: Tensor, tile_pixels: int) -> Tensor:
        """A float transform (the encoder's analyses) on real values, in ``analysis_dtype``."""
        x = x.to(torch.float32).contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=self.analysis_dtype,
                            enabled=self.analysis_dtype != torch.float32):
            parts = [seq(part).float() for part in self._chunks(x, ANALYSIS_CHUNK_PIXELS, tile_pixels)]
        return torch.cat(parts).contiguous()

    def _analysis(self, tiles: np.ndarray, quality: int, exact: bool) -> Tensor:
        """The scaled latent in fixed point: exact, or computed in floating point and rounded onto the grid."""
        if exact:
            with _exact_kernels():
                return self.gain(self.g_a(to_fixed(torch.from_numpy(tiles)).to(self.device)), quality)
        y = self._float(self.g_a_float, torch.from_numpy(tiles).to(self.device), tiles.shape[2] * tiles.shape[3])
        return to_fixed(y * self.gain_float[quality][None, :, None, None]).clamp_(-ACT_LIMIT, ACT_LIMIT)

    def _hyper_analysis(self, y: Tensor, exact: bool) -> Tensor:
        """The hyper-latent z in fixed point from what the hyper-analysis takes (the latent coder's
        ``hyper_input`` of the fixed-point latent), exact or in floating point."""
        if exact:
            with _exact_kernels():
                return self.h_a(y)
        # chunked by the latent's own size: its activations are 256x smaller per tile than the analysis's, so a
        # block's tiles go at once (2.6x faster than 16 tiles at a time, whose 4x4 convolutions were all overhead)
        tile_pixels = y.shape[2] * y.shape[3]
        return to_fixed(self._float(self.h_a_float, y / ONE, tile_pixels)).clamp_(-ACT_LIMIT, ACT_LIMIT)

    def _synthesis(self, y_hat: Tensor, quality: int, exact: bool) -> np.ndarray:
        """Decoded codes (integers in [0, 2**FRAC_BITS]) from the fixed-point latent, in chunks of tiles that keep
        a layer's activations in the CPU's caches. ``exact``: in fixed point (the same codes on every device and
        thread count, whatever the chunking); else in ``synthesis_dtype``, rounded down to codes as the exact
        path rounds (1.3-1.7 codes apart on average, at most 11, on real chips: docs/benchmarks.md)."""
        tile_pixels = 256 * y_hat.shape[2] * y_hat.shape[3]
        if exact:
            with _exact_kernels():
                x = self.inv_gain(y_hat, quality).float()  # integers below 2**24: exact in float32
                out = [torch.clamp(self.g_s(part), 0.0, ONE)
                       for part in self._chunks(x, SYNTHESIS_CHUNK_PIXELS, tile_pixels)]
            return torch.cat(out).to("cpu").numpy().astype(np.uint16)
        x = (y_hat * (self.inv_gain_float[quality] / ONE)[None, :, None, None]).float()
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=self.synthesis_dtype,
                            enabled=self.synthesis_dtype != torch.float32):
            out = [self.g_s_float(part).float().mul_(ONE).floor_().clamp_(0.0, ONE)
                   for part in self._chunks(x, SYNTHESIS_CHUNK_PIXELS, tile_pixels)]
        return torch.cat(out).to("cpu").numpy().astype(np.uint16)

    # --- coding -----------------------------------------------------------------------------------
    @property
    def refiner(self):
        """The frozen float model that latent refinement differentiates through (built on first use)."""
        from .refinement import Refiner

        return self._lazy("refiner", lambda: Refiner(self._model, self.device))

    @torch.no_grad()
    def compress(self, tiles: np.ndarray, quality: int, exact: bool = False, effort: int = 0,
                 lmbda: float = 0.0) -> bytes:
        """Code tiles (B, C, T, T) of [0, 1] values (float64) at a quality index (0-based) into one stream;
        ``exact``: a fixed-point analysis too (the same stream everywhere, slower). ``effort``: steps of latent
        refinement at the quality's ``lmbda`` (:mod:`sar_codec.models.refinement`; not with ``exact``)."""
        y = self._analysis(tiles, quality, exact)
        if effort:
            x = torch.from_numpy(tiles).to(self.device, torch.float32)
            y_ref, z_ref = self.refiner.refine(x, y.float() / ONE, quality, effort, lmbda)
            y = to_fixed(y_ref.double()).clamp_(-ACT_LIMIT, ACT_LIMIT)
            z = to_fixed(z_ref.double()).clamp_(-ACT_LIMIT, ACT_LIMIT)
            return self.latent_coder.encode(y, quality, lambda _: z)
        hyper_analysis: Callable[[Tensor], Tensor] = lambda v: self._hyper_analysis(v, exact)
        return self.latent_coder.encode(y, quality, hyper_analysis)

    @torch.no_grad()
    def decompress(self, data: bytes, count: int, quality: int, tile_size: int, exact: bool = False) -> np.ndarray:
        """Decode a stream of ``count`` tiles; returns (count, C, T, T) uint16 codes in [0, 2**FRAC_BITS].

        The entropy decoding and what feeds it (hyper-synthesis, context model) are exact whatever ``exact``
        says, so a stream decodes everywhere. ``exact``: the synthesis too, for the same pixels on every device
        and thread count (slower); by default it runs in floating point (:func:`synthesis_dtype`)."""
        return self._synthesis(self.latent_coder.decode(data, count, quality, tile_size // 16), quality, exact)


__all__ = ["TileCodec", "TILE_MULTIPLE", "ExactReLU"]
