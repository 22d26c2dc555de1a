"""Fixed-point inference: the trained float models compiled to integer arithmetic that is exact everywhere.

Why: entropy decoding needs the decoder to rebuild exactly the probability tables the encoder used, and
CompressAI's float path does not guarantee that across devices, batch sizes or thread counts (its issues
#279, #340). Here every tensor holds integers: activations with ``FRAC_BITS`` fractional bits, clamped to
``ACT_LIMIT`` (2**23, i.e. |x| <= 2048), and weights scaled per output channel by a power of two so that each
output's weights sum to at most ``2**WEIGHT_L1_BITS`` in absolute value. A convolution's exact result is then an
integer below 2**23 * 2**16 = 2**39, whatever the number of terms, and every partial sum on the way is too, so
any summation order, BLAS, thread count or device computes it exactly in float64 (below 2**53); rescaling is a
multiplication by a power of two and a floor, both exact. GDN's square root and division are single IEEE-754
operations, correctly rounded on every conforming CPU and GPU. The result: the same symbols, the same
probability tables and the same decoded pixels everywhere.

Speed: float64 convolutions are slow on CPUs (no oneDNN kernels). On the CPU a layer instead splits its input
into base-2**8 digits (:func:`digits`) and runs one float32 oneDNN convolution over all digits stacked along the
batch: a digit times weights whose absolute sum is at most 2**16 gives partial sums of at most 2**24, which float32
holds exactly, so each digit's result is exact; they are recombined in float64. The result is the same integer
as the float64 path's (tests check both), usually with two digits, i.e. two float32 passes. When a codec is
compiled, each layer also checks its float32 kernel once on a worst-case probe and falls back to float64 if the
kernel is not exact (:meth:`ExactConv.check_float32`), so an unusual BLAS or oneDNN build costs speed, never bytes.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import ARITHMETIC_VERSION  # noqa: F401  (re-exported: the version of what this module computes)
from .architectures import GDN

FRAC_BITS = 12
ONE = float(2**FRAC_BITS)
ACT_LIMIT = float(2**23)
WEIGHT_L1_BITS = 16
GAMMA_BITS = 13
GAIN_BITS = 12
FLOAT32_EXACT = 2.0**24  # float32 holds every integer up to this, so sums that stay below it are exact
_MAX_CHANNEL_SHIFT = 30  # a channel with tiny weights gets no finer scale than 2**-30
POLYPHASE_BELOW = 16  # transposed convolutions with fewer output channels run as polyphase convolutions


def to_fixed(x: Tensor) -> Tensor:
    """Real values -> fixed point (round half up), float64."""
    return torch.floor(x.double() * ONE + 0.5)


def _rescale(acc: Tensor, shift: int) -> Tensor:
    """floor(acc / 2**shift), clamped to the activation range; exact. Works in place on ``acc``."""
    return acc.mul_(2.0**-shift).floor_().clamp_(-ACT_LIMIT, ACT_LIMIT)


def _weight_shift(w: Tensor, bits: int) -> int:
    m = float(w.abs().max())
    return bits if m == 0 else int(math.floor(bits - math.log2(m) - 1e-9))


def output_l1(w: Tensor, transposed: bool, stride: tuple[int, int]) -> Tensor:
    """Per output channel, the largest absolute sum of the weights that meet in one output value. A transposed
    convolution of stride s reaches each output with one of s*s phases of its kernel taps."""
    a = w.abs()
    if not transposed:
        return a.flatten(1).sum(1)
    sy, sx = stride
    return torch.stack([a[:, :, py::sy, px::sx].sum((0, 2, 3)) for py in range(sy) for px in range(sx)]).amax(0)


def polyphase(w: Tensor, stride: tuple[int, int], padding: tuple[int, int], output_padding: tuple[int, int]
              ) -> tuple[Tensor, int] | None:
    """A stride-s transposed convolution as a stride-1 convolution with s*s output channels per channel, followed
    by ``pixel_shuffle(s)``: returns its (s*s*C_out, C_in, k', k') weights and padding, or None where the
    transposed convolution's output is not exactly s times its input (then it stays transposed). Faster on the
    CPU where C_out is small. Output (m*s + r) takes input (m + u) through tap r + p - s*u."""
    (sy, sx), (py, px), (oy, ox), k = stride, padding, output_padding, w.shape[2]
    if sy != sx or py != px or oy != ox or w.shape[3] != k:
        return None
    s, p = sy, py
    if k - 2 * p + oy != s:  # the output size (H - 1) * s - 2p + k + op must be s * H
        return None
    offsets = [u for u in range(-k, k + 1) if any(0 <= r + p - s * u < k for r in range(s))]
    lo, hi = min(offsets), max(offsets)
    if -lo != hi:
        return None
    cin, cout, size = w.shape[0], w.shape[1], hi - lo + 1
    out = torch.zeros(cout, s, s, cin, size, size, dtype=w.dtype)
    for ry in range(s):
        for rx in range(s):
            for uy in range(lo, hi + 1):
                for ux in range(lo, hi + 1):
                    ky, kx = ry + p - s * uy, rx + p - s * ux
                    if 0 <= ky < k and 0 <= kx < k:
                        out[:, ry, rx, :, uy - lo, ux - lo] = w[:, :, ky, kx].T
    return out.reshape(cout * s * s, cin, size, size), hi


def quantise_per_channel(w: Tensor, transposed: bool, stride: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Integer weights and per-output-channel shifts (weight = integer / 2**shift) with every output's absolute
    weight sum at most 2**WEIGHT_L1_BITS."""
    l1 = output_l1(w, transposed, stride)
    limit = 2.0**WEIGHT_L1_BITS
    shift = torch.where(l1 > 0, torch.floor(WEIGHT_L1_BITS - torch.log2(l1.clamp(min=1e-30))),
                        torch.zeros_like(l1)).clamp(max=_MAX_CHANNEL_SHIFT)
    ch = 1 if transposed else 0
    view = [1] * w.dim()
    view[ch] = -1
    while True:  # rounding may push a sum just over the limit: one step coarser there
        wi = torch.round(w * torch.exp2(shift).reshape(view))
        over = output_l1(wi, transposed, stride) > limit
        if not bool(over.any()):
            return wi, shift
        shift = shift - over.double()


def digit_count(amax: float, top: float) -> tuple[int, int]:
    """How many base-2**d digits (d = floor(log2(top))) a tensor with max |value| ``amax`` needs so that its
    last, signed digit floor(x / 2**(d * (n - 1))) has |digit| <= ``top``; returns (n, d)."""
    d = int(math.floor(math.log2(top)))
    n = 1
    if amax > top:
        n = 2
        while amax * 2.0 ** (-d * (n - 1)) + 1 > top:
            n += 1
    return n, d


def digits(x: Tensor, top: float, memory_format=torch.contiguous_format) -> tuple[Tensor, int, int]:
    """Integer-valued ``x`` (|x| <= 2**24) as float32 base-2**d digits stacked along dim 0, lowest first:
    x = sum(digit_j * 2**(j*d)); every digit but the last lies in [0, 2**d), the last (signed) has |digit| <=
    ``top``. Returns (digits, n, d). Every step is exact in float32 (integers and powers of two)."""
    x = x.to(torch.float32).contiguous(memory_format=memory_format)
    lo, hi = torch.aminmax(x)
    amax = max(-float(lo), float(hi))
    if not amax <= FLOAT32_EXACT:  # the callers clamp activations to ACT_LIMIT; also catches NaN
        raise ValueError(f"activation {amax} out of the exact range")
    n, d = digit_count(amax, top)
    if n == 1:
        return x, 1, d
    b = x.shape[0]
    out = torch.empty((n * b,) + tuple(x.shape[1:]), dtype=torch.float32, device=x.device,
                      memory_format=memory_format)
    rest = x
    for j in range(n - 1):
        high = torch.floor(rest * 2.0**-d)
        torch.sub(rest, high, alpha=2.0**d, out=out[j * b : (j + 1) * b])
        rest = high
    out[(n - 1) * b :].copy_(rest)
    return out, n, d


def recombine(parts: Tensor, count: int, d: int) -> Tensor:
    """Inverse of :func:`digits` on per-digit results stacked along dim 0, in float64 (exact below 2**53)."""
    if count == 1:
        return parts.double()
    chunks = parts.chunk(count)
    acc = chunks[-1].double()
    for lower in reversed(chunks[:-1]):
        acc.mul_(2.0**d).add_(lower)
    return acc


@contextlib.contextmanager
def exact_float32():
    """oneDNN in IEEE float32 (not bf16/tf32, whatever the process asked for) and no NNPACK (Winograd/FFT)."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.backends.nnpack.flags(enabled=False))
        mk = torch.backends.mkldnn
        stack.enter_context(mk.flags(enabled=None, deterministic=None, allow_tf32=None, fp32_precision="ieee"))
        yield


class _DigitOp:
    """``op(x, w)`` (a convolution or matrix product, linear in ``x``) computed exactly for integer ``x``, as
    float64: in float64 on accelerators, and on the CPU in float32 over the digits of ``x`` (module docstring)
    where ``digits_on_cpu``. Convolutions gain from it (float64 convolutions have no oneDNN kernels); matrix
    products do not (MKL's float64 GEMM runs at half its float32 speed: measured, two digit passes cost the same)."""

    def __init__(self, w: Tensor, l1: float, op: Callable[[Tensor, Tensor], Tensor], channels_last: bool,
                 digits_on_cpu: bool = True):
        self.w64, self.w32, self.op, self.digits_on_cpu = w, w.float(), op, digits_on_cpu
        self.memory_format = torch.channels_last if channels_last and w.dim() == 4 else torch.contiguous_format
        self.top = max(1.0, math.floor(FLOAT32_EXACT / max(l1, 1.0)))

    def __call__(self, x: Tensor) -> Tensor:
        if x.device.type != "cpu" or not self.digits_on_cpu:
            return self.op(x.double(), self.w64)
        stacked, n, d = digits(x, self.top, self.memory_format)
        with exact_float32():
            out = self.op(stacked, self.w32)
        return recombine(out, n, d)


class ExactConv(nn.Module):
    """A Conv2d or ConvTranspose2d in fixed point, with per-output-channel weight scales."""

    def __init__(self, conv: nn.Conv2d | nn.ConvTranspose2d, weight: Tensor | None = None, padding: int | None = None):
        super().__init__()
        w = (conv.weight if weight is None else weight).detach().double().cpu()
        self.transposed = isinstance(conv, nn.ConvTranspose2d)
        self.stride = tuple(conv.stride)
        self.padding = tuple(conv.padding) if padding is None else (padding, padding)
        self.output_padding = tuple(getattr(conv, "output_padding", (0, 0)))
        wi, shift = quantise_per_channel(w, self.transposed, self.stride)
        self.register_buffer("w", wi)
        b = torch.zeros(wi.shape[1 if self.transposed else 0], dtype=torch.float64)
        if conv.bias is not None:
            b = conv.bias.detach().double().cpu()
        self.register_buffer("b", torch.round(b * torch.exp2(FRAC_BITS + shift))[None, :, None, None])
        self.register_buffer("inv_scale", torch.exp2(-shift)[None, :, None, None])
        self.register_buffer("b_scaled", self.b * self.inv_scale)  # exact: a power of two
        if float(self.b.abs().max()) > 2.0**52 - 2.0**40:
            raise ValueError("bias too large for exact fixed point")
        self.l1 = float(output_l1(wi, self.transposed, self.stride).max())
        self.pointwise = (not self.transposed and wi.shape[2:] == (1, 1) and self.stride == (1, 1)
                          and self.padding == (0, 0))
        self.float32_ok = True  # set False by check_float32() where this CPU's float32 kernel is not exact
        poly = polyphase(wi, self.stride, self.padding, self.output_padding) if self.transposed else None
        self.polyphase_padding = None
        if poly is not None and wi.shape[1] < POLYPHASE_BELOW:
            self.register_buffer("w_poly", poly[0])
            self.polyphase_padding = poly[1]
        self._op = self._digit_op()

    def _digit_op(self) -> _DigitOp:
        if self.polyphase_padding is not None:
            return _DigitOp(self.w_poly, self.l1, self._polyphase_conv, channels_last=True)
        return _DigitOp(self.w, self.l1, self._conv, channels_last=not self.pointwise,
                        digits_on_cpu=self.float32_ok and not self.pointwise)

    def check_float32(self, size: int = 8) -> bool:
        """Whether this CPU's float32 kernel gives the float64 integers on a worst-case probe (one input at
        +ACT_LIMIT everywhere, one random over the whole range); where it does not, the layer runs in float64 from
        then on. A safety net for kernels that are not plain sums (a Winograd or FFT convolution would not be
        exact); run once when a codec is compiled."""
        if not self._op.digits_on_cpu or self.w.device.type != "cpu":
            return True
        cin = self.w.shape[0 if self.transposed else 1]
        g = torch.Generator().manual_seed(0)
        x = torch.randint(-int(ACT_LIMIT), int(ACT_LIMIT) + 1, (2, cin, size, size), generator=g).double()
        x[0] = ACT_LIMIT
        self.float32_ok = torch.equal(self._op(x), self._conv(x, self.w))
        self._op = self._digit_op()
        return self.float32_ok

    def _polyphase_conv(self, x: Tensor, w: Tensor) -> Tensor:
        return F.pixel_shuffle(F.conv2d(x, w, None, 1, self.polyphase_padding), self.stride[0])

    def _conv(self, x: Tensor, w: Tensor) -> Tensor:
        if self.pointwise:  # a 1x1 convolution is a matrix product over channels (one GEMM, no im2col)
            return torch.matmul(x.movedim(1, -1), w[:, :, 0, 0].T).movedim(-1, 1)
        if self.transposed:
            return F.conv_transpose2d(x, w, None, self.stride, self.padding, self.output_padding)
        return F.conv2d(x, w, None, self.stride, self.padding)

    def _apply(self, fn, recurse=True):  # keep the digit kernel's weights on the module's device
        super()._apply(fn, recurse)
        self._op = self._digit_op()
        return self

    def accumulate(self, x: Tensor) -> Tensor:
        """The exact integer sums of products (no bias, no rescale), float64."""
        return self._op(x)

    def forward(self, x: Tensor) -> Tensor:
        """Integer activations in, integer activations out, in ``x``'s dtype (float32 holds them exactly)."""
        out = torch.addcmul(self.b_scaled, self.accumulate(x), self.inv_scale)  # (acc + b) / 2**shift, exact
        return out.floor_().clamp_(-ACT_LIMIT, ACT_LIMIT).to(x.dtype)


class ExactCausalContext(nn.Module):
    """The masked context convolution of mbt2018 at one latent position: only the causal taps of the 5x5 kernel
    (12 of 25) as one matrix product, on the (B, M, k, k) window around the position; returns (B, 2M)."""

    def __init__(self, conv: ExactConv, mask: Tensor):
        super().__init__()
        rows, cols = torch.nonzero(mask[0, 0].cpu() != 0, as_tuple=True)
        self.rows, self.cols = rows.tolist(), cols.tolist()
        w = conv.w[:, :, rows, cols]  # (2M, M, taps)
        self.register_buffer("w", w.reshape(w.shape[0], -1).T.contiguous())  # (M * taps, 2M)
        self.register_buffer("inv_scale", conv.inv_scale.reshape(1, -1))
        self.register_buffer("b_scaled", conv.b_scaled.reshape(1, -1))
        k = mask.shape[-1]
        c = k // 2  # mask type A: every position of the rows above the centre, then those left of it
        self.rows_then_left = (self.rows == [r for r in range(c) for _ in range(k)] + [c] * c
                               and self.cols == list(range(k)) * c + list(range(c)))

    def _taps(self, window: Tensor) -> Tensor:
        """(B, M * taps): the causal taps, read as whole rows above the centre and the run left of it when the
        mask has that shape (a view and a copy, no gather)."""
        if self.rows_then_left:
            b, m, k = window.shape[0], window.shape[1], window.shape[-1]
            c = k // 2
            return torch.cat((window[:, :, :c, :].reshape(b, m, c * k), window[:, :, c, :c]), dim=2).reshape(b, -1)
        taps = window[:, :, self.rows, self.cols]
        return taps.reshape(taps.shape[0], -1)

    def forward(self, window: Tensor) -> Tensor:
        # float64 on every device: a matrix product gains nothing from float32 digit passes (see _DigitOp)
        out = torch.addcmul(self.b_scaled, torch.matmul(self._taps(window).double(), self.w), self.inv_scale)
        return out.floor_().clamp_(-ACT_LIMIT, ACT_LIMIT).to(window.dtype)


class ExactGDN(nn.Module):
    """GDN / inverse GDN in fixed point: x / sqrt(beta + gamma . x**2) or x * sqrt(...)."""

    def __init__(self, gdn: GDN):
        super().__init__()
        with torch.no_grad():
            beta = gdn.beta_reparam(gdn.beta.detach().float().cpu()).double()
            gamma = gdn.gamma_reparam(gdn.gamma.detach().float().cpu()).double()
        C = beta.numel()
        if C > 128:
            raise ValueError("GDN too wide for exact fixed point")
        g = _weight_shift(gamma, GAMMA_BITS)
        g -= (g + FRAC_BITS) % 2  # the norm's scale 2**-(g+F) must have an integer square root
        self.half_shift = (g + FRAC_BITS) // 2
        self.register_buffer("gamma", torch.round(gamma * 2.0**g).T.contiguous())  # (C_in, C_out)
        self.register_buffer("beta", torch.clamp(torch.round(beta * 2.0 ** (g + FRAC_BITS)), min=1.0))
        self.inverse = gdn.inverse

    def forward(self, x: Tensor) -> Tensor:
        """In float64 (a sum of up to 128 products below 2**44 each), returned in ``x``'s dtype; channels are
        mixed by one matrix product over the channel axis, which is contiguous for channels-last tensors."""
        x64 = x.double()
        sq = torch.square(x64).mul_(1.0 / ONE).floor_().clamp_(max=float(2**31))
        root = torch.matmul(sq.movedim(1, -1), self.gamma).add_(self.beta).sqrt_().movedim(-1, 1)
        del sq
        if self.inverse:
            y = root.mul_(x64).mul_(2.0**-self.half_shift)  # (x * root) first, then the exact power of two
        else:
            y = torch.div(x64, root, out=root).mul_(2.0**self.half_shift)
        return y.floor_().clamp_(-ACT_LIMIT, ACT_LIMIT).to(x.dtype)


class ExactReLU(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.clamp(x, min=0.0)


def compile_sequential(seq: nn.Sequential) -> nn.Sequential:
    """Fixed-point copy of a Sequential of Conv2d / ConvTranspose2d / GDN / ReLU."""
    layers = []
    for m in seq:
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            layers.append(ExactConv(m))
        elif isinstance(m, GDN):
            layers.append(ExactGDN(m))
        elif isinstance(m, nn.ReLU):
            layers.append(ExactReLU())
        else:
            raise TypeError(f"no exact form for {type(m).__name__}")
    return nn.Sequential(*layers)


def exact_kernels():
    """On CUDA, keep cuDNN out: its FFT and Winograd convolutions are not exact on integers; the native
    im2col + GEMM path is."""
    return torch.backends.cudnn.flags(enabled=False, benchmark=False, deterministic=True)


def compile_exact(seq: nn.Sequential, device: torch.device) -> nn.Sequential:
    """The fixed-point form of ``seq`` on ``device``, each layer's float32 kernel checked once."""
    out = compile_sequential(seq).to(device)
    for m in out.modules():
        if isinstance(m, ExactConv):
            m.check_float32()
    return out


class ExactGain(nn.Module):
    """Per-quality, per-channel gain vectors in fixed point."""

    def __init__(self, log_gain: Tensor):
        super().__init__()
        g = torch.exp(log_gain.detach().float().cpu()).double()
        self.register_buffer("g", torch.round(g * 2.0**GAIN_BITS))

    def forward(self, x: Tensor, quality: int) -> Tensor:
        return _rescale(x * self.g[quality][None, :, None, None], GAIN_BITS)
