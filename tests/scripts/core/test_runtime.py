"""Device, worker and mixed-precision choices shared by the entry points."""

from __future__ import annotations

import pytest
import torch

from scripts.core import runtime
from scripts.core.errors import UsageError
from scripts.core.runtime import resolve_amp, resolve_device, resolve_workers


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


@pytest.mark.parametrize("value", ["-1", "two", "100000"])
def test_bad_worker_counts(value):
    with pytest.raises(UsageError, match="--workers"):
        resolve_workers(value, torch.device("cpu"))


def test_amp_values():
    cpu = torch.device("cpu")
    assert resolve_amp(None, cpu) is None and resolve_amp("off", cpu) is None and resolve_amp("bf16", cpu) == "bf16"
    with pytest.raises(UsageError, match="fp16 needs a CUDA GPU"):
        resolve_amp("fp16", cpu)


@pytest.mark.parametrize("value", ["abc", "0", "-1", "2x"])
def test_train_sh_refuses_a_bad_nproc(value):
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    done = subprocess.run(
        ["sh", str(REPO / "train.sh"), "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NPROC": value, "PYTHON": sys.executable},
    )
    assert (
        done.returncode == 2
        and f"NPROC must be a whole number >= 1 (processes on this machine), got '{value}'" in done.stderr
    )
