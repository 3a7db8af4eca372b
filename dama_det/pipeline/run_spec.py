"""The run description of ``dama-det compare`` (YAML), parsed and validated.

Example (``configs/compare/synth7_cpu.yaml``)::

    name: synth7-cpu
    seeds: [0]
    dataset:
      type: synth                 # synth | folders (cellpose pairs) | coco
      n_train_tiles: 6            # synth: generator sizes
      n_val_tiles: 2
      tile_size: 256
      n_crops_per_type: 64
      label_fraction: [0.1, 1.0]  # optional: detector trained on these shares of the
                                  # training images (seeded subsets, same for every method)
    # folders: {type: folders, train: DIR, val: DIR, crop_size: 128, max_crops: 4000}
    # coco:    {type: coco, train_json: F, val_json: F, pretrain_crops: DIR}
    pretrain: {model: mini, epochs: 60, batch_size: 32, blr: 1.0e-3, args: []}
    detection: {config: quick_schedules/mask_rcnn_dama_vit_demo_cpu.yaml, iters: 1000, opts: []}
    # detection.tta: off | flip | flip-nms (test-time flips: `dama-det predict --tta`)
    methods: [random, init, redraw, mae, dama, dama-rand, dama-ema, {name: mine, weights: enc.pth},
              {name: dama-long, method: dama, pretrain: {epochs: 240}}]
    # random: detectron2's own initialisation; init: the pretraining model's untrained
    # export (same architecture, seed and loader as the pretrained ones: the null control);
    # redraw: random init with the ViT's weights drawn a second time, under seed + 1000
    # (the A/A control: what a different draw of the same initialisation alone changes);
    # classical: Otsu threshold + distance-transform watershed, no training (the floor);
    # a method's own 'pretrain' keys override the shared ones (e.g. a longer schedule)
    evaluation: {area_ranges: cells, max_dets: 1000}   # optional (these are the defaults)
    probe: {task: celltype, data: DIR, max_images: 512}  # optional: frozen-encoder probes
    # of every method's encoder (default data: synth -> the labelled crops (celltype),
    # folders -> the training image/mask pairs (dense)); see `dama-det probe`

Relative paths are resolved against the YAML file's folder.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import DamaUserError
from ..inference.options import TTA_MODES
from ..pretrain.method_registry import method_names

DATASET_TYPES = ("synth", "folders", "coco")
#: the built-in methods that are not pretraining methods
CONTROL_METHODS = ("random", "init", "redraw", "classical")
#: method ``redraw`` draws the ViT's weights under the run's seed plus this
REDRAW_SEED_OFFSET = 1000
PROBE_TASKS = ("celltype", "dense")
#: the keys each section accepts (a typo is an error, not a silently ignored setting)
DATASET_KEYS = {
    "synth": {"type", "seed", "n_train_tiles", "n_val_tiles", "tile_size", "n_crops_per_type",
              "label_fraction"},
    "folders": {"type", "train", "val", "crop_size", "max_crops", "label_fraction"},
    "coco": {"type", "train_json", "val_json", "pretrain_crops", "label_fraction"},
}
PRETRAIN_KEYS = {"model", "epochs", "batch_size", "blr", "img_size", "args"}
DETECTION_KEYS = {"config", "iters", "opts", "tta"}  # tta: one of TTA_MODES
EVALUATION_KEYS = {"area_ranges", "max_dets"}
PROBE_KEYS = {"task", "data", "max_images", "args"}
#: keys whose value must be a positive integer / a positive number / a list
_POSITIVE_INTS = {"n_train_tiles", "n_val_tiles", "tile_size", "n_crops_per_type",
                  "crop_size", "max_crops", "epochs", "batch_size", "img_size", "iters",
                  "max_dets", "max_images"}
_LISTS = {"args", "opts"}


@dataclass
class MethodSpec:
    """One compared method: random init, the untrained export, the classical baseline, a
    pretraining method, or a given export."""

    name: str
    kind: str  # "random" | "init" | "redraw" | "classical" | "pretrain" | "weights"
    method: str | None = None  # pretraining method (kind "pretrain")
    weights: Path | None = None  # encoder export (kind "weights")
    pretrain: dict[str, Any] = field(default_factory=dict)  # overrides of the shared keys


@dataclass
class RunSpec:
    """A parsed comparison description."""

    name: str
    source: Path
    seeds: list[int]
    dataset: dict[str, Any]
    pretrain: dict[str, Any]
    detection: dict[str, Any]
    methods: list[MethodSpec]
    evaluation: dict[str, Any] = field(default_factory=dict)
    label_fractions: list[float] = field(default_factory=lambda: [1.0])
    probe: dict[str, Any] | None = None  # None: no probes

    @property
    def tta(self) -> str:
        """The test-time augmentation of the predictions (``detection.tta``)."""
        return self.detection.get("tta", "off")

    def pretrain_of(self, method: MethodSpec) -> dict[str, Any]:
        """The pretraining settings of ``method``: the shared ones, its overrides on top."""
        return {**self.pretrain, **method.pretrain}


def pretrain_stage_options(section: dict[str, Any], in_chans: int) -> dict[str, Any]:
    """The ``dama-det pretrain`` options a comparison sets from a method's pretraining
    section (:meth:`RunSpec.pretrain_of`), besides the method, seed and ``args``.

    Args:
        section: the method's pretraining settings.
        in_chans: the data's channel count.

    Returns:
        ``{option: value}``; a None value is left to the command's default.
    """
    return {"model": str(section.get("model", "test")), "epochs": section.get("epochs", 30),
            "batch_size": section.get("batch_size", 32), "in_chans": in_chans,
            "img_size": section.get("img_size"), "blr": section.get("blr")}


def _fail(path: Path, key: str, msg: str) -> DamaUserError:
    return DamaUserError(f"{path}: key '{key}': {msg}")


def _path(base: Path, value: Any, path: Path, key: str) -> Path:
    if not isinstance(value, str) or not value:
        raise _fail(path, key, f"expected a path, got {value!r}")
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _section(raw: Any, allowed: set[str], path: Path, key: str) -> dict[str, Any]:
    """A mapping section with only ``allowed`` keys, values type-checked."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _fail(path, key, f"expected a mapping, got {raw!r}")
    unknown = set(raw) - allowed
    if unknown:
        raise _fail(path, f"{key}.{sorted(unknown)[0]}",
                    f"unknown key; '{key}' takes {', '.join(sorted(allowed))}")
    for k, v in raw.items():
        if k in _POSITIVE_INTS | {"seed"} and (isinstance(v, bool) or not isinstance(v, int)
                                                 or v < (0 if k == "seed" else 1)):
            kind = "non-negative" if k == "seed" else "positive"
            raise _fail(path, f"{key}.{k}", f"expected a {kind} integer, got {v!r}")
        if k in _LISTS and not isinstance(v, list):
            raise _fail(path, f"{key}.{k}", f"expected a list, got {v!r}")
        if k == "args":
            for j, arg in enumerate(v):
                if isinstance(arg, bool):  # YAML 1.1 reads off/on/no/yes as booleans
                    raise _fail(path, f"{key}.{k}[{j}]",
                                f"YAML read this value as the boolean {arg}; quote it "
                                "(e.g. \"off\") to pass it as a command-line word")
        if k == "blr" and (isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0):
            raise _fail(path, f"{key}.{k}", f"expected a positive number, got {v!r}")
    return dict(raw)


def _parse_method(item: Any, base: Path, path: Path, i: int) -> MethodSpec:
    key = f"methods[{i}]"
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, dict) or "name" not in item:
        raise _fail(path, key, "expected a method name or {name: ..., weights|method: ...}")
    name = str(item["name"])
    unknown = set(item) - {"name", "method", "weights", "pretrain"}
    if unknown:
        raise _fail(path, key, f"unknown field(s) {', '.join(sorted(unknown))}")
    if "weights" in item:
        return MethodSpec(name, "weights",
                          weights=_path(base, item["weights"], path, key + ".weights"))
    method = item.get("method", name)
    overrides = _section(item.get("pretrain"), PRETRAIN_KEYS, path, key + ".pretrain")
    if method in CONTROL_METHODS:
        if "pretrain" in item and method != "init":
            raise _fail(path, key + ".pretrain", f"method {method!r} is not pretrained")
        return MethodSpec(name, method, pretrain=overrides)
    if method not in method_names():
        raise _fail(path, key, f"unknown method {method!r}; use {', '.join(CONTROL_METHODS)}, "
                    f"{', '.join(method_names())} or give 'weights'")
    return MethodSpec(name, "pretrain", method=method, pretrain=overrides)


def _parse_probe(raw: Any, dataset: dict[str, Any], base: Path,
                 path: Path) -> dict[str, Any] | None:
    """The optional ``probe`` section, with the dataset's defaults filled in."""
    if raw is None or raw is False:
        return None
    probe = _section({} if raw is True else raw, PROBE_KEYS, path, "probe")
    dtype = dataset["type"]
    default_task = {"synth": "celltype", "folders": "dense"}.get(dtype)
    probe.setdefault("task", default_task)
    if probe["task"] not in PROBE_TASKS:
        raise _fail(path, "probe.task", f"expected one of {', '.join(PROBE_TASKS)}, got "
                    f"{probe['task']!r}")
    if "data" in probe:
        probe["data"] = _path(base, probe["data"], path, "probe.data")
        if not probe["data"].is_dir():
            raise _fail(path, "probe.data", f"{probe['data']} is not a folder")
    elif dtype == "folders" and probe["task"] == "dense":
        probe["data"] = dataset["train"]
    elif not (dtype == "synth" and probe["task"] == "celltype"):
        raise _fail(path, "probe.data", f"required for a {probe['task']} probe on a "
                    f"{dtype!r} dataset")
    return probe  # no "data" = the synthetic dataset's labelled crops


def load_run_spec(path: str | Path) -> RunSpec:
    """Read and validate a comparison description.

    Raises:
        DamaUserError: missing file, bad YAML (line named), unknown or missing keys.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise DamaUserError(f"{path}: no such run description")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise DamaUserError(
            f"{path}:{where} invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(raw, dict):
        raise DamaUserError(f"{path}: expected a mapping at the top level")
    allowed = {"name", "seeds", "dataset", "pretrain", "detection", "methods", "evaluation",
               "probe"}
    unknown = set(raw) - allowed
    if unknown:
        raise DamaUserError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("dataset", "detection", "methods"):
        if key not in raw:
            raise DamaUserError(f"{path}: missing key '{key}'")
    base = path.parent
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise _fail(path, "seeds", f"expected a non-empty list of integers, got {seeds!r}")
    dataset = raw["dataset"] or {}
    dtype = dataset.get("type") if isinstance(dataset, dict) else None
    if dtype not in DATASET_TYPES:
        raise _fail(path, "dataset.type",
                    f"expected one of {', '.join(DATASET_TYPES)}, got {dtype!r}")
    dataset = _section(dataset, DATASET_KEYS[dtype], path, "dataset")
    required = {"folders": ("train", "val"), "coco": ("train_json", "val_json", "pretrain_crops")}
    for key in required.get(dtype, ()):
        if key not in dataset:
            raise _fail(path, f"dataset.{key}", f"required for dataset type {dtype!r}")
        dataset[key] = _path(base, dataset[key], path, f"dataset.{key}")
        if not dataset[key].exists():
            raise _fail(path, f"dataset.{key}", f"{dataset[key]} does not exist")
    fractions = dataset.pop("label_fraction", [1.0])
    fractions = fractions if isinstance(fractions, list) else [fractions]
    if not fractions or not all(isinstance(f, (int, float)) and not isinstance(f, bool)
                                and 0 < f <= 1 for f in fractions):
        raise _fail(path, "dataset.label_fraction",
                    f"expected a number or list of numbers in (0, 1], got {fractions!r}")
    fractions = sorted({float(f) for f in fractions}, reverse=True)
    methods_raw = raw["methods"]
    if not isinstance(methods_raw, list) or not methods_raw:
        raise _fail(path, "methods", "expected a non-empty list")
    methods = [_parse_method(m, base, path, i) for i, m in enumerate(methods_raw)]
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise _fail(path, "methods", f"method names must be unique: {names}")
    for m in methods:
        if m.kind == "weights" and not m.weights.is_file():
            raise _fail(path, f"methods.{m.name}.weights", f"{m.weights} does not exist")
    detection = _section(raw["detection"], DETECTION_KEYS, path, "detection")
    if "config" not in detection:
        raise _fail(path, "detection.config", "required (a config path or shipped name)")
    if detection.get("tta") is False:  # YAML 1.1 reads an unquoted off as false
        detection["tta"] = "off"
    if detection.get("tta", "off") not in TTA_MODES:
        hint = " (YAML reads an unquoted on/yes as true: quote the word)" \
            if isinstance(detection["tta"], bool) else ""
        raise _fail(path, "detection.tta", f"expected one of {', '.join(TTA_MODES)}, "
                    f"got {detection['tta']!r}{hint}")
    return RunSpec(
        name=str(raw.get("name", path.stem)), source=path, seeds=list(seeds), dataset=dataset,
        pretrain=_section(raw.get("pretrain"), PRETRAIN_KEYS, path, "pretrain"),
        detection=detection, methods=methods,
        evaluation=_section(raw.get("evaluation"), EVALUATION_KEYS, path, "evaluation"),
        label_fractions=fractions, probe=_parse_probe(raw.get("probe"), dataset, base, path),
    )
