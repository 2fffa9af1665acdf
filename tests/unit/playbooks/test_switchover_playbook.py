"""playbooks/switchover.yml when the promotion does not happen, on the controller against six local hosts whose
smc-zfs-agent is a fake (what the agent does is tested in
tests/unit/plugins/modules/test_smc_replication_switchover.py): the fence names its target, a refused or
unanswered promotion is rolled back on the old primary (``--unanswered`` when the new one did not answer), the
placement is not touched, and the play fails with a summary saying why and where the project is writable."""
import json
import os
import subprocess
import sys

import yaml

from local_ansible import ENV, PLAYBOOK, ROOT  # pylint: disable=import-error

FAKE = r'''
import json, os, sys
host, cmd = sys.argv[1], sys.argv[2]
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "calls.jsonl"), "a") as f:
    f.write(json.dumps({"host": host, "args": sys.argv[2:]}) + "\n")
behaviour = json.load(open(os.path.join(here, "behaviour.json")))
if cmd == "ha-status":
    print(json.dumps(behaviour.get("ha-status", {"enabled": False})))
elif cmd == "fence":
    print(json.dumps({"command": "fence", "guid": 77, "snapshot": "smc_1", "failed": 0}))
elif behaviour.get(cmd) == "hang":
    import time
    time.sleep(60)
elif cmd in behaviour:
    rc, err = behaviour[cmd]
    if rc == 0:
        print(json.dumps({"command": cmd, "done": True}))
    else:
        print("smc-zfs-agent: error: " + err, file=sys.stderr)
    sys.exit(rc)
else:
    sys.exit("unexpected command %s" % cmd)
'''
HOSTS = ("s1", "s2", "s3", "s4", "s5", "s6")
PLACE = r'''
- hosts: localhost
  gather_facts: false
  tasks:
    - smc.backend.placement:
        hosts: %s
        projects: [p1, p2, p3]
        dest: "{{ playbook_dir }}/placement.json"
        plans_dir: "{{ playbook_dir }}/plans"
        addresses: %s
'''


def lab(tmp_path, behaviour):
    """The inventory, the fake agent and a placement; returns (project, its primary, another copy)."""
    (tmp_path / "agent.py").write_text(FAKE, encoding="utf-8")
    (tmp_path / "behaviour.json").write_text(json.dumps(behaviour), encoding="utf-8")
    hosts = {}
    for i, h in enumerate(HOSTS):
        hosts[h] = {"dc": "dc%d" % (i // 2 + 1), "ansible_connection": "local", "ansible_become": False,
                    "ansible_python_interpreter": sys.executable,
                    "switchover_agent": "%s %s %s" % (sys.executable, tmp_path / "agent.py", h)}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"storage": {"hosts": hosts}}}}),
                                        encoding="utf-8")
    described = json.dumps([{"name": h, "dc": hosts[h]["dc"]} for h in HOSTS])
    addresses = json.dumps(dict((h, "10.88.0.%d" % (i + 1)) for i, h in enumerate(HOSTS)))
    (tmp_path / "place.yml").write_text(PLACE % (described, addresses), encoding="utf-8")
    out = subprocess.run([PLAYBOOK, "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "place.yml")],
                         capture_output=True, text=True, env=ENV, cwd=str(tmp_path), timeout=300, check=False)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    ring = json.loads((tmp_path / "placement.json").read_text())["placement"]["p1"]
    return "p1", ring[0], ring[1]


def switchover(tmp_path, project, to, check=False, extra=()):
    before = (tmp_path / "placement.json").read_text()
    out = subprocess.run([PLAYBOOK, "-i", str(tmp_path / "hosts.yml"),
                          os.path.join(ROOT, "playbooks", "switchover.yml"), "-e", "project=%s" % project,
                          "-e", "to=%s" % to] + list(extra) + (["--check"] if check else []),
                         capture_output=True, text=True, env=ENV, cwd=str(tmp_path), timeout=300, check=False)
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()] \
        if (tmp_path / "calls.jsonl").exists() else []
    assert (tmp_path / "placement.json").read_text() == before  # no switchover recorded
    return out, out.stdout + out.stderr, calls


def test_a_refused_promotion_is_rolled_back_on_the_old_primary(tmp_path):
    pid, old, new = lab(tmp_path, {"promote": [2, "tank/projects/p1 is not caught up"], "unfence": [0, ""]})
    out, text, calls = switchover(tmp_path, pid, new)
    assert out.returncode != 0, text[-3000:]
    assert [(c["host"], c["args"]) for c in calls] == [
        (new, ["ha-status"]), (old, ["fence", pid, "--to", new]),
        (new, ["promote", pid, "--epoch", "2", "--expect-guid", "77"]),
        (old, ["unfence", pid])]
    flat = " ".join(text.split())
    assert "switchover of p1 to %s did not happen: %s refused: smc-zfs-agent: error: tank/projects/p1 is not " \
           "caught up" % (new, new) in flat
    assert "%s is writable again at epoch 1 (rolled back)" % old in flat


def test_an_unanswered_promotion_asks_the_old_primary_to_check_before_it_unfences(tmp_path):
    pid, old, new = lab(tmp_path, {"promote": "hang", "unfence": [2, "etcd has x at epoch 2 as primary of p1"]})
    out, text, calls = switchover(tmp_path, pid, new, extra=["-e", "switchover_promote_timeout=3"])
    assert out.returncode != 0, text[-3000:]
    assert [(c["host"], c["args"][:2]) for c in calls] == [(new, ["ha-status"]), (old, ["fence", pid]),
                                                           (new, ["promote", pid]), (old, ["unfence", pid])]
    assert calls[-1]["args"] == ["unfence", pid, "--unanswered"]
    flat = " ".join(text.split())
    assert "switchover of p1 to %s did not happen: %s did not answer" % (new, new) in flat
    assert "%s stays read-only: smc-zfs-agent: error: etcd has x at epoch 2 as primary of p1" % old in flat


def test_check_mode_calls_no_agent(tmp_path):
    pid, old, new = lab(tmp_path, {})
    out, text, calls = switchover(tmp_path, pid, new, check=True)
    assert out.returncode == 0, text[-3000:]
    assert [c["args"] for c in calls] == [["ha-status"]]  # (read-only, in check mode too)
    assert "switchover of p1: %s (epoch 1) -> %s (epoch 2)" % (old, new) in " ".join(text.split())


def test_with_ha_the_switchover_starts_from_etcds_primary_and_epoch(tmp_path):
    ring = json.loads(json.dumps(HOSTS))
    pid, old, new = lab(tmp_path, {"promote": [2, "not caught up"], "unfence": [0, ""]})
    serving = next(h for h in ring if h not in (old, new))  # a failover moved it there, at epoch 5
    (tmp_path / "behaviour.json").write_text(json.dumps({
        "promote": [2, "not caught up"], "unfence": [0, ""],
        "ha-status": {"enabled": True, "etcd": "ok", "primary": {pid: {"host": serving, "epoch": 5}}}}))
    out, text, calls = switchover(tmp_path, pid, new, check=True)
    assert out.returncode == 0, text[-3000:]
    assert "switchover of p1: %s (epoch 5) -> %s (epoch 6)" % (serving, new) in " ".join(text.split())
    out, text, calls = switchover(tmp_path, pid, new)
    assert [(c["host"], c["args"][:2]) for c in calls if c["args"][0] != "ha-status"] == [
        (serving, ["fence", pid]), (new, ["promote", pid]), (serving, ["unfence", pid])], text[-3000:]
    assert [c["args"][2:4] for c in calls if c["args"][0] == "promote"] == [["--epoch", "6"]]


def test_with_ha_and_no_answer_from_etcd_nothing_is_planned(tmp_path):
    pid, _old, new = lab(tmp_path, {"ha-status": {"enabled": True, "etcd": "unavailable", "error": "no quorum"}})
    out, text, calls = switchover(tmp_path, pid, new)
    assert out.returncode != 0 and [c["args"] for c in calls] == [["ha-status"]]
    assert "etcd does not name a primary of p1 from %s (unavailable: no quorum)" % new in " ".join(text.split())


def test_a_switchover_to_the_serving_primary_changes_nothing(tmp_path):
    pid, old, _new = lab(tmp_path, {})
    out, text, calls = switchover(tmp_path, pid, old)
    assert out.returncode == 0, text[-3000:]
    assert [c["args"] for c in calls] == [["ha-status"]]
    assert "switchover of p1: %s (epoch 1) -> %s (epoch 1)" % (old, old) in " ".join(text.split())
