"""The fake Hub itself: where it listens, how it bounds requests, and that its failures are real HTTP failures."""

from __future__ import annotations

import http.client
import json
import socket

import pytest
from hub_server import LocalHub


@pytest.fixture
def server():
    hub = LocalHub().start()
    yield hub
    hub.stop()


def request(hub: LocalHub, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", int(hub.url.rsplit(":", 1)[1]), timeout=5)
    try:
        conn.request(method, path, body=body, headers={"Authorization": f"Bearer {hub.token}", **(headers or {})})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_listens_on_loopback_only_and_stops(server):
    host, port = server.server.server_address
    assert host == "127.0.0.1" and server.url == f"http://127.0.0.1:{port}"
    assert request(server, "GET", "/api/whoami-v2")[0] == 200
    server.stop()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_chunked_body_and_size_limit(server):
    def chunked(data: bytes):
        yield data[:10]
        yield data[10:]

    content = json.dumps({"content": "---\nlicense: 3\n---\n", "repoType": "model"}).encode()
    status, _, body = request(server, "POST", "/api/validate-yaml", chunked(content),
                              {"Content-Type": "application/json"})  # http.client sends it chunked
    assert status == 400 and "license" in json.loads(body)["errors"][0]["message"]
    server.server.max_body = 16
    status, _, _ = request(server, "POST", "/api/validate-yaml", content, {"Content-Type": "application/json"})
    assert status == 413


def test_error_codes_and_injected_faults(server):
    status, headers, _ = request(server, "GET", "/api/models/nobody/nothing")
    assert status == 404 and headers["X-Error-Code"] == "RepoNotFound"
    status, _, _ = request(server, "GET", "/api/whoami-v2", headers={"Authorization": "Bearer hf_wrong"})
    assert status == 401
    server.fail("GET", r"whoami", status=503, times=2)
    assert [request(server, "GET", "/api/whoami-v2")[0] for _ in range(3)] == [503, 503, 200]
    server.fail("GET", r"whoami", status=0)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        request(server, "GET", "/api/whoami-v2")
    assert [p for _, p, _ in server.requests].count("/api/whoami-v2") == 5


def test_client_pointing_is_undone(tmp_path, monkeypatch):
    """What the fixtures change in the client (env and import-time constants) comes back exactly afterwards."""
    import os

    import datasets.config as dconfig
    from hub_fixtures import point_clients_at, restore
    from huggingface_hub import constants, hf_api

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = (dict(os.environ), constants.ENDPOINT, constants.HF_HUB_OFFLINE, constants.HF_HUB_CACHE,
              hf_api.api.endpoint, dconfig.HF_ENDPOINT)
    saved = point_clients_at("http://127.0.0.1:9", tmp_path)
    assert constants.ENDPOINT == hf_api.api.endpoint == dconfig.HF_ENDPOINT == "http://127.0.0.1:9"
    assert "HF_HUB_OFFLINE" not in os.environ and constants.HF_HUB_OFFLINE is False
    restore(saved)
    after = (dict(os.environ), constants.ENDPOINT, constants.HF_HUB_OFFLINE, constants.HF_HUB_CACHE,
             hf_api.api.endpoint, dconfig.HF_ENDPOINT)
    assert after == before
