"""`nbo admin reload` against a stand-in HTTP server (the endpoint itself is tested in tests/api)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from app.cli import cli

ANSWERS = {
    "ok": (200, {"reloaded": True, "catalogue_version": "cat-2", "model_version": "m-2"}),
    "refused": (422, {"error": "reload_refused", "detail": [
        {"file": "offers.yaml", "location": "offer card_gold", "msg": "syntax error",
         "problem": "offers.yaml: offer card_gold: syntax error (column 18)"}]}),
}  # fmt: skip


@pytest.fixture
def server() -> Iterator[tuple[str, list[str], dict[str, str]]]:
    seen: list[str] = []
    mode = {"answer": "ok"}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(self.path)
            status, body = ANSWERS[mode["answer"]]
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen, mode
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_reload_posts_to_the_admin_endpoint_and_prints_the_new_versions(server):
    url, seen, _ = server
    result = CliRunner().invoke(cli, ["admin", "reload", "--url", url])
    assert result.exit_code == 0, result.output
    assert seen == ["/v1/admin/reload"] and "catalogue cat-2, model m-2" in result.output


def test_a_refused_reload_prints_every_problem_and_exits_1(server):
    url, _, mode = server
    mode["answer"] = "refused"
    result = CliRunner().invoke(cli, ["admin", "reload", "--url", url])
    assert result.exit_code == 1
    assert "reload refused (HTTP 422)" in result.output and "offers.yaml: offer card_gold" in result.output


def test_an_unreachable_service_is_one_line_and_exit_1():
    result = CliRunner().invoke(cli, ["admin", "reload", "--url", "http://127.0.0.1:9", "--timeout", "2"])
    assert result.exit_code == 1 and "cannot reach http://127.0.0.1:9" in result.output
