"""The grading page's local web server (``sh grade.sh FOLDER``), built on Flask.

Flask because the measurement is synchronous numpy code that one grader calls a few times a
minute: a WSGI app with Werkzeug's threaded server is the simplest well-kept fit (no event loop to
keep unblocked), its test client checks every route without a socket, and it has no dependencies
beyond Werkzeug, Jinja2, click, itsdangerous and blinker.

What it will do and nothing else:

- listen on 127.0.0.1 only, and answer only requests whose Host is this server (no DNS rebinding);
- serve the page's own three files and, per photograph of the folder, named by its id (never by a
  path), its pictures and its measurement; no request names a file;
- accept changes (PUT) only from its own page: same Origin, JSON body; every number is checked
  (:func:`scripts.grading.corrections.parse`) before anything is written, and a save based on an
  older version is refused (409) so that two tabs never lose an edit.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from flask import Flask, Response, abort, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, make_server

from scripts.data.images import DataError
from scripts.grading.corrections import InvalidCorrection
from scripts.grading.workspace import VersionConflict, Workspace

PAGE = Path(__file__).resolve().parent / "page"
PAGE_FILES = {"index.html", "grade.js", "grade.css"}
ID = re.compile(r"[A-Za-z0-9_.\-]{1,200}")
MAX_BODY = 256 * 1024


def create_app(workspace: Workspace) -> Flask:
    """The WSGI app of the grading page for ``workspace``."""
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY

    @app.before_request
    def only_this_server():
        host = request.host.lower()
        port = request.environ.get("SERVER_PORT", "")
        allowed = {f"127.0.0.1:{port}", f"localhost:{port}"}
        if host not in allowed:
            abort(400, f"this server answers requests for 127.0.0.1:{port} only, not {host}")
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("Origin", "")
            if origin not in {f"http://{h}" for h in allowed}:
                abort(403, "changes are accepted from the grading page itself only (same origin)")
            if request.mimetype != "application/json":
                abort(415, "send the corrections as application/json")

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(HTTPException)
    def as_json(err: HTTPException):
        return jsonify(error=err.description), err.code

    def entry(key: str) -> str:
        if not ID.fullmatch(key) or key not in workspace.entries:
            abort(404, f"no photograph '{key[:80]}' in this folder")
        return key

    @app.get("/")
    def index():
        return send_from_directory(PAGE, "index.html")

    @app.get("/favicon.ico")
    def no_icon():
        return Response(status=204)

    @app.get("/page/<name>")
    def page_file(name: str):
        if name not in PAGE_FILES:
            abort(404, "not a file of the page")
        return send_from_directory(PAGE, name)

    @app.get("/api/photos")
    def photos():
        return jsonify(folder=str(workspace.folder), photos=workspace.listing())

    @app.get("/api/photos/<key>")
    def state(key: str):
        key = entry(key)
        try:
            return jsonify(workspace.state(key))
        except DataError as err:
            abort(422, str(err))

    @app.get("/api/photos/<key>/<which>.png")
    def picture(key: str, which: str):
        key = entry(key)
        if which not in ("photo", "map"):
            abort(404, "pictures are photo.png and map.png")
        try:
            return Response(workspace.picture(key, which), mimetype="image/png")
        except DataError as err:
            abort(422, str(err))

    @app.put("/api/photos/<key>/corrections")
    def save(key: str):
        key = entry(key)
        data = request.get_json(silent=True)
        if data is None:
            abort(400, "the body is not JSON")
        try:
            return jsonify(workspace.save(key, data))
        except InvalidCorrection as err:
            abort(422, str(err))
        except VersionConflict as err:
            abort(409, str(err))
        except DataError as err:
            abort(422, str(err))

    return app


def serve(workspace: Workspace, port: int = 0) -> BaseWSGIServer:
    """A threaded server of the page on 127.0.0.1 (``port`` 0: a free one); call ``serve_forever()``."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request: errors only
    return make_server("127.0.0.1", port, create_app(workspace), threaded=True)
