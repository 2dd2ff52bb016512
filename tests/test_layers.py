"""The import layers point one way: a module imports only from its own layer or the layers below.

Only ``scripts.cli`` and the entry points know argparse: the library takes typed values.

``LAYERS`` is the one written order, lowest first (docs/development.md explains each layer). The
entry points (``scripts/<verb>.py``) sit above every layer and never import one another.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAYERS = (
    "model",  # the networks
    "scripts.core",  # settings, errors, devices, seeding, processes
    "scripts.io",  # files: atomic writes, checkpoints, locks, job folders, tables
    "scripts.data",  # datasets, photographs, labels, augmentation, map files
    "scripts.vessels",  # skeleton, vessel graph, segments, optic disc, biomarkers
    "scripts.figures",  # comparison figures, curves, HTML pages
    "scripts.grading",  # map files measured, zone-B figures, a grader's corrections, the grading server
    "scripts.inference",  # Predictor, loading weights, predicting a folder
    "scripts.evaluation",  # metrics, scoring, the test protocol, RRWNet's protocol
    "scripts.training",  # the step, its CUDA graph, its memory plan, the training run
    "scripts.benchmarks",  # speed and memory measurements: step modes, DDP, segments, the GPU matrix
    "scripts.cli",  # the entry points' plumbing: option types and groups, the torchrun launcher, errors
)
ENTRY = "scripts.<entry point>"


def layer_of(module: str) -> str | None:
    """The layer a dotted module name belongs to (an entry point: ENTRY; outside the project: None)."""
    for layer in sorted(LAYERS, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    parts = module.split(".")
    if parts[0] == "scripts" and len(parts) == 2:
        return ENTRY
    return None


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file, at any depth (also inside functions)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the package
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if base == "scripts"]
    return found


def upward_imports(paths: list[Path]) -> list[str]:
    """Every import that points up a layer or from one entry point to another, as 'file:line: a -> b'."""
    order = {layer: i for i, layer in enumerate(LAYERS)}
    order[ENTRY] = len(LAYERS)
    problems = []
    for path in paths:
        me = module_name(path)
        mine = layer_of(me)
        if mine is None:
            continue
        for line, target in imports_of(path):
            theirs = layer_of(target)
            if theirs is None or target == "scripts":
                continue
            where = f"{path.relative_to(REPO)}:{line}: {me} -> {target}"
            if theirs == ENTRY and mine == ENTRY and target != me:
                problems.append(where + " (an entry point imports another)")
            elif order[theirs] > order[mine]:
                problems.append(where + f" ({mine} is below {theirs})")
    return problems


def project_files() -> list[Path]:
    return sorted([*REPO.glob("model/**/*.py"), *REPO.glob("scripts/**/*.py")])


def test_no_import_points_up_a_layer():
    assert upward_imports(project_files()) == []


def test_every_library_package_has_a_layer():
    packages = {module_name(p) for p in REPO.glob("scripts/*/__init__.py")} | {"model"}
    assert packages == set(LAYERS)


def test_an_upward_import_is_caught(tmp_path, monkeypatch):
    """The checker itself: a data module importing the training layer, and one entry point
    importing another, are both reported."""
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    (tmp_path / "scripts" / "data").mkdir(parents=True)
    bad = tmp_path / "scripts" / "data" / "bad.py"
    bad.write_text(
        "import numpy\nfrom scripts.core.config import PAPER\nfrom scripts.training.step import GANTrainer\n"
    )
    entry = tmp_path / "scripts" / "train.py"
    entry.write_text("from scripts import test\nfrom scripts.training.loop import TrainingRun\n")
    rel = tmp_path / "scripts" / "data" / "rel.py"
    rel.write_text("from ..training import step\nfrom . import images\n")
    found = upward_imports([bad, entry, rel])
    assert len(found) == 3, found
    assert "scripts/data/bad.py:3: scripts.data.bad -> scripts.training.step" in found[0]
    assert "an entry point imports another" in found[1]
    assert "scripts.data.rel -> scripts.training" in found[2]


def test_only_the_command_line_layer_knows_argparse():
    library = [p for p in project_files() if layer_of(module_name(p)) not in ("scripts.cli", ENTRY)]
    assert [str(p.relative_to(REPO)) for p in library if any(m == "argparse" for _, m in imports_of(p))] == []
