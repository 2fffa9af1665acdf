"""gce_instance: hostile names, labels, sizes and scopes fail naming the field before any API call; metadata
and startup_script never appear in results or messages; state=absent never deletes auto_delete data disks
without confirm_delete_disks naming them; a failed create reports changed=false."""
import json

from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.smc.backend.plugins.module_utils import gce_instance_spec as spec
from ansible_collections.smc.backend.plugins.modules import gce_instance
from gce_endpoint.testing import gce  # noqa: F401 # pylint: disable=unused-import

ZONE = "europe-west1-b"
MUTATIONS = ("instances.insert", "instances.delete", "instances.setLabels", "instances.start", "instances.stop",
             "disks.delete")
SECRET = "s3cr3t-Metadata-Value-7f1c"
SCRIPT_SECRET = "#!/bin/sh\necho hunter2-StartupScript-91ab"
BASE = {"machine_type": "e2-standard-4", "labels": {"dc": "ew1", "role": "storage"},
        "disks": [{"name": "zfs0", "size_gb": 100, "type": "pd-ssd"}], "tags": ["smc-storage"]}
HYPO = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# NUL is refused by AnsibleModule itself (before the module runs), so it is left out here
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
HOSTILE_NAMES = st.one_of(
    st.sampled_from(["", "/", "..", ".", "a/b", "../etc", "s1\n", "s1\nx", "-s1", "s1-", "S1", "1s", "s_1",
                     "s\u00e9", "s 1", "a" * 64, "\u0131nstance"]),
    TEXT.map(lambda t: "-" + t), TEXT.map(lambda t: "s" + t + "\n"),
    TEXT.filter(lambda t: not spec.NAME_RE.fullmatch(t)))
HOSTILE_SIZES = st.one_of(st.integers(max_value=9), st.integers(min_value=65537),
                          st.sampled_from([-1, 0, 2 ** 63, -2 ** 63, 10 ** 30]))

# The module runner is test_gce_instance's fixture (same endpoint, token and fast backoff).
from test_gce_instance import run  # noqa: E402,F401 # pylint: disable=import-error,unused-import,wrong-import-position


def _mutations(gce_server):
    return {k: v for k, v in gce_server.state.stats()["by_method"].items() if k in MUTATIONS}


def _refused(gce_server, result, field):
    assert result.get("failed") and not result["changed"] and result["actions"] == [], result
    assert field in result["msg"], (field, result["msg"])
    assert "Traceback" not in json.dumps(result)
    assert gce_server.state.stats()["requests"] == 0, gce_server.state.stats()  # not even a read


# ---------------------------------------------------------------- hostile values: clean error, no API call
@HYPO
@given(name=HOSTILE_NAMES)
def test_hostile_instance_names(gce, run, name):
    _refused(gce, run(**BASE, name=name), "name:")


@HYPO
@given(name=HOSTILE_NAMES)
def test_hostile_disk_names_tags_zones_and_machine_types(gce, run, name):
    _refused(gce, run(**dict(BASE, disks=[{"name": name, "size_gb": 100}])), "disks[0].name")
    _refused(gce, run(**dict(BASE, tags=["ok", name])), "tags[1]")
    _refused(gce, run(**BASE, zone=name), "zone:")
    _refused(gce, run(**dict(BASE, machine_type=name)), "machine_type:")
    _refused(gce, run(**BASE, network=name), "network:")


@HYPO
@given(size=HOSTILE_SIZES, kind=st.sampled_from(["pd-standard", "pd-balanced", "pd-ssd", "pd-extreme"]))
def test_hostile_disk_sizes(gce, run, size, kind):
    _refused(gce, run(**dict(BASE, disks=[{"name": "zfs0", "size_gb": size, "type": kind}])), "disks[0].size_gb")
    _refused(gce, run(**BASE, boot_disk_size_gb=size), "boot_disk_size_gb")


def test_pd_extreme_minimum_and_disk_resource_length(gce, run):
    _refused(gce, run(**dict(BASE, disks=[{"name": "zfs0", "size_gb": 100, "type": "pd-extreme"}])),
             "disks[0].size_gb")
    _refused(gce, run(**dict(BASE, disks=[{"name": "z" * 62, "size_gb": 100}])), "longer than 63")


@HYPO
@given(key=st.one_of(HOSTILE_NAMES, st.sampled_from(["Dc", "_dc", "1dc", "dc.x", "d/c", "dc\n", "k" * 64])))
def test_hostile_label_keys(gce, run, key):
    if spec.LABEL_KEY_RE.fullmatch(key):
        return
    _refused(gce, run(**dict(BASE, labels={"dc": "ew1", key: "x"})), "labels: key")


@HYPO
@given(value=st.one_of(st.sampled_from(["EW1", "ew 1", "ew1\n", "../x", "a/b", "\u00e9", "v" * 64, "1.5"]),
                       TEXT.filter(lambda t: not spec.LABEL_VALUE_RE.fullmatch(t)),
                       st.floats(allow_nan=True), st.lists(st.integers(), max_size=2),
                       st.dictionaries(st.text("abc", max_size=2), st.integers(), max_size=1)))
def test_hostile_label_values_name_the_label(gce, run, value):
    _refused(gce, run(**dict(BASE, labels={"dc": value})), "labels.dc")


def test_too_many_labels(gce, run):
    _refused(gce, run(**dict(BASE, labels={f"k{i}": "v" for i in range(65)})), "at most 64")


@HYPO
@given(scope=st.one_of(st.sampled_from(["https://evil.example/auth/x", "http://www.googleapis.com/auth/compute",
                                        "https://www.googleapis.com/auth/compute\n", "compute.readonly/../x",
                                        "cloud-platform\n", "", "../../x", "https://www.googleapis.com/auth/"]),
                       TEXT.filter(lambda t: t not in spec.SCOPE_ALIASES)))
def test_hostile_scopes(gce, run, scope):
    _refused(gce, run(**BASE, service_account={"email": "default", "scopes": [scope]}),
             "service_account.scopes[0]")


def test_every_bad_field_named_at_once(gce, run):
    result = run(**dict(BASE, name="../x", labels={"Bad": 1, "ok": 2.5},
                        disks=[{"name": "zfs0", "size_gb": -5}]),
                 service_account={"scopes": ["nope"]})
    _refused(gce, result, "name:")
    for field in ("labels: key 'Bad'", "labels.ok", "disks[0].size_gb", "service_account.scopes[0]"):
        assert field in result["msg"]
    assert len(result["errors"]) == 5


# ---------------------------------------------------------------- int labels no longer crash
def test_int_and_bool_label_values_become_strings(gce, run):
    result = run(**dict(BASE, labels={"dc": "ew1", "rack": 7, "spare": True}))
    assert result["changed"] and result["instance"]["labels"] == {"dc": "ew1", "rack": "7", "spare": "true"}
    again = run(**dict(BASE, labels={"dc": "ew1", "rack": 7, "spare": True}))
    assert not again["changed"], again


def test_known_scope_aliases_and_urls_are_accepted(run):
    result = run(**BASE, service_account={"email": "default",
                                          "scopes": ["compute-ro", "https://www.googleapis.com/auth/logging.write"]})
    assert result["changed"], result
    assert result["instance"]["service_account"]["scopes"] == [
        "https://www.googleapis.com/auth/compute.readonly", "https://www.googleapis.com/auth/logging.write"]


# ---------------------------------------------------------------- metadata and startup_script are never echoed
def test_secrets_absent_from_results_diffs_and_failures(gce, run):
    created = run(**BASE, metadata={"api-key": SECRET}, startup_script=SCRIPT_SECRET, _ansible_diff=True)
    assert created["changed"] and not created.get("failed"), created
    changed = run(**BASE, metadata={"api-key": SECRET + "-rotated"}, startup_script=SCRIPT_SECRET + "x",
                  _ansible_diff=True)
    assert changed["failed"] and "metadata" in changed["msg"]
    checked = run(**BASE, metadata={"api-key": "other"}, _ansible_check_mode=True, _ansible_diff=True,
                  on_requires_recreate="warn")
    bad = run(**BASE, name="Bad/Name", metadata={"api-key": SECRET, "x": 5}, startup_script=SCRIPT_SECRET)
    assert bad["failed"] and "metadata.x" in bad["msg"]
    for result in (created, changed, checked, bad):
        text = json.dumps(result)
        for secret in (SECRET, "hunter2", "StartupScript", "rotated"):
            assert secret not in text, (secret, result)
    assert created["diff"]["after"]["metadata"]["api-key"] == spec.REDACTED
    assert created["instance"]["metadata"]["startup-script"] == spec.REDACTED
    recreate = changed["requires_recreate"][0]
    assert recreate["keys"] == ["api-key", "startup-script"]
    assert set(recreate["desired"].values()) == {spec.REDACTED}


def test_redaction_in_the_pure_functions():
    desired = spec.desired_from_params({"name": "s1", "zone": ZONE, "metadata": {"k": SECRET},
                                        "startup_script": SCRIPT_SECRET})
    actual = spec.actual_from_instance({"name": "s1", "metadata": {"items": [{"key": "k", "value": "old-" + SECRET}]}})
    planned = spec.plan(desired, actual, "present")
    message = spec.recreate_message("s1", planned["requires_recreate"])
    assert SECRET not in message and "hunter2" not in message and "metadata" in message
    assert SECRET not in json.dumps([planned["requires_recreate"], spec.redact(planned["before"])])
    options = gce_instance.argument_spec()
    assert options["metadata"]["no_log"] and options["startup_script"]["no_log"]


# ---------------------------------------------------------------- absent: auto_delete data disks need confirmation
def test_absent_refuses_auto_delete_disks_without_confirmation(gce, run):
    disks = [{"name": "zfs0", "size_gb": 100, "auto_delete": True}, {"name": "keep", "size_gb": 10}]
    run(**dict(BASE, disks=disks))
    gce.state.reset_stats()
    for extra in ({}, {"_ansible_check_mode": True}, {"confirm_delete_disks": ["other"]}):
        refused = run(state="absent", **extra)
        assert refused["failed"] and not refused["changed"], refused
        assert "s1-zfs0" in refused["msg"] and "confirm_delete_disks" in refused["msg"]
        assert refused["disks_to_delete"] == ["s1-zfs0"]
    assert _mutations(gce) == {}
    assert run(state="present")["instance"]["status"] == "RUNNING"  # still there
    gone = run(state="absent", confirm_delete_disks=["zfs0"])
    assert gone["changed"] and gone["deleted_disks"] == ["s1-zfs0"] and gone["retained_disks"] == ["s1-keep"]
    assert _mutations(gce) == {"instances.delete": 1}


def test_absent_without_auto_delete_disks_needs_no_confirmation(run):
    run(**BASE)
    gone = run(state="absent")
    assert gone["changed"] and gone["deleted_disks"] == [] and gone["retained_disks"] == ["s1-zfs0"]


@HYPO
@given(name=HOSTILE_NAMES)
def test_hostile_confirm_delete_disks(gce, run, name):
    _refused(gce, run(state="absent", confirm_delete_disks=[name]), "confirm_delete_disks[0]")


# ---------------------------------------------------------------- a failed create is not reported as a change
def test_create_whose_operation_fails_reports_no_change(gce, run):
    gce.state.fail_operations(1)
    result = run(**BASE)
    assert result["failed"] and not result["changed"] and result["actions"] == [], result
    assert result["reason"] == "ZONE_RESOURCE_POOL_EXHAUSTED" and "failed" in result["msg"]
    assert "reattached_disks" not in result
    assert run(**BASE, _ansible_check_mode=True)["actions"] == ["create"]  # nothing exists


def test_create_conflict_409_reports_no_change(gce, run):
    gce.state.inject(409, match=f"POST /compute/v1/projects/p/zones/{ZONE}/instances")
    result = run(**BASE, state="stopped")
    assert result["failed"] and not result["changed"] and result["actions"] == [], result
    assert result["http_code"] == 409


def test_failure_after_a_done_action_reports_only_what_was_done(gce, run):
    run(**BASE)
    gce.state.inject(503, count=20, match="/stop")
    result = run(**dict(BASE, labels={"dc": "ew2", "role": "storage"}), state="stopped", retries=0)
    assert result["failed"] and result["changed"] and result["actions"] == ["set_labels"], result
