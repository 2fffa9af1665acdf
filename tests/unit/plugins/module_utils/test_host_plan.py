"""host_plan: ring changes never flip a primary onto a host without the data; small per-host plans."""
import json
import re

import pytest

from ansible_collections.smc.backend.plugins.module_utils import host_plan as hp
from ansible_collections.smc.backend.plugins.module_utils import placement

HOSTS = ["a1", "a2", "a3", "b1", "b2"]


def test_new_host_taking_the_primary_slot_waits_as_a_replica():
    prev = {"p": ["a1", "a2", "b1"]}
    ring = {"p": ["a3", "a2", "b1"]}  # a3 joined and the ring gives it the primary slot
    current, moves = hp.settle(ring, prev, {}, set(HOSTS))
    assert current["p"] == {"primary": "a1"}  # a1 keeps serving (and its copy) while a3 is seeded
    assert moves == [{"project": "p", "from": "a1", "to": "a3"}]
    plans = hp.host_plans(ring, current, dict((h, "10.0.0.%d" % i) for i, h in enumerate(HOSTS)))
    role, primary, targets = hp.targets(plans["a1"], "p")
    assert (role, primary) == ("primary", "a1") and set(targets) == {"a3", "a2", "b1"}
    assert hp.targets(plans["a3"], "p")[0] == "replica"


def test_lost_primary_passes_to_a_holder_with_a_raised_epoch():
    prev = {"p": ["a1", "a2", "b1"]}
    ring = {"p": ["a2", "a3", "b1"]}  # a1 is down
    current, _moves = hp.settle(ring, prev, {"p": {"epoch": 3}}, {"a2", "a3", "b1", "b2"})
    assert current["p"].get("primary", ring["p"][0]) == "a2" and current["p"]["epoch"] == 4


def test_no_holder_left_stops_naming_project_and_hosts():
    with pytest.raises(hp.UnsafeChange, match=r"p \(primary a1 is gone; ring a3,b2; data only on a1,b1\)"):
        hp.settle({"p": ["a3", "b2"]}, {"p": ["a1", "b1"]}, {}, {"a3", "b2"})


def test_unchanged_ring_keeps_nothing_in_current():
    ring = {"p": ["a1", "b1"], "q": ["b1", "a1"]}
    assert hp.settle(ring, ring, {}, set(HOSTS)) == ({}, [])


def test_plans_round_trip_and_stay_small():
    hosts = [{"name": "h%02d%d" % (d, i), "dc": "dc%d" % d} for d in range(3) for i in range(20)]
    projects = ["p%05d" % i for i in range(3000)]
    ring = dict((p, list(h)) for p, h in placement.place(hosts, projects).items())
    plans = hp.host_plans(ring, {}, dict((h["name"], "10.1.0.%d" % i) for i, h in enumerate(hosts)))
    text = hp.render_plan(plans["h000"])
    plan = hp.parse_plan(text, "plan.json")
    assert plan == json.loads(text) and plan["projects"]
    per_project = len(text) / len(plan["projects"])
    assert per_project < 120  # 1M projects on 1,000 hosts: about 6,000 a host -> well under 1 MB
    for pid in plan["projects"]:
        role, primary, targets = hp.targets(plan, pid)
        assert (role == "primary") == (ring[pid][0] == "h000") and primary == ring[pid][0]
        assert set(targets) == set(ring[pid]) - {primary}


@pytest.mark.parametrize("text,key", [
    ("[]", "format"), ('{"format": 1, "host": "x", "hosts": ["x"], "addresses": [], "projects": {}}', "hosts"),
    ('{"format": 1, "host": "y", "hosts": ["x"], "addresses": ["1"], "projects": {}}', "host"),
    ('{"format": 1, "host": "x", "hosts": ["x"], "addresses": ["1"], "projects": {"p": {"ring": [3], '
     '"primary": 0, "epoch": 1}}}', "projects.\"p\""),
    ('{"format": 1, "host": "x", "hosts": ["x"], "addresses": ["1"], "projects": {"p": {"ring": [0], '
     '"primary": 0, "epoch": 0}}}', "projects.\"p\""),
])
def test_bad_plans_name_the_file_and_key(text, key):
    with pytest.raises(hp.PlanError, match="plan.json.*%s" % key.replace('"', '.')):
        hp.parse_plan(text, "plan.json")


def test_switchover_raises_the_epoch_and_keeps_the_old_copy():
    ring = {"p": ["a1", "a2", "b1"]}
    current, summary = hp.switch(ring, {}, "p", "a2")
    assert current == {"p": {"primary": "a2", "epoch": 2}}
    assert summary == {"project": "p", "from": "a1", "to": "a2", "epoch_before": 1, "epoch": 2}
    back, summary = hp.switch(ring, current, "p", "a1")
    assert back == {"p": {"epoch": 3}} and summary["from"] == "a2"
    # a re-run of the ring keeps the switched primary
    assert hp.settle(ring, ring, current, set(HOSTS))[0] == current


def test_switchover_only_to_a_copy():
    with pytest.raises(hp.PlanError, match="switchover.to: b2 holds no copy"):
        hp.switch({"p": ["a1", "b1"]}, {}, "p", "b2")
    with pytest.raises(hp.PlanError, match="switchover.project"):
        hp.switch({"p": ["a1", "b1"]}, {}, "q", "b1")


def test_a_switchover_starts_from_who_serves_now_when_told():
    ring = {"p": ["a", "b", "c"]}
    current, summary = hp.switch(ring, {}, "p", "c", serving={"primary": "b", "epoch": 3})
    assert summary == {"project": "p", "from": "b", "to": "c", "epoch_before": 3, "epoch": 4}
    assert current == {"p": {"epoch": 4, "primary": "c"}}
    current, summary = hp.switch(ring, {"p": {"primary": "b", "epoch": 3}}, "p", "a",
                                 serving={"primary": "c", "epoch": 5})
    assert summary["from"] == "c" and summary["epoch"] == 6 and current == {"p": {"epoch": 6}}
    current, summary = hp.switch(ring, {}, "p", "b", serving={"primary": "b", "epoch": 3})
    assert summary["from"] == summary["to"] == "b" and current == {}  # already there: nothing moves


@pytest.mark.parametrize("serving, said", [
    ({"primary": "x", "epoch": 3}, "switchover.serving.primary: 'x' holds no copy of p"),
    ({"primary": "b", "epoch": 0}, "switchover.serving.epoch: 0"),
    ({"primary": "b", "epoch": True}, "switchover.serving.epoch: True"),
])
def test_a_serving_primary_must_hold_a_copy_at_an_epoch(serving, said):
    with pytest.raises(hp.PlanError, match=re.escape(said)):
        hp.switch({"p": ["a", "b", "c"]}, {}, "p", "c", serving=serving)
