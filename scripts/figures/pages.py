"""The HTML reports: ``report.html`` of a test run (``scripts/test.py``) and of a prediction run
(``scripts/predict.py``).

Both are built from the files already written in the output folder (the tables, figures and maps),
so that what the page shows is what the files hold, and a file that is missing or unreadable shows
as a notice on the page. The caller writes the page atomically next to them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from scripts.figures import curves
from scripts.figures.html import csv_table, esc, figure, notice, number, page, read_csv, table

PAPER_COLUMNS = ("Sensitivity", "ROC", "F1", "PR", "MSE")


def _read_json(path: Path) -> dict | str:
    """The JSON object in ``path``, or a sentence saying why it cannot be shown."""
    if not path.is_file():
        return f"{path.name} is missing"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        return f"{path.name} could not be read ({err})"
    return data if isinstance(data, dict) else f"{path.name} does not hold a JSON object"


def _pairs(items: dict) -> str:
    """A two-column table of settings (nested values as compact JSON)."""
    return table(
        ("setting", "value"),
        [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in items.items()],
        sortable=False,
        digits=None,
    )


def _percent(value: float | None) -> str:
    """A paper-row number: two decimals; "n/a" for a NaN (stored as null), e.g. a 2023 score whose image
    had no predicted artery (SPEC 9.4 keeps that NaN)."""
    return "n/a" if value is None or math.isnan(value) else f"{value:.2f}"


def paper_section(row: dict | str) -> str:
    if isinstance(row, str):
        return notice(row)
    percent = row.get("percent", {})
    mean_std = table(
        PAPER_COLUMNS,
        [[f"{_percent(percent[c]['mean'])} ± {_percent(percent[c]['std'])}" for c in PAPER_COLUMNS]],
        sortable=False,
        css="big paper-row",
    )
    per_cp = table(
        ("checkpoint", *PAPER_COLUMNS),
        [(cp, *(v[c] for c in PAPER_COLUMNS)) for cp, v in row.get("per_checkpoint", {}).items()],
        digits=2,
    )
    n = len(row.get("checkpoints", []))
    return (
        f"<p>{esc(row.get('protocol', ''))}; percent, mean ± std (population) over {n} checkpoint(s) "
        f"({esc(', '.join(row.get('checkpoints', [])))}); 'ROC'/'PR' are the paper's binary readings.</p>"
        + mean_std
        + "<h3>Per checkpoint (percent)</h3>"
        + per_cp
    )


def segments_section(row: dict | str, folder: Path) -> str:
    parts = []
    segments = row.get("segments") if isinstance(row, dict) else None
    if segments and segments.get("mean"):
        parts.append(
            "<p>Pooled over images, mean ± std over checkpoints; settings "
            f"{esc(json.dumps(segments.get('settings', {})))}.</p>"
        )
        parts.append(
            table(
                ("metric", "mean", "std"),
                [(k, v, segments["std"].get(k)) for k, v in segments["mean"].items()],
                sortable=False,
            )
        )
    parts.append("<h3>Per checkpoint and image</h3>" + csv_table(folder / "segments.csv"))
    return "".join(parts)


def biomarker_summary(folder: Path) -> str:
    """Mean over images of the truth, the prediction and their difference, per measure."""
    read = read_csv(folder / "biomarkers.csv")
    if isinstance(read, str):
        return ""
    header, rows = read
    try:
        m, t, p, d = (header.index(k) for k in ("measure", "truth", "predicted", "difference"))
    except ValueError:
        return notice("biomarkers.csv lacks a measure, truth, predicted or difference column")
    by_measure: dict[str, list[tuple[float, float, float]]] = {}
    for r in rows:
        values = [number(r[i]) for i in (t, p, d)]
        if all(v is not None and math.isfinite(v) for v in values):
            by_measure.setdefault(r[m], []).append(tuple(values))
    return table(
        ("measure", "images", "mean truth", "mean predicted", "mean difference"),
        [(k, len(v), *(sum(x[i] for x in v) / len(v) for i in range(3))) for k, v in by_measure.items()],
    )


def run_section(row: dict | str, info: dict) -> str:
    """What was scored with what: dataset, checkpoints and their hashes, versions, timing, training settings."""
    parts = []
    if isinstance(row, dict):
        keys = ("dataset", "split", "protocol", "variant", "model_size", "checkpoints", "snapshots")
        parts.append(_pairs({k: row[k] for k in keys if k in row}))
        if row.get("weights"):
            weights = [(w["file"], w["sha256"]) for w in row["weights"]]
            parts.append("<h3>Weights</h3>" + table(("file", "sha256"), weights, sortable=False))
    parts.append("<h3>This run</h3>" + _pairs({k: v for k, v in info.items() if k not in ("config",)}))
    config = info.get("config")
    if isinstance(config, dict):
        parts.append("<h3>Training settings (config.json of the job)</h3>" + _pairs(config))
    elif isinstance(config, str):
        parts.append(notice(config))
    return "".join(parts)


def curves_section(runs_dir: Path | None) -> str:
    if runs_dir is None:
        return notice("no training run (released or given weights): no curves")
    try:
        png = curves.curves_png(curves.read_scalars(runs_dir))
    except Exception as err:  # noqa: BLE001 - a damaged event file must not cost the page
        return notice(f"the TensorBoard events in {runs_dir} could not be read ({type(err).__name__}: {err})")
    if png is None:
        return notice(f"no TensorBoard events in {runs_dir} (trained elsewhere, or with another --runs-dir)")
    return (
        f'<p class="muted">From the TensorBoard events in {esc(runs_dir)}.</p>'
        f'<img src="{curves.data_uri(png)}" alt="training curves" style="max-width:100%">'
    )


def results_page(folder: Path, info: dict, runs_dir: Path | None) -> str:
    """The page of a test run's results folder ``folder`` (paper_row.json, the CSVs, figures/)."""
    row = _read_json(folder / "paper_row.json")
    title = (
        f"{row.get('dataset', '?')} {row.get('split', '')}: {info.get('job', '')}"
        if isinstance(row, dict)
        else f"Test results in {folder.name}"
    )
    ids = []
    per_image = read_csv(folder / "per_image.csv")
    if not isinstance(per_image, str) and "id" in per_image[0]:
        column = per_image[0].index("id")
        ids = list(dict.fromkeys(r[column] for r in per_image[1]))
    figures_dir = folder / "figures"
    found = (
        sorted(p.stem for p in figures_dir.glob("*.png") if not p.stem.endswith(ZONE_B)) if figures_dir.is_dir() else []
    )
    ids += [i for i in found if i not in ids]
    gallery = (
        '<p class="muted">Photograph, ground truth, prediction, error map, vessel probability and segment '
        "verdicts of each image (the last checkpoint's maps); click for the full size.</p>"
        '<div class="gallery">' + "".join(figure(folder, f"figures/{i}.png", i) for i in ids) + "</div>"
        if ids
        else notice("no figures (figures/ is missing or empty)")
    )
    sections = [
        ("Paper table row", paper_section(row)),
        ("Per checkpoint", csv_table(folder / "summary.csv")),
        ("Per image", csv_table(folder / "per_image.csv")),
        ("Figures", gallery),
        ("Segments", segments_section(row, folder)),
        (
            "Biomarkers",
            "<p>Ground truth and prediction of each image (last checkpoint), one located disc for "
            "both; means over images first.</p>" + biomarker_summary(folder) + csv_table(folder / "biomarkers.csv"),
        ),
        ("Zone-B vessels", zone_b_section(folder, [f"figures/{i}{ZONE_B}.png" for i in ids], "vessels.csv")),
    ]
    if (folder / "rrwnet.csv").exists() or (isinstance(row, dict) and "rrwnet" in row):
        sections.append(
            (
                "RRWNet protocol",
                "<p>Fractions (not percent); docs/protocols.md.</p>"
                + csv_table(folder / "rrwnet.csv")
                + "<h3>Topology per image</h3>"
                + csv_table(folder / "rrwnet_per_image.csv"),
            )
        )
    sections += [("Training curves", curves_section(runs_dir)), ("Run", run_section(row, info))]
    return page(title, f"{info.get('results', folder)}: every table is also a file beside this page.", sections)


ZONE_B = "_zone_b"  # the zone-B figure of image <id>: <id>_zone_b.png


def zone_b_section(folder: Path, pictures: list[str], table_file: str) -> str:
    """The vessels CRAE and CRVE were measured on: each image's zone-B figure and the per-vessel table."""
    shown = [p for p in pictures if (folder / p).is_file()]
    if not shown and not (folder / table_file).is_file():
        return notice("no zone-B vessels measured (no biomarkers, or no disc)")
    return (
        '<p class="muted">Each vessel crossing zone B (between the white rings) numbered at its crossing with its '
        "width in pixels; filled: used by Knudtson's pairing, hollow: measured but not among the six widest, "
        "cross: no usable width, or excluded by a grader. The table lists every one, with why a width was "
        "not used.</p>"
        + '<div class="gallery">'
        + "".join(figure(folder, p, Path(p).stem) for p in shown)
        + "</div>"
        + csv_table(folder / table_file, limit=PAGE_PHOTOGRAPHS * 12)
    )


def biomarkers_page(table: Path, vessels: Path, pictures: list[str], info: dict) -> str:
    """The page of a ``biomarkers.py`` run, beside its CSV ``table``: every map's row (with the
    grader's corrections marked in its ``graded`` and ``corrections`` columns), and the zone-B figures
    (``pictures``, relative to the table's folder) with the per-vessel table ``vessels``."""
    folder = table.parent
    sections = [
        (
            "Biomarkers",
            "<p>One row per map; <code>flags</code> says what to check, <code>graded</code> and "
            "<code>corrections</code> what a grader changed.</p>" + csv_table(table),
        ),
        ("Zone-B vessels", zone_b_section(folder, pictures, vessels.name)),
        ("Run", _pairs(info)),
    ]
    return page("Biomarkers", f"{table}: every table is also a file beside this page.", sections)


PAGE_PHOTOGRAPHS = 500  # a cohort's page shows the first ones; the tables beside it hold them all


def predictions_page(folder: Path, info: dict, failures: list[tuple[str, str]]) -> str:
    """The page of a prediction folder: per photograph its overlay, A/V map and biomarkers (the first
    ``PAGE_PHOTOGRAPHS`` photographs and failures of a cohort)."""
    read = read_csv(folder / "predictions.csv", PAGE_PHOTOGRAPHS)
    cards = []
    if isinstance(read, str):
        cards.append(notice(read))
    else:
        header, rows = read
        for r in rows:
            values = dict(zip(header, r))
            name = values.get("id", "?")
            measures = table(
                ("measure", "value"),
                [(k, v) for k, v in values.items() if k not in ("id", "file") and v != ""],
                sortable=False,
            )
            zone_b = f"{name}{ZONE_B}.png"
            cards.append(
                f'<h3>{esc(name)}</h3><p class="muted">{esc(values.get("file", ""))}</p>'
                f'<div class="gallery">{figure(folder, f"{name}_overlay.png", "overlay")}'
                f"{figure(folder, f'{name}_av.png', 'A/V map (red artery, blue vein, green uncertain)')}"
                + (figure(folder, zone_b, "zone-B vessels") if (folder / zone_b).is_file() else "")
                + f"<div>{measures}</div></div>"
            )
    sections = [
        ("All photographs", csv_table(folder / "predictions.csv", limit=PAGE_PHOTOGRAPHS)),
        ("Per photograph", "".join(cards)),
    ]
    if (folder / "vessels.csv").is_file():
        sections.append(("Zone-B vessels", zone_b_section(folder, [], "vessels.csv")))
    if failures:
        more = len(failures) - PAGE_PHOTOGRAPHS
        shown = table(("file", "why"), failures[:PAGE_PHOTOGRAPHS], sortable=False)
        sections.append(("Failed inputs", shown + (notice(f"and {more} more in failures.csv") if more > 0 else "")))
    sections.append(("Run", "<h3>This run</h3>" + _pairs(info)))
    return page("Predictions", f"{info.get('out', folder)}: every map is also a file beside this page.", sections)
