"""The polyphase form of the synthesis's pixel layers computes what the transposed convolution computes."""

import pytest
import torch
from torch import nn

from sar_codec.models.architectures import build_model
from sar_codec.models.polyphase import PolyphaseConvTranspose2d, with_polyphase_outputs


@pytest.mark.parametrize(("c_in", "c_out", "k", "s", "p", "op"), [
    (48, 1, 8, 4, 2, 0),  # the light synthesis's last layer
    (64, 1, 5, 2, 2, 1),  # the founding study's last layer (CompressAI's deconv)
    (64, 2, 5, 2, 2, 1),  # two channels
    (8, 3, 3, 1, 1, 0),   # stride 1
])
def test_polyphase_equals_transposed_convolution(c_in, c_out, k, s, p, op):
    torch.manual_seed(0)
    deconv = nn.ConvTranspose2d(c_in, c_out, k, stride=s, padding=p, output_padding=op)
    x = torch.randn(3, c_in, 7, 5)
    with torch.no_grad():
        ref, out = deconv(x), PolyphaseConvTranspose2d(deconv)(x)
    assert out.shape == ref.shape
    assert torch.allclose(out, ref, atol=1e-5, rtol=1e-5)


def test_only_pixel_layers_are_replaced():
    model = build_model("mbt2018-mean-light", in_channels=1, N=64, M=32, n_qualities=2)
    g_s = with_polyphase_outputs(model.g_s)
    kinds = [type(m).__name__ for m in g_s]
    assert kinds[-1] == "PolyphaseConvTranspose2d"
    assert kinds.count("ConvTranspose2d") == 2  # the wide layers stay transposed convolutions
    x = torch.randn(2, 32, 4, 4)
    with torch.no_grad():
        assert g_s(x).shape == (2, 1, 64, 64)


def test_an_unequal_form_is_refused():
    deconv = nn.ConvTranspose2d(4, 1, (3, 5), stride=2)
    with pytest.raises(ValueError):
        PolyphaseConvTranspose2d(deconv)
    seq = with_polyphase_outputs(nn.Sequential(deconv))
    assert isinstance(seq[0], nn.ConvTranspose2d)
