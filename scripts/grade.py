"""The grading page: check and correct what CRAE, CRVE and AVR were measured on (docs/grading.md).

    sh grade.sh maps/                               a predict.sh output folder
    sh grade.sh truth/ --photos photos/ --masks masks/ --pixel-um 25

Starts a local web server on 127.0.0.1 and prints its address; open it in a browser. A grader goes
photograph by photograph, moves or resizes the optic disc, flips a vessel between artery and vein,
excludes a vessel or a whole image, and sees CRAE, CRVE, AVR and the vessel table measured again at
once. Each change is saved at once as FOLDER/corrections/<id>.json; ``biomarkers.py --corrections
FOLDER/corrections`` applies them. Stop the server with Ctrl+C: nothing is lost.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file (python scripts/NAME.py): the repository is the import root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from scripts.cli.entry import run_command
from scripts.cli.types import pixel_um
from scripts.core.errors import UsageError
from scripts.grading.maps import MapOptions
from scripts.grading.server import serve
from scripts.grading.workspace import Workspace
from scripts.vessels.disc import read_disc_csv


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path, metavar="FOLDER", help="a predict.sh output folder, or a folder of A/V maps")
    p.add_argument("--photos", type=Path, help="folder of the photographs (for a folder of maps)")
    p.add_argument("--masks", type=Path, help="folder of FOV masks (<id>_mask.* or <id>.*)")
    p.add_argument("--disc-csv", type=Path, help="CSV with columns id, x, y, radius (px): the discs to start from")
    p.add_argument("--pixel-um", type=pixel_um, default=None, metavar="U", help="micrometres per pixel")
    p.add_argument(
        "--corrections",
        type=Path,
        metavar="DIR",
        help="save the corrections here (default FOLDER/corrections; for a folder you may not write to)",
    )
    p.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765; 0: any free port)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: grade(args))


def grade(args: argparse.Namespace) -> int:
    for folder, option in ((args.photos, "--photos"), (args.masks, "--masks")):
        if folder is not None and not folder.is_dir():
            raise UsageError(f"{option} {folder}: folder not found")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: must be 0-65535")
    options = MapOptions(args.photos, args.masks, None, args.disc_csv, args.pixel_um)
    workspace = Workspace(args.folder, options, args.corrections)
    if args.disc_csv:
        workspace.discs.update(read_disc_csv(args.disc_csv))
    try:
        server = serve(workspace, args.port)
    except OSError as err:
        raise UsageError(f"port {args.port} on 127.0.0.1: {err.strerror}; give another with --port") from None
    broken = sum(1 for e in workspace.entries.values() if e.problem)
    print(
        f"grading {len(workspace.entries)} photograph(s) of {workspace.folder}"
        + (f" ({broken} cannot be read; the page says why)" if broken else "")
    )
    print(f"open http://127.0.0.1:{server.server_port}/ in a browser; corrections go to {workspace.corrections}")
    print("stop with Ctrl+C", flush=True)
    try:
        server.serve_forever()  # returns on Ctrl+C
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    print("stopped; every correction is saved")
    return 0


if __name__ == "__main__":
    sys.exit(main())
