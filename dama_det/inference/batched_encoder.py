"""Several windows per forward, with outputs bit-identical to one window per forward.

Stacking windows into one Detectron2 forward does not give the same bits as predicting
them one by one, even when all windows have the same size (so padding is the same):
CPU convolutions (oneDNN) and BLAS matrix products pick their algorithm, blocking and
thread split from the batch size, so a 3 x 3 convolution of the feature pyramid or of
the RoI heads, run on four windows' features (or on four windows' RoIs), rounds
differently from the same convolution on one. Measured on the CPU this was written on:
the pyramid and RPN convolutions at the coarse levels, every RoI-head convolution, and
ViT-B's MLP matrix product at 8 windows with 2 threads differ in the last bits; the tiny
and mini ViT encoders do not.

So :class:`EncoderBatcher` batches the part of the model that is safe to batch and costly
to run alone - the ViT encoder (``model.backbone.net`` of a ``SimpleFeaturePyramid``) -
and runs everything after it (feature pyramid, RPN, RoI heads) window by window through
``model.inference``, exactly as a single-window forward does: while a window's
``model.inference`` runs, the encoder module is temporarily replaced by one that hands
back that window's slice of the batched encoder output (only when its input is
bit-identical to the window's slice of the batched input; otherwise it runs the encoder).
On the CPU, batching the heads would not pay anyway: the RoI heads on 4-8 windows' RoIs
were slower per window than on one window's.

Whether the batched encoder gives each window's single-window bits depends on the
kernels, so it is checked once per batch shape (batch size, window size, dtype, device,
threads): the first batch of a shape runs both ways and is compared bit for bit; a shape
that differs runs its windows one at a time from then on (logged once).
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator, Sequence

import torch

from ..utils.device import active_autocast_dtype

logger = logging.getLogger(__name__)

EncoderOutput = dict[str, torch.Tensor]  # what a ViT encoder returns: {"last_feat": (N, D, h, w)}


class _EncoderReplay(torch.nn.Module):
    """Stands in for the encoder during one window's forward: returns the precomputed
    output when the input is the expected one (bit for bit), else runs the encoder."""

    def __init__(self, encoder: torch.nn.Module, expected_input: torch.Tensor,
                 output: EncoderOutput):
        super().__init__()
        self.encoder = encoder
        self.expected_input = expected_input
        self.output = output
        self.used = False

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        """The cached ``{name: (1, D, h, w)}`` output for ``x`` ``(1, C, H, W)``."""
        if x.dtype == self.expected_input.dtype and x.shape == self.expected_input.shape \
                and torch.equal(x, self.expected_input):
            self.used = True
            return self.output
        return self.encoder(x)


def _window_slice(output: EncoderOutput, i: int) -> EncoderOutput:
    """Window ``i`` of a batched encoder output, as its own tensors with the strides a
    one-window forward gives (``clone`` keeps the layout, e.g. ViT's permuted NCHW)."""
    return {k: v[i : i + 1].clone() for k, v in output.items()}


def _same_bits(a: EncoderOutput, b: EncoderOutput) -> bool:
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
        and a[k].stride() == b[k].stride() and torch.equal(a[k], b[k]) for k in a
    )


class EncoderBatcher:
    """Mask R-CNN inference on a batch of windows with the encoder run once for all.

    Args:
        model: a Detectron2 ``GeneralizedRCNN`` in eval mode whose backbone is a
            ``SimpleFeaturePyramid`` (anything else is predicted window by window).
    """

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.batch_exact: dict[tuple, bool] = {}  # batch shape key -> verified bit-identical
        self.windows_from_batch = 0  # windows whose encoder output came from a batched forward

    @staticmethod
    def supports(model: torch.nn.Module) -> bool:
        """Whether ``model`` has a separable encoder (``backbone.net``, ViTDet style)."""
        from detectron2.modeling.backbone import SimpleFeaturePyramid

        return isinstance(getattr(model, "backbone", None), SimpleFeaturePyramid) and \
            hasattr(model, "preprocess_image")

    def _encoder_input(self, inputs: Sequence[dict[str, Any]]) -> torch.Tensor:
        """What the encoder sees for ``inputs`` in a forward: normalised, padded
        ``(N, C, H, W)``."""
        x = self.model.preprocess_image(list(inputs)).tensor
        pad = getattr(self.model.backbone, "encoder_input", None)
        return pad(x) if pad is not None else x

    def _key(self, x: torch.Tensor) -> tuple:
        return (tuple(x.shape), x.dtype, str(x.device), torch.get_num_threads(),
                active_autocast_dtype(x.device.type))

    def encode(self, inputs: Sequence[dict[str, Any]]) -> tuple[torch.Tensor, list[EncoderOutput]]:
        """Encoder input and per-window encoder outputs of same-size windows.

        Runs the encoder once on all windows when that is known to give each window's
        single-window bits; on the first batch of a shape it also runs each window alone
        and compares (the single-window outputs are used if they differ).

        Args:
            inputs: Detectron2 inputs ``{"image": (C, h, w), ...}``, all of one size.

        Returns:
            ``(x (N, C, H, W) encoder input, [{name: (1, D, h', w')} per window])``.
        """
        encoder = self.model.backbone.net
        x = self._encoder_input(inputs)
        key = self._key(x)
        exact = self.batch_exact.get(key)
        if exact is False:
            return x, [encoder(x[i : i + 1].clone()) for i in range(len(x))]
        batched = encoder(x)
        windows = [_window_slice(batched, i) for i in range(len(x))]
        if exact is None:
            singles = [encoder(x[i : i + 1].clone()) for i in range(len(x))]
            exact = all(_same_bits(w, s) for w, s in zip(windows, singles))
            self.batch_exact[key] = exact
            if not exact:
                logger.info("batched encoder output differs in the last bits from one window "
                            "at a time for batch shape %s on %s: those windows run one by one",
                            tuple(x.shape), x.device)
                return x, singles
        return x, windows

    @contextlib.contextmanager
    def _replaying(self, expected_input: torch.Tensor,
                   output: EncoderOutput) -> Iterator[_EncoderReplay]:
        backbone = self.model.backbone
        encoder = backbone.net
        replay = _EncoderReplay(encoder, expected_input, output)
        backbone._modules["net"] = replay  # not a state change: restored below
        try:
            yield replay
        finally:
            backbone._modules["net"] = encoder

    def __call__(self, inputs: Sequence[dict[str, Any]]) -> list[Any]:
        """``model.inference(..., do_postprocess=False)`` of each window, encoder batched.

        Args:
            inputs: Detectron2 inputs ``{"image": (C, h, w), "height", "width"}``, all
                with the same image size.

        Returns:
            One raw ``Instances`` per window, bit-identical to
            ``model.inference([input], do_postprocess=False)[0]``.
        """
        if len(inputs) == 1 or not self.supports(self.model):
            return [self.model.inference([inp], do_postprocess=False)[0] for inp in inputs]
        sizes = {tuple(inp["image"].shape) for inp in inputs}
        if len(sizes) != 1:
            raise ValueError(f"windows of one batch must have one size, got {sorted(sizes)}")
        x, outputs = self.encode(inputs)
        results = []
        for i, (inp, out) in enumerate(zip(inputs, outputs)):
            with self._replaying(x[i : i + 1], out) as replay:
                results.append(self.model.inference([inp], do_postprocess=False)[0])
            if replay.used and self.batch_exact.get(self._key(x)):
                self.windows_from_batch += 1
            elif not replay.used:  # the single forward fed the encoder something else
                logger.debug("encoder recomputed for window %d (input not the batch's)", i)
        return results
