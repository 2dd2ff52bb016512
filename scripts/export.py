"""Export the inference path (G_A, G_V, then G) as one ONNX graph.

    python -m scripts.export --checkpoint DRIVE_AV/paper/best.pt --out avseg.onnx

Input ``image``: (B, 3, H, W) float32, normalised as in training (``scripts.data.augment.normalise``),
H and W the checkpoint's model size. Output ``prob``: (B, 3, H, W) sigmoid probabilities
(artery, uncertain, vein). Needs the optional packages in requirements-onnx.txt.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

if __package__ in (None, ""):  # run as a file (python scripts/NAME.py, torchrun scripts/NAME.py): the
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # repository, not scripts/, is the import root

from scripts.core.runtime import positive_int
from scripts.core.errors import UserError
from scripts.io import checkpoint as ckpt


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
    """Write ``out``; the batch dimension is dynamic."""
    graph = InferenceGraph(nets).eval()
    example = torch.randn(1, 3, size_wh[1], size_wh[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(graph, (example,), str(out), input_names=["image"], output_names=["prob"],
                      dynamic_axes={"image": {0: "batch"}, "prob": {0: "batch"}}, opset_version=opset, dynamo=False)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, help="a .pt of this project (e.g. best.pt)")
    p.add_argument("--out", type=Path, default=Path("avseg.onnx"))
    p.add_argument("--opset", type=positive_int, default=17)
    a = p.parse_args(argv)
    if a.out.is_dir():
        print(f"error: --out {a.out} is a folder; give a file name such as {a.out / 'avseg.onnx'}", file=sys.stderr)
        return 2
    try:
        nets, cfg = ckpt.load_generators(a.checkpoint)
    except UserError as err:  # a bug shows its traceback instead
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        export(nets, tuple(cfg["image_size"]), a.out, a.opset)
    except ImportError as err:
        print(f"error: ONNX export needs the optional packages: pip install -r requirements-onnx.txt ({err})",
              file=sys.stderr)
        return 2
    print(f"wrote {a.out} (input 'image' 1x3x{cfg['image_size'][1]}x{cfg['image_size'][0]}, output 'prob')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
