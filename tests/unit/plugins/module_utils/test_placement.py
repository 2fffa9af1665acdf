# -*- coding: utf-8 -*-
"""Properties of the placement engine (plugins/module_utils/placement.py)."""
import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.smc.backend.plugins.module_utils import placement as pl
from ansible_collections.smc.backend.plugins.module_utils.placement import PlacementError, place

PROJECTS = ["%08x-0000-4000-8000-%012x" % (i, i * 7919) for i in range(400)]
FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_hosts(sizes, weights=None):
    """``sizes``: {dc: host count}; host names dc-NN."""
    hosts = []
    for dc, count in sorted(sizes.items()):
        for i in range(count):
            name = "%s-%02d" % (dc, i)
            hosts.append({"name": name, "dc": dc, "weight": (weights or {}).get(name, 1.0)})
    return hosts


def by_name(hosts):
    return dict((h["name"], h) for h in hosts)


dc_sizes = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.integers(3, 9), min_size=1, max_size=3)
project_sets = st.lists(st.uuids().map(str), min_size=1, max_size=120, unique=True)


def hosts_and_one(sizes, data):
    """Hosts for ``sizes`` (at least 3 a DC), their DCs, and one host drawn by hypothesis."""
    hosts = make_hosts(sizes)
    dc_of = dict((h["name"], h["dc"]) for h in hosts)
    return hosts, dc_of, data.draw(st.sampled_from(sorted(dc_of)))


def changed_only_with(old, new, host, dc_of):
    """Every changed project names ``host`` on one side; nothing changed outside its DC."""
    dc = dc_of[host]
    for pid in old:
        before, after = old[pid], new[pid]
        if before == after:
            continue
        assert [h for h in before if dc_of[h] != dc] == [h for h in after if dc_of[h] != dc], pid
        moved = set(before) ^ set(after)
        # a slot moved to or from ``host``, or only the order changed around ``host`` (its rank)
        assert host in moved or (not moved and host in before), (pid, before, after)
        assert all(dc_of[h] == dc for h in moved)
        if before[0] != after[0]:
            assert host in (before[0], after[0]), (pid, before, after)


# --- contract ----------------------------------------------------------------------------


@FAST
@given(dc_sizes, project_sets, st.integers(1, 3))
def test_distinct_hosts_exact_count_per_dc_primary_first(sizes, projects, replicas):
    hosts = make_hosts(sizes)
    dc_of = dict((h["name"], h["dc"]) for h in hosts)
    out = place(hosts, projects, replicas_per_dc=replicas)
    assert set(out) == set(projects)
    for pid, chosen in out.items():
        assert len(set(chosen)) == len(chosen) == replicas * len(sizes)
        for dc in sizes:
            assert sum(1 for h in chosen if dc_of[h] == dc) == replicas
        home = dc_of[chosen[0]]
        assert [dc_of[h] for h in chosen[:replicas]] == [home] * replicas


@FAST
@given(dc_sizes, project_sets)
def test_deterministic_and_independent_of_input_order(sizes, projects):
    hosts = make_hosts(sizes)
    first = place(hosts, projects)
    assert place(list(reversed(hosts)), list(reversed(projects))) == first


def test_same_answer_in_another_process_and_hash_seed():
    hosts = make_hosts({"a": 4, "b": 5})
    expected = place(hosts, PROJECTS[:50])
    code = ("import json,sys; from ansible_collections.smc.backend.plugins.module_utils.placement import place;"
            "print(json.dumps(place(json.loads(sys.argv[1]), json.loads(sys.argv[2]))))")
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    got = subprocess.run([sys.executable, "-c", code, json.dumps(hosts), json.dumps(PROJECTS[:50])],
                         env=env, check=True, capture_output=True, text=True).stdout
    assert dict((k, tuple(v)) for k, v in json.loads(got).items()) == expected


def test_known_answers_pin_the_algorithm():
    """Golden values: a change here means every deployed placement moves; bump the salts' v1."""
    hosts = make_hosts({"a": 3, "b": 3})
    out = place(hosts, ["p0", "p1", "p2"])
    assert pl.project_hash("p0") == int.from_bytes(
        __import__("hashlib").blake2b(b"p0", digest_size=8).digest(), "little")
    assert out == GOLDEN, out


GOLDEN = {
    "p0": ("b-01", "b-00", "a-00", "a-02"),
    "p1": ("b-02", "b-01", "a-01", "a-00"),
    "p2": ("a-02", "a-01", "b-00", "b-02"),
}


def test_full_table_equals_lazy_lookup(monkeypatch):
    hosts = make_hosts({"a": 5, "b": 4}, weights={"a-01": 2.5})
    hosts[3]["state"] = "down"
    lazy = place(hosts, PROJECTS)
    monkeypatch.setattr(pl, "FULL_TABLE_MIN_PROJECTS", 1)
    assert place(hosts, PROJECTS) == lazy


# --- minimal movement --------------------------------------------------------------------


@FAST
@given(dc_sizes, project_sets, st.data())
def test_removing_or_downing_a_host_moves_only_its_slots(sizes, projects, data):
    hosts, dc_of, victim = hosts_and_one(sizes, data)
    before = place(hosts, projects)
    removed = place([h for h in hosts if h["name"] != victim], projects)
    downed = place([dict(h, state="down") if h["name"] == victim else h for h in hosts], projects)
    assert removed == downed
    changed_only_with(before, removed, victim, dc_of)
    assert all(victim not in v for v in removed.values())
    # back up: exactly what it had
    assert place(hosts, projects) == before


@FAST
@given(dc_sizes, project_sets, st.sampled_from(["a", "b", "c", "d"]), st.floats(0.5, 3.0))
def test_adding_a_host_moves_only_slots_to_it(sizes, projects, dc, weight):
    hosts = make_hosts(sizes)
    if dc not in sizes:
        return
    new = {"name": "%s-new" % dc, "dc": dc, "weight": weight}
    dc_of = dict((h["name"], h["dc"]) for h in hosts + [new])
    before = place(hosts, projects)
    after = place(hosts + [new], projects)
    changed_only_with(before, after, new["name"], dc_of)
    for pid in projects:
        if before[pid] != after[pid]:
            assert new["name"] in after[pid]


@FAST
@given(dc_sizes, project_sets, st.data(), st.floats(0.25, 4.0))
def test_changing_one_weight_moves_only_that_hosts_slots(sizes, projects, data, weight):
    hosts, dc_of, target = hosts_and_one(sizes, data)
    before = place(hosts, projects)
    after = place([dict(h, weight=weight) if h["name"] == target else h for h in hosts], projects)
    changed_only_with(before, after, target, dc_of)


def test_primary_is_stable_when_other_hosts_change():
    hosts = make_hosts({"a": 6, "b": 6, "c": 6})
    before = place(hosts, PROJECTS)
    after = place([h for h in hosts if h["name"] != "b-03"], PROJECTS)
    for pid in PROJECTS:
        if before[pid][0] != "b-03":
            assert after[pid][0] == before[pid][0]
        else:  # the next replica of the same DC, which already holds the data, takes over
            assert after[pid][0] == before[pid][1]


# --- draining ----------------------------------------------------------------------------


@FAST
@given(dc_sizes, project_sets, st.data())
def test_draining_keeps_what_it_holds_and_gets_nothing_new(sizes, projects, data):
    hosts, dc_of, target = hosts_and_one(sizes, data)
    old_projects = projects[: len(projects) // 2]
    deployed = place(hosts, old_projects)
    draining = [dict(h, state="draining") if h["name"] == target else h for h in hosts]
    out = place(draining, projects, previous=deployed)
    for pid in old_projects:
        assert out[pid] == deployed[pid]  # nothing else changed: keeps exactly what it holds
    without = place([h for h in hosts if h["name"] != target], projects)
    for pid in projects[len(projects) // 2:]:
        assert target not in out[pid]  # nothing new
        assert out[pid] == without[pid]  # and new projects go where they would without it
    # without a previous placement a draining host receives nothing
    assert place(draining, projects) == without


def test_draining_host_loses_slots_taken_by_a_new_host_and_never_regains_others():
    hosts = make_hosts({"a": 5})
    deployed = place(hosts, PROJECTS)
    draining = [dict(h, state="draining") if h["name"] == "a-00" else h for h in hosts]
    removed = place(draining + [{"name": "a-new", "dc": "a"}], PROJECTS, previous=deployed)
    held = set(p for p, v in deployed.items() if "a-00" in v)
    now = set(p for p, v in removed.items() if "a-00" in v)
    assert now <= held and len(now) < len(held)


def test_draining_in_full_table_mode_matches_lazy(monkeypatch):
    hosts = make_hosts({"a": 4, "b": 4})
    deployed = place(hosts, PROJECTS[:200])
    draining = [dict(h, state="draining") if h["name"] in ("a-01", "b-02") else h for h in hosts]
    lazy = place(draining, PROJECTS, previous=deployed)
    monkeypatch.setattr(pl, "FULL_TABLE_MIN_PROJECTS", 1)
    assert place(draining, PROJECTS, previous=deployed) == lazy


# --- weights and balance -----------------------------------------------------------------


def test_weight_two_holds_about_twice_the_slots():
    hosts = make_hosts({"a": 20}, weights={"a-00": 2.0})
    projects = ["proj-%d" % i for i in range(20000)]
    out = place(hosts, projects)
    load = dict((h["name"], 0) for h in hosts)
    for chosen in out.values():
        for name in chosen:
            load[name] += 1
    others = [load[n] for n in load if n != "a-00"]
    ratio = load["a-00"] / (sum(others) / len(others))
    # a host holds at most one slot per project, so a heavy host of a small DC gets a bit less
    assert 1.85 <= ratio <= 2.15, (ratio, load)


def test_balance_of_many_projects_is_close_to_weights():
    hosts = make_hosts({"a": 10, "b": 10})
    projects = ["proj-%d" % i for i in range(20000)]
    report = pl.load_report(place(hosts, projects), hosts)
    for dc in ("a", "b"):
        assert report["dcs"][dc]["max_over_mean"] < 1.09, report["dcs"]


def test_home_dc_follows_dc_weights():
    hosts = make_hosts({"a": 3, "b": 3})
    out = place(hosts, PROJECTS, dc_weights={"a": 3.0, "b": 1.0})
    share_a = sum(1 for v in out.values() if v[0].startswith("a-")) / float(len(out))
    assert 0.65 <= share_a <= 0.85
    even = place(hosts, PROJECTS)
    share_even = sum(1 for v in even.values() if v[0].startswith("a-")) / float(len(even))
    assert 0.4 <= share_even <= 0.6


def test_log_unit_matches_math_log():
    import math
    for x in (1e-300, 1e-9, 0.001, 0.25, 0.5, 0.7, 0.999999, 1.0):
        assert abs(pl._log_unit(x) - math.log(x)) <= 1e-9 * max(1.0, abs(math.log(x)))


# --- degraded ----------------------------------------------------------------------------


def test_small_dc_is_an_error_unless_degraded_allowed():
    hosts = make_hosts({"a": 3, "b": 1})
    with pytest.raises(PlacementError, match=r"dc 'b'.*allow_degraded"):
        place(hosts, PROJECTS[:5])
    out = place(hosts, PROJECTS[:5], allow_degraded=True)
    assert all(len(v) == 3 and "b-00" in v for v in out.values())


def test_down_hosts_do_not_count_as_eligible():
    hosts = make_hosts({"a": 3})
    hosts[0]["state"] = hosts[1]["state"] = "down"
    with pytest.raises(PlacementError, match="1 eligible"):
        place(hosts, ["x"])


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize("hosts, kwargs, pattern", [
    ([{"name": "a", "dc": "x"}, {"name": "a", "dc": "x"}], {}, r"duplicate host name 'a'"),
    ([{"name": "a"}], {}, r"\.dc: missing or empty"),
    ([{"name": "a", "dc": " "}], {}, r"\.dc: missing or empty"),
    ([{"name": "a", "dc": "x", "weight": 0}], {}, r"\.weight: 0 is not a number > 0"),
    ([{"name": "a", "dc": "x", "weight": -1}], {}, r"\.weight"),
    ([{"name": "a", "dc": "x", "weight": "heavy"}], {}, r"\.weight: 'heavy'"),
    ([{"name": "a", "dc": "x", "weight": True}], {}, r"\.weight"),
    ([{"name": "a", "dc": "x", "weight": float("nan")}], {}, r"\.weight"),
    ([{"name": "a", "dc": "x", "state": "gone"}], {}, r"\.state: unknown state 'gone'; use one of up, down"),
    ([{"dc": "x"}], {}, r"hosts\[0\]\.name: missing or empty"),
    (["a"], {}, r"hosts\[0\]: expected a dict"),
    ([], {}, r"hosts: empty"),
    ("a,b", {}, r"hosts: expected a list"),
    ([{"name": "a", "dc": "x"}], {"replicas_per_dc": 0}, r"replicas_per_dc: 0 is not an integer >= 1"),
    ([{"name": "a", "dc": "x"}], {"replicas_per_dc": "2"}, r"replicas_per_dc"),
    ([{"name": "a", "dc": "x"}], {"replicas_per_dc": 1, "dc_weights": {"x": 0}}, r"dc_weights\.x"),
])
def test_bad_input_names_field_and_fix(hosts, kwargs, pattern):
    with pytest.raises(PlacementError, match=pattern):
        place(hosts, ["p"], **kwargs)


@pytest.mark.parametrize("projects, pattern", [
    (["p", "q", "p"], r"duplicate project id 'p'"),
    (["p", 3], r"3 is not a string"),
    (["p", ""], r"empty project id"),
])
def test_bad_projects(projects, pattern):
    with pytest.raises(PlacementError, match=pattern):
        place(make_hosts({"a": 2}), projects)


def test_placement_error_is_a_value_error():
    assert issubclass(PlacementError, ValueError)


# --- views -------------------------------------------------------------------------------


def test_host_roles_and_diff():
    hosts = make_hosts({"a": 4, "b": 4})
    dc_of = dict((h["name"], h["dc"]) for h in hosts)
    before = place(hosts, PROJECTS[:100])
    after = place([h for h in hosts if h["name"] != "a-02"], PROJECTS[:100] + ["new"])
    roles = pl.host_roles(before)
    assert sum(len(r["primary"]) for r in roles.values()) == 100
    assert sum(len(r["primary"]) + len(r["replica"]) for r in roles.values()) == 400
    assert pl.host_roles(before, "a-02") == roles["a-02"]
    assert pl.host_roles(before, "nobody") == {"primary": [], "replica": []}
    diff = pl.diff_placements(before, after, dc_of)
    assert diff["added_projects"] == ["new"] and diff["removed_projects"] == []
    assert diff["slots_moved"] == len(roles["a-02"]["primary"]) + len(roles["a-02"]["replica"])
    assert all(m["from"] == "a-02" and dc_of[m["to"]] == "a" for m in diff["moves"])
    assert all(c["from"] == "a-02" for c in diff["primary_changes"])
    assert pl.diff_placements(before, before)["slots_moved"] == 0


def test_load_report():
    hosts = make_hosts({"a": 3}, weights={"a-00": 2.0})
    hosts.append({"name": "a-down", "dc": "a", "state": "down"})
    report = pl.load_report(place(hosts, PROJECTS), hosts)
    assert report["hosts"]["a-down"]["slots"] == 0
    assert report["hosts"]["a-00"]["expected_slots"] == 400.0
    assert report["dcs"]["a"]["slots"] == 800
