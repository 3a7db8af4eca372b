"""What a comparison's (or the demo's) stored outputs were made with, so a changed
description is not silently mixed with them.

``dama-det compare`` skips every stage whose outputs exist. That lets a stopped run
continue and a method added later run alone, but a description edited in place (another
detector schedule, other data, another pretraining length for ``dama``) would reuse the
old detectors and report them under the new settings. ``settings.json`` in the output
folder records, per method, every setting its outputs depend on: the shared sections
(dataset without ``label_fraction``, pretraining, detection without ``tta``, evaluation,
probes), the method's own definition, and what its outputs take from the installed code
and config files (``code``: the pretraining command's defaults, the model size, the
detector config as it resolves; :mod:`.code_settings`), so that an upgrade or an edited
config file is named too. Seeds, label fractions and test-time augmentation write to
their own folders, so adding them changes no stored output and is not recorded; nor is
adding a method or a ``probe`` section (a record without ``code``, from an older dama_det,
is taken as made with today's code and completed; a recorded code setting that today's
record lacks, such as a default the description now sets itself, is not compared).
``dama-det demo`` records its preset's sizes and seed the same way (``--controls`` added
later is fine). With ``--force`` a changed entry is recorded only when the run has
finished, so a forced run stopped half way still refuses a plain continuation.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from ..errors import DamaUserError
from ..utils.io import atomic_write_bytes
from .code_settings import code_settings
from .run_spec import MethodSpec, RunSpec, pretrain_stage_options

SETTINGS_FILE = "settings.json"
#: keys that name their own output folders (adding one leaves every stored output valid)
_ADDITIVE = {"dataset": {"label_fraction"}, "detection": {"tta"}}


def _plain(value: Any) -> Any:
    """``value`` as JSON gives it back (paths as strings, tuples as lists)."""
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def method_settings(spec: RunSpec, method: MethodSpec) -> dict[str, Any]:
    """Every setting ``method``'s outputs in a comparison of ``spec`` depend on.

    Returns:
        A JSON-plain mapping: ``dataset`` and ``evaluation``; ``detection`` (not for
        ``classical``, which trains nothing); ``pretrain`` (the method's, overrides
        applied) for pretrained methods and ``init``; ``probe`` for methods with an
        encoder; ``method`` (kind, pretraining method, given weights); ``code``
        (:func:`~.code_settings.code_settings` of the pretraining and detection it uses).

    Raises:
        DamaUserError: the detection config is not found or does not read.
    """
    kind = method.kind
    settings: dict[str, Any] = {
        name: {k: v for k, v in getattr(spec, name).items() if k not in _ADDITIVE.get(name, ())}
        for name in ("dataset", "evaluation") + (("detection",) if kind != "classical" else ())}
    if kind in ("pretrain", "init"):
        settings["pretrain"] = spec.pretrain_of(method)
    if kind in ("pretrain", "init", "weights"):
        settings["probe"] = spec.probe
    settings["method"] = {"kind": kind, "method": method.method, "weights": method.weights}
    settings["code"] = code_settings(settings.get("pretrain"), settings.get("detection"),
                                     _pretrain_given(settings.get("pretrain")))
    return _plain(settings)


def _pretrain_given(pretrain: dict[str, Any] | None) -> set[str]:
    """The pretraining options a comparison sets itself for a method with the pretraining
    section ``pretrain`` (besides its ``args``): the method and those of
    :func:`.pretrain_stage_options` it gives a value (the channel count always)."""
    if pretrain is None:
        return set()
    return {"method", *(k for k, v in pretrain_stage_options(pretrain, in_chans=1).items()
                        if v is not None)}


def _differences(old: Any, new: Any, key: str) -> list[str]:
    """``key.sub: old -> new`` for every leaf where ``old`` and ``new`` differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new), key=str)
                for d in _differences(old.get(k), new.get(k), f"{key}.{k}")]
    return [] if old == new else [f"{key}: {old!r} -> {new!r}"]


def _within(old: Any, new: Any) -> Any:
    """``old`` without the keys that ``new`` lacks, at every depth."""
    if isinstance(old, dict) and isinstance(new, dict):
        return {k: _within(v, new[k]) for k, v in old.items() if k in new}
    return old


def _write(path: Path, recorded: dict[str, Any]) -> None:
    atomic_write_bytes(path, (json.dumps({"made_with": recorded}, indent=1, sort_keys=True)
                              + "\n").encode())


def check_and_record(out: Path, current: dict[str, dict[str, Any]],
                     force: bool = False) -> Callable[[], None]:
    """Refuse to continue in ``out`` where a recorded entry (a method, the demo) differs
    from ``current``; record the new and unchanged entries now (atomically).

    Entries that ``force`` lets change keep their old record until the returned function
    is called, once every stage has been redone: a forced run stopped half way leaves
    old outputs behind, and the next run without ``force`` is then refused, not mixed.

    Args:
        out: the output folder (``out/settings.json``).
        current: entry name -> every setting that entry's outputs depend on.
        force: every stage is redone, so changed settings are allowed.

    Returns:
        A function that records every entry of ``current``; call it when the run is done.

    Raises:
        DamaUserError: an entry was recorded with other settings (each changed key named,
            old and new value), unless ``force``; ``settings.json`` is unreadable.
    """
    path = out / SETTINGS_FILE
    recorded: dict[str, Any] = {}
    if path.exists():
        try:
            recorded = json.loads(path.read_text())["made_with"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DamaUserError(f"{path}: not a settings record of dama-det ({exc}); "
                                "remove it or use another output folder") from None
    current = _plain(current)
    changed: dict[str, tuple[list[str], list[str]]] = {}  # name -> (description, code)
    for name, settings in current.items():
        before = dict(recorded.get(name, settings))
        if "probe" in settings and before.get("probe") is None:  # probes added later
            before["probe"] = settings["probe"]  # write new files only
        if "code" in settings and "code" not in before:  # recorded before dama_det did
            before["code"] = settings["code"]  # taken as unchanged, recorded from now on
        elif "code" in settings:  # a default the run now sets itself no longer shapes it
            before["code"] = _within(before["code"], settings["code"])
        own = _differences({k: v for k, v in before.items() if k != "code"},
                           {k: v for k, v in settings.items() if k != "code"}, name)
        code = _differences(before.get("code"), settings.get("code"), f"{name}.code")
        if own or code:
            changed[name] = (own, code)
    if changed and not force:  # the description's own keys first, then the code's
        listed = [d for part in (0, 1) for diffs in changed.values() for d in diffs[part]]
        shown = "; ".join(listed[:6]) + (f"; and {len(listed) - 6} more" if len(listed) > 6
                                         else "")
        raise DamaUserError(
            f"{out} holds outputs made with other settings ({shown}); continuing would mix "
            "them with this run's: use another output folder (--out), or --force to redo "
            "every stage")
    _write(path, {**recorded, **{k: v for k, v in current.items() if k not in changed}})

    def record_all() -> None:
        _write(path, {**recorded, **current})

    return record_all


def check_and_record_settings(out: Path, spec: RunSpec,
                              force: bool = False) -> Callable[[], None]:
    """:func:`check_and_record` for a comparison: one entry per method of ``spec``
    (:func:`method_settings`).

    Args:
        out: the comparison's output folder.
        spec: the description about to run.
        force: every stage is redone, so changed settings are allowed.

    Returns:
        The function that records every method's settings once the run is done.

    Raises:
        DamaUserError: ``out`` holds outputs of one of ``spec``'s methods made with other
            settings (each changed key named, old and new value), unless ``force``.
    """
    return check_and_record(out, {m.name: method_settings(spec, m) for m in spec.methods}, force)
