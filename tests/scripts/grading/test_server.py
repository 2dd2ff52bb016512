"""The grading server: its answers to the page, and to hostile or broken requests (nothing written)."""

from __future__ import annotations

import json
import warnings

import pytest

from scripts.grading.maps import load_case, measure_case
from scripts.grading.server import create_app
from scripts.grading.workspace import Workspace

BASE = "http://127.0.0.1:8765"
OWN = {"Origin": BASE}


@pytest.fixture()
def client(folder):
    maps, options = folder
    workspace = Workspace(maps, options)
    return create_app(workspace).test_client(), workspace


def _put(client, key, body, headers=OWN, base_url=BASE):
    return client.put(f"/api/photos/{key}/corrections", json=body, headers=headers, base_url=base_url)


def test_state_is_the_measurement_of_biomarkers_py(client):
    c, workspace = client
    listing = c.get("/api/photos", base_url=BASE).get_json()["photos"]
    assert [p["id"] for p in listing] == ["01_test", "02_test", "03_test", "04_test"]
    assert listing[0]["problem"] == "" and "outside" in listing[3]["problem"]
    state = c.get("/api/photos/01_test", base_url=BASE).get_json()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        case = load_case(workspace.entries["01_test"].map, workspace.options, {})
        row = measure_case(case, None).row
    assert state["summary"]["avr"] == pytest.approx(row["avr"]) and state["summary"]["crae_px"] == pytest.approx(
        row["crae_px"]
    )
    assert [v["vessel"] for v in state["vessels"]] == list(range(1, len(state["vessels"]) + 1))
    photo = c.get("/api/photos/01_test/photo.png", base_url=BASE)
    assert photo.status_code == 200 and photo.data[:4] == b"\x89PNG"


def test_a_save_is_measured_kept_and_versioned(client):
    c, workspace = client
    state = c.get("/api/photos/01_test", base_url=BASE).get_json()
    disc = state["disc"]
    moved = {"version": 0, "disc": {"x": disc["x"] + 6, "y": disc["y"], "radius": disc["radius"]}, "grader": "AB"}
    saved = _put(c, "01_test", moved)
    assert saved.status_code == 200
    body = saved.get_json()
    assert body["corrections"]["version"] == 1 and body["disc"]["source"] == "graded"
    on_disk = json.loads((workspace.corrections / "01_test.json").read_text())
    assert on_disk["disc"]["x"] == pytest.approx(disc["x"] + 6) and on_disk["grader"] == "AB" and on_disk["updated"]
    # a second tab still at version 0 is refused, and the first tab's save is kept
    stale = _put(c, "01_test", {"version": 0, "exclude_image": True})
    assert stale.status_code == 409 and "reload" in stale.get_json()["error"]
    assert json.loads((workspace.corrections / "01_test.json").read_text()) == on_disk
    # a new server on the same folder starts from what was saved
    again = create_app(Workspace(workspace.folder, workspace.options)).test_client()
    assert again.get("/api/photos/01_test", base_url=BASE).get_json()["corrections"]["version"] == 1


@pytest.mark.parametrize(
    "body, message",
    [
        ({"version": 0, "disc": {"x": 9000, "y": 10, "radius": 30}}, "outside the 565 x 584 image"),
        ({"version": 0, "disc": {"x": 100, "y": 100, "radius": -3}}, "radius -3 px must be > 0"),
        ({"version": 0, "disc": {"x": 100, "y": 100, "radius": "big"}}, "disc radius must be a finite number"),
        ({"version": 0, "edits": [{"x": 5, "y": 5, "action": "delete"}]}, "action must be one of flip, exclude"),
        ({"version": 0, "edits": [{"x": -1, "y": 5, "action": "flip"}]}, "lies outside"),
        ({"version": -1}, "version must be a whole number"),
        ({"version": 0, "exclude_image": "yes"}, "exclude_image must be true or false"),
        ({"version": 0, "id": "02_test"}, "is not this photograph's"),
        ([1, 2], "must be a JSON object"),
        ({"version": 0, "edits": [{"x": 5, "y": 5, "action": "flip"}]}, "no vessel crosses zone B at (5, 5)"),
    ],
)
def test_bad_numbers_are_refused_and_nothing_is_written(client, body, message):
    c, workspace = client
    answer = _put(c, "01_test", body)
    assert answer.status_code == 422 and message in answer.get_json()["error"]
    assert not (workspace.corrections / "01_test.json").exists()


def test_nan_in_the_body_is_refused(client):
    c, workspace = client
    raw = '{"version": 0, "disc": {"x": NaN, "y": 10, "radius": 30}}'
    answer = c.put(
        "/api/photos/01_test/corrections", data=raw, content_type="application/json", headers=OWN, base_url=BASE
    )
    assert answer.status_code == 422 and "finite" in answer.get_json()["error"]
    assert not (workspace.corrections / "01_test.json").exists()


def test_foreign_and_malformed_requests_are_refused_and_nothing_is_written(client):
    c, workspace = client
    body = {"version": 0, "exclude_image": True}
    assert _put(c, "01_test", body, headers={"Origin": "http://evil.example"}).status_code == 403
    assert _put(c, "01_test", body, headers={}).status_code == 403  # no Origin: not the page
    assert (
        c.put(
            "/api/photos/01_test/corrections",
            data=json.dumps(body),
            content_type="text/plain",
            headers=OWN,
            base_url=BASE,
        ).status_code
        == 415
    )
    assert _put(c, "01_test", body, base_url="http://evil.example:8765").status_code == 400  # DNS rebinding
    assert c.get("/api/photos", base_url="http://evil.example:8765").status_code == 400
    big = {"version": 0, "note": "x" * 300_000}
    assert _put(c, "01_test", big).status_code == 413
    assert _put(c, "nope", body).status_code == 404
    assert c.post("/api/photos/01_test/corrections", json=body, headers=OWN, base_url=BASE).status_code == 405
    assert not workspace.corrections.exists() or not any(workspace.corrections.glob("*.json"))


@pytest.mark.parametrize(
    "path",
    [
        "/page/../maps.py",
        "/page/..%2Fserver.py",
        "/page/%2E%2E%2Fserver.py",
        "/page/grade.js/../../server.py",
        "/api/photos/..%2F..%2Fetc%2Fpasswd",
        "/api/photos/01_test/..%2F..%2Fsecret.png",
        "/api/photos/01_test/secret.png",
        "/etc/passwd",
        "/maps/01_test.png",
    ],
)
def test_no_path_reaches_a_file(client, path):
    c, _ = client
    answer = c.get(path, base_url=BASE)
    assert answer.status_code in (404, 405) and b"<html" not in answer.data[:200].lower()


def test_a_broken_photograph_and_a_link_out_are_named_and_the_others_work(client):
    c, _ = client
    broken = c.get("/api/photos/03_test", base_url=BASE)
    assert broken.status_code == 422 and "03_test.png" in broken.get_json()["error"]
    link = c.get("/api/photos/04_test/photo.png", base_url=BASE)
    assert link.status_code == 422 and "outside" in link.get_json()["error"]
    assert c.get("/api/photos/02_test", base_url=BASE).status_code == 200
    listing = {p["id"]: p for p in c.get("/api/photos", base_url=BASE).get_json()["photos"]}
    assert "03_test.png" in listing["03_test"]["problem"]


def test_the_page_files_are_served_with_a_strict_policy(client):
    c, _ = client
    page = c.get("/", base_url=BASE)
    assert page.status_code == 200 and b"grade.js" in page.data
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert c.get("/page/grade.js", base_url=BASE).status_code == 200
