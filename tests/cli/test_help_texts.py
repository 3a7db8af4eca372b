"""``--help`` of every subcommand (and of ``data``'s sub-subcommands): lists its options
and shows defaults only where they say something (no "(default: None)" or "(default:
False)" after a help text that already says what happens without the option)."""
from __future__ import annotations

import argparse

import pytest

from dama_det.cli import build_parser
from dama_det.cli._args import DefaultsHelpFormatter, HelpFormatter


def _subparsers(parser: argparse.ArgumentParser, prefix: str = ""):
    """``(name, parser)`` of every subcommand below ``parser``, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                full = f"{prefix} {name}".strip()
                yield full, sub
                yield from _subparsers(sub, full)


SUBCOMMANDS = dict(_subparsers(build_parser()))


def test_every_subcommand_is_walked():
    for name in ("train", "predict", "eval", "pretrain", "export", "compare", "demo",
                 "classify", "classical", "probe", "plot", "data", "data to-coco",
                 "data from-coco"):
        assert name in SUBCOMMANDS, name


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_help_shows_no_empty_defaults(name):
    text = SUBCOMMANDS[name].format_help()
    assert "usage: " in text and "-h, --help" in text
    assert "(default: None)" not in text, name
    assert "(default: False)" not in text, name


def test_formatters_show_real_defaults_and_hide_empty_ones():
    for formatter in (DefaultsHelpFormatter, HelpFormatter):
        p = argparse.ArgumentParser(prog="x", formatter_class=formatter)
        p.add_argument("--out", default=None, help="output folder (default: next to the input)")
        p.add_argument("--force", action="store_true", help="overwrite")
        p.add_argument("--size", type=int, default=256, help="window size")
        text = " ".join(p.format_help().split())
        assert "output folder (default: next to the input) " in text + " "
        assert "(default: None)" not in text and "(default: False)" not in text
        assert "window size (default: 256)" in text


def test_compare_help_names_its_default_output_folder_once():
    text = " ".join(SUBCOMMANDS["compare"].format_help().split())
    assert text.count("(default:") == 2  # --out (outputs/compare_<name>) and --device (auto)
    assert "output folder (default: outputs/compare_<name>)" in text
    assert "(default: auto)" in text
