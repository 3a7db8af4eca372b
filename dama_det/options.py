"""Typed options of a stage, derived from its ``dama-det`` subcommand's parser.

Every stage (``data synth``, ``pretrain``, ``train``, ``predict``, ...) has one options
dataclass, declared next to the stage with :func:`stage_options`, and one entry function
taking it. The subcommand parses its command line into the dataclass
(:meth:`StageOptions.from_namespace`) and calls that function; ``dama-det demo`` and
``dama-det compare`` build the dataclass directly and call the same function.

The parser is the one source of truth: the dataclass's fields are the parser's
destinations (checked when the class is created) and their defaults are the parser's
(after argparse's conversion of string defaults). :meth:`StageOptions.validate` repeats
the parser's checks (choices, the value types below, required values) for options built
in Python, :meth:`StageOptions.argv` renders the equivalent command line for the log,
and :meth:`StageOptions.with_args` applies further command-line flags (a run
description's free-form ``args``) on top. This module imports nothing heavy.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import shlex
from typing import Any, Callable, ClassVar, Sequence, TypeVar

from .errors import DamaUserError

T = TypeVar("T", bound="StageOptions")
AddArguments = Callable[[argparse.ArgumentParser], Any]

#: argparse ``type=`` functions that check a value's range; :meth:`StageOptions.validate`
#: runs them on the values of options built in Python (see :func:`value_check`).
_VALUE_CHECKS: set[Callable[[str], Any]] = set()


def value_check(fn: Callable[[str], Any]) -> Callable[[str], Any]:
    """Mark an argparse ``type=`` function as a check that typed options repeat: it must
    accept ``str(value)`` of every value it returns."""
    _VALUE_CHECKS.add(fn)
    return fn


@value_check
def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


@value_check
def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


@value_check
def fraction(text: str) -> float:
    """argparse type: a float in [0, 1]."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value}")
    return value


@value_check
def non_negative_float(text: str) -> float:
    """argparse type: a finite float >= 0."""
    value = float(text)
    if not 0.0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


class _RaisingParser(argparse.ArgumentParser):
    """A parser whose errors raise :class:`DamaUserError` instead of exiting."""

    def error(self, message: str):
        raise DamaUserError(f"{self.prog}: {message}")


def _flag(action: argparse.Action) -> str:
    return action.option_strings[0] if action.option_strings else action.metavar or action.dest


def _required(action: argparse.Action) -> bool:
    """Whether the command line must give the option (a positional that may match
    nothing, e.g. a ``KEY VALUE`` remainder, need not)."""
    empty_ok = not action.option_strings and action.nargs in ("?", "*", argparse.REMAINDER)
    return action.required and not empty_ok


def _converted_default(action: argparse.Action) -> Any:
    """The value argparse gives an option left out (string defaults go through ``type``;
    a positional list that matched nothing is empty)."""
    default = action.default
    if default is None and not action.option_strings \
            and action.nargs in ("*", argparse.REMAINDER):
        return []
    if isinstance(default, str) and callable(action.type):
        return action.type(default)
    return default


def _convert(action: argparse.Action, text: str) -> Any:
    try:
        return action.type(text)
    except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
        name = getattr(action.type, "__name__", "")
        detail = str(exc) if isinstance(exc, argparse.ArgumentTypeError) else \
            f"invalid {name} value: {text!r}"
        raise DamaUserError(f"argument {_flag(action)}: {detail}") from None


class StageOptions:
    """Base of the options dataclasses made by :func:`stage_options`."""

    #: the subcommand, e.g. ``("data", "synth")``
    COMMAND: ClassVar[tuple[str, ...]] = ()
    #: renders a field's value as command-line text where ``str`` does not
    FORMAT: ClassVar[dict[str, Callable[[Any], str]]] = {}
    _add_arguments: ClassVar[AddArguments]

    # ---- the parser -----------------------------------------------------------
    @classmethod
    def parser(cls, raising: bool = False) -> argparse.ArgumentParser:
        """A stand-alone parser with the subcommand's options (``raising``: errors raise
        :class:`DamaUserError` instead of exiting)."""
        kind = _RaisingParser if raising else argparse.ArgumentParser
        parser = kind(prog=" ".join(("dama-det", *cls.COMMAND)), add_help=False)
        cls._add_arguments(parser)
        return parser

    @classmethod
    def _actions(cls, parser: argparse.ArgumentParser | None = None) -> list[argparse.Action]:
        parser = parser or cls.parser()
        return [a for a in parser._actions if a.dest not in (argparse.SUPPRESS, "help")
                and a.default is not argparse.SUPPRESS]

    @classmethod
    def options_named(cls, argv: Sequence[Any]) -> set[str]:
        """The options a command line's flags set (``['--patch-size', 8]`` ->
        ``{'patch_size'}``); a flag's abbreviation or an unknown flag names none."""
        by_flag = {flag: a.dest for a in cls._actions() for flag in a.option_strings}
        return {by_flag[flag] for arg in map(str, argv)
                if (flag := arg.split("=", 1)[0]) in by_flag}

    @classmethod
    def parser_defaults(cls) -> dict[str, Any]:
        """``{field: default}`` of the options the command line may leave out."""
        return {a.dest: _converted_default(a) for a in cls._actions() if not _required(a)}

    def __post_init__(self) -> None:
        """Convert text values as the command line converts them (a run description may
        give ``blr: "1e-3"``), so that a typed value means what its flag means; a fixed
        number of values (``--crop-scale MIN MAX``) becomes a tuple.

        Raises:
            DamaUserError: a text argparse would refuse, named by its flag.
        """
        for action in self._actions():
            value = getattr(self, action.dest)
            if isinstance(action.nargs, int) and isinstance(value, list):
                value = tuple(value)  # a fixed number of values (argparse gives a list)
                setattr(self, action.dest, value)
            if not callable(action.type) or action.type is str:
                continue
            if isinstance(value, str):
                setattr(self, action.dest, _convert(action, value))
            elif isinstance(value, (list, tuple)) and any(isinstance(v, str) for v in value):
                setattr(self, action.dest, type(value)(
                    _convert(action, v) if isinstance(v, str) else v for v in value))

    # ---- construction -----------------------------------------------------------
    @classmethod
    def from_namespace(cls: type[T], args: argparse.Namespace) -> T:
        """The options of parsed arguments (other attributes, e.g. ``func``, ignored)."""
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})

    @classmethod
    def of(cls: type[T], args: T | argparse.Namespace) -> T:
        """``args`` as options: options are returned as they are, a namespace converted."""
        return args if isinstance(args, cls) else cls.from_namespace(args)

    @classmethod
    def from_argv(cls: type[T], argv: Sequence[str]) -> T:
        """Parse a command line (without ``dama-det <command>``).

        Raises:
            DamaUserError: a flag the subcommand does not know or a bad value, named.
        """
        return cls.from_namespace(cls.parser(raising=True).parse_args([str(a) for a in argv]))

    def replace(self: T, **changes: Any) -> T:
        """A copy with ``changes``.

        Raises:
            DamaUserError: a name that is not an option of this stage.
        """
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise DamaUserError(f"dama-det {' '.join(self.COMMAND)} has no option "
                                f"{', '.join(map(repr, unknown))}")
        return dataclasses.replace(self, **changes)

    def with_args(self: T, argv: Sequence[str]) -> T:
        """A copy with further command-line flags applied on top (a run description's
        free-form ``args``); positional arguments cannot be given this way.

        Raises:
            DamaUserError: a flag the subcommand does not know or a bad value, named.
        """
        argv = [str(a) for a in argv]
        if not argv:
            return self
        parser = self.parser(raising=True)
        positionals = [a for a in self._actions(parser) if not a.option_strings]
        for action in self._actions(parser):
            action.required = False
        for group in parser._mutually_exclusive_groups:
            group.required = False
        for action in positionals:
            action.nargs, action.default = "*", None
        namespace = argparse.Namespace(**{f.name: copy.copy(getattr(self, f.name))
                                          for f in dataclasses.fields(self)})
        namespace = parser.parse_args(argv, namespace=namespace)
        for action in positionals:
            value = getattr(namespace, action.dest)
            if isinstance(value, list) and value:
                raise DamaUserError(f"{parser.prog} {shlex.join(argv)}: unexpected "
                                    f"argument(s) {' '.join(value)}")
            setattr(namespace, action.dest, getattr(self, action.dest))
        return type(self).from_namespace(namespace)

    # ---- checks and rendering ---------------------------------------------------------
    def validate(self: T) -> T:
        """Repeat the parser's checks: required values, choices and :func:`value_check`
        types; returns the options.

        Raises:
            DamaUserError: the first bad value, worded as argparse words it.
        """
        for action in self._actions():
            value = getattr(self, action.dest)
            flag = _flag(action)
            if _required(action) and (value is None or value == []):
                raise DamaUserError(f"the following arguments are required: {flag}")
            if value is None:
                continue
            many = isinstance(value, (list, tuple)) and action.nargs not in (None, "?")
            for item in value if many else [value]:
                if action.choices is not None and item not in action.choices:
                    choices = ", ".join(map(repr, action.choices))
                    raise DamaUserError(f"argument {flag}: invalid choice: {item!r} "
                                        f"(choose from {choices})")
                if action.type in _VALUE_CHECKS:
                    try:
                        action.type(str(item))
                    except (argparse.ArgumentTypeError, ValueError) as exc:
                        raise DamaUserError(f"argument {flag}: {exc}") from None
        self.check()
        return self

    def check(self) -> None:
        """Checks of several options together (a stage's own; none by default)."""

    def _texts(self, action: argparse.Action, value: Any) -> list[str]:
        if action.dest in self.FORMAT:
            return [self.FORMAT[action.dest](value)]
        if isinstance(value, (list, tuple)) and action.nargs not in (None, "?"):
            return [str(v) for v in value]
        return [str(value)]

    def argv(self) -> list[str]:
        """The command line (without ``dama-det <command>``) that gives these options:
        positional arguments, the options that differ from their defaults, then a
        ``KEY VALUE`` remainder."""
        positional: list[str] = []
        optional: list[str] = []
        remainder: list[str] = []
        for action in self._actions():
            value = getattr(self, action.dest)
            if not action.option_strings:
                if action.nargs == argparse.REMAINDER:
                    remainder = [str(v) for v in value or []]
                else:
                    positional += self._texts(action, value)
                continue
            if not _required(action) and value == _converted_default(action):
                continue
            if action.nargs == 0:  # store_true / store_false / store_const
                if value == action.const:
                    optional.append(action.option_strings[0])
                continue
            if value is None and action.dest not in self.FORMAT:
                continue
            optional += [action.option_strings[0], *self._texts(action, value)]
        return positional + optional + remainder

    def command_line(self) -> str:
        """``dama-det <command> ...``: the command that repeats this stage by hand."""
        return shlex.join(["dama-det", *self.COMMAND, *self.argv()])


def stage_options(*command: str, arguments: AddArguments) -> Callable[[type[T]], type[T]]:
    """Class decorator: a keyword-only dataclass of ``command``'s options.

    The class declares one annotated field per option of the parser that ``arguments``
    fills (no defaults: they are read from the parser); options the command line
    requires stay required.

    Args:
        command: the subcommand, e.g. ``"data", "synth"``.
        arguments: adds the options to a parser (what the subcommand's parser uses).

    Raises:
        TypeError: the fields and the parser's options differ (names listed).
    """

    def wrap(cls: type[T]) -> type[T]:
        cls.COMMAND, cls._add_arguments = tuple(command), staticmethod(arguments)
        own = [n for n, t in cls.__dict__.get("__annotations__", {}).items()
               if "ClassVar" not in str(t)]
        actions = {a.dest: a for a in cls._actions()}
        if set(own) != set(actions):
            raise TypeError(f"{cls.__name__}: fields without an option: "
                            f"{sorted(set(own) - set(actions))}; options without a field: "
                            f"{sorted(set(actions) - set(own))}")
        for name in own:
            action = actions[name]
            if _required(action):
                continue
            default = _converted_default(action)
            if isinstance(default, (list, dict, set)):
                setattr(cls, name, dataclasses.field(
                    default_factory=lambda d=default: copy.deepcopy(d)))
            else:
                setattr(cls, name, default)
        return dataclasses.dataclass(kw_only=True)(cls)

    return wrap
