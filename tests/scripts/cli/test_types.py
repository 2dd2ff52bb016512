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
    # numbers of the right type and sign that make no sense for their meaning
    ("train", ["--n-filters", "100000"]),
    ("train", ["--learning-rate", "1e300"]),
    ("train", ["--seed", "99999999999999999999999"]),
    ("train", ["--seed", "-5"]),
    ("test", ["--seed", "-1"]),
    ("test", ["--topo-paths", "1000000000"]),
    ("predict", ["photos", "--pixel-um", "1e9"]),
    ("biomarkers", ["maps", "--csv", "o.csv", "--pixel-um", "0.001"]),
    ("benchmark", ["--sizes", "100000"]),
    ("benchmark", ["--n-filters", "5000"]),
    ("synthetic", ["--size", "100000"]),
    ("synthetic", ["--train", "100000000"]),
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


def test_bounded_numbers_say_what_makes_sense_for_their_meaning():
    assert types.n_filters("32") == 32 and types.pixel_um("25") == 25.0 and types.learning_rate("8e-4") == 8e-4
    with pytest.raises(argparse.ArgumentTypeError, match="at most 256 \\(the networks' base width"):
        types.n_filters("257")
    with pytest.raises(argparse.ArgumentTypeError, match="between 0.1 and 100 \\(micrometres per pixel"):
        types.pixel_um("150")


def test_a_model_size_too_large_to_make_sense_is_refused_before_any_work():
    from scripts.core.config import check_model_size
    from scripts.core.errors import UsageError

    assert check_model_size([4096, 16]) == (4096, 16)
    with pytest.raises(UsageError, match="--image-size 60000 60000: a model input side is at most 4096 px"):
        check_model_size([60000, 60000])
