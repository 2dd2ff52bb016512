"""Headless Chromium driven over the DevTools protocol on a pipe (standard library only).

``--remote-debugging-pipe`` makes Chromium read JSON commands on file descriptor 3 and write
replies and events on 4, each message ended by a NUL byte. That is all a page check needs (open a
file, collect script errors and failed loads, evaluate an expression, take a screenshot), without
Selenium's driver binary, whose version must match the browser's.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    for name in (os.environ.get("AVSEG_CHROMIUM"), *CANDIDATES):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class Browser:
    """One headless Chromium with one page; ``errors`` collects script errors and failed loads."""

    def __init__(self, executable: str, width: int = 1400, height: int = 1000) -> None:
        self.profile = tempfile.mkdtemp(prefix="avseg-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def fds() -> None:  # the child's fd 3 reads commands, fd 4 writes replies
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child_r, from_child_w)]  # out of the way first
            for target, fd in zip((3, 4), high):
                os.dup2(fd, target)  # inheritable, unlike every descriptor Python opened

        self.proc = subprocess.Popen(
            [
                executable,
                "--headless",
                "--remote-debugging-pipe",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-dev-shm-usage",
                f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            close_fds=False,
            preexec_fn=fds,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer, self._next_id, self.events, self.errors = b"", 0, [], []
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=True)

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message = json.loads(raw)
        if "method" in message:
            self._note(message)
        return message

    def _note(self, event: dict) -> None:
        self.events.append(event)
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(details.get("exception", {}).get("description") or details.get("text"))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            self.errors.append(f"{params['entry'].get('text')} {params['entry'].get('url', '')}".strip())

    def send(self, method: str, params: dict | None = None, session: bool = False, timeout: float = 60) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def open(self, path: Path, timeout: float = 60) -> None:
        """Load a file and wait for its load event (every image loaded or failed)."""
        self.events.clear()
        self.send("Page.navigate", {"url": Path(path).resolve().as_uri()}, session=True)
        deadline = time.monotonic() + timeout
        while not any(e["method"] == "Page.loadEventFired" for e in self.events):
            self._read_message(deadline)

    def open_url(self, url: str, timeout: float = 60) -> None:
        """Load ``url`` (a page of a local server) and wait for its load event."""
        self.events.clear()
        self.send("Page.navigate", {"url": url}, session=True)
        deadline = time.monotonic() + timeout
        while not any(e["method"] == "Page.loadEventFired" for e in self.events):
            self._read_message(deadline)

    def wait_for(self, expression: str, timeout: float = 60):
        """Poll ``expression`` until it is truthy; returns its value (TimeoutError with the last value)."""
        deadline, value = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.05)
        raise TimeoutError(f"{expression} stayed {value!r} for {timeout} s; script errors: {self.errors}")

    def mouse(self, kind: str, x: float, y: float) -> None:
        """A real mouse event at page coordinates (``kind``: mousePressed, mouseMoved, mouseReleased)."""
        params = {"type": kind, "x": x, "y": y, "button": "left", "buttons": 0 if kind == "mouseReleased" else 1}
        if kind != "mouseMoved":
            params["clickCount"] = 1
        self.send("Input.dispatchMouseEvent", params, session=True)

    def click(self, x: float, y: float) -> None:
        self.mouse("mousePressed", x, y)
        self.mouse("mouseReleased", x, y)

    def drag(self, start: tuple[float, float], end: tuple[float, float], steps: int = 5) -> None:
        self.mouse("mouseMoved", *start)
        self.mouse("mousePressed", *start)
        for k in range(1, steps + 1):
            self.mouse(
                "mouseMoved", start[0] + (end[0] - start[0]) * k / steps, start[1] + (end[1] - start[1]) * k / steps
            )
        self.mouse("mouseReleased", *end)

    def key(self, key: str) -> None:
        """Press and release one key: a character ("f") or a named key ("ArrowLeft")."""
        down = {"type": "keyDown", "key": key}
        if len(key) == 1:
            down.update(
                text=key, code=f"Key{key.upper()}" if key.isalpha() else "", windowsVirtualKeyCode=ord(key.upper())
            )
        self.send("Input.dispatchKeyEvent", down, session=True)
        self.send("Input.dispatchKeyEvent", {"type": "keyUp", "key": key}, session=True)

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path, width: int = 1400) -> None:
        """The whole page as one PNG."""
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": min(height, 16000), "deviceScaleFactor": 1, "mobile": False},
            session=True,
        )
        shot = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=True)
        Path(path).write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        for fd in (self._to_child, self._from_child):
            os.close(fd)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# Every table of the page that shows a CSV file: the file's name (from the link above the table) and
# each cell as (text shown, exact value kept for sorting).
TABLES_JS = """
Array.from(document.querySelectorAll('p > a[href$=".csv"]')).map(function (a) {
  var box = a.parentElement.nextElementSibling, t = box && box.querySelector('table');
  if (!t) return null;
  return {file: a.getAttribute('href'),
          header: Array.from(t.tHead.rows[0].cells).map(function (c) { return c.textContent; }),
          rows: Array.from(t.tBodies[0].rows).map(function (r) {
            return Array.from(r.cells).map(function (c) { return [c.textContent, c.getAttribute('data-value')]; });
          })};
}).filter(function (x) { return x; })
"""
IMAGES_JS = (
    "Array.from(document.images).map(function (i) "
    "{ return [i.getAttribute('src').slice(0, 60), i.complete && i.naturalWidth > 0]; })"
)


def check_page(path: Path, executable: str, screenshot: Path | None = None) -> dict:
    """Open ``path``; return its script errors and failed loads, its images (src, loaded) and its CSV tables."""
    with Browser(executable) as browser:
        browser.open(path)
        found = {
            "errors": list(browser.errors),
            "images": browser.evaluate(IMAGES_JS),
            "tables": browser.evaluate(TABLES_JS),
            "text": browser.evaluate("document.body.innerText"),
        }
        if screenshot is not None:
            browser.screenshot(screenshot)
    return found


def sort_by(path: Path, executable: str, table_file: str, column: str, clicks: int) -> list[str]:
    """The exact values of ``column`` in the table of ``table_file`` after clicking its header ``clicks`` times."""
    with Browser(executable) as browser:
        browser.open(path)
        locate = (
            f"var t = document.querySelector('p > a[href=\"{table_file}\"]').parentElement.nextElementSibling"
            f".querySelector('table'); var col = Array.from(t.tHead.rows[0].cells).map(function (c) "
            f"{{ return c.textContent; }}).indexOf('{column}');"
        )
        for _ in range(clicks):
            browser.evaluate(f"(function () {{ {locate} t.tHead.rows[0].cells[col].click(); }})()")
        return browser.evaluate(
            f"(function () {{ {locate} return Array.from(t.tBodies[0].rows).map(function (r) "
            f"{{ return r.cells[col].getAttribute('data-value'); }}); }})()"
        )
