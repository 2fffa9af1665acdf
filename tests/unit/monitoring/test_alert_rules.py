"""The alert rules of roles/monitoring: valid, every alert unit-tested by promtool, names the agent exports.

promtool comes from Debian's ``prometheus`` package (tests/lab/bootstrap.sh installs it); without it these
tests fail rather than skip, so `make test` cannot pass with the rules untested.
"""
import os
import re
import shutil
import subprocess

import pytest
import yaml

from ansible_collections.smc.backend.plugins.module_utils import alert_rules
from ansible_collections.smc.backend.plugins.module_utils import metrics_text as m

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
RULES = os.path.join(ROOT, "roles", "monitoring", "files", "smc-alerts.yml")
TESTS = os.path.join(HERE, "smc-alerts.test.yml")


@pytest.fixture(scope="module")
def promtool():
    path = shutil.which("promtool")
    if not path:
        pytest.fail("promtool not found: install Debian's prometheus package (apt-get install prometheus; "
                    "tests/lab/bootstrap.sh does it)")
    return path


def _load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _alerts():
    return {r["alert"]: r for g in _load(RULES)["groups"] for r in g["rules"] if "alert" in r}


def run(args, cwd=HERE):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)


def test_the_rule_file_is_valid(promtool):
    out = run([promtool, "check", "rules", RULES])
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: %d rules found" % len(_alerts()) in out.stdout


def test_promtool_unit_tests_of_the_rules_pass(promtool):
    out = run([promtool, "test", "rules", os.path.basename(TESTS)])
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_is_tested_firing_and_silent():
    fired, silent = set(), set()
    for case in _load(TESTS)["tests"]:
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else silent).add(check["alertname"])
    assert sorted(set(_alerts()) - fired) == [], "alerts never tested firing"
    assert sorted(set(_alerts()) - silent) == [], "alerts never tested silent"


def test_every_alert_has_a_severity_summary_and_description():
    for name, rule in _alerts().items():
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_the_rules_use_only_metric_names_the_agent_exports():
    families = (m.replication_metrics({"d": {"p": {"last_success": 1, "lag_seconds": 1.0,
                                                   "consecutive_failures": 1, "last_error": "e"}}}, 2, True)
                + m.snapshot_metrics({"d": {"count": 1, "newest": 1}}, 2, {"default": 900})
                + m.pool_metrics({"t": {"health": "ONLINE", "size_bytes": 2, "allocated_bytes": 1, "free_bytes": 1}})
                + m.fencing_metrics(False, True, {"d": 1}, 3)
                + m.limits_metrics({"c": {}}) + m.placement_metrics(0))
    exported = {f.name for f in families}
    # smc_vpn_*: written by roles/tinc's peer-state script, checked in tests/unit/roles/tinc
    used = {n for r in _alerts().values() for n in re.findall(r"\bsmc_[a-z_]+", r["expr"])
            if not n.startswith("smc_vpn_")}
    assert used and used <= exported, sorted(used - exported)


def test_a_rule_that_fires_too_late_fails_its_unit_test(promtool, tmp_path):
    """The tests have teeth: SmcPoolDegraded waiting 5m instead of 1m is caught."""
    broken = alert_rules.apply_overrides(_load(RULES), {"SmcPoolDegraded": {"for": "5m"}})
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(broken), encoding="utf-8")
    tests = _load(TESTS)
    tests["rule_files"] = ["rules.yml"]
    (tmp_path / "t.yml").write_text(yaml.safe_dump(tests), encoding="utf-8")
    out = run([promtool, "test", "rules", "t.yml"], cwd=str(tmp_path))
    assert out.returncode != 0 and "SmcPoolDegraded" in out.stdout + out.stderr
