"""argparse types for numbers and switches: a bad value is refused by argparse, which names the option
(exit code 2)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def _whole(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (argparse then names the option in its error, exit code 2)."""
    return _whole(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0."""
    return _whole(text, 0)


def boolean(text: str) -> bool:
    """argparse type: true/false, yes/no, on/off, 1/0 (any capitalisation)."""
    if text.lower() in ("1", "true", "yes", "y", "on"):
        return True
    if text.lower() in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def percent(text: str) -> float:
    """argparse type: a share in percent, 0 <= value < 100."""
    value = non_negative_float(text)
    if value >= 100:
        raise argparse.ArgumentTypeError(f"must be below 100 (a percentage of the images), got {text}")
    return value


def int_between(least: int, most: int, meaning: str) -> Callable[[str], int]:
    """argparse type: a whole number in [least, most]; ``meaning`` says why the bounds are what they are."""

    def parse(text: str) -> int:
        value = _whole(text, least)
        if value > most:
            raise argparse.ArgumentTypeError(f"must be at most {most} ({meaning}), got {value}")
        return value

    return parse


def float_between(least: float, most: float, meaning: str) -> Callable[[str], float]:
    """argparse type: a number in (least, most] when least is 0, else [least, most]."""

    def parse(text: str) -> float:
        value = positive_float(text) if least == 0 else non_negative_float(text)
        if not least <= value <= most:
            raise argparse.ArgumentTypeError(f"must be between {least:g} and {most:g} ({meaning}), got {text}")
        return value

    return parse


MAX_FILTERS = 256  # 8 times the paper's 32: a generator of that width is ~64 times the paper's size
MAX_SEED = 2**63 - 1  # what torch.manual_seed accepts
n_filters = int_between(1, MAX_FILTERS, "the networks' base width; the paper's is 32")
seed = int_between(0, MAX_SEED, "a seed for the random generators")
learning_rate = float_between(0, 1, "Adam's learning rate; the paper's is 8e-4")
pixel_um = float_between(0.1, 100, "micrometres per pixel; fundus photographs have about 2-30")
