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

A batch (the tiles of one block of the container) becomes one rANS stream: first the hyper-latent ``z`` of
every tile (tile by tile, position by position, every channel at each position), then the latent ``y``
position by position, each position holding every tile's channels (docs/container.md). That order lets the
mbt2018 context model decode all tiles of a block in parallel, one latent position at a time, instead of
CompressAI's one-tile-at-a-time loop.
"""

from __future__ import annotations

import copy
import threading

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .architectures import GainedModel
from .compressai_parts import RansDecoder, RansEncoder
from .exact import ACT_LIMIT, ONE, ExactCausalContext, ExactConv, ExactGain, ExactReLU, compile_sequential, to_fixed
from .polyphase import with_polyphase_outputs

TILE_MULTIPLE = 64  # g_a downsamples 16x and h_a 4x more
# Tile pixels transformed together on the CPU: 16 tiles of 64x64 beat all 64 tiles of a block by 1.3-1.5x with
# 2 threads, as a layer's activations stay in the caches (measured; with 1 thread 4-8 tiles are as fast).
SYNTHESIS_CHUNK_PIXELS = 16 * 64 * 64
ANALYSIS_CHUNK_PIXELS = 16 * 64 * 64


def _exact_kernels():
    """On CUDA, keep cuDNN out: its FFT and Winograd convolutions are not exact on integers; the native
    im2col + GEMM path is."""
    return torch.backends.cudnn.flags(enabled=False, benchmark=False, deterministic=True)


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


def _compile_exact(seq: nn.Sequential, device: torch.device) -> nn.Sequential:
    """The fixed-point form of ``seq`` on ``device``, each layer's float32 kernel checked once."""
    out = compile_sequential(seq).to(device)
    for m in out.modules():
        if isinstance(m, ExactConv):
            m.check_float32()
    return out


def _float_copy(seq: nn.Sequential, device: torch.device) -> nn.Sequential:
    return copy.deepcopy(seq).float().eval().to(device, memory_format=torch.channels_last)


def _float_synthesis(seq: nn.Sequential, device: torch.device) -> nn.Sequential:
    """The floating-point synthesis: its pixel layers in polyphase form (:mod:`.polyphase`)."""
    out = with_polyphase_outputs(copy.deepcopy(seq).float().eval().cpu())
    return out.to(device, memory_format=torch.channels_last)


def _tables(entropy_model) -> tuple[list[list[int]], list[int], list[int]]:
    cdf = entropy_model._quantized_cdf
    lengths = entropy_model._cdf_length.reshape(-1).int().tolist()
    rows = [cdf[i, : lengths[i]].tolist() for i in range(cdf.shape[0])]
    return rows, lengths, entropy_model._offset.reshape(-1).int().tolist()


class TileCodec:
    """A trained model compiled for exact, batched tile coding on ``device``."""

    def __init__(self, model: GainedModel, device: torch.device | str = "cpu"):
        model = model.eval()
        self.device = torch.device(device)
        self.in_channels, self.M = model.in_channels, model.M
        self.has_hyperprior, self.has_means, self.has_context = (
            model.has_hyperprior, model.has_means, model.has_context)
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
        ebs = model.bottlenecks()  # y's densities, one per quality (factorized), or z's one
        if any(eb._quantized_cdf.numel() == 0 for eb in ebs):
            raise ValueError("the model has no CDF tables: call update() before compiling it")
        self.eb_medians = torch.stack(
            [to_fixed(eb._get_medians().detach().float().cpu().reshape(-1)) for eb in ebs]).to(dev)
        cdfs, lengths, offsets = [], [], []
        for eb in ebs:
            c, n, o = _tables(eb)
            cdfs, lengths, offsets = cdfs + c, lengths + n, offsets + o
        self.n_eb = self.eb_medians.shape[1]  # channels per density
        self.n_eb_tables = len(cdfs)
        if self.has_hyperprior:
            self.h_s = _compile_exact(model.h_s, dev)
            gc = model.gaussian_conditional
            gcdfs, glengths, goffsets = _tables(gc)
            cdfs, lengths, offsets = cdfs + gcdfs, lengths + glengths, offsets + goffsets
            # index i is used when table[i-1] < scale <= table[i] (CompressAI's build_indexes), in fixed point
            self.scale_bounds = (gc.scale_table.detach().double().cpu() * ONE)[:-1].to(dev)
        if self.has_context:
            ctx = model.context_prediction
            masked = ExactConv(ctx, weight=ctx.weight * ctx.mask, padding=0)
            self.context = ExactCausalContext(masked, ctx.mask).to(dev)
            self.entropy_parameters = _compile_exact(model.entropy_parameters, dev)
        self.cdfs, self.cdf_lengths, self.offsets = cdfs, lengths, offsets

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
        """The hyper-latent z in fixed point from the fixed-point latent (exact, or in floating point)."""
        y = y if self.has_means else torch.abs(y)
        if exact:
            with _exact_kernels():
                return self.h_a(y)
        tile_pixels = 256 * y.shape[2] * y.shape[3]  # y is 16x smaller than the tile in each direction
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

    def _scale_indexes(self, scales: Tensor) -> Tensor:
        return torch.searchsorted(self.scale_bounds, scales.contiguous(), side="left") + self.n_eb_tables

    def _params_at(self, params: Tensor, padded: Tensor, h: int, w: int) -> tuple[Tensor, Tensor]:
        """Scales and means (B, M) at latent position (h, w) from the hyper-parameters and the decoded context;
        ``padded`` is the latent decoded so far with 2 zeros around it (the 5x5 context window's reach)."""
        ctx = self.context(padded[:, :, h : h + 5, w : w + 5])[:, :, None, None]
        p = self.entropy_parameters(torch.cat((params[:, :, h : h + 1, w : w + 1], ctx), dim=1))
        scales, means = p.chunk(2, 1)
        return scales[:, :, 0, 0].double(), means[:, :, 0, 0].double()

    def _eb_of(self, quality: int) -> int:
        """Which factorized density codes at ``quality``: its own (factorized model) or the shared one."""
        return quality if len(self.eb_medians) > 1 else 0

    def _eb_medians(self, quality: int) -> Tensor:
        return self.eb_medians[self._eb_of(quality)][None, :, None, None]

    def _eb_indexes(self, batch: int, quality: int) -> Tensor:
        first = self._eb_of(quality) * self.n_eb
        return torch.arange(first, first + self.n_eb, device=self.device).repeat(batch)

    # --- coding -----------------------------------------------------------------------------------
    @torch.no_grad()
    def compress(self, tiles: np.ndarray, quality: int, exact: bool = False) -> bytes:
        """Code tiles (B, C, T, T) of [0, 1] values (float64) at a quality index (0-based) into one stream;
        ``exact``: a fixed-point analysis too (the same stream everywhere, slower)."""
        y = self._analysis(tiles, quality, exact)
        z = self._hyper_analysis(y, exact) if self.has_hyperprior else None
        with _exact_kernels():
            return self._compress(y, z, quality)

    def _compress(self, y: Tensor, z: Tensor | None, quality: int) -> bytes:
        symbols: list[Tensor] = []
        indexes: list[Tensor] = []
        medians = self._eb_medians(quality)
        if not self.has_hyperprior:
            sym = torch.floor((y - medians + ONE / 2) / ONE)
            symbols.append(sym.permute(2, 3, 0, 1).reshape(-1))
            indexes.append(self._eb_indexes(sym.shape[0] * sym.shape[2] * sym.shape[3], quality))
        else:
            z_sym = torch.floor((z - medians + ONE / 2) / ONE)
            symbols.append(z_sym.permute(0, 2, 3, 1).reshape(-1))
            indexes.append(self._eb_indexes(z_sym.shape[0] * z_sym.shape[2] * z_sym.shape[3], quality))
            z_hat = (z_sym * ONE + medians).clamp_(-ACT_LIMIT, ACT_LIMIT)
            params = self.h_s(z_hat).double()
            if self.has_context:
                padded = F.pad(torch.zeros_like(y), (2, 2, 2, 2))
                for h in range(y.shape[2]):
                    for w in range(y.shape[3]):
                        scales, means = self._params_at(params, padded, h, w)
                        sym = torch.floor((y[:, :, h, w] - means + ONE / 2) / ONE)
                        padded[:, :, h + 2, w + 2] = (sym * ONE + means).clamp_(-ACT_LIMIT, ACT_LIMIT)
                        symbols.append(sym.reshape(-1))
                        indexes.append(self._scale_indexes(scales).reshape(-1))
            else:
                scales, means = params.chunk(2, 1) if self.has_means else (params, torch.zeros_like(params))
                sym = torch.floor((y - means + ONE / 2) / ONE)
                symbols.append(sym.permute(2, 3, 0, 1).reshape(-1))
                indexes.append(self._scale_indexes(scales).permute(2, 3, 0, 1).reshape(-1))
        sym_list = torch.cat(symbols).to("cpu").to(torch.int64).tolist()
        idx_list = torch.cat(indexes).to("cpu").to(torch.int64).tolist()
        return RansEncoder().encode_with_indexes(sym_list, idx_list, self.cdfs, self.cdf_lengths, self.offsets)

    def _decode(self, decoder: RansDecoder, indexes: Tensor) -> Tensor:
        vals = decoder.decode_stream(indexes.reshape(-1).to("cpu").tolist(), self.cdfs, self.cdf_lengths, self.offsets)
        return torch.tensor(vals, dtype=torch.float64, device=self.device)

    @torch.no_grad()
    def decompress(self, data: bytes, count: int, quality: int, tile_size: int, exact: bool = False) -> np.ndarray:
        """Decode a stream of ``count`` tiles; returns (count, C, T, T) uint16 codes in [0, 2**FRAC_BITS].

        The entropy decoding and what feeds it (hyper-synthesis, context model) are exact whatever ``exact``
        says, so a stream decodes everywhere. ``exact``: the synthesis too, for the same pixels on every device
        and thread count (slower); by default it runs in floating point (:func:`synthesis_dtype`)."""
        with _exact_kernels():
            y_hat = self._decode_latent(data, count, quality, tile_size)
        return self._synthesis(y_hat, quality, exact)

    def _decode_latent(self, data: bytes, count: int, quality: int, tile_size: int) -> Tensor:
        """The fixed-point latent (count, M, T/16, T/16) of a stream, exactly."""
        lat = tile_size // 16
        decoder = RansDecoder()
        decoder.set_stream(data)
        M = self.M
        medians = self._eb_medians(quality)
        if not self.has_hyperprior:
            sym = self._decode(decoder, self._eb_indexes(count * lat * lat, quality))
            return sym.reshape(lat, lat, count, M).permute(2, 3, 0, 1) * ONE + medians
        zl = lat // 4
        z_sym = self._decode(decoder, self._eb_indexes(count * zl * zl, quality)).reshape(count, zl, zl, self.n_eb)
        z_hat = (z_sym.permute(0, 3, 1, 2) * ONE + medians).clamp_(-ACT_LIMIT, ACT_LIMIT)
        params = self.h_s(z_hat).double()
        if self.has_context:
            padded = torch.zeros((count, M, lat + 4, lat + 4), dtype=torch.float64, device=self.device)
            for h in range(lat):
                for w in range(lat):
                    scales, means = self._params_at(params, padded, h, w)
                    sym = self._decode(decoder, self._scale_indexes(scales)).reshape(count, M)
                    padded[:, :, h + 2, w + 2] = (sym * ONE + means).clamp_(-ACT_LIMIT, ACT_LIMIT)
            return padded[:, :, 2:-2, 2:-2]
        scales, means = params.chunk(2, 1) if self.has_means else (params, torch.zeros_like(params))
        idx = self._scale_indexes(scales).permute(2, 3, 0, 1)
        sym = self._decode(decoder, idx).reshape(lat, lat, count, M).permute(2, 3, 0, 1)
        return sym * ONE + means


__all__ = ["TileCodec", "TILE_MULTIPLE", "ExactReLU"]
