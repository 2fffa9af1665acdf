"""pytest fixtures for the GCE endpoint: ``from gce_endpoint.testing import gce, backend  # noqa: F401``."""
import pytest

from .server import FakeGce

TOKEN = "test-access-token-0123456789"


@pytest.fixture
def gce():
    """A fresh endpoint on 127.0.0.1 with fast operations."""
    with FakeGce(op_seconds=0.02, wait_cap=0.5, token=TOKEN) as server:
        yield server


@pytest.fixture
def backend(gce, monkeypatch):
    """A GceBackend on ``gce`` whose retries do not sleep (sleeps are recorded in ``backend.slept``)."""
    from ansible_collections.smc.backend.plugins.module_utils.gce import GceBackend

    monkeypatch.setattr(GceBackend, "POLL_INTERVAL", 0.01)
    slept = []
    client = GceBackend("p", auth_kind="accesstoken", access_token=TOKEN, api_endpoint=gce.url, retries=3,
                        request_timeout=5, sleep=slept.append)
    client.slept = slept
    return client
