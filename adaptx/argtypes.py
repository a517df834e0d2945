"""argparse types shared by adaptx's commands (``adaptx reddi``, ``adaptx parity-run``).

Each turns one command-line string into a value or raises ``argparse.ArgumentTypeError``, which argparse
reports as ``argument --NAME: MESSAGE``: numbers are written as users write them (``1e6``,
``1_000_000``), and NaN, infinities and values out of range are refused with the range in the message.

Example:
  >>> from adaptx.argtypes import floats, integer, names
  >>> integer(1, 10**7)("1e6"), floats("1e-2,1e-3"), names(["adam", "sgd"], "optimizer")("sgd,adam")
  (1000000, [0.01, 0.001], ['sgd', 'adam'])
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation


def floats(text: str) -> list[float]:
    """``"1e-2,1e-3"`` -> ``[0.01, 0.001]``: one finite number or comma-separated finite numbers."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        msg = f"expected a number or comma-separated numbers, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not values or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers, got {text!r}")
    return values


def finite(text: str) -> float:
    """One finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive(text: str) -> float:
    """One finite number above 0."""
    try:
        value = finite(text)
    except argparse.ArgumentTypeError:
        value = None
    if value is None or not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def integer(low: int, high: int) -> Callable[[str], int]:
    """A type for whole numbers in ``[low, high]``, written as users write them: ``1000000``,
    ``1_000_000``, ``1e6`` or ``1E6``; ``2.5``, ``2.5e0`` and ``1e-3`` are refused alike (not whole
    numbers), as are NaN, infinities and values out of range.

    Example:
      >>> from adaptx.argtypes import integer
      >>> integer(1, 10**7)("1e6"), integer(1, 10**7)("1_000_000")
      (1000000, 1000000)
    """
    kind = "a positive integer" if low == 1 else f"an integer from {low:,}"

    def parse(text: str) -> int:
        try:
            value = Decimal(text.strip())
        except InvalidOperation:
            value = None
        if value is None or not value.is_finite() or value != value.to_integral_value():
            msg = f"expected {kind} (such as 1000, 1e6 or 1_000_000), got {text!r}"
            raise argparse.ArgumentTypeError(msg)
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}")
        # a huge exponent (1e400) is refused by its size before int() builds the number
        if value.adjusted() > len(str(high)) or int(value) > high:
            raise argparse.ArgumentTypeError(f"expected {kind} of at most {high:,}, got {text!r}")
        return int(value)

    parse.__name__ = "integer"  # argparse names the type in some messages
    return parse


def names(choices: Sequence[str], what: str) -> Callable[[str], list[str]]:
    """A type for a comma-separated list of ``choices`` (or ``all``), each once, in the order given;
    ``what`` names one choice in the message (``unknown optimizer sgdx; choose from ...``)."""

    def parse(text: str) -> list[str]:
        given = [v.strip() for v in text.split(",") if v.strip()]
        if given == ["all"]:
            return list(choices)
        bad = [n for n in given if n not in choices]
        if bad or not given:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(bad) or repr(text)}; choose from {', '.join(choices)} (or all)"
            )
        return list(dict.fromkeys(given))

    return parse
