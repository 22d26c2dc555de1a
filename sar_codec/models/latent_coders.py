"""Latent coders: the fixed-point latent of a batch of tiles to one rANS stream, and back.

After CompressAI's ``latent_codecs``: each coder owns its encode, its decode and so its symbol order, and each
architecture names its coder (``GainedModel.latent_coder_kind``; :data:`LATENT_CODERS`):

* ``factorized`` (bmshj2018-factorized): ``y`` with one factorized density per quality;
* ``scale-hyperprior`` (bmshj2018-hyperprior, bmshj2018-hyperprior-light): the hyper-latent ``z`` with a
  factorized density, then ``y`` with zero-mean Gaussians whose scales the hyper-synthesis gives;
* ``mean-scale-hyperprior`` (mbt2018-mean, mbt2018-mean-light): the same, the hyper-synthesis giving means too;
* ``context`` (mbt2018): the same, each latent position's Gaussians also conditioned on the positions decoded so
  far by a masked 5x5 context model.

The symbol order (docs/container.md, "A block"): ``z`` of every tile first (tile by tile; in each tile, position
by position, every channel at each position), then ``y`` position by position, each position holding every tile's
channels. That order lets the context model decode all the tiles of a block in parallel, one latent position at
a time, instead of CompressAI's one-tile-at-a-time loop. What the entropy decoder depends on (the tables, the
hyper-synthesis, the context model) is fixed point (:mod:`sar_codec.models.exact`), so a stream decodes to the
same latent on every device, thread count and batch size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .compressai_parts import EntropyBottleneck, GaussianConditional, RansDecoder, RansEncoder
from .exact import ACT_LIMIT, ONE, ExactCausalContext, ExactConv, compile_exact, exact_kernels, to_fixed


def _round(x: Tensor, centre: Tensor) -> Tensor:
    """The symbols of fixed-point values: ``x - centre`` rounded (half up) to whole steps."""
    return torch.floor((x - centre + ONE / 2) / ONE)


class _Tables:
    """The rANS coder's CDF tables: those of every entropy model of a coder, concatenated; each symbol's index
    picks its table."""

    def __init__(self):
        self.cdfs: list[list[int]] = []
        self.lengths: list[int] = []
        self.offsets: list[int] = []

    def add(self, entropy_model: EntropyBottleneck | GaussianConditional) -> int:
        """Append an entropy model's tables (one per channel, or per scale); returns the index of its first."""
        first = len(self.cdfs)
        cdf = entropy_model._quantized_cdf
        lengths = entropy_model._cdf_length.reshape(-1).int().tolist()
        self.cdfs += [cdf[i, : lengths[i]].tolist() for i in range(cdf.shape[0])]
        self.lengths += lengths
        self.offsets += entropy_model._offset.reshape(-1).int().tolist()
        return first


class _Writer:
    """Symbols and their table indexes in stream order, coded as one rANS stream at the end."""

    def __init__(self, tables: _Tables):
        self.tables, self.symbols, self.indexes = tables, [], []

    def write(self, symbols: Tensor, indexes: Tensor) -> None:
        """Append symbols and their indexes, both in their tensors' row-major order."""
        self.symbols.append(symbols.reshape(-1))
        self.indexes.append(indexes.reshape(-1))

    def finish(self) -> bytes:
        t = self.tables
        symbols = torch.cat(self.symbols).to("cpu").to(torch.int64).tolist()
        indexes = torch.cat(self.indexes).to("cpu").to(torch.int64).tolist()
        return RansEncoder().encode_with_indexes(symbols, indexes, t.cdfs, t.lengths, t.offsets)


class _Reader:
    """The symbols of one rANS stream, read in stream order."""

    def __init__(self, data: bytes, tables: _Tables, device: torch.device):
        self.tables, self.device = tables, device
        self.decoder = RansDecoder()
        self.decoder.set_stream(data)

    def read(self, indexes: Tensor) -> Tensor:
        """The next symbols, one per index (in the tensor's row-major order), as a flat float64 tensor."""
        t = self.tables
        values = self.decoder.decode_stream(indexes.reshape(-1).to("cpu").tolist(), t.cdfs, t.lengths, t.offsets)
        # numpy reads a list of ints about twice as fast as torch.tensor does (8 against 16 ms for a block's latent)
        return torch.from_numpy(np.fromiter(values, dtype=np.float64, count=len(values))).to(self.device)


class _Densities:
    """Factorized densities (CompressAI's EntropyBottleneck): one per quality (``y`` of the factorized model) or
    one for all qualities (``z`` of the hyperpriors). A symbol is ``x - median`` rounded, coded with its channel's
    table."""

    def __init__(self, bottlenecks: list[EntropyBottleneck], tables: _Tables, device: torch.device):
        self.medians = torch.stack(
            [to_fixed(eb._get_medians().detach().float().cpu().reshape(-1)) for eb in bottlenecks]).to(device)
        self.first = [tables.add(eb) for eb in bottlenecks]
        self.channels, self.device = self.medians.shape[1], device

    def _of(self, quality: int) -> int:
        """Which density codes at ``quality``: its own (one per quality) or the shared one."""
        return quality if len(self.medians) > 1 else 0

    def median(self, quality: int) -> Tensor:
        return self.medians[self._of(quality)][None, :, None, None]

    def symbols(self, x: Tensor, quality: int) -> Tensor:
        return _round(x, self.median(quality))

    def values(self, symbols: Tensor, quality: int) -> Tensor:
        return symbols * ONE + self.median(quality)

    def indexes(self, positions: int, quality: int) -> Tensor:
        """Table indexes for ``positions`` runs of every channel."""
        first = self.first[self._of(quality)]
        return torch.arange(first, first + self.channels, device=self.device).repeat(positions)


class _Gaussians:
    """CompressAI's GaussianConditional: one table per scale of its scale table; a symbol is coded with the table of
    the smallest tabled scale at least its own (CompressAI's ``build_indexes``), found in fixed point."""

    def __init__(self, conditional: GaussianConditional, tables: _Tables, device: torch.device):
        self.first = tables.add(conditional)
        self.bounds = (conditional.scale_table.detach().double().cpu() * ONE)[:-1].to(device)

    def indexes(self, scales: Tensor) -> Tensor:
        return torch.searchsorted(self.bounds, scales.contiguous(), side="left") + self.first


class LatentCoder:
    """Codes the fixed-point latent ``y`` (B, M, H, W) of a batch of tiles as one rANS stream, and decodes it,
    exactly; built from a trained model (float) whose CDF tables ``update()`` computed."""

    kind: ClassVar[str]

    def __init__(self, model: nn.Module, device: torch.device | str = "cpu"):
        if any(eb._quantized_cdf.numel() == 0 for eb in model.bottlenecks()):
            raise ValueError("the model has no CDF tables: call update() before compiling it")
        self.device, self.M = torch.device(device), model.M
        self.tables = _Tables()

    def encode(self, y: Tensor, quality: int, hyper_analysis: Callable[[Tensor], Tensor]) -> bytes:
        """The stream of ``y`` at a quality index (0-based). ``hyper_analysis`` maps what the hyper-analysis
        takes (:meth:`HyperpriorCoder.hyper_input`) to the fixed-point ``z``; coders with a hyperprior call it."""
        raise NotImplementedError

    def decode(self, data: bytes, count: int, quality: int, size: int) -> Tensor:
        """The fixed-point latent (count, M, size, size), float64, of a stream."""
        raise NotImplementedError


class FactorizedCoder(LatentCoder):
    """bmshj2018-factorized's: ``y`` with its quality's factorized densities, position by position, each position
    holding every tile's channels."""

    kind = "factorized"

    def __init__(self, model: nn.Module, device: torch.device | str = "cpu"):
        super().__init__(model, device)
        self.densities = _Densities(model.bottlenecks(), self.tables, self.device)

    def encode(self, y: Tensor, quality: int, hyper_analysis: Callable[[Tensor], Tensor]) -> bytes:
        stream = _Writer(self.tables)
        symbols = self.densities.symbols(y, quality).permute(2, 3, 0, 1)  # (H, W, B, M)
        stream.write(symbols, self.densities.indexes(symbols.shape[0] * symbols.shape[1] * symbols.shape[2], quality))
        return stream.finish()

    def decode(self, data: bytes, count: int, quality: int, size: int) -> Tensor:
        symbols = _Reader(data, self.tables, self.device).read(self.densities.indexes(count * size * size, quality))
        return self.densities.values(symbols.reshape(size, size, count, self.M).permute(2, 3, 0, 1), quality)


class HyperpriorCoder(LatentCoder):
    """bmshj2018-hyperprior's: the hyper-latent ``z`` with a factorized density (tile by tile, position by position,
    every channel at each), then ``y`` with zero-mean Gaussians whose scales the hyper-synthesis gives (position by
    position, each position holding every tile's channels)."""

    kind = "scale-hyperprior"

    def __init__(self, model: nn.Module, device: torch.device | str = "cpu"):
        super().__init__(model, device)
        self.z = _Densities(model.bottlenecks(), self.tables, self.device)
        self.y = _Gaussians(model.gaussian_conditional, self.tables, self.device)
        self.h_s = compile_exact(model.h_s, self.device)

    def hyper_input(self, y: Tensor) -> Tensor:
        """What the hyper-analysis transforms: the latent's magnitude (the scales do not depend on its sign)."""
        return torch.abs(y)

    def scales_and_means(self, params: Tensor) -> tuple[Tensor, Tensor]:
        """The Gaussians' scales and means from the hyper-synthesis's output."""
        return params, torch.zeros_like(params)

    def encode(self, y: Tensor, quality: int, hyper_analysis: Callable[[Tensor], Tensor]) -> bytes:
        z = hyper_analysis(self.hyper_input(y))
        stream = _Writer(self.tables)
        with exact_kernels():
            symbols = self.z.symbols(z, quality)
            stream.write(symbols.permute(0, 2, 3, 1), self.z.indexes(z.shape[0] * z.shape[2] * z.shape[3], quality))
            self._write_y(stream, y, self._hyper_synthesis(self.z.values(symbols, quality)))
        return stream.finish()

    def decode(self, data: bytes, count: int, quality: int, size: int) -> Tensor:
        stream, zs = _Reader(data, self.tables, self.device), size // 4  # h_a downsamples 4x
        with exact_kernels():
            symbols = stream.read(self.z.indexes(count * zs * zs, quality)).reshape(count, zs, zs, self.z.channels)
            params = self._hyper_synthesis(self.z.values(symbols.permute(0, 3, 1, 2), quality))
            return self._read_y(stream, params, count, size)

    def _hyper_synthesis(self, z_hat: Tensor) -> Tensor:
        return self.h_s(z_hat.clamp_(-ACT_LIMIT, ACT_LIMIT)).double()

    def _write_y(self, stream: _Writer, y: Tensor, params: Tensor) -> None:
        scales, means = self.scales_and_means(params)
        stream.write(_round(y, means).permute(2, 3, 0, 1), self.y.indexes(scales).permute(2, 3, 0, 1))

    def _read_y(self, stream: _Reader, params: Tensor, count: int, size: int) -> Tensor:
        scales, means = self.scales_and_means(params)
        symbols = stream.read(self.y.indexes(scales).permute(2, 3, 0, 1))
        return symbols.reshape(size, size, count, self.M).permute(2, 3, 0, 1) * ONE + means


class MeanScaleHyperpriorCoder(HyperpriorCoder):
    """mbt2018-mean's: as :class:`HyperpriorCoder`, with Gaussian means from the hyper-synthesis too."""

    kind = "mean-scale-hyperprior"

    def hyper_input(self, y: Tensor) -> Tensor:
        return y

    def scales_and_means(self, params: Tensor) -> tuple[Tensor, Tensor]:
        return params.chunk(2, 1)


class ContextCoder(MeanScaleHyperpriorCoder):
    """mbt2018's: as :class:`MeanScaleHyperpriorCoder`, each latent position's Gaussians given by the entropy
    parameters network from the hyper-synthesis and the masked 5x5 context of the positions coded before it."""

    kind = "context"

    def __init__(self, model: nn.Module, device: torch.device | str = "cpu"):
        super().__init__(model, device)
        ctx = model.context_prediction
        masked = ExactConv(ctx, weight=ctx.weight * ctx.mask, padding=0)
        self.context = ExactCausalContext(masked, ctx.mask).to(self.device)
        self.entropy_parameters = compile_exact(model.entropy_parameters, self.device)

    def _params_at(self, params: Tensor, padded: Tensor, h: int, w: int) -> tuple[Tensor, Tensor]:
        """Scales and means (B, M) at latent position (h, w) from the hyper-parameters and the decoded context;
        ``padded`` is the latent decoded so far with 2 zeros around it (the 5x5 context window's reach)."""
        ctx = self.context(padded[:, :, h : h + 5, w : w + 5])[:, :, None, None]
        p = self.entropy_parameters(torch.cat((params[:, :, h : h + 1, w : w + 1], ctx), dim=1))
        scales, means = p.chunk(2, 1)
        return scales[:, :, 0, 0].double(), means[:, :, 0, 0].double()

    def _write_y(self, stream: _Writer, y: Tensor, params: Tensor) -> None:
        padded = F.pad(torch.zeros_like(y), (2, 2, 2, 2))
        for h in range(y.shape[2]):
            for w in range(y.shape[3]):
                scales, means = self._params_at(params, padded, h, w)
                symbols = _round(y[:, :, h, w], means)
                padded[:, :, h + 2, w + 2] = (symbols * ONE + means).clamp_(-ACT_LIMIT, ACT_LIMIT)
                stream.write(symbols, self.y.indexes(scales))

    def _read_y(self, stream: _Reader, params: Tensor, count: int, size: int) -> Tensor:
        padded = torch.zeros((count, self.M, size + 4, size + 4), dtype=torch.float64, device=self.device)
        for h in range(size):
            for w in range(size):
                scales, means = self._params_at(params, padded, h, w)
                symbols = stream.read(self.y.indexes(scales)).reshape(count, self.M)
                padded[:, :, h + 2, w + 2] = (symbols * ONE + means).clamp_(-ACT_LIMIT, ACT_LIMIT)
        return padded[:, :, 2:-2, 2:-2]


LATENT_CODERS: dict[str, type[LatentCoder]] = {
    c.kind: c for c in (FactorizedCoder, HyperpriorCoder, MeanScaleHyperpriorCoder, ContextCoder)}


def latent_coder(model: nn.Module, device: torch.device | str = "cpu") -> LatentCoder:
    """The latent coder that ``model`` names (its ``latent_coder_kind``), built from its tables and networks."""
    return LATENT_CODERS[model.latent_coder_kind](model, device)


__all__ = ["LATENT_CODERS", "ContextCoder", "FactorizedCoder", "HyperpriorCoder", "LatentCoder",
           "MeanScaleHyperpriorCoder", "latent_coder"]
