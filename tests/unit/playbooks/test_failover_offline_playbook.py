"""playbooks/failover.yml without etcd's quorum, on the controller against three local hosts whose
smc-zfs-agent is a fake (what the agent does is tested in tests/unit/plugins/modules/test_smc_ha_offline.py):
every live host is surveyed, the most up-to-date live copy wins at the highest known epoch + 1, every live host
records the decision (``--check``: validates only), and nothing is promoted while any live host reaches etcd
or on a revive."""
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
stdin = sys.stdin.read() if cmd == "ha-promote-offline" else ""
with open(os.path.join(here, "calls.jsonl"), "a") as f:
    f.write(json.dumps({"host": host, "args": sys.argv[2:], "stdin": stdin}) + "\n")
surveys = json.load(open(os.path.join(here, "surveys.json")))
if cmd == "ha-status":
    print(json.dumps({"etcd": "unavailable", "error": "connection refused"}))
elif cmd == "ha-survey":
    print(json.dumps(surveys[host]))
elif cmd == "ha-promote-offline":
    moves = json.loads(stdin)
    print(json.dumps({"host": host, "check": "--check" in sys.argv, "recorded": len(moves),
                      "promoted": [m for m in moves if m["to"] == host]}))
else:
    sys.exit("unexpected command %s" % cmd)
'''


def survey(newest, etcd="unavailable"):
    return {"etcd": etcd, "projects": {"p": {
        "newest": {"name": "smc_%d" % newest, "guid": newest, "creation": newest}, "epoch": 3, "role": "replica",
        "readonly": True, "copies": ["s1", "s2", "s3"], "known": {"host": "s1", "epoch": 3}}}}


def run(tmp_path, extra, surveys, check=False):
    (tmp_path / "agent.py").write_text(FAKE, encoding="utf-8")
    (tmp_path / "surveys.json").write_text(json.dumps(surveys), encoding="utf-8")
    hosts = dict((h, {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                      "ansible_become": False, "failover_agent": "%s %s %s" % (sys.executable, tmp_path / "agent.py", h)})
                 for h in ("s1", "s2", "s3"))
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"storage": {"hosts": hosts}}}}),
                                        encoding="utf-8")
    args = [PLAYBOOK, "-i", str(tmp_path / "hosts.yml"), os.path.join(ROOT, "playbooks", "failover.yml"),
            "-e", json.dumps(extra)] + (["--check"] if check else [])
    out = subprocess.run(args, capture_output=True, text=True, env=ENV, cwd=str(tmp_path), timeout=300, check=False)
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()] \
        if (tmp_path / "calls.jsonl").exists() else []
    return out, calls


DEAD = {"failover_hosts": ["s1"], "confirm_dead": ["s1"]}


def test_the_most_up_to_date_live_copy_is_promoted_and_every_live_host_records_it(tmp_path):
    out, calls = run(tmp_path, DEAD, {"s2": survey(100), "s3": survey(120)})
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert sorted(c["host"] for c in calls if c["args"][0] == "ha-survey") == ["s2", "s3"]
    promotes = [c for c in calls if c["args"][0] == "ha-promote-offline"]
    assert sorted(c["host"] for c in promotes) == ["s2", "s3"]
    for call in promotes:
        assert call["args"][1:] == ["--dead", "s1", "--confirm-dead", "s1"]
        assert json.loads(call["stdin"]) == [{"project": "p", "from": "s1", "to": "s3", "epoch": 4,
                                              "newest": "smc_120"}]
    assert not [c for c in calls if c["args"][0] == "ha-failover"]  # no etcd path
    assert "p: s1 -> s3 at epoch 4" in text and "recorded on 2 host(s): s2, s3" in text
    assert "changed=1" in text  # s3 promoted a copy; s2 only recorded


def test_check_shows_the_plan_and_each_host_only_validates(tmp_path):
    out, calls = run(tmp_path, {"failover_hosts": ["s1"]}, {"s2": survey(100), "s3": survey(120)}, check=True)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    promotes = [c for c in calls if c["args"][0] == "ha-promote-offline"]
    assert promotes and all(c["args"][-1] == "--check" for c in promotes)
    assert "would promote 1 project(s) offline" in text and "changed=0" in text


def test_nothing_is_promoted_while_a_live_host_reaches_etcd(tmp_path):
    out, calls = run(tmp_path, DEAD, {"s2": survey(100, etcd="ok"), "s3": survey(120)})
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "etcd answers from s2" in text and "Nothing was changed." in text
    assert not [c for c in calls if c["args"][0] == "ha-promote-offline"]


def test_revive_needs_quorum(tmp_path):
    out, calls = run(tmp_path, {"revive": ["s1"]}, {"s2": survey(100), "s3": survey(120)})
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "revive needs etcd" in text and "Nothing was changed." in text
    assert [c["args"][0] for c in calls] == ["ha-status"]
