"""smc.backend.gce_instance run in-process against the local GCE endpoint."""
import contextlib
import io
import json

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.smc.backend.plugins.module_utils.gce import GceBackend
from ansible_collections.smc.backend.plugins.modules import gce_instance
from gce_endpoint.testing import TOKEN, gce  # noqa: F401 # pylint: disable=unused-import

ZONE = "europe-west1-b"


@pytest.fixture
def run(gce, monkeypatch):
    """run(**args) -> the module's JSON result (fast backoff; endpoint and token filled in)."""
    monkeypatch.setattr(GceBackend, "BACKOFF_BASE", 0.001)
    monkeypatch.setattr(GceBackend, "POLL_INTERVAL", 0.01)

    def _run(**args):
        base = {"project": "p", "zone": ZONE, "name": "s1", "auth_kind": "accesstoken", "access_token": TOKEN,
                "api_endpoint": gce.url, "wait_timeout": 10}
        out = io.StringIO()
        with patch_module_args(dict(base, **args)), contextlib.redirect_stdout(out):
            with pytest.raises(SystemExit):
                gce_instance.main()
        return json.loads(out.getvalue())
    return _run


STORAGE = {"machine_type": "e2-standard-4", "labels": {"dc": "ew1", "role": "storage"},
           "disks": [{"name": "zfs0", "size_gb": 100, "type": "pd-ssd"}], "tags": ["smc-storage"],
           "ssh_keys": ["ansible:ssh-ed25519 AAAAC3 ansible@deploy"], "startup_script": "#!/bin/sh\ntrue",
           "service_account": {"email": "default", "scopes": ["cloud-platform"]}}


def test_create_is_idempotent_and_never_logs_the_token(gce, run):
    first = run(**STORAGE, _ansible_diff=True)
    assert first["changed"] and first["actions"] == ["create"], first
    inst = first["instance"]
    assert inst["status"] == "RUNNING" and inst["labels"] == {"dc": "ew1", "role": "storage"}
    assert inst["disks"] == [{"name": "zfs0", "size_gb": 100, "type": "pd-ssd", "auto_delete": False}]
    assert first["diff"]["before"] == {} and first["diff"]["after"]["machine_type"] == "e2-standard-4"
    assert TOKEN not in json.dumps(first)
    second = run(**STORAGE)
    assert not second["changed"] and second["actions"] == [] and second["requires_recreate"] == []


def test_check_mode_changes_nothing(gce, run):
    result = run(**STORAGE, _ansible_check_mode=True, _ansible_diff=True)
    assert result["changed"] and result["actions"] == ["create"]
    assert result["instance"]["status"] == "RUNNING"
    assert "instances.insert" not in gce.state.stats()["by_method"]
    run(**STORAGE)
    result = run(**dict(STORAGE, labels={"dc": "ew2"}), state="stopped", _ansible_check_mode=True,
                 _ansible_diff=True)
    assert result["actions"] == ["set_labels", "stop"]
    assert result["diff"]["before"]["labels"]["dc"] == "ew1" and result["diff"]["after"]["labels"]["dc"] == "ew2"
    assert "instances.setLabels" not in gce.state.stats()["by_method"]


def test_label_change_in_place_then_stop_start(run):
    run(**STORAGE)
    changed = run(**dict(STORAGE, labels={"dc": "ew2"}))
    assert changed["actions"] == ["set_labels"] and changed["instance"]["labels"] == {"dc": "ew2", "role": "storage"}
    purged = run(**dict(STORAGE, labels={"dc": "ew2"}), purge_labels=True)
    assert purged["instance"]["labels"] == {"dc": "ew2"}
    stopped = run(state="stopped")
    assert stopped["actions"] == ["stop"] and stopped["instance"]["status"] == "TERMINATED"
    assert not run(state="stopped")["changed"]
    assert not run(state="present")["changed"]  # present keeps the run state
    started = run(state="started")
    assert started["actions"] == ["start"] and started["instance"]["status"] == "RUNNING"


def test_requires_recreate_fails_or_warns(gce, run, monkeypatch):
    warnings = []
    monkeypatch.setattr(AnsibleModule, "warn", lambda self, msg: warnings.append(msg))
    run(**STORAGE)
    failed = run(**dict(STORAGE, machine_type="e2-standard-8", labels={"dc": "ew3"}))
    assert failed["failed"] and failed["requires_recreate"][0]["field"] == "machine_type"
    assert "cannot be changed in place" in failed["msg"]
    assert "instances.setLabels" not in gce.state.stats()["by_method"]
    warned = run(**dict(STORAGE, machine_type="e2-standard-8", labels={"dc": "ew3"}), on_requires_recreate="warn")
    assert warned["changed"] and warned["actions"] == ["set_labels"]
    assert len(warnings) == 1 and "machine_type" in warnings[0]
    assert warned["instance"]["machine_type"] == "e2-standard-4"  # never re-created silently


def test_absent_keeps_data_disks_and_recreate_reattaches_them(gce, run):
    run(**STORAGE)
    gone = run(state="absent")
    assert gone["changed"] and gone["retained_disks"] == ["s1-zfs0"]
    assert not run(state="absent")["changed"]
    again = run(**STORAGE)
    assert again["reattached_disks"] == ["s1-zfs0"] and again["instance"]["disks"][0]["size_gb"] == 100


def test_missing_machine_type_on_create(run):
    result = run(labels={"dc": "x"})
    assert result["failed"] and "machine_type is required" in result["msg"]


def test_suspended_instance_cannot_be_started(gce, run):
    gce.state.seed("p", ZONE, "s1", status="SUSPENDED")
    result = run(state="started")
    assert result["failed"] and "SUSPENDED" in result["msg"]


def test_api_errors_have_one_shape(gce, run):
    gce.state.configure(quota_instances=0)
    quota = run(**STORAGE)
    assert quota["failed"] and quota["http_code"] == 403 and quota["reason"] == "quotaExceeded"
    assert quota["msg"].startswith("create instance s1: Quota 'INSTANCES' exceeded")
    gce.state.configure(quota_instances=None)
    gce.state.fail_operations(1)
    failed_op = run(**STORAGE)
    assert failed_op["failed"] and failed_op["reason"] == "ZONE_RESOURCE_POOL_EXHAUSTED"
    bad_zone = run(**STORAGE, zone="nowhere-1a")
    assert bad_zone["failed"] and bad_zone["http_code"] == 400
    assert TOKEN not in json.dumps([quota, failed_op, bad_zone])


def test_rate_limits_are_retried(gce, run):
    gce.state.inject(429, count=2)
    result = run(**STORAGE)
    assert result["changed"] and not result.get("failed")


def test_operation_timeout_is_reported(gce, run):
    gce.state.configure(op_seconds=3600, wait_cap=0.05)
    result = run(**STORAGE, wait_timeout=1)
    assert result["failed"] and result["reason"] == "timeout" and "may still complete" in result["msg"]


def test_missing_credentials_fail_cleanly(run):
    result = run(**STORAGE, access_token=None)
    assert result["failed"] and "requires access_token" in result["msg"]
