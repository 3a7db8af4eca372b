"""Putting an export's encoder weights into a ViT: key mapping, position-embedding
resampling and the load report, shared by detection and classification.

Key mapping. An export carries timm ``VisionTransformer`` key names, and both ViTs
that load it use the same names for everything they share (``patch_embed.proj.*``,
``pos_embed``, ``blocks.{i}.norm1/norm2.*``, ``blocks.{i}.attn.qkv/proj.*``,
``blocks.{i}.mlp.fc1/fc2.*``), so the mapping is by name. What each ViT family lacks
or adds by design is a :class:`KeyRules`: Detectron2's ViTDet ``ViT``
(:data:`VITDET_KEYS`) has no cls token in use and no final norm (the export's
``cls_token`` and ``norm.*`` are *unused*) and adds the relative position bias
``rel_pos_h/rel_pos_w`` (zero-initialised, *new*); the timm classifier
(:data:`CLASSIFIER_KEYS`, global average pooling) has no final ``norm`` and adds
``fc_norm.*`` and ``head.*``. Any other key present on one side only is *missing*
(ViT key absent from the export) or *unexpected* (export key with no place); a
tensor whose shape differs is *mismatched*. The loaders decide which of these are
errors (:func:`dama_det.modeling.encoder_weights.load_encoder_into_vit`,
:func:`dama_det.classification.model.load_export_into`).

Position embedding. An export's ``pos_embed`` is ``(1, [1+]L, D)`` on its pretraining
grid ``img_size / patch_size`` (with a leading cls entry when it has ``L + 1``
entries). When the ViT stores another grid, the patch entries are resampled once at
load time with timm's ``resample_abs_pos_embed`` (bicubic, antialiased); the cls entry
is kept, or zero when the export has none and the ViT wants one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from timm.layers import resample_abs_pos_embed

from ..errors import DamaUserError

Grid = tuple[int, int]


@dataclass(frozen=True)
class KeyRules:
    """What a ViT family takes from an export beyond the shared key names.

    Attributes:
        model: the ViT's name in reports, e.g. ``"detectron2's ViT"``.
        unused_export_keys: export keys it has no counterpart for by design.
        new_model_keys: its keys that pretraining does not provide (initialised fresh).
    """

    model: str
    unused_export_keys: re.Pattern
    new_model_keys: re.Pattern


#: Detectron2's ViTDet ``ViT``: no cls token in use, no final norm; rel-pos bias is new.
VITDET_KEYS = KeyRules(
    model="detectron2's ViT",
    unused_export_keys=re.compile(r"^(cls_token|reg_token|norm\.|fc_norm\.|head\.|head_drop\.)"),
    new_model_keys=re.compile(r"(^|\.)rel_pos_[hw]$"),
)
#: timm's ``VisionTransformer`` classifier with ``global_pool="avg"`` (``norm`` is an
#: identity; ``fc_norm`` and the ``head`` are new).
CLASSIFIER_KEYS = KeyRules(
    model="the classifier",
    unused_export_keys=re.compile(r"^norm\."),
    new_model_keys=re.compile(r"^(head|fc_norm)\."),
)


@dataclass(frozen=True)
class ShapeMismatch:
    """An export tensor whose shape differs from the ViT's."""

    key: str
    export_shape: tuple[int, ...]
    model_shape: tuple[int, ...]

    def __str__(self) -> str:
        return f"{self.key}: export {self.export_shape} vs model {self.model_shape}"


@dataclass
class EncoderLoadReport:
    """What happened when an export was loaded into a ViT.

    The lists hold ViT keys (``loaded``, ``missing``, ``new``) or export keys
    (``unused``, ``unexpected``, ``kept_init``); ``missing``, ``unexpected`` and
    ``mismatched`` are the problems.
    """

    source: str = "encoder export"  # the export's path or name
    model: str = "the model"  # what it was loaded into
    loaded: list[str] = field(default_factory=list)  # ViT keys set from the export
    missing: list[str] = field(default_factory=list)  # ViT keys the export lacks
    new: list[str] = field(default_factory=list)  # ViT keys not pretrained by design
    unused: list[str] = field(default_factory=list)  # export keys with no ViT counterpart
    unexpected: list[str] = field(default_factory=list)  # export keys that should match
    mismatched: list[ShapeMismatch] = field(default_factory=list)
    kept_init: list[str] = field(default_factory=list)  # export keys skipped on request
    skip_option: str = ""  # the setting that asked for ``kept_init``, for the summary
    resampled_pos_embed: tuple[Grid, Grid] | None = None  # (export grid, ViT grid)
    pretrain_epoch: int | None = None
    pretrain_method: str | None = None

    @property
    def missing_keys(self) -> list[str]:
        """ViT keys not set from the export (``load_state_dict``'s ``missing_keys``)."""
        return [*self.new, *self.kept_init, *self.missing]

    @property
    def unexpected_keys(self) -> list[str]:
        """Export keys not loaded (``load_state_dict``'s ``unexpected_keys``)."""
        return [*self.unused, *self.unexpected]

    @property
    def pos_embed_resampled(self) -> tuple[list[int], list[int]] | None:
        """:attr:`resampled_pos_embed` as lists (``([8, 8], [4, 4])``), as JSON stores it."""
        if self.resampled_pos_embed is None:
            return None
        old, new = self.resampled_pos_embed
        return list(old), list(new)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``path``, ``missing_keys``, ``unexpected_keys``,
        ``pos_embed_resampled``, ``pretrain_epoch``, ``pretrain_method``)."""
        return {"path": self.source, "missing_keys": self.missing_keys,
                "unexpected_keys": self.unexpected_keys,
                "pos_embed_resampled": self.pos_embed_resampled,
                "pretrain_epoch": self.pretrain_epoch, "pretrain_method": self.pretrain_method}

    def summary(self) -> str:
        """A multi-line human-readable report."""
        lines = [f"loaded {len(self.loaded)} encoder tensors"]
        if self.resampled_pos_embed:
            old, new = self.resampled_pos_embed
            lines.append(f"pos_embed resampled from grid {old} to {new}")
        skipped = f"skipped on request ({self.skip_option})" if self.skip_option else \
            "skipped on request"
        for title, keys in (
            ("not in pretraining, freshly initialised", self.new),
            (f"{skipped}, kept at init", self.kept_init),
            (f"in export but unused by {self.model}", self.unused),
            ("MISSING from export", self.missing),
            ("UNEXPECTED in export", self.unexpected),
            ("SHAPE MISMATCH", [str(m) for m in self.mismatched]),
        ):
            if keys:
                lines.append(f"{title} ({len(keys)}): {', '.join(keys)}")
        return "\n".join(lines)

    def brief(self) -> str:
        """One line for a log: the export, the keys not loaded either way, resampling."""
        text = (f"loaded {self.source}: missing {self.missing_keys or 'none'}, "
                f"unexpected {self.unexpected_keys or 'none'}")
        if self.resampled_pos_embed:
            old, new = self.resampled_pos_embed
            text += f", pos_embed resampled {old[0]}x{old[1]} -> {new[0]}x{new[1]}"
        return text


def patch_grid(num_tokens: int, what: str) -> Grid:
    """The square patch grid ``(side, side)`` of ``num_tokens`` position entries.

    Raises:
        DamaUserError: ``num_tokens`` is not a square number.
    """
    side = int(round(num_tokens**0.5))
    if side * side != num_tokens:
        raise DamaUserError(f"{what}: pos_embed has {num_tokens} patch tokens, not a square grid")
    return side, side


def export_has_cls_position(export: Mapping[str, Any]) -> bool:
    """Whether the export's ``pos_embed`` starts with a cls entry (``L + 1`` entries for
    its ``img_size / patch_size`` grid of ``L`` patches)."""
    grid = int(export["img_size"]) // int(export["patch_size"])
    state = export["model"]
    n_pos = state["pos_embed"].shape[1] if "pos_embed" in state else grid * grid
    return n_pos == grid * grid + 1


def fit_pos_embed(
    src: torch.Tensor, src_has_cls: bool, target: torch.Tensor, target_has_cls: bool, what: str
) -> tuple[torch.Tensor, tuple[Grid, Grid] | None]:
    """Fit an export ``pos_embed`` to a ViT's stored one.

    Args:
        src: the export's ``(1, [1+]L, D)``.
        src_has_cls: ``src`` starts with a cls entry.
        target: the ViT's ``(1, [1+]L', D')`` (only its shape is used).
        target_has_cls: ``target`` starts with a cls entry.
        what: the export's name, for messages.

    Returns:
        ``(pos_embed, resampled)``: ``(1, [1+]L', D)`` and ``(old grid, new grid)`` when
        the patch entries were resampled, else None. With another width ``D != D'``
        ``src`` comes back unchanged (the caller reports the shape mismatch).

    Raises:
        DamaUserError: a grid that is not square.
    """
    if src.shape[-1] != target.shape[-1]:
        return src, None
    n_src = src.shape[1] - int(src_has_cls)
    n_tgt = target.shape[1] - int(target_has_cls)
    old, new = patch_grid(n_src, what), patch_grid(n_tgt, "model")
    cls = src[:, :1] if src_has_cls else src.new_zeros(1, 1, src.shape[-1])
    patch = src[:, int(src_has_cls):]
    resampled = None
    if old != new:
        patch = resample_abs_pos_embed(
            patch.float(), new_size=list(new), old_size=list(old), num_prefix_tokens=0
        ).to(src.dtype)
        resampled = (old, new)
    out = torch.cat([cls, patch], dim=1) if target_has_cls else patch
    return out, resampled


def map_encoder_state(
    export_state: Mapping[str, torch.Tensor],
    model_state: Mapping[str, torch.Tensor],
    rules: KeyRules,
    *,
    export_has_cls: bool,
    model_has_cls: bool,
    what: str = "encoder export",
) -> tuple[dict[str, torch.Tensor], EncoderLoadReport]:
    """Map export tensors onto a ViT's state-dict keys.

    Args:
        export_state: encoder state dict in timm names (``pos_embed`` ``(1, [1+]L, D)``).
        model_state: the ViT's ``state_dict()`` (only names, shapes and dtypes are read).
        rules: what the ViT family lacks or adds (:data:`VITDET_KEYS`, :data:`CLASSIFIER_KEYS`).
        export_has_cls: the export's ``pos_embed`` starts with a cls entry.
        model_has_cls: the ViT's ``pos_embed`` starts with a cls entry.
        what: name of the export, for messages and the report.

    Returns:
        ``(state, report)``: tensors to load (ViT key names, shapes and dtypes) and the
        report (its ``missing``/``unexpected``/``mismatched`` lists name the problems).
    """
    report = EncoderLoadReport(source=what, model=rules.model)
    out: dict[str, torch.Tensor] = {}
    for key, value in export_state.items():
        if key not in model_state:
            unused = rules.unused_export_keys.match(key) or key == "pos_embed"
            (report.unused if unused else report.unexpected).append(key)
            continue
        if key == "pos_embed":
            value, report.resampled_pos_embed = fit_pos_embed(
                value, export_has_cls, model_state[key], model_has_cls, what)
        if tuple(value.shape) != tuple(model_state[key].shape):
            report.mismatched.append(
                ShapeMismatch(key, tuple(value.shape), tuple(model_state[key].shape)))
            continue
        out[key] = value.to(model_state[key].dtype)
        report.loaded.append(key)
    mismatched = {m.key for m in report.mismatched}
    for key in model_state:
        if key in out or key in mismatched:
            continue
        (report.new if rules.new_model_keys.search(key) else report.missing).append(key)
    return out, report


def prepare_encoder_state(
    export: Mapping[str, Any],
    model_state: Mapping[str, torch.Tensor],
    rules: KeyRules,
    *,
    model_has_cls: bool,
    what: str,
) -> tuple[dict[str, torch.Tensor], EncoderLoadReport]:
    """:func:`map_encoder_state` of a whole export dict: the cls entry of its
    ``pos_embed`` is read from its metadata and the report records its epoch and method.

    Args:
        export: an export dict (:mod:`dama_det.encoder_export.format`).
        model_state: the ViT's ``state_dict()``.
        rules: what the ViT family lacks or adds.
        model_has_cls: the ViT's ``pos_embed`` starts with a cls entry.
        what: name of the export, for messages and the report.

    Returns:
        ``(state, report)`` as :func:`map_encoder_state`.
    """
    state, report = map_encoder_state(
        export["model"], model_state, rules, export_has_cls=export_has_cls_position(export),
        model_has_cls=model_has_cls, what=what)
    report.pretrain_epoch = export.get("epoch")
    report.pretrain_method = export.get("method")
    return state, report
