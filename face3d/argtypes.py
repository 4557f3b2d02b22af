"""argparse value types shared by the ``face3d`` command and the scripts.

A bad value becomes argparse's own one-line usage error (exit status 2), before anything loads.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


def float_in(
    low: float | None = None, high: float | None = None, *, open_low: bool = False
) -> Callable[[str], float]:
    """A ``type=`` for one number in ``[low, high]`` (``(low, high]`` with ``open_low``); either
    bound may be None.

    >>> float_in(0, 1)("0.5")
    0.5
    """

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        too_low = low is not None and (value <= low if open_low else value < low)
        if too_low or (high is not None and value > high):
            bracket = "(" if open_low or low is None else "["
            lo = "-inf" if low is None else f"{low:g}"
            hi = "inf" if high is None else f"{high:g}"
            raise argparse.ArgumentTypeError(f"{value:g} is outside {bracket}{lo}, {hi}]")
        return value

    return parse


def float_list(
    low: float | None = None, high: float | None = None, *, open_low: bool = False
) -> Callable[[str], list[float]]:
    """A ``type=`` for a comma list of numbers, each as :func:`float_in` checks it.

    >>> float_list(0, 1)("0,0.5,1")
    [0.0, 0.5, 1.0]
    """
    one = float_in(low, high, open_low=open_low)

    def parse(text: str) -> list[float]:
        values = [one(v) for v in text.split(",") if v.strip()]
        if not values:
            raise argparse.ArgumentTypeError("expected at least one number")
        return values

    return parse


def int_at_least(low: int | None) -> Callable[[str], int]:
    """A ``type=`` for an integer >= ``low`` (any integer when ``low`` is None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if low is not None and value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


def int_list(low: int | None = None) -> Callable[[str], list[int]]:
    """A ``type=`` for a comma list of integers, each >= ``low`` (when given).

    >>> int_list(0)("4,5,5")
    [4, 5, 5]
    """
    one = int_at_least(low)

    def parse(text: str) -> list[int]:
        values = [one(v.strip()) for v in text.split(",") if v.strip()]
        if not values:
            raise argparse.ArgumentTypeError("expected at least one integer")
        return values

    return parse
