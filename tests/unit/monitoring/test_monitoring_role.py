"""Role monitoring's configurations, rendered from an inventory on the controller and checked by promtool.

The templates and the role's vars are rendered by ansible-playbook on localhost (no host is touched); the
Prometheus configuration must pass `promtool check config` with the collection's rule file, the
Alertmanager one `amtool check-config` when amtool is installed (Debian's prometheus-alertmanager).
"""
import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
ROLE = os.path.join(ROOT, "roles", "monitoring")
BIN = os.path.dirname(sys.executable)
ENV = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"),
           ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_STRATEGY="linear")
for name in ("ANSIBLE_STRATEGY_PLUGINS", "ANSIBLE_CALLBACKS_ENABLED", "ANSIBLE_CALLBACK_PLUGINS"):
    ENV.pop(name, None)

INVENTORY = {"all": {"children": {
    "storage": {"children": {
        "dc1": {"hosts": {"dc1-s1": {"dc": "dc1", "ansible_host": "127.0.0.1", "vpn_address": "10.88.0.1"},
                          "dc1-s2": {"dc": "dc1", "ansible_host": "192.0.2.12"}}},
        "dc2": {"hosts": {"dc2-s1": {"dc": "dc2"}}}}},
    "coordination": {"hosts": {"etcd-1": {"vpn_address": "10.88.1.1", "dc": "dc1"},
                               "etcd-2": {"vpn_address": "10.88.1.2", "private_ip": "10.77.0.202", "dc": "dc2"}}},
    "monitoring": {"hosts": {"mon-1": {"ansible_connection": "local"}}},
}}}

PLAY = """
- name: Render the monitoring role's configurations
  hosts: mon-1
  gather_facts: false
  vars_files: [{role}/defaults/main.yml, {role}/vars/main.yml]
  tasks:
    - name: Prometheus
      ansible.builtin.template: {{src: {role}/templates/prometheus.yml.j2, dest: "{{{{ out }}}}/prometheus.yml", mode: "0644"}}
    - name: Alertmanager
      ansible.builtin.template: {{src: {role}/templates/alertmanager.yml.j2, dest: "{{{{ out }}}}/alertmanager.yml", mode: "0644"}}
    - name: Flags
      ansible.builtin.copy:
        content: "{{{{ __monitoring_defaults_files | to_json }}}}"
        dest: "{{{{ out }}}}/defaults.json"
        mode: "0644"
"""


def render(tmp_path, inventory=None, extra=None):
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory or INVENTORY), encoding="utf-8")
    (tmp_path / "play.yml").write_text(PLAY.format(role=ROLE), encoding="utf-8")
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(os.path.join(ROLE, "files", "smc-alerts.yml"), str(rules / "smc-alerts.yml"))
    extra_vars = dict({"out": str(tmp_path), "__monitoring_rules_dir": str(rules)}, **(extra or {}))
    out = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
                          str(tmp_path / "play.yml"), "-e", json.dumps(extra_vars)],
                         capture_output=True, text=True, env=ENV, cwd=str(tmp_path), check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    return tmp_path


@pytest.fixture(scope="module")
def default(tmp_path_factory):
    """The configurations of INVENTORY with the role's defaults and a webhook URL of the tests."""
    return render(tmp_path_factory.mktemp("default"), extra={
        "monitoring_alertmanager_webhook_url": "http://127.0.0.1:5001/hook", "monitoring_retention_time": "90d"})


def _jobs(path):
    with open(str(path / "prometheus.yml"), encoding="utf-8") as f:
        return {j["job_name"]: j for j in yaml.safe_load(f)["scrape_configs"]}


def test_targets_come_from_the_inventory_at_the_vpn_address(default):
    jobs = _jobs(default)
    assert jobs["node"]["static_configs"] == [
        {"targets": ["10.88.0.1:9100"], "labels": {"instance": "dc1-s1", "dc": "dc1"}},
        {"targets": ["192.0.2.12:9100"], "labels": {"instance": "dc1-s2", "dc": "dc1"}},
        {"targets": ["dc2-s1:9100"], "labels": {"instance": "dc2-s1", "dc": "dc2"}}]
    assert jobs["etcd"]["static_configs"] == [
        {"targets": ["10.88.1.1:2381"], "labels": {"instance": "etcd-1", "dc": "dc1"}},
        # (etcd's metrics listen on the member's own address, as role coordination configures them)
        {"targets": ["10.77.0.202:2381"], "labels": {"instance": "etcd-2", "dc": "dc2"}}]
    assert jobs["etcd"]["scheme"] == "http"
    assert jobs["prometheus"]["static_configs"] == [{"targets": ["127.0.0.1:9090"]}]


def test_the_configuration_passes_promtool_with_the_rule_file(default):
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.fail("promtool not found: install Debian's prometheus package (tests/lab/bootstrap.sh does it)")
    path = default
    out = subprocess.run([promtool, "check", "config", str(path / "prometheus.yml")], capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "smc-alerts.yml" in out.stdout + out.stderr


def test_without_a_coordination_group_the_etcd_job_has_no_targets(tmp_path):
    inventory = {"all": {"children": {"monitoring": {"hosts": {"mon-1": {"ansible_connection": "local"}}}}}}
    jobs = _jobs(render(tmp_path, inventory))
    assert jobs["etcd"]["static_configs"] == [] and jobs["node"]["static_configs"] == []
    promtool = shutil.which("promtool")
    if promtool:
        out = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                             capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stdout + out.stderr


def test_extra_scrape_configs_and_another_address_variable(tmp_path):
    extra = {"monitoring_address_var": "private_ip", "monitoring_etcd_scheme": "https", "monitoring_etcd_port": 2381,
             "monitoring_extra_scrape_configs": [{"job_name": "blackbox", "static_configs": [{"targets": ["x:9115"]}]}]}
    jobs = _jobs(render(tmp_path, extra=extra))
    assert jobs["node"]["static_configs"][0]["targets"] == ["127.0.0.1:9100"]
    assert jobs["etcd"]["static_configs"][0]["targets"] == ["etcd-1:2381"] and jobs["etcd"]["scheme"] == "https"
    assert jobs["blackbox"]["static_configs"] == [{"targets": ["x:9115"]}]


def _alertmanager(path):
    with open(str(path / "alertmanager.yml"), encoding="utf-8") as f:
        return yaml.safe_load(f)


def test_alertmanager_sends_to_the_webhook_by_default(default):
    path = default
    am = _alertmanager(path)
    assert am["receivers"] == [{"name": "smc-webhook",
                                "webhook_configs": [{"url": "http://127.0.0.1:5001/hook", "send_resolved": True}]}]
    assert am["route"]["receiver"] == "smc-webhook"
    amtool = shutil.which("amtool")
    if amtool:
        out = subprocess.run([amtool, "check-config", str(path / "alertmanager.yml")], capture_output=True,
                             text=True, check=False)
        assert out.returncode == 0, out.stdout + out.stderr


def test_receivers_and_route_can_be_replaced(tmp_path):
    receivers = [{"name": "pager", "webhook_configs": [{"url": "https://pager.example/hook"}]}]
    am = _alertmanager(render(tmp_path, extra={"monitoring_alertmanager_receivers": receivers,
                                               "monitoring_alertmanager_route": {"repeat_interval": "1h"}}))
    assert am["receivers"] == receivers
    assert am["route"]["receiver"] == "pager" and am["route"]["repeat_interval"] == "1h"
    assert am["route"]["group_by"] == ["alertname", "instance"]


def test_flags_files(default):
    path = default
    files = {f["path"]: f["content"] for f in json.loads((path / "defaults.json").read_text(encoding="utf-8"))}
    assert 'ARGS="--web.listen-address=0.0.0.0:9090 --storage.tsdb.retention.time=90d"\n' in files["/etc/default/prometheus"]
    assert ('ARGS="--web.listen-address=127.0.0.1:9093 --cluster.listen-address="\n'
            in files["/etc/default/prometheus-alertmanager"])
