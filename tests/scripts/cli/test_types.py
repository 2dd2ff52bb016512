"""Every number a user types is checked where it enters: argparse names the option, exit code 2."""

from __future__ import annotations

import argparse

import pytest

from scripts.cli import types

BAD_NUMBERS = [
    ("train", ["--time-limit", "-5"]),
    ("train", ["--time-limit", "abc"]),
    ("train", ["--learning-rate", "0"]),
    ("train", ["--learning-rate", "nan"]),
    ("train", ["--alpha", "-1"]),
    ("train", ["--validation", "100"]),
    ("train", ["--validation", "nan"]),
    ("train", ["--image-size", "0", "64"]),
    ("train", ["--time-limit", "inf"]),
    ("test", ["--image-size", "-16", "64"]),
    ("test", ["--min-segment-length", "0"]),
    ("test", ["--crossing-radius", "-2"]),
    ("evaluate", ["--pred", "p", "--dataset", "D", "--crossing-radius", "x"]),
    ("predict", ["photos", "--pixel-um", "-25"]),
    ("predict", ["photos", "--pixel-um", "0"]),
    ("biomarkers", ["maps", "--csv", "o.csv", "--pixel-um", "0"]),
    ("benchmark", ["--reps", "0"]),
    ("benchmark", ["--budget-s", "-1"]),
    ("benchmark", ["--nproc", "0"]),
    ("export", ["--checkpoint", "c.pt", "--out", "o.onnx", "--opset", "0"]),
]


@pytest.mark.parametrize("name, argv", BAD_NUMBERS)
def test_bad_numbers_are_refused_naming_the_option(name, argv, capsys):
    import importlib

    with pytest.raises(SystemExit) as done:
        importlib.import_module(f"scripts.{name}").main(argv)
    err = capsys.readouterr().err
    option = next(
        a for a in argv if a.startswith("--") and a not in ("--pred", "--dataset", "--csv", "--checkpoint", "--out")
    )
    assert done.value.code == 2 and f"argument {option}" in err, err


def test_number_types_accept_what_they_should():
    assert types.non_negative_float("0") == 0.0 and types.percent("10") == 10.0
    assert types.positive_float("2.5") == 2.5
    for bad in ("-1", "nan", "inf"):
        with pytest.raises(argparse.ArgumentTypeError):
            types.non_negative_float(bad)
