"""The grading page end to end in Chromium: move the disc, flip a vessel, reload; what the page shows
and what is saved are what the Python measurement says."""

from __future__ import annotations

import http.client
import json
import threading
import warnings

import pytest

from scripts.grading.corrections import read_corrections
from scripts.grading.maps import load_case, measure_case
from scripts.grading.server import serve
from scripts.grading.workspace import Workspace
from tests.browser import Browser

READY = "document.querySelector('#vessels tbody tr') !== null && document.getElementById('avr').textContent"
SHOWN = "[document.getElementById('avr').textContent, document.getElementById('crae').textContent]"


@pytest.fixture()
def server(folder):
    workspace = Workspace(*folder)
    httpd = serve(workspace, 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield workspace, f"http://127.0.0.1:{httpd.server_port}/"
    httpd.shutdown()
    httpd.server_close()


def _python(workspace: Workspace, key: str) -> dict:
    """CRAE and AVR as biomarkers.py computes them from the saved corrections (None: not graded)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        case = load_case(workspace.entries[key].map, workspace.options, {})
        row = measure_case(case, None, read_corrections(workspace.corrections, key, case.classes.shape[1:])).row
    return {"avr": f"{row['avr']:.3f}", "crae": f"{row['crae_px']:.2f} px"}


def _centre(browser: Browser, selector: str) -> tuple[float, float]:
    box = browser.evaluate(
        f"(function () {{ var r = document.querySelector('{selector}').getBoundingClientRect(); "
        "return [r.x + r.width / 2, r.y + r.height / 2]; })()"
    )
    return box[0], box[1]


def _saved(browser: Browser, version: int) -> None:
    browser.wait_for(f"document.getElementById('status').textContent === 'saved version {version}'")


def test_move_the_disc_flip_a_vessel_and_reload(server, chromium, tmp_path):
    workspace, url = server
    with Browser(chromium, width=1500, height=1000) as browser:
        browser.open_url(url)
        browser.wait_for(READY)
        avr, crae = browser.evaluate(SHOWN)
        assert (avr, crae.split(" (")[0]) == tuple(_python(workspace, "01_test").values())
        assert browser.evaluate("document.querySelector('#photos button[data-id=\"03_test\"]').className") == "broken"

        # drag the disc 8 image pixels to the right
        scale = browser.evaluate(
            "document.getElementById('overlay').getBoundingClientRect().width / "
            "document.getElementById('overlay').viewBox.baseVal.width"
        )
        start = _centre(browser, "#disc")
        browser.drag(start, (start[0] + 8 * scale, start[1]))
        _saved(browser, 1)
        saved = json.loads((workspace.corrections / "01_test.json").read_text())
        found = workspace.state("01_test")["found_disc"]
        assert saved["version"] == 1 and saved["disc"]["x"] == pytest.approx(found["x"] + 8, abs=0.6)
        expected = _python(workspace, "01_test")
        avr, crae = browser.evaluate(SHOWN)
        assert (avr, crae.split(" (")[0]) == (expected["avr"], expected["crae"])
        moved_crae = crae

        # select the widest artery used, flip it to a vein with the keyboard
        vessels = workspace.state("01_test")["vessels"]
        widest = max((v for v in vessels if v["class"] == "artery" and v["knudtson"]), key=lambda v: v["width_px"])
        browser.click(*_centre(browser, f'g.vessel[data-number="{widest["vessel"]}"] circle'))
        browser.wait_for(
            f"document.querySelector('#vessels tr.selected') && document.querySelector('#vessels tr.selected').dataset.number === '{widest['vessel']}'"
        )
        browser.key("f")
        _saved(browser, 2)
        saved = json.loads((workspace.corrections / "01_test.json").read_text())
        assert [e["action"] for e in saved["edits"]] == ["flip"]
        expected = _python(workspace, "01_test")
        avr, crae = browser.evaluate(SHOWN)
        assert (avr, crae.split(" (")[0]) == (expected["avr"], expected["crae"])
        assert crae != moved_crae  # the widest artery no longer counts as one
        row = f'#vessels tr[data-number="{widest["vessel"]}"]'
        assert browser.evaluate(f"document.querySelector('{row}').className").startswith("vein")
        browser.screenshot(tmp_path / "grading.png", width=1500)

        # reload: the corrections are kept
        browser.open_url(url)
        browser.wait_for(READY)
        assert browser.evaluate(SHOWN)[0] == expected["avr"]
        assert "flipped" in browser.evaluate(f"document.querySelector('{row}').textContent")
        assert browser.evaluate("document.getElementById('status').textContent").startswith("version 2")
        assert browser.errors == []

    # the same server over its socket: changes from another origin or for another host are refused
    saved = (workspace.corrections / "01_test.json").read_bytes()
    port = int(url.rsplit(":", 1)[1].strip("/"))
    body = json.dumps({"version": 2, "exclude_image": True})
    for headers, status in (
        ({"Origin": "http://evil.example", "Content-Type": "application/json"}, 403),
        ({"Origin": url.rstrip("/"), "Content-Type": "application/json", "Host": "evil.example"}, 400),
        ({"Origin": url.rstrip("/"), "Content-Type": "text/plain"}, 415),
    ):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("PUT", "/api/photos/01_test/corrections", body=body, headers=headers)
        assert connection.getresponse().status == status, headers
        connection.close()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/page/..%2F..%2Fgrading%2Fworkspace.py")
    assert connection.getresponse().status == 404
    assert (workspace.corrections / "01_test.json").read_bytes() == saved  # nothing written
