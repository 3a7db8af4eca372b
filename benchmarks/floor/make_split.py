"""Split DSB2018 *train* into a fit part and a held-out part (symlinks), so that detector
choices (schedule length, mask head, training scale) are made without touching val.

    python benchmarks/floor/make_split.py --out benchmarks/floor/dsb_split
    dama-det compare benchmarks/floor/f1_600.yaml --out outputs/floor/f1_600

The split is fixed by ``--seed`` (Python's ``random.Random(seed).shuffle`` of the sorted
image stems; the first ``--held`` stems are held out): seed 0 / 72 held gives the
289 / 72 split the floor study ran on.
"""
from __future__ import annotations

import argparse
import random
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, default=REPO.parent / "shared/data/dsb2018/train",
                        help="folder of image.tif + image_masks.tif pairs")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "dsb_split",
                        help="creates OUT/fit and OUT/held")
    parser.add_argument("--held", type=int, default=72, help="images held out")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    stems = sorted(p.name[:-4] for p in args.train.glob("*.tif")
                   if not p.name.endswith("_masks.tif"))
    if len(stems) <= args.held:
        parser.error(f"{args.train}: {len(stems)} images, cannot hold out {args.held}")
    random.Random(args.seed).shuffle(stems)
    held = set(stems[: args.held])
    for part in ("fit", "held"):
        (args.out / part).mkdir(parents=True, exist_ok=True)
    for stem in stems:
        part = "held" if stem in held else "fit"
        for suffix in (".tif", "_masks.tif"):
            link = args.out / part / f"{stem}{suffix}"
            if not link.exists():
                link.symlink_to((args.train / f"{stem}{suffix}").resolve())
    print(f"{args.out}: fit {len(stems) - len(held)}, held {len(held)} images")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
