"""The ``dama-det`` command line: one subcommand per module in this package.

Each module ``dama_det/cli/<name>.py`` defines ``register(subparsers)`` which adds its
parser(s) and sets ``func`` (called with the parsed ``argparse.Namespace``; returns an
exit status or None). Modules are discovered automatically, so a new subcommand is a
new file. Heavy imports (torch, detectron2) belong inside the ``func``, so that
``dama-det --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from ..errors import DamaUserError, ReportedError


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every discovered subcommand."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="dama-det",
        description="DAMA pretraining and Detectron2 cell instance segmentation for "
        "multiplexed immunofluorescence images.",
    )
    parser.add_argument("--version", action="version", version=f"dama-det {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``dama-det``; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except ReportedError as exc:  # its error line is already on stderr
        print(f"stopped: {exc}", file=sys.stderr)
        return 2
    except DamaUserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
