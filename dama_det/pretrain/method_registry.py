"""The registry of pretraining methods (imports no torch, so ``--help`` stays fast).

A pretraining method is one :class:`PretrainMethod`: its name, a one-line help and the
few choices in which methods differ. :class:`~dama_det.pretrain.dama.DAMAPretrainer`
reads those choices; ``dama-det pretrain --method`` (choices and ``--help``) and the
compare YAML's method list read the names. Registering a method is therefore the
one step that adds it everywhere::

    register_method(PretrainMethod("dama-norecon", "DAMA without ...", second_mask="adaptive"))

The built-in methods are registered at the bottom of this module.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import DamaUserError

SecondMask = Literal["adaptive", "random"]
SECOND_MASKS: tuple[str, ...] = ("adaptive", "random")


@dataclass(frozen=True)
class PretrainMethod:
    """What one pretraining method does, as :class:`DAMAPretrainer` runs it.

    Attributes:
        name: the ``--method`` value.
        help: one line for ``--help`` and error messages.
        second_mask: the mask of student 2: ``"adaptive"`` (from student 1's mask and
            per-patch loss, :func:`masking.adaptive_mask`), ``"random"``, or None for
            one student only (MAE).
        ema_teacher: student 2 is an exponential moving average of student 1 (no
            gradient, its reconstruction loss not in the total) instead of a second
            student trained by gradient.
        regression: student 1's projection head regresses student 2's features.
    """

    name: str
    help: str
    second_mask: SecondMask | None = None
    ema_teacher: bool = False
    regression: bool = False

    def __post_init__(self) -> None:
        if not self.name or any(c.isspace() for c in self.name):
            raise ValueError(f"method name must be one word, got {self.name!r}")
        if self.second_mask is not None and self.second_mask not in SECOND_MASKS:
            raise ValueError(f"method {self.name!r}: second_mask must be one of "
                             f"{', '.join(SECOND_MASKS)} or None, got {self.second_mask!r}")
        if self.second_mask is None and (self.ema_teacher or self.regression):
            raise ValueError(f"method {self.name!r}: ema_teacher and regression need a "
                             "second student (a second_mask)")

    @property
    def two_students(self) -> bool:
        """Whether the method has a student 2."""
        return self.second_mask is not None


_METHODS: dict[str, PretrainMethod] = {}


def register_method(method: PretrainMethod) -> PretrainMethod:
    """Add ``method`` to the registry.

    Args:
        method: the method; its name must not be registered yet.

    Returns:
        ``method`` (so a module can keep it under a name).

    Raises:
        ValueError: a method of that name is already registered.
    """
    if method.name in _METHODS:
        raise ValueError(f"pretraining method {method.name!r} is already registered")
    _METHODS[method.name] = method
    return method


def unregister_method(name: str) -> None:
    """Remove the method ``name`` (a no-op if it is not registered)."""
    _METHODS.pop(name, None)


def method_names() -> tuple[str, ...]:
    """The registered method names, sorted."""
    return tuple(sorted(_METHODS))


def get_method(name: str) -> PretrainMethod:
    """The registered method ``name``.

    Raises:
        DamaUserError: no such method (the message lists the registered ones).
    """
    try:
        return _METHODS[name]
    except KeyError:
        raise DamaUserError(
            f"unknown method {name!r}; choose one of {', '.join(method_names())}") from None


def methods_help() -> str:
    """One ``name: help`` phrase per registered method, joined by ``; ``."""
    return "; ".join(f"{name}: {_METHODS[name].help}" for name in method_names())


register_method(PretrainMethod(
    "mae", "one student, random mask, reconstruction loss"))
register_method(PretrainMethod(
    "dama", "two students, student 2's mask adaptive to student 1's loss, feature regression",
    second_mask="adaptive", regression=True))
register_method(PretrainMethod(
    "dama-rand", "as dama with a random second mask",
    second_mask="random", regression=True))
register_method(PretrainMethod(
    "dama-ema", "as dama with student 2 an EMA teacher of student 1",
    second_mask="adaptive", ema_teacher=True, regression=True))
