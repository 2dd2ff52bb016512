"""The inference path (G_A, G_V, then G) as one module and one ONNX graph (``scripts/export.py``).

Input ``image``: (B, 3, H, W) float32, normalised as in training (``scripts.data.augment.normalise``),
H and W the checkpoint's model size. Output ``prob``: (B, 3, H, W) sigmoid probabilities
(artery, uncertain, vein). Needs the optional packages in requirements-onnx.txt.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from scripts.core.errors import UsageError


class InferenceGraph(nn.Module):
    """G_A, G_V and G as one module: normalised image -> fused probabilities."""

    def __init__(self, nets: dict[str, nn.Module]) -> None:
        super().__init__()
        self.g_a, self.g_v, self.g = nets["G_A"], nets["G_V"], nets["G"]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        a = torch.sigmoid(self.g_a(image))
        v = torch.sigmoid(self.g_v(image))
        return torch.sigmoid(self.g(image, a, v)[0])


def export(nets: dict[str, nn.Module], size_wh: tuple[int, int], out: Path, opset: int = 17) -> Path:
    """Write ``out``; the batch dimension is dynamic. Without the optional ONNX packages: a UsageError
    that names the install command."""
    if importlib.util.find_spec("onnx") is None:
        raise UsageError("ONNX export needs the optional packages: pip install -r requirements-onnx.txt")
    graph = InferenceGraph(nets).eval()
    example = torch.randn(1, 3, size_wh[1], size_wh[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        graph,
        (example,),
        str(out),
        input_names=["image"],
        output_names=["prob"],
        dynamic_axes={"image": {0: "batch"}, "prob": {0: "batch"}},
        opset_version=opset,
        dynamo=False,
    )
    return out
