"""Pytest fixtures that point the real ``huggingface_hub`` / ``datasets`` clients at the in-process fake Hub.

``local_hub_server`` (module) starts :class:`hub_server.LocalHub` on 127.0.0.1 and configures the client for it;
``hub`` (function) resets its state, sets ``HF_TOKEN`` to the fake user's write token and yields the ``LocalHub``.

The client reads ``HF_ENDPOINT`` and ``HF_HUB_DISABLE_XET`` when it is imported. If ``huggingface_hub`` is imported
already (``tests/conftest.py`` imports ``hfcl.zoo``, which imports ``transformers``), :func:`point_clients_at`
also repoints the import-time constants of ``huggingface_hub`` and ``datasets`` and the module-level ``HfApi``; the
fixture asserts that it took and restores everything when the test module ends, so tests of other areas that run
later in the same session see the client exactly as it was (offline mode, endpoint, cache). Register it with
``pytest_plugins = ["hub_fixtures"]`` in ``tests/conftest.py`` (or import the fixtures into a test module).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_server import LocalHub

_ENV = {
    "HF_HUB_DISABLE_XET": "1",  # no Xet/CAS emulation: large files take the LFS batch path
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": None,
    "HF_HUB_OFFLINE": None,  # offline mode blocks even 127.0.0.1
    "HF_DATASETS_OFFLINE": None,
    "TRANSFORMERS_OFFLINE": None,
    "HUGGINGFACE_CO_STAGING": None,
}


def point_clients_at(url: str, home: Path) -> list[tuple[object, str, object]]:
    """Set the environment and the already-imported client constants for ``url``; return what to restore."""
    saved: list[tuple[object, str, object]] = []

    def put(owner, name, value):
        saved.append((owner, name, getattr(owner, name, None)))
        setattr(owner, name, value)

    env = {**_ENV, "HF_ENDPOINT": url, "HF_HUB_CACHE": str(home / "hub"), "HF_TOKEN_PATH": str(home / "token"),
           "HF_DATASETS_CACHE": str(home / "datasets")}
    for key, value in env.items():
        saved.append((None, key, os.environ.get(key)))
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if "huggingface_hub" in sys.modules:
        from urllib.parse import urlsplit

        from huggingface_hub import constants, hf_api

        put(constants, "ENDPOINT", url)
        put(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
        put(constants, "HF_URL_HOSTS", frozenset(constants.HF_URL_HOSTS | {urlsplit(url).hostname}))
        put(constants, "HF_HUB_DISABLE_XET", True)
        put(constants, "HF_HUB_OFFLINE", False)
        put(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", False)
        put(constants, "HF_HUB_CACHE", str(home / "hub"))
        put(constants, "HF_TOKEN_PATH", str(home / "token"))
        put(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
        put(hf_api.api, "endpoint", url)
    if "datasets" in sys.modules:
        import datasets.config as dconfig

        put(dconfig, "HF_ENDPOINT", url)
        put(dconfig, "HUB_DATASETS_URL", url + "/datasets/{repo_id}/resolve/{revision}/{path}")
        put(dconfig, "HF_HUB_OFFLINE", False)
    return saved


def restore(saved: list[tuple[object, str, object]]) -> None:
    for owner, name, value in reversed(saved):
        if owner is None:  # an environment variable
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        else:
            setattr(owner, name, value)


@pytest.fixture(scope="module")
def local_hub_server(tmp_path_factory) -> Iterator[LocalHub]:
    """The fake Hub, running for one test module, with the hub/datasets clients pointed at it."""
    hub = LocalHub().start()
    saved = point_clients_at(hub.url, tmp_path_factory.mktemp("hf_home"))
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    bars_were_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        from huggingface_hub import HfApi, constants

        assert constants.ENDPOINT == hub.url and HfApi().endpoint == hub.url, "client not pointed at the local Hub"
        yield hub
    finally:
        restore(saved)
        if not bars_were_disabled:
            enable_progress_bars()
        hub.stop()


@pytest.fixture
def hub(local_hub_server: LocalHub, monkeypatch) -> Iterator[LocalHub]:
    """A clean fake Hub for one test, with ``HF_TOKEN`` set to its user's write token."""
    local_hub_server.reset()
    monkeypatch.setenv("HF_TOKEN", local_hub_server.token)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    yield local_hub_server
    local_hub_server.reset()
