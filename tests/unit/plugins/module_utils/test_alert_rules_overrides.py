"""plugins/module_utils/alert_rules.py: overrides of the collection's alert rules, checked against the real
rule file (and, through the filter, by promtool)."""
import os
import shutil
import subprocess

import pytest
import yaml

from ansible_collections.smc.backend.plugins.module_utils import alert_rules as a
from ansible_collections.smc.backend.plugins.filter.alert_rules import alert_rules as alert_rules_filter

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
RULES = os.path.join(ROOT, "roles", "monitoring", "files", "smc-alerts.yml")


@pytest.fixture(name="doc")
def fixture_doc():
    with open(RULES, encoding="utf-8") as f:
        return yaml.safe_load(f)


def test_for_severity_and_threshold_change_only_that_alert(doc):
    before = a.alerts(doc)
    out = a.apply_overrides(doc, {"SmcReplicationLagHigh": {"for": "30s", "threshold": 60, "severity": "critical"}})
    after = a.alerts(out)
    lag = after["SmcReplicationLagHigh"]
    assert lag["for"] == "30s" and lag["labels"]["severity"] == "critical"
    assert lag["expr"] == "smc_replication_lag_seconds > 60" and a.threshold(lag) == 60
    assert dict((k, v) for k, v in after.items() if k != "SmcReplicationLagHigh") == \
        dict((k, v) for k, v in before.items() if k != "SmcReplicationLagHigh")
    assert a.alerts(doc)["SmcReplicationLagHigh"]["for"] == "10m"  # the input is untouched


def test_a_ratio_threshold_keeps_its_fraction(doc):
    out = a.apply_overrides(doc, {"SmcPoolFull": {"threshold": 0.75}})
    assert a.alerts(out)["SmcPoolFull"]["expr"] == "smc_pool_capacity_ratio > 0.75"


@pytest.mark.parametrize("overrides, words", [
    ({"SmcNoSuchAlert": {"for": "1m"}}, ["SmcNoSuchAlert", "no such alert"]),
    ({"SmcPoolFull": {"fro": "1m"}}, ["SmcPoolFull", "unknown keys fro"]),
    ({"SmcPoolFull": {"for": "5 minutes"}}, ["SmcPoolFull", "for must be a Prometheus duration"]),
    ({"SmcPoolFull": {"for": "5m\n"}}, ["SmcPoolFull", "for must be a Prometheus duration"]),
    ({"SmcPoolFull": {"severity": "page"}}, ["severity must be one of"]),
    ({"SmcPoolFull": {"threshold": "0.5"}}, ["threshold must be a number"]),
    ({"SmcPoolFull": {"threshold": True}}, ["threshold must be a number"]),
    ({"SmcVpnHostIsolated": {"threshold": 1}}, ["SmcVpnHostIsolated", "compares against no single number"]),
    ({"SmcPoolFull": {}}, ["SmcPoolFull", "must be a mapping"]),
    (["SmcPoolFull"], ["must be a mapping of alert name"]),
])
def test_bad_overrides_are_refused_naming_the_alert_and_key(doc, overrides, words):
    with pytest.raises(a.AlertRulesError) as err:
        a.apply_overrides(doc, overrides)
    for word in words:
        assert word in str(err.value)


def test_the_filter_returns_the_file_unchanged_without_overrides():
    text = open(RULES, encoding="utf-8").read()
    assert alert_rules_filter(text, {}) == text


class Tagged(str):
    """Like Ansible's tagged strings: a str subclass yaml.safe_dump cannot represent as it is."""


def test_the_filter_takes_the_string_subclasses_ansible_passes():
    text = alert_rules_filter(open(RULES, encoding="utf-8").read(), {Tagged("SmcPoolDegraded"): {"for": Tagged("10s")}})
    assert a.alerts(yaml.safe_load(text))["SmcPoolDegraded"]["for"] == "10s"


def test_the_filtered_file_is_valid_for_promtool(tmp_path):
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: install Debian's prometheus package (tests/lab/bootstrap.sh does it)"
    text = alert_rules_filter(open(RULES, encoding="utf-8").read(),
                              {"SmcPoolDegraded": {"for": "10s"}, "SmcReplicationLagHigh": {"threshold": 60}})
    path = tmp_path / "rules.yml"
    path.write_text(text)
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "monitoring_alert_overrides" in text.splitlines()[0]
    assert "{{ $labels.pool }}" in text  # annotations' templates survive the round trip
