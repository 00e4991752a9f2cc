"""Bodies over NBO_MAX_BODY_BYTES get a 413, read to their end first: a client still sending when the server
answers must read that 413, never a connection reset. A real `nbo serve` (uvicorn, httptools) on the
embedded mode, spoken to over a raw socket so that the pace and the framing are the test's."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import ServiceProcess
from tests.e2e.test_startup import embedded_env

LIMIT = 64 * 1024
CHUNK = b"x" * (32 * 1024)
CHUNKS = 32  # 1 MiB in all: 16 times the limit


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    tmp = tmp_path_factory.mktemp("body-limit")
    env = embedded_env(tmp, NBO_MAX_BODY_BYTES=str(LIMIT))
    process = ServiceProcess(env, workers=1, log_path=tmp / "serve.log")
    yield process.start()
    process.stop()


def request_head(port: int, framing: str, connection: str, *, length: int = CHUNKS * len(CHUNK)) -> bytes:
    fields = {"declared": f"Content-Length: {length}", "chunked": "Transfer-Encoding: chunked"}[framing]
    return (
        f"POST /v1/decisions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"{fields}\r\nConnection: {connection}\r\n\r\n"
    ).encode()


def send_body(sock: socket.socket, framing: str, pause: float) -> None:
    for _ in range(CHUNKS):
        sock.sendall(CHUNK if framing == "declared" else b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
        time.sleep(pause)
    if framing == "chunked":
        sock.sendall(b"0\r\n\r\n")


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response with a Content-Length; a reset raises ConnectionResetError here (or in sendall)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += receive_some(sock)
    head, body = data.split(b"\r\n\r\n", 1)
    status_line, *lines = head.decode().split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
    while len(body) < int(headers["content-length"]):
        body += receive_some(sock)
    return int(status_line.split()[1]), headers, body


def receive_some(sock: socket.socket) -> bytes:
    data = sock.recv(65536)
    if not data:
        raise AssertionError("the server closed the connection before answering")
    return data


def assert_too_large(status: int, body: bytes) -> None:
    assert status == 413, body
    payload = json.loads(body)
    assert payload["error"] == "too_large"
    (detail,) = payload["detail"]
    assert detail["loc"] == ["body"] and detail["type"] == "too_large" and str(LIMIT) in detail["msg"]


@pytest.mark.parametrize("framing", ["declared", "chunked"])
def test_a_client_that_closes_after_its_oversized_body_reads_a_413(server: ServiceProcess, framing: str):
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(request_head(server.port, framing, "close"))
        send_body(sock, framing, pause=0.01)
        status, _, body = read_response(sock)
    assert_too_large(status, body)


@pytest.mark.parametrize("framing", ["declared", "chunked"])
def test_a_slow_oversized_upload_gets_a_413_and_the_connection_stays_usable(server: ServiceProcess, framing: str):
    # Slower than uvicorn's 5 s keep-alive timeout, which used to start as soon as the early answer was out.
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(request_head(server.port, framing, "keep-alive"))
        send_body(sock, framing, pause=6.0 / CHUNKS)
        status, headers, body = read_response(sock)
        assert_too_large(status, body)
        assert headers.get("connection") != "close"
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
        assert read_response(sock)[0] == 200


def test_a_client_that_expects_100_continue_is_refused_without_sending(server: ServiceProcess):
    head = request_head(server.port, "declared", "keep-alive").replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n")
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head)
        status, headers, body = read_response(sock)
    assert_too_large(status, body)
    assert headers["connection"] == "close"  # the body it never sent cannot be told from a next request


def test_a_body_just_within_the_limit_is_decided(server: ServiceProcess):
    decision = json.dumps({"customer_id": "c-1", "channel": "web"}).encode()
    body = decision.ljust(LIMIT, b" ")  # JSON allows the padding
    request = urllib.request.Request(
        f"{server.url}/v1/decisions", data=body, headers={"Content-Type": "application/json", **server.auth}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
