"""requirements.txt and conda_requirements.txt name every package the code imports, and each other's."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"model", "scripts", "tests"}
# import name -> (pip name, conda name) where they differ from the import name
NAMES = {
    "PIL": ("pillow", "pillow"),
    "cv2": ("opencv-python-headless", "py-opencv"),
    "skimage": ("scikit-image", "scikit-image"),
    "sklearn": ("scikit-learn", "scikit-learn"),
    "torch": ("torch", "pytorch"),
}
OPTIONAL = {"onnx", "onnxruntime"}  # requirements-onnx.txt: scripts/export.py's optional check


def imported_packages(root: Path = REPO) -> dict[str, str]:
    """Third-party top-level import names of the code and tests -> one file that imports each."""
    found: dict[str, str] = {}
    for path in sorted([*root.glob("model/**/*.py"), *root.glob("scripts/**/*.py"), *root.glob("tests/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in FIRST_PARTY and top != "__future__":
                    found.setdefault(top, str(path.relative_to(root)))
    return found


def requirement_names(path: Path) -> set[str]:
    """Package names of a requirements file (pip or conda spelling), lower case, without versions."""
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[<>=!~ \[;]", line, maxsplit=1)[0].lower())
    return names


def missing(imports: dict[str, str], pip: set[str], conda: set[str]) -> list[str]:
    """Each imported package absent from a requirements file, naming the file that imports it."""
    out = []
    for name, where in sorted(imports.items()):
        if name in OPTIONAL:
            continue
        pip_name, conda_name = NAMES.get(name, (name.lower(), name.lower()))
        if pip_name not in pip:
            out.append(f"requirements.txt lacks {pip_name} (imported as {name} by {where})")
        if conda_name not in conda:
            out.append(f"conda_requirements.txt lacks {conda_name} (imported as {name} by {where})")
    return out


def test_every_imported_package_is_in_both_requirement_files():
    pip = requirement_names(REPO / "requirements.txt")
    conda = requirement_names(REPO / "conda_requirements.txt")
    assert missing(imported_packages(), pip, conda) == []


def test_both_files_name_the_same_packages():
    """Nothing only one install route gets (conda also pins python itself)."""
    conda_to_pip = {c: p for p, c in NAMES.values()}
    pip = requirement_names(REPO / "requirements.txt")
    conda = {conda_to_pip.get(n, n) for n in requirement_names(REPO / "conda_requirements.txt")} - {"python"}
    assert pip == conda


def test_optional_packages_are_in_their_own_file():
    assert requirement_names(REPO / "requirements-onnx.txt") == OPTIONAL


def test_a_missing_package_is_named(tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "x.py").write_text("import numpy as np\nfrom filelock import FileLock\nimport os\n")
    imports = imported_packages(tmp_path)
    assert imports == {"numpy": "scripts/x.py", "filelock": "scripts/x.py"}
    assert missing(imports, {"numpy", "filelock"}, {"numpy"}) == [
        "conda_requirements.txt lacks filelock (imported as filelock by scripts/x.py)"
    ]
