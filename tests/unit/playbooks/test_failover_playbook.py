"""playbooks/failover.yml refuses a bad request in its first play, on the controller, before any task reaches a
storage host: no host named, a host outside the storage group, no storage host left to run it, a declared host
not confirmed by name (a check needs no confirmation)."""
import json
import os
import subprocess

import pytest
import yaml

from local_ansible import ENV, PLAYBOOK, ROOT  # pylint: disable=import-error
# Unreachable on purpose: a task that reached one would fail loudly instead of passing.
HOSTS = {"s1": {"ansible_host": "127.0.0.1", "ansible_port": 9}, "s2": {"ansible_host": "127.0.0.1", "ansible_port": 9}}


def run(tmp_path, extra, check=False):
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"storage": {"hosts": HOSTS}}}}),
                                        encoding="utf-8")
    args = [PLAYBOOK, "-i", str(tmp_path / "hosts.yml"),
            os.path.join(ROOT, "playbooks", "failover.yml"), "-e", json.dumps(extra)] + (["--check"] if check else [])
    return subprocess.run(args, capture_output=True, text=True, env=ENV, cwd=str(tmp_path), timeout=300, check=False)


@pytest.mark.parametrize("extra, check, says", [
    ({}, False, "Give -e"),
    ({"failover_hosts": ["nope"], "confirm_dead": ["nope"]}, False, "Give -e"),
    ({"failover_hosts": "s1", "confirm_dead": ["s1"]}, False, "Give -e"),
    ({"failover_hosts": ["s1", "s2"], "confirm_dead": ["s1", "s2"]}, False, "at least one storage host left"),
    ({"failover_hosts": ["s1"]}, False, "confirm_dead must name every host of failover_hosts (missing s1)"),
    ({"failover_hosts": ["s1"], "confirm_dead": ["s2"]}, False, "(missing s1)"),
])
def test_a_bad_request_stops_on_the_controller(tmp_path, extra, check, says):
    out = run(tmp_path, extra, check)
    text = out.stdout + out.stderr
    assert out.returncode != 0 and says in text and "Nothing was changed." in text, text[-3000:]
    assert "Declare" not in text and "UNREACHABLE" not in text  # the second play never started


def test_a_check_needs_no_confirmation_and_goes_on_to_the_runner(tmp_path):
    out = run(tmp_path, {"failover_hosts": ["s1"]}, check=True)
    text = out.stdout + out.stderr
    assert "confirm_dead must name" not in text
    # it reached the runner (unreachable here), whose first step asks etcd whether it has quorum
    assert "Ask whether etcd answers with quorum from s2" in text and "UNREACHABLE" in text
