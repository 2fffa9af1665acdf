"""GceBackend against the local GCE endpoint: credentials, retries, errors, operations, paging."""
import json

import pytest
from google.cloud import compute_v1

from ansible_collections.smc.backend.plugins.module_utils import gce as gce_utils
from ansible_collections.smc.backend.plugins.module_utils.gce import (
    GceBackend, GceError, build_credentials, compare_labels, compare_metadata, merge_labels)
from local_ports import free_port  # pylint: disable=import-error
from gce_endpoint.testing import TOKEN, backend, gce  # noqa: F401 # pylint: disable=unused-import

ZONE = "us-central1-a"


def body(name="h1", **extra):
    doc = {"name": name, "machine_type": f"zones/{ZONE}/machineTypes/e2-small", "labels": {"dc": "a"},
           "disks": [{"boot": True, "auto_delete": True,
                      "initialize_params": {"source_image": "projects/debian-cloud/global/images/family/debian-12"}}],
           "network_interfaces": [{"network": "global/networks/default"}]}
    doc.update(extra)
    return doc


# ---- credentials
def test_access_token_is_required_for_accesstoken():
    with pytest.raises(GceError, match="requires access_token"):
        build_credentials("accesstoken")


def test_service_account_needs_a_source():
    with pytest.raises(GceError, match="service_account_file or service_account_contents"):
        build_credentials("serviceaccount")


def test_bad_service_account_key_does_not_echo_the_secret(tmp_path):
    path = tmp_path / "sa.json"
    path.write_text(json.dumps({"type": "service_account", "private_key": "SECRET-KEY-MATERIAL"}))
    with pytest.raises(GceError) as info:
        build_credentials("serviceaccount", service_account_file=str(path))
    assert "SECRET" not in str(info.value)


def test_unknown_auth_kind():
    with pytest.raises(GceError, match="unknown auth_kind"):
        build_credentials("magic")


def test_application_default_credentials(monkeypatch):
    seen = {}

    def fake_default(scopes=None):
        seen["scopes"] = scopes
        return "ADC", "proj"
    monkeypatch.setattr(gce_utils.google.auth, "default", fake_default)
    assert build_credentials("application") == "ADC"
    assert seen["scopes"] == [gce_utils.COMPUTE_SCOPE]


def test_missing_application_default_credentials(monkeypatch):
    def no_adc(scopes=None):
        raise gce_utils.auth_exceptions.DefaultCredentialsError("no ADC here")
    monkeypatch.setattr(gce_utils.google.auth, "default", no_adc)
    with pytest.raises(GceError, match="Application Default Credentials not found") as info:
        build_credentials("application")
    assert info.value.reason == "authError"


def test_service_account_key_reaches_the_endpoint(gce, tmp_path):
    """A real RSA key: the SDK signs a JWT and the endpoint accepts the bearer token."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    info = {"type": "service_account", "project_id": "p", "private_key_id": "k1", "private_key": pem,
            "client_email": "deployer@p.iam.gserviceaccount.com", "client_id": "1",
            "token_uri": f"{gce.url}/token"}
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(info))
    gce.state.configure(token=None)
    for source in ({"service_account_file": str(path)}, {"service_account_contents": json.dumps(info)}):
        client = GceBackend("p", auth_kind="serviceaccount", api_endpoint=gce.url, **source)
        assert client.get_instance(ZONE, "nope") is None


def test_wrong_token_is_a_401(gce):
    client = GceBackend("p", auth_kind="accesstoken", access_token="wrong", api_endpoint=gce.url)
    with pytest.raises(GceError) as info:
        client.get_instance(ZONE, "h1")
    # the SDK answers a 401 by refreshing the token; a bare token cannot refresh -> a credentials error
    assert (info.value.reason, info.value.retryable) == ("authError", False)
    assert "credentials error" in info.value.message and "wrong" not in info.value.message


# ---- error shapes
def test_get_missing_instance_is_none(backend):
    assert backend.get_instance(ZONE, "missing") is None
    assert backend.get_disk(ZONE, "missing") is None


def test_insert_twice_is_409_already_exists(backend):
    backend.insert_instance(ZONE, body(), timeout=10)
    with pytest.raises(GceError) as info:
        backend.insert_instance(ZONE, body(), timeout=10)
    assert (info.value.code, info.value.reason) == (409, "alreadyExists")
    assert "already exists" in info.value.message and info.value.message.startswith("create instance h1")


def test_invalid_label_is_400(backend):
    with pytest.raises(GceError) as info:
        backend.insert_instance(ZONE, body(labels={"DC": "Upper"}), timeout=10)
    assert (info.value.code, info.value.reason) == (400, "invalid")


def test_unknown_zone_is_400(backend):
    with pytest.raises(GceError) as info:
        backend.get_instance("mars-north1-a", "h1")
    assert info.value.code == 400 and "Unknown zone" in info.value.message


def test_quota_403_is_not_retried(gce, backend):
    gce.state.configure(quota_instances=1)
    backend.insert_instance(ZONE, body("h1"), timeout=10)
    calls = backend.calls
    with pytest.raises(GceError) as info:
        backend.insert_instance(ZONE, body("h2"), timeout=10)
    assert (info.value.code, info.value.reason, info.value.retryable) == (403, "quotaExceeded", False)
    assert backend.calls == calls + 1 and backend.slept == []


def test_errors_to_dict():
    err = GceError("boom", code=503, reason="backendError", errors=[{"reason": "backendError"}])
    assert err.to_dict() == {"msg": "boom", "http_code": 503, "reason": "backendError",
                             "errors": [{"reason": "backendError"}]}
    assert GceError.from_exception(err) is err
    other = GceError.from_exception(KeyError("x"), "do thing")
    assert other.message == "do thing: KeyError: 'x'" and not other.retryable


# ---- retries
@pytest.mark.parametrize("status", [429, 500, 503, 403, 0])
def test_transient_errors_are_retried_with_backoff(gce, backend, status):
    gce.state.inject(status, count=2, match="/instances/")
    assert backend.get_instance(ZONE, "missing") is None
    assert backend.retried == 2 and len(backend.slept) == 2
    assert 0.5 <= backend.slept[0] <= 1.0 and 1.0 <= backend.slept[1] <= 2.0  # exponential, with jitter


def test_retries_give_up(gce, backend):
    gce.state.inject(503, count=10)
    with pytest.raises(GceError) as info:
        backend.get_instance(ZONE, "h1")
    assert info.value.code == 503 and info.value.retryable
    assert "gave up after 4 attempts" in info.value.message
    assert backend.calls == 4


def test_connection_refused_is_a_connection_error():
    client = GceBackend("p", auth_kind="accesstoken", access_token=TOKEN,
                        api_endpoint=f"http://127.0.0.1:{free_port()}", retries=1, sleep=lambda s: None)
    with pytest.raises(GceError) as info:
        client.get_instance(ZONE, "h1")
    assert info.value.reason == "connectionError" and info.value.retryable
    assert client.calls == 2


def test_request_id_makes_a_retried_insert_idempotent(gce, backend):
    ops = backend.client("InstancesClient")
    request = compute_v1.InsertInstanceRequest(project="p", zone=ZONE, request_id="3f1a0b7e-0000-4000-8000-000000000001",
                                               instance_resource=compute_v1.Instance(body()))
    first = ops.insert(request=request)
    second = ops.insert(request=request)
    assert first.name == second.name


# ---- operations
def test_operation_goes_pending_running_done(gce, backend):
    gce.state.configure(op_seconds=3.0)  # (0.3 s was over before the second request on a loaded machine)
    request = compute_v1.InsertInstanceRequest(project="p", zone=ZONE, instance_resource=compute_v1.Instance(body()))
    op = backend.client("InstancesClient").insert(request=request)
    status = compute_v1.Operation.Status
    assert op.status == status.PENDING
    assert backend.get_instance(ZONE, "h1").status == "PROVISIONING"
    get = compute_v1.GetZoneOperationRequest(project="p", zone=ZONE, operation=op.name)
    assert backend.client("ZoneOperationsClient").get(request=get).status == status.RUNNING
    assert backend.get_instance(ZONE, "h1").status == "STAGING"
    assert backend.wait(op, ZONE, timeout=5).status == status.DONE
    assert backend.get_instance(ZONE, "h1").status == "RUNNING"


def test_operation_timeout(gce, backend):
    gce.state.configure(op_seconds=3600, wait_cap=0.1)
    with pytest.raises(GceError) as info:
        backend.insert_instance(ZONE, body(), timeout=0.3)
    assert info.value.reason == "timeout" and "may still complete" in info.value.message


def test_operation_error_is_raised(gce, backend):
    gce.state.fail_operations(1)
    with pytest.raises(GceError) as info:
        backend.insert_instance(ZONE, body(), timeout=10)
    assert (info.value.code, info.value.reason) == (503, "ZONE_RESOURCE_POOL_EXHAUSTED")
    assert backend.get_instance(ZONE, "h1") is None


def test_start_stop_and_labels(backend):
    backend.insert_instance(ZONE, body(), timeout=10)
    backend.set_status(ZONE, "h1", "stop", timeout=10)
    assert backend.get_instance(ZONE, "h1").status == "TERMINATED"
    backend.set_status(ZONE, "h1", "start", timeout=10)
    inst = backend.get_instance(ZONE, "h1")
    assert inst.status == "RUNNING"
    backend.set_labels(ZONE, "h1", {"dc": "b"}, inst.label_fingerprint, timeout=10)
    assert dict(backend.get_instance(ZONE, "h1").labels) == {"dc": "b"}
    with pytest.raises(GceError) as info:  # stale fingerprint
        backend.set_labels(ZONE, "h1", {"dc": "c"}, inst.label_fingerprint, timeout=10)
    assert (info.value.code, info.value.reason) == (412, "conditionNotMet")
    backend.delete_instance(ZONE, "h1", timeout=10)
    assert backend.get_instance(ZONE, "h1") is None


# ---- listing
def test_aggregated_listing_follows_page_tokens(gce, backend):
    for i in range(7):
        gce.state.seed("p", gce.state.zones[i % 4], f"h{i}", labels={"role": "storage" if i % 2 else "web"})
    rows = list(backend.aggregated_instances(max_results=2))
    assert sorted(i.name for _z, i in rows) == [f"h{i}" for i in range(7)]
    assert gce.state.stats()["by_method"] == {"instances.aggregatedList": 4}
    storage = list(backend.aggregated_instances(filter_expr="labels.role = storage"))
    assert sorted(i.name for _z, i in storage) == ["h1", "h3", "h5"]
    assert [i.name for i in backend.zone_instances(gce.state.zones[0], max_results=1)] == ["h0", "h4"]
    assert backend.zones() == list(gce.state.zones)


def test_bad_filter_and_page_size_are_400(backend):
    with pytest.raises(GceError, match="filter"):
        list(backend.aggregated_instances(filter_expr="labels.role storage"))
    with pytest.raises(GceError, match="maxResults"):
        list(backend.aggregated_instances(max_results=501))


def test_page_retry_resumes_at_the_same_page(gce, backend):
    for i in range(5):
        gce.state.seed("p", ZONE, f"h{i}")
    gce.state.inject(429, count=1, match="aggregated")
    assert len(list(backend.aggregated_instances(max_results=2))) == 5
    assert backend.retried == 1


# ---- pure helpers
def test_compare_labels():
    assert compare_labels({"dc": "a", "x": "1"}, {"dc": "b"}) == ({"dc": "b"}, [])
    assert compare_labels({"dc": "a", "x": "1"}, {"dc": "a"}, purge=True) == ({}, ["x"])
    assert merge_labels({"dc": "a", "x": "1"}, {"dc": "b"}) == {"dc": "b", "x": "1"}
    assert merge_labels({"dc": "a", "x": "1"}, {"dc": "b"}, purge=True) == {"dc": "b"}
    assert merge_labels(None, None) == {}


def test_compare_metadata():
    assert compare_metadata({"a": "1", "other": "x"}, {"a": "1"}) == []
    assert compare_metadata({"a": "1"}, {"a": "2", "b": "3"}) == ["a", "b"]
