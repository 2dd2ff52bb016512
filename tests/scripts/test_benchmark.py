"""The benchmark script runs end to end on a tiny configuration and writes its JSON."""

from __future__ import annotations

import json

import pytest
import torch

from scripts.benchmark import main
from scripts.training import auto_step_mode


def test_benchmark_tiny(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert (
        main(
            [
                "--sizes",
                "32",
                "--modes",
                "literal",
                "reuse",
                "batched",
                "auto",
                "--n-filters",
                "4",
                "--reps",
                "1",
                "--warmup",
                "1",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "literal/this" in table and "batched" in table and "flags:" in table
    rows = json.loads(out.read_text())["rows"]
    assert [r["mode"] for r in rows] == [
        "literal",
        "reuse",
        "batched",
        f"auto={auto_step_mode(torch.device('cpu'), 4)}",
    ]
    assert f"auto={auto_step_mode(torch.device('cpu'), 4)}" in table  # the table says which mode auto chose
    assert all(r["ms_per_step"] > 0 and r["gflop_per_step"] > 0 and r["peak_mb"] > 0 for r in rows)
    literal, reuse, batched, _ = rows
    # forward reuse skips three generator forwards: fewer FLOPs than the literal step
    assert reuse["gflop_per_step"] < literal["gflop_per_step"]
    # batching D changes no arithmetic, only the number of calls
    assert batched["gflop_per_step"] == pytest.approx(reuse["gflop_per_step"], rel=1e-9)
    assert batched["aten_ops_per_step"] < reuse["aten_ops_per_step"] < literal["aten_ops_per_step"]


def test_ddp_benchmark_runs_plain_and_distributed():
    from scripts.benchmarks.ddp import ddp_benchmark

    table = ddp_benchmark(2, 32, 4, 2, "cpu", reps=1, warmup=1)
    lines = table.splitlines()
    assert [line.split()[0] for line in lines[2:5]] == ["plain,", "DDP,", "DDP,"]
    assert all(float(line.split()[-1]) > 0 for line in lines[2:5]) and "not how it scales" in table


def test_variant_matrix_runs_on_the_cpu_and_reports(tmp_path, capsys):
    """The GPU matrix at tiny settings: rows written as measured, gradient error against float64
    (float32: small; bf16 autocast: much larger), the table printed from the JSON."""
    assert (
        main(["--matrix", str(tmp_path), "--device", "cpu", "--sizes", "32", "--n-filters", "4", "--budget-s", "120"])
        == 0
    )
    rows = json.loads((tmp_path / "matrix.json").read_text())["rows"]
    assert [r["dtype"] for r in rows] == ["fp32", "bf16"] and all("error" not in r for r in rows)
    fp32, bf16 = rows
    assert fp32["grad_err_G_A"] < 1e-3 and fp32["grad_err_D"] < 1e-3 < bf16["grad_err_D"]
    assert fp32["eager_ms"] > 0 and fp32["host_ms"] > 0
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1].startswith("== best: ")
    assert main(["--report", str(tmp_path)]) == 0 and "step variants" in capsys.readouterr().out


def test_memory_plan_table_and_json(tmp_path, capsys):
    out = tmp_path / "plan.json"
    args = ["--memory", "--sizes", "64", "--modes", "batched", "amp", "--n-filters", "4", "--cards", "1", "16"]
    assert main([*args, "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "memory plan of one training step" in text and "64 x 64" in text and "16 GB card: batched" in text
    rows = json.loads(out.read_text())["memory_plan"]
    modes = [r for r in rows if "mode" in r]
    assert [r["mode"] for r in modes] == ["batched", "amp"]
    assert all(r["checkpointing_peak_mb"] < r["peak_mb"] for r in modes)
    assert modes[1]["peak_mb"] < modes[0]["peak_mb"]  # bf16 activations are half the size


def test_memory_verify_needs_a_gpu(capsys):
    assert main(["--memory", "--verify", "--sizes", "32", "--modes", "batched", "--n-filters", "4", "--cards"]) == 2
    assert "--verify measures the plan against a CUDA GPU" in capsys.readouterr().err


def test_predict_benchmark_times_the_sequential_and_an_overlapped_pipeline(tmp_path, capsys):
    from PIL import Image

    from model import build_networks
    from scripts.data.synthetic import make_sample
    from scripts.io.checkpoint import generators_state, save_atomic

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.fromarray(make_sample(i, 64)[0]).save(photos / f"{i}.png")
    ckpt = tmp_path / "best.pt"
    save_atomic(generators_state(build_networks(4), {"n_filters": 4, "image_size": [32, 32]}, epoch=1), ckpt)
    args = ["--predict", str(photos), "--checkpoint", str(ckpt), "--photos", "7", "--pipelines", "0,0", "0,1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "predict.py on 7 photographs" in out and "flags:" in out
    rows = [line for line in out.splitlines() if line.startswith(("| sequential", "| 0 + 1"))]
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[1]) > 0 and float(cells[-1]) > 100  # photographs per second; peak MB
    assert main(["--predict", str(photos), "--pipelines", "1"]) == 2
    assert "--pipelines 1: give two whole numbers D,F" in capsys.readouterr().err
    assert main(["--predict", str(photos)]) == 2
    assert "--predict needs --checkpoint" in capsys.readouterr().err
