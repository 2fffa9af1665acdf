"""Pure desired-vs-actual logic of gce_instance (no API)."""
import pytest

from ansible_collections.smc.backend.plugins.module_utils import gce_instance_spec as spec

PARAMS = {"name": "s1", "zone": "europe-west1-b", "machine_type": "n2-standard-8", "labels": {"dc": "ew1"},
          "tags": ["tinc", "smc-storage"], "metadata": None, "ssh_keys": ["a:ssh-ed25519 AAA"],
          "startup_script": "#!/bin/sh\ntrue", "disks": [{"name": "zfs0", "size_gb": 500, "type": "pd-ssd"}],
          "service_account": {"email": "default", "scopes": ["cloud-platform"]}, "network": None,
          "external_ip": None}

INSTANCE = {
    "name": "s1", "zone": "https://x/zones/europe-west1-b", "status": "RUNNING",
    "machine_type": "https://x/zones/europe-west1-b/machineTypes/n2-standard-8",
    "labels": {"dc": "ew1", "owner": "ops"}, "label_fingerprint": "fp",
    "tags": {"items": ["smc-storage", "tinc"]},
    "metadata": {"items": [{"key": "ssh-keys", "value": "a:ssh-ed25519 AAA"},
                           {"key": "startup-script", "value": "#!/bin/sh\ntrue"}]},
    "disks": [{"boot": True, "source": "https://x/disks/s1"},
              {"device_name": "zfs0", "source": "https://x/disks/s1-zfs0", "disk_size_gb": "500"}],
    "service_accounts": [{"email": "1-compute@developer.gserviceaccount.com",
                          "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}],
    "network_interfaces": [{"network": "https://x/global/networks/default", "network_i_p": "10.0.0.2"}],
}
DISKS = {"s1-zfs0": {"name": "s1-zfs0", "size_gb": "500", "type_": "https://x/diskTypes/pd-ssd"}}


def desired(**overrides):
    return spec.desired_from_params(dict(PARAMS, **overrides))


def actual(**overrides):
    return spec.actual_from_instance(dict(INSTANCE, **overrides), DISKS)


def test_desired_normalizes_metadata_scopes_and_disks():
    d = desired()
    assert d["metadata"] == {"ssh-keys": "a:ssh-ed25519 AAA", "startup-script": "#!/bin/sh\ntrue"}
    assert d["service_account"]["scopes"] == ["https://www.googleapis.com/auth/cloud-platform"]
    assert d["disks"] == [{"name": "zfs0", "size_gb": 500, "type": "pd-ssd", "auto_delete": False}]
    assert d["tags"] == ["smc-storage", "tinc"]
    assert desired(disks=[{"size_gb": 1}])["disks"][0]["name"] == "data0"
    bare = desired(tags=None, ssh_keys=None, startup_script=None, disks=None, service_account=None)
    assert bare["metadata"] is bare["tags"] is bare["disks"] is bare["service_account"] is None


def test_duplicate_disk_names_are_rejected():
    with pytest.raises(spec.SpecError, match="unique"):
        desired(disks=[{"name": "a", "size_gb": 1}, {"name": "a", "size_gb": 2}])


def test_actual_reads_the_instance():
    a = actual()
    assert a["machine_type"] == "n2-standard-8" and a["zone"] == "europe-west1-b"
    assert a["disks"] == [{"name": "zfs0", "size_gb": 500, "type": "pd-ssd", "auto_delete": False}]
    assert a["private_ip"] == "10.0.0.2" and a["public_ip"] is None and a["external_ip"] is False


def test_converged_instance_needs_nothing():
    planned = spec.plan(desired(), actual(), "present")
    assert planned["actions"] == [] and planned["requires_recreate"] == []
    assert planned["before"] == planned["after"] and "label_fingerprint" not in planned["before"]


def test_create_plan_and_stopped_create():
    assert spec.plan(desired(), None, "present")["actions"] == ["create"]
    planned = spec.plan(desired(), None, "stopped")
    assert planned["actions"] == ["create", "stop"] and planned["after"]["status"] == "TERMINATED"
    assert planned["before"] is None
    with pytest.raises(spec.SpecError, match="machine_type is required"):
        spec.plan(desired(machine_type=None), None, "present")


def test_labels_merge_or_purge():
    planned = spec.plan(desired(labels={"dc": "ew2"}), actual(), "present")
    assert planned["actions"] == ["set_labels"] and planned["labels"] == {"dc": "ew2", "owner": "ops"}
    planned = spec.plan(desired(labels={"dc": "ew1"}), actual(), "present", purge_labels=True)
    assert planned["labels"] == {"dc": "ew1"}
    assert spec.plan(desired(labels=None), actual(), "present")["actions"] == []


@pytest.mark.parametrize("status,state,action", [
    ("RUNNING", "started", None), ("STAGING", "started", None), ("TERMINATED", "started", "start"),
    ("STOPPED", "started", "start"), ("RUNNING", "stopped", "stop"), ("STOPPING", "stopped", None),
    ("TERMINATED", "present", None), ("PROVISIONING", "stopped", "stop"),
])
def test_status_actions(status, state, action):
    assert spec.status_action(status, state) == action
    planned = spec.plan(desired(), actual(status=status), state)
    assert planned["actions"] == ([action] if action else [])


@pytest.mark.parametrize("status", ["SUSPENDED", "SUSPENDING", "REPAIRING"])
def test_stuck_statuses_fail_clearly(status):
    with pytest.raises(spec.SpecError, match=f"instance is {status}"):
        spec.plan(desired(), actual(status=status), "started")
    assert spec.plan(desired(), actual(status=status), "present")["actions"] == []


def test_absent():
    assert spec.plan(desired(), actual(), "absent")["actions"] == ["delete"]
    assert spec.plan(desired(), None, "absent")["actions"] == []
    with pytest.raises(spec.SpecError):
        spec.plan(desired(), None, "recreated")


@pytest.mark.parametrize("override,field", [
    ({"machine_type": "n2-standard-16"}, "machine_type"),
    ({"tags": ["tinc"]}, "tags"),
    ({"startup_script": "echo changed"}, "metadata"),
    ({"disks": [{"name": "zfs0", "size_gb": 1000, "type": "pd-ssd"}]}, "disks"),
    ({"disks": [{"name": "zfs0", "size_gb": 500, "type": "pd-ssd"}, {"name": "zfs1", "size_gb": 500}]}, "disks"),
    ({"service_account": {"email": "other@p.iam.gserviceaccount.com", "scopes": ["cloud-platform"]}},
     "service_account"),
    ({"service_account": {"email": "default", "scopes": ["compute-ro"]}}, "service_account"),
    ({"network": "storage-vpc"}, "network"),
    ({"external_ip": True}, "external_ip"),
])
def test_requires_recreate_is_reported_not_acted_on(override, field):
    planned = spec.plan(desired(**override), actual(), "present")
    assert [f["field"] for f in planned["requires_recreate"]] == [field]
    assert "create" not in planned["actions"] and "delete" not in planned["actions"]
    message = spec.recreate_message("s1", planned["requires_recreate"])
    assert field in message and "state=absent" in message and "not re-created" in message


def test_insert_body_creates_or_reattaches_data_disks():
    body = spec.insert_body(desired(external_ip=True), "p", "img", 20, "pd-ssd", existing_disks=["s1-zfs0"])
    boot, zfs0 = body["disks"]
    assert boot["initialize_params"] == {"source_image": "img", "disk_size_gb": 20,
                                         "disk_type": "zones/europe-west1-b/diskTypes/pd-ssd"}
    assert zfs0 == {"boot": False, "auto_delete": False, "device_name": "zfs0",
                    "source": "projects/p/zones/europe-west1-b/disks/s1-zfs0"}
    fresh = spec.insert_body(desired(), "p", "img")["disks"][1]
    assert fresh["initialize_params"]["disk_name"] == "s1-zfs0"
    assert body["network_interfaces"][0]["access_configs"][0]["type_"] == "ONE_TO_ONE_NAT"
    assert body["metadata"]["items"][0]["key"] == "ssh-keys"
    assert body["service_accounts"][0]["email"] == "default"
