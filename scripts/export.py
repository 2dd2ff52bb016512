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

if __package__ in (None, ""):  # run as a file (python scripts/NAME.py, torchrun scripts/NAME.py): the
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # repository, not scripts/, is the import root

from scripts.cli.entry import run_command
from scripts.cli.types import positive_int
from scripts.core.errors import UsageError
from scripts.inference.onnx import export
from scripts.io import checkpoint as ckpt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, help="a .pt of this project (e.g. best.pt)")
    p.add_argument("--out", type=Path, default=Path("avseg.onnx"))
    p.add_argument("--opset", type=positive_int, default=17)
    a = p.parse_args(argv)
    return run_command(lambda: export_checkpoint(a.checkpoint, a.out, a.opset))


def export_checkpoint(checkpoint: Path, out: Path, opset: int) -> int:
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file name such as {out / 'avseg.onnx'}")
    nets, cfg = ckpt.load_generators(checkpoint)
    export(nets, tuple(cfg["image_size"]), out, opset)
    print(f"wrote {out} (input 'image' 1x3x{cfg['image_size'][1]}x{cfg['image_size'][0]}, output 'prob')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
