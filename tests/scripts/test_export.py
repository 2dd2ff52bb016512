"""ONNX export of the inference path, checked against PyTorch where onnxruntime is installed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model import build_networks
from scripts.inference.predictor import predict_probs


def test_onnx_matches_pytorch(tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="optional: pip install -r requirements-onnx.txt")
    pytest.importorskip("onnx")
    from scripts.inference.onnx import export

    torch.manual_seed(0)
    nets = {k: v.eval() for k, v in build_networks(8).items()}
    path = export(nets, (64, 48), tmp_path / "m.onnx")
    x = torch.randn(2, 3, 48, 64)
    expected = predict_probs(nets, x).numpy()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x.numpy()})[0]
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-4


def test_export_refuses_bad_inputs_by_name(tmp_path, capsys):
    from scripts.export import main

    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["--checkpoint", str(bad), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "x.pt: cannot be loaded safely" in capsys.readouterr().err
    assert main(["--checkpoint", str(bad), "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_export_without_onnx_names_the_install_command(tmp_path, capsys, monkeypatch):
    import importlib.util

    from scripts.export import main
    from scripts.io.checkpoint import generators_state, save_atomic

    nets = build_networks(4)
    path = tmp_path / "best.pt"
    save_atomic(generators_state(nets, {"image_size": [32, 32], "n_filters": 4}, 1), path)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    assert main(["--checkpoint", str(path), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "pip install -r requirements-onnx.txt" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
