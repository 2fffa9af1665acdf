"""Direct SSH to the lab hosts (one persistent connection per host), for tests that act on several hosts.

testinfra's ansible backend starts an ansible process per command (seconds each on this lab); the
replication tests run hundreds of commands, so they talk to the hosts with OpenSSH through one
ControlMaster each, with the lab inventory's address, port and key.
"""
import os
import shlex
import shutil
import subprocess

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
INVENTORY = os.path.join(ROOT, "inventory", "lab", "hosts.yml")


class Host:
    def __init__(self, name, address, port, key, control_dir):
        self.name = name
        self.base = ["ssh", "-i", key, "-p", str(port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                     "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ControlMaster=auto",
                     "-o", "ControlPersist=300", "-o", "ControlPath=%s/%%C" % control_dir,
                     "-o", "ServerAliveInterval=10", "root@%s" % address]

    def run(self, script, check=True, timeout=600):
        """Run a shell script on the host; returns (rc, stdout, stderr)."""
        p = subprocess.run(self.base + ["bash -s"], input=script, capture_output=True, text=True, timeout=timeout, check=False)
        if check and p.returncode != 0:
            raise AssertionError("%s: rc=%d\n--- script\n%s\n--- stdout\n%s\n--- stderr\n%s"
                                 % (self.name, p.returncode, script, p.stdout[-3000:], p.stderr[-3000:]))
        return p.returncode, p.stdout, p.stderr

    def out(self, script, **kw):
        return self.run(script, **kw)[1]

    def popen(self, script):
        return subprocess.Popen(self.base + ["bash -c %s" % shlex.quote(script)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)


def _hosts(tree):
    for name, value in (tree.get("hosts") or {}).items():
        yield name, value or {}
    for child in (tree.get("children") or {}).values():
        yield from _hosts(child or {})


@pytest.fixture(scope="session", name="lab")
def fixture_lab(tmp_path_factory):
    with open(INVENTORY, encoding="utf-8") as f:
        inv = yaml.safe_load(f)["all"]
    common = inv.get("vars") or {}
    control = tmp_path_factory.mktemp("cp")
    hosts = {}
    for name, hv in _hosts(inv["children"]["storage"]):
        hv = dict(common, **hv)
        hosts[name] = Host(name, hv["ansible_host"], hv.get("ansible_port", 22), hv["ansible_ssh_private_key_file"],
                           control)
    assert len(hosts) == 6, sorted(hosts)
    return hosts


@pytest.fixture(scope="session", autouse=True)
def keep_controller_placement(tmp_path_factory):
    """The scenario's switchover and ring change rewrite the controller's placement and plans; the lab's
    restore at the end gives the hosts back their state, this gives the controller back its files."""
    lab_dir = os.path.join(ROOT, "inventory", "lab")
    saved = tmp_path_factory.mktemp("placement")
    shutil.copy2(os.path.join(lab_dir, "placement.json"), saved / "placement.json")
    shutil.copytree(os.path.join(lab_dir, "plans"), saved / "plans")
    yield
    shutil.copy2(saved / "placement.json", os.path.join(lab_dir, "placement.json"))
    shutil.rmtree(os.path.join(lab_dir, "plans"))
    shutil.copytree(saved / "plans", os.path.join(lab_dir, "plans"))
