"""Device, worker and mixed-precision choices shared by the entry points."""
from __future__ import annotations

import argparse

import pytest
import torch

from scripts.core import runtime
from scripts.core.runtime import UsageError, resolve_amp, resolve_device, resolve_workers


def test_auto_device_is_cpu_without_accelerators(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")


def test_auto_device_prefers_mps_when_it_is_there(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")


@pytest.mark.parametrize("name, message", [("gpu", "not a device name"), ("mps", "no MPS backend")])
def test_bad_or_absent_devices_are_usage_errors(name, message, monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(UsageError, match=message):
        resolve_device(name)


@pytest.mark.parametrize("value, device, expected", [("3", "cpu", 3), ("0", "cuda", 0), ("auto", "cpu", 0)])
def test_workers(value, device, expected):
    assert resolve_workers(value, torch.device(device)) == expected


def test_auto_workers_on_a_gpu_machine_follow_the_cores(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_count", lambda: 16)
    assert resolve_workers("auto", torch.device("cuda")) == 8
    monkeypatch.setattr(runtime, "cpu_count", lambda: 2)
    assert resolve_workers("auto", torch.device("cuda")) == 1


@pytest.mark.parametrize("value", ["-1", "two"])
def test_bad_worker_counts(value):
    with pytest.raises(UsageError, match="--workers"):
        resolve_workers(value, torch.device("cpu"))


def test_amp_values():
    cpu = torch.device("cpu")
    assert resolve_amp(None, cpu) is None and resolve_amp("off", cpu) is None and resolve_amp("bf16", cpu) == "bf16"
    with pytest.raises(UsageError, match="fp16 needs a CUDA GPU"):
        resolve_amp("fp16", cpu)


# --- every number a user types is checked where it enters (argparse names the option, exit 2) ----

BAD_NUMBERS = [
    ("train", ["--time-limit", "-5"]), ("train", ["--time-limit", "abc"]), ("train", ["--learning-rate", "0"]),
    ("train", ["--learning-rate", "nan"]),
    ("train", ["--alpha", "-1"]), ("train", ["--validation", "100"]), ("train", ["--validation", "nan"]),
    ("train", ["--image-size", "0", "64"]), ("train", ["--time-limit", "inf"]),
    ("test", ["--image-size", "-16", "64"]), ("test", ["--min-segment-length", "0"]),
    ("test", ["--crossing-radius", "-2"]),
    ("evaluate", ["--pred", "p", "--dataset", "D", "--crossing-radius", "x"]),
    ("predict", ["photos", "--pixel-um", "-25"]), ("predict", ["photos", "--pixel-um", "0"]),
    ("biomarkers", ["maps", "--csv", "o.csv", "--pixel-um", "0"]),
    ("benchmark", ["--reps", "0"]), ("benchmark", ["--budget-s", "-1"]), ("benchmark", ["--nproc", "0"]),
    ("export", ["--checkpoint", "c.pt", "--out", "o.onnx", "--opset", "0"]),
]


@pytest.mark.parametrize("name, argv", BAD_NUMBERS)
def test_bad_numbers_are_refused_naming_the_option(name, argv, capsys):
    import importlib

    with pytest.raises(SystemExit) as done:
        importlib.import_module(f"scripts.{name}").main(argv)
    err = capsys.readouterr().err
    option = next(a for a in argv if a.startswith("--") and a not in ("--pred", "--dataset", "--csv", "--checkpoint",
                                                                       "--out"))
    assert done.value.code == 2 and f"argument {option}" in err, err


def test_number_types_accept_what_they_should():
    assert runtime.non_negative_float("0") == 0.0 and runtime.percent("10") == 10.0
    assert runtime.positive_float("2.5") == 2.5
    for bad in ("-1", "nan", "inf"):
        with pytest.raises(argparse.ArgumentTypeError):
            runtime.non_negative_float(bad)


@pytest.mark.parametrize("value", ["abc", "0", "-1", "2x"])
def test_train_sh_refuses_a_bad_nproc(value):
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    done = subprocess.run(["sh", str(REPO / "train.sh"), "demo"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "NPROC": value, "PYTHON": sys.executable})
    assert done.returncode == 2 and f"NPROC must be a whole number >= 1 (training processes on this machine), " \
        f"got '{value}'" in done.stderr
