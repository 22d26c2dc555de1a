"""The fixed-point arithmetic: float32 digit passes compute the same integers as float64, at the bounds too."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sar_codec.models.architectures import GDN
from sar_codec.models.exact import (
    ACT_LIMIT,
    FLOAT32_EXACT,
    WEIGHT_L1_BITS,
    ExactCausalContext,
    ExactConv,
    ExactGDN,
    digit_count,
    digits,
    output_l1,
    polyphase,
    recombine,
)


def _layer(kind: str, cin: int, cout: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    if kind == "transposed":
        return nn.ConvTranspose2d(cin, cout, 5, 2, 2, 1)
    if kind == "strided":
        return nn.Conv2d(cin, cout, 5, 2, 2)
    if kind == "3x3":
        return nn.Conv2d(cin, cout, 3, 1, 1)
    return nn.Conv2d(cin, cout, 1)


def _worst_case(shape, seed=1):
    """Integer activations spread over the whole range, a quarter of them at +-ACT_LIMIT."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-int(ACT_LIMIT), int(ACT_LIMIT) + 1, shape, generator=g).double()
    edge = torch.rand(shape, generator=g) < 0.25
    return torch.where(edge, torch.sign(x) * ACT_LIMIT, x)


LAYERS = [("transposed", 24, 16), ("transposed", 16, 1), ("transposed", 16, 4), ("strided", 1, 16),
          ("strided", 16, 24), ("3x3", 24, 36), ("pointwise", 48, 40)]


@pytest.mark.parametrize("kind,cin,cout", LAYERS)
@pytest.mark.parametrize("scale", [ACT_LIMIT, 300.0, 5.0])
def test_float32_digits_equal_float64(kind, cin, cout, scale):
    conv = ExactConv(_layer(kind, cin, cout))
    assert conv._op.digits_on_cpu == (kind != "pointwise")  # 1x1 layers are matrix products: float64 on purpose
    x = torch.clamp(torch.round(_worst_case((3, cin, 6, 5)) * (scale / ACT_LIMIT)), -ACT_LIMIT, ACT_LIMIT)
    ref = conv._conv(x, conv.w)  # float64: every partial sum below 2**53
    assert torch.equal(conv.accumulate(x), ref)
    assert torch.equal(conv.accumulate(x.float()), ref)  # float32 activations hold the same integers


@pytest.mark.parametrize("kind,cin,cout", LAYERS)
def test_weights_keep_every_output_sum_within_the_float32_budget(kind, cin, cout):
    layer = _layer(kind, cin, cout, seed=3)
    with torch.no_grad():
        layer.weight.mul_(torch.logspace(-3, 2, layer.weight.shape[1 if kind == "transposed" else 0])
                          .reshape((1, -1, 1, 1) if kind == "transposed" else (-1, 1, 1, 1)))
    conv = ExactConv(layer)
    l1 = output_l1(conv.w, conv.transposed, conv.stride)
    assert float(l1.max()) <= 2**WEIGHT_L1_BITS
    assert float(l1.min()) > 2 ** (WEIGHT_L1_BITS - 2)  # each channel has its own scale: none left coarse
    assert conv._op.top * conv.l1 <= FLOAT32_EXACT  # a digit times the weights: exact in float32
    assert conv._op.top >= FLOAT32_EXACT / 2**WEIGHT_L1_BITS  # and digits of at least 8 bits


def test_digits_recombine_to_the_input():
    x = _worst_case((4, 3, 5, 5), seed=7)
    for top in (256.0, 300.0, 4096.0, FLOAT32_EXACT / 2):
        stacked, n, d = digits(x, top)
        parts = stacked.chunk(n)
        assert all(float(p.min()) >= 0 and float(p.max()) < 2**d for p in parts[:-1])
        assert float(parts[-1].abs().max()) <= top
        assert torch.equal(recombine(stacked, n, d), x)
    assert digit_count(256.0, 256.0) == (1, 8)
    assert digit_count(257.0, 256.0) == (2, 8)
    assert digit_count(ACT_LIMIT, 256.0) == (3, 8)  # two 8-bit digits, then floor(2**23 / 2**16) = 128 on top
    assert digit_count(ACT_LIMIT, 300.0) == (3, 8)


def test_polyphase_is_the_transposed_convolution():
    layer = _layer("transposed", 6, 3, seed=5)
    conv = ExactConv(layer)
    assert conv.polyphase_padding is not None  # few output channels: polyphase on the CPU
    w, pad = polyphase(conv.w, conv.stride, conv.padding, conv.output_padding)
    x = _worst_case((2, 6, 7, 4), seed=8)
    ref = F.conv_transpose2d(x, conv.w, None, conv.stride, conv.padding, conv.output_padding)
    assert torch.equal(F.pixel_shuffle(F.conv2d(x, w, None, 1, pad), 2), ref)
    assert polyphase(conv.w, (2, 2), (1, 1), (0, 0)) is None  # output not exactly twice the input: left alone


def test_causal_context_digits_equal_float64():
    from compressai.layers import MaskedConv2d

    torch.manual_seed(2)
    ctx = MaskedConv2d(12, 24, kernel_size=5, padding=2, stride=1)
    exact = ExactCausalContext(ExactConv(ctx, weight=ctx.weight * ctx.mask, padding=0), ctx.mask)
    window = _worst_case((9, 12, 5, 5), seed=4)
    taps = window[:, :, exact.rows, exact.cols].reshape(9, -1)
    ref = torch.addcmul(exact.b_scaled, taps @ exact.w, exact.inv_scale).floor_().clamp_(-ACT_LIMIT, ACT_LIMIT)
    assert torch.equal(exact(window), ref)


def test_gdn_gives_the_same_integers_for_float32_and_float64_inputs():
    torch.manual_seed(6)
    gdn = GDN(16, inverse=True)
    with torch.no_grad():
        gdn.gamma.add_(0.05 * torch.rand_like(gdn.gamma))
    exact = ExactGDN(gdn)
    x = torch.round(torch.randn(3, 16, 4, 4, dtype=torch.float64) * 4096)
    y64 = exact(x)
    y32 = exact(x.float().contiguous(memory_format=torch.channels_last))
    assert y32.dtype == torch.float32 and torch.equal(y32.double(), y64)
    with torch.no_grad():  # and it is GDN: close to the float layer
        ref = gdn(x.float() / 4096) * 4096
    assert torch.allclose(y64.float(), ref, atol=2.0, rtol=1e-3)


def test_a_float32_kernel_that_is_not_exact_makes_the_layer_fall_back_to_float64():
    conv = ExactConv(_layer("transposed", 24, 16))
    assert conv.check_float32()  # this CPU's oneDNN kernel sums exactly
    exact = conv._op.op
    conv._op.op = lambda x, w: exact(x, w) + (x.dtype == torch.float32)  # a kernel off by one in float32
    assert not conv.check_float32()
    x = _worst_case((2, 24, 4, 4))
    assert torch.equal(conv.accumulate(x), conv._conv(x, conv.w))  # now in float64: exact again
