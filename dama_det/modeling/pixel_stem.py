"""A small convolutional stem that gives the finest pyramid level real pixel detail.

The simple feature pyramid builds its finest level (p2, stride 4) by upsampling the ViT's
patch tokens (stride 16 or 8), so a 20 px nucleus spans one or two tokens of real
information however finely the mask head samples it (floor study F4). This stem computes
stride-4 features straight from the image, a few convolutions deep, and adds them to that
level. Its last convolution starts at zero, so a detector with the stem computes exactly
the function it computes without it until training moves that convolution.
"""
from __future__ import annotations

import torch
from detectron2.layers import Conv2d, get_norm
from torch import nn

__all__ = ["PixelDetailStem"]


class PixelDetailStem(nn.Module):
    """Strided 3 x 3 convolutions from the image to one pyramid level's stride and width.

    Layout for ``stride = 2 ** k``: k convolutions of stride 2 (``in_chans -> channels ->
    ... -> channels``), one of stride 1, each followed by ``norm`` and GELU, then a 1 x 1
    projection to ``out_channels`` whose weight and bias start at zero.

    Args:
        in_chans: image channels C.
        channels: width of the stem's convolutions.
        out_channels: width of the pyramid level it is added to.
        stride: that level's stride (a power of two, >= 2).
        norm: Detectron2 norm name for the convolutions ("LN", "GN", "" ...).
    """

    def __init__(self, in_chans: int, channels: int, out_channels: int, stride: int,
                 norm: str = "LN") -> None:
        super().__init__()
        if stride < 2 or stride & (stride - 1):
            raise ValueError(f"the stem's stride must be a power of two >= 2, got {stride}")
        steps = stride.bit_length() - 1  # stride = 2 ** steps
        if channels < 1:
            raise ValueError(f"the stem needs at least one channel, got {channels}")
        self.stride = stride
        layers: list[nn.Module] = []
        c_in = in_chans
        for s in [2] * steps + [1]:
            layers.append(Conv2d(c_in, channels, kernel_size=3, stride=s, padding=1,
                                 bias=not norm, norm=get_norm(norm, channels),
                                 activation=nn.GELU()))
            c_in = channels
        self.convs = nn.Sequential(*layers)
        self.proj = nn.Conv2d(channels, out_channels, kernel_size=1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Features of ``x`` ``(N, C, H, W)``: ``(N, out_channels, h, w)`` for the level's
        ``size = (h, w)`` (the stem's ``ceil(H / stride)`` x ``ceil(W / stride)`` output
        cropped at the bottom and right, as the ViT's patch grid drops a remainder)."""
        h, w = size
        return self.proj(self.convs(x))[..., :h, :w]
