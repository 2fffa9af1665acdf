"""failover: one writer per project; the most up-to-date live copy wins, by CAS, and only after the others spoke."""
import json

import pytest

from ansible_collections.smc.backend.plugins.module_utils import failover

PREFIX = "/smc/"
COPIES = {"p": ["a", "b", "c", "d"]}  # plan order: primary first


def kvs(alive, primary=None, candidates=None, dead=(), window=()):
    out = {}
    for h in dead:
        out[PREFIX + "dead/" + h] = (json.dumps({"by": "failover.yml"}), 6, 0)
    for h in window:
        out[PREFIX + "window/" + h] = ("{}", 6, 79)
    for h in alive:
        out[PREFIX + "hosts/" + h] = ("{}", 5, 77)
    for pid, (host, epoch, rev) in (primary or {}).items():
        out[PREFIX + "primary/" + pid] = (json.dumps({"host": host, "epoch": epoch}), rev, 0)
    for (pid, epoch, host), newest in (candidates or {}).items():
        out["%scandidates/%s/%d/%s" % (PREFIX, pid, epoch, host)] = (json.dumps(newest), 9, 78)
    return failover.parse_state(out, PREFIX)


def snap(creation, name=None):
    return {"creation": creation, "name": name or "smc_%d" % creation, "guid": creation * 7}


def actions(me, state, local=None, waited=None, collect=6):
    return failover.decide(me, COPIES, state, local or {"p": snap(100)}, waited or {}, collect)


@pytest.mark.parametrize("ttl,renew,fence,skew,tick,ok", [
    (15, 2, 8, 2, 1, True),
    (15, 2, 12, 2, 1, False),   # fence_after + tick + skew reaches the TTL: the lease could expire first
    (15, 5, 8, 2, 1, False),    # one failed renewal would fence
    (10, 2, 6, 2, 1, True),
])
def test_timing_rules_keep_fencing_before_lease_expiry(ttl, renew, fence, skew, tick, ok):
    assert (failover.timing_errors(ttl, renew, fence, skew, tick) == []) is ok


def test_the_error_names_the_fields_and_the_rule():
    [msg] = failover.timing_errors(15, 2, 12, 2, 1)
    assert "ha.fence_after" in msg and "ha.lease_ttl" in msg and "read-only before its lease" in msg


def test_no_key_yet_only_the_plan_primary_bootstraps():
    state = kvs(["a", "b", "c", "d"])
    assert actions("a", state) == [("bootstrap", "p", {"host": "a", "epoch": None})]
    assert actions("b", state)[0][0] == "wait"


def test_a_live_primary_keeps_serving_and_the_others_stay_replicas():
    state = kvs(["a", "b", "c", "d"], {"p": ("a", 3, 40)})
    assert actions("a", state) == [("primary", "p", {"epoch": 3})]
    assert actions("c", state) == [("replica", "p", {"host": "a", "epoch": 3})]


def test_when_the_primary_lease_is_gone_each_live_copy_reports_first():
    state = kvs(["b", "c", "d"], {"p": ("a", 3, 40)})
    [(kind, pid, info)] = actions("b", state, {"p": snap(100)})
    assert (kind, pid, info["epoch"], info["newest"]["creation"]) == ("candidate", "p", 3, 100)


def test_the_most_up_to_date_copy_wins_not_the_first_in_ring_order():
    state = kvs(["b", "c", "d"], {"p": ("a", 3, 40)},
                {("p", 3, "b"): snap(100), ("p", 3, "c"): snap(160), ("p", 3, "d"): snap(100)})
    assert actions("c", state) == [("claim", "p", {"epoch": 4, "revision": 40, "over": "a", "voters": ["b", "c", "d"]})]
    assert actions("b", state)[0] == ("wait", "p", {"reason": "c wins the election"})
    assert actions("d", state)[0][0] == "wait"


def test_ties_go_to_ring_order():
    state = kvs(["b", "c", "d"], {"p": ("a", 3, 40)},
                {("p", 3, "b"): snap(100), ("p", 3, "c"): snap(100), ("p", 3, "d"): snap(100)})
    assert actions("b", state)[0][0] == "claim"
    assert actions("c", state)[0][0] == "wait"


def test_nobody_claims_until_every_live_copy_spoke_or_the_window_passed():
    state = kvs(["b", "c", "d"], {"p": ("a", 3, 40)}, {("p", 3, "b"): snap(100), ("p", 3, "c"): snap(90)})
    assert actions("b", state, waited={"p": 2})[0] == ("wait", "p", {"reason": "2 of 3 live copies reported"})
    # d never reports (no snapshot, or slow): after the window the best reported copy wins
    assert actions("b", state, waited={"p": 7})[0][0] == "claim"


def test_candidates_of_an_older_epoch_do_not_count():
    state = kvs(["b", "c"], {"p": ("a", 4, 41)}, {("p", 3, "b"): snap(100), ("p", 3, "c"): snap(200)})
    assert actions("c", state)[0][0] == "candidate"


def test_the_last_live_copy_serves_when_five_are_gone():
    copies = {"p": ["a", "b", "c", "d", "e", "f"]}
    state = kvs(["f"], {"p": ("e", 5, 50)}, {("p", 5, "f"): snap(10)})
    assert failover.decide("f", copies, state, {"p": snap(10)}, {}, 6) == [
        ("claim", "p", {"epoch": 6, "revision": 50, "over": "e", "voters": ["f"]})]


def test_a_dead_host_that_is_not_a_copy_never_votes():
    state = kvs(["b", "c", "x"], {"p": ("a", 3, 40)}, {("p", 3, "b"): snap(5), ("p", 3, "x"): snap(999)})
    # x is alive and reported, but holds no copy of p: b and c decide
    assert actions("c", state, {"p": snap(5)})[0][0] == "candidate"
    state = kvs(["b", "c", "x"], {"p": ("a", 3, 40)},
                {("p", 3, "b"): snap(5), ("p", 3, "c"): snap(5), ("p", 3, "x"): snap(999)})
    assert actions("b", state)[0][0] == "claim"


def test_malformed_values_are_listed_not_trusted():
    state = failover.parse_state({PREFIX + "primary/p": ("not json", 3, 0), PREFIX + "hosts/a": ("", 2, 1)}, PREFIX)
    assert state["primary"] == {} and state["bad"] == [PREFIX + "primary/p"] and state["alive"] == {"a"}


def test_a_copy_without_snapshots_ranks_below_any_copy_with_one():
    assert failover.elect({"a": None, "b": snap(1)}, ["a", "b"]) == "b"


def test_a_primary_back_with_a_new_lease_is_not_primary_until_an_election_says_so():
    """Its old lease expired (paused, cut off): others may be electing; it must not write on the old key."""
    raw = {PREFIX + "hosts/a": ("{}", 5, 91), PREFIX + "hosts/b": ("{}", 5, 92),
           PREFIX + "primary/p": (json.dumps({"host": "a", "epoch": 3, "lease": 90}), 40, 0)}
    state = failover.parse_state(raw, PREFIX)
    assert not failover.serving(state, "p")
    [(kind, _pid, info)] = failover.decide("a", {"p": ["a", "b"]}, state, {"p": snap(100)}, {}, 4)
    assert (kind, info["epoch"]) == ("candidate", 3)
    raw[PREFIX + "primary/p"] = (json.dumps({"host": "a", "epoch": 3, "lease": 91}), 41, 0)
    assert failover.serving(failover.parse_state(raw, PREFIX), "p")


def test_the_old_primary_can_win_its_own_election_when_it_is_the_most_up_to_date():
    state = failover.parse_state({
        PREFIX + "hosts/a": ("{}", 5, 91), PREFIX + "hosts/b": ("{}", 5, 92),
        PREFIX + "primary/p": (json.dumps({"host": "a", "epoch": 3, "lease": 90}), 40, 0),
        PREFIX + "candidates/p/3/a": (json.dumps(snap(200)), 9, 91),
        PREFIX + "candidates/p/3/b": (json.dumps(snap(100)), 9, 92)}, PREFIX)
    assert failover.decide("a", {"p": ["a", "b"]}, state, {"p": snap(200)}, {}, 4)[0][0] == "claim"
    assert failover.decide("b", {"p": ["a", "b"]}, state, {"p": snap(100)}, {}, 4)[0][0] == "wait"


# ---- an operator declared a host dead (playbooks/failover.yml)

def test_a_host_declared_dead_is_not_alive_even_with_a_lease():
    state = kvs(["a", "b", "c", "d"], {"p": ("a", 3, 40)}, dead=["a"])
    assert "a" not in state["alive"] and state["dead"] == {"a": {"by": "failover.yml"}}
    assert not failover.serving(state, "p")
    assert actions("b", state)[0][0] == "candidate"


def test_no_election_while_the_dead_hosts_fencing_window_is_open():
    state = kvs(["a", "b", "c", "d"], {"p": ("a", 3, 40)}, {("p", 3, h): snap(100) for h in "bcd"},
                dead=["a"], window=["a"])
    for me in "bcd":
        assert actions(me, state) == [("wait", "p", {"reason": "a was declared dead: its fencing window is still open"})]
    state = kvs(["a", "b", "c", "d"], {"p": ("a", 3, 40)}, {("p", 3, h): snap(100) for h in "bcd"}, dead=["a"])
    assert actions("b", state)[0] == ("claim", "p", {"epoch": 4, "revision": 40, "over": "a", "voters": ["b", "c", "d"]})


def test_a_dead_host_neither_serves_votes_nor_bootstraps():
    # its own loop, with a new lease: it was primary, it stays read-only and publishes nothing
    state = kvs(["a", "b", "c", "d"], {"p": ("a", 3, 40)}, dead=["a"])
    assert actions("a", state)[0][0] == "wait"
    assert actions("a", kvs(["a", "b"], dead=["a"]))[0][0] == "wait"  # no key yet: no bootstrap either
    # even the most up-to-date copy does not win while declared dead
    state = kvs(["a", "b", "c", "d"], {"p": ("d", 3, 40)}, {("p", 3, "a"): snap(999), ("p", 3, "b"): snap(1),
                                                            ("p", 3, "c"): snap(1)}, dead=["a", "d"])
    assert actions("b", state)[0] == ("claim", "p", {"epoch": 4, "revision": 40, "over": "d", "voters": ["b", "c"]})
    # once another copy serves, the dead host is its replica (a returning primary is demoted)
    state = kvs(["a", "b", "c", "d"], {"p": ("b", 4, 44)}, dead=["a"])
    assert actions("a", state) == [("replica", "p", {"host": "b", "epoch": 4})]


def test_forced_moves_lists_the_projects_the_dead_hosts_are_primary_of():
    out = {PREFIX + "hosts/" + h: ("{}", 5, 77) for h in "abc"}
    for pid, host in (("p", "a"), ("q", "b"), ("r", "c")):
        out[PREFIX + "primary/" + pid] = (json.dumps({"host": host, "epoch": 2}), 9, 0)
    state = failover.parse_state(out, PREFIX)
    assert failover.forced_moves(state, ["a", "c"]) == [
        {"project": "p", "host": "a", "epoch": 2}, {"project": "r", "host": "c", "epoch": 2}]
    assert failover.forced_moves(state, []) == []


def test_failover_summary_says_what_moved_and_what_did_not():
    report = {"declared": ["a"], "already_dead": [], "revived": [],
              "moves": [{"project": "p", "host": "a", "epoch": 3}, {"project": "q", "host": "a", "epoch": 5}]}
    lines = failover.failover_summary(report, {"p": {"host": "b", "epoch": 4}, "q": {"host": "a", "epoch": 5}})
    assert lines[0] == "declared dead: a"
    assert "  p: a (epoch 3) -> b (epoch 4)" in lines and "  q: a (epoch 5) -> not elected yet" in lines
    assert lines[-1].startswith("1 project(s) not elected yet")
    check = failover.failover_summary(report, {}, check=True)
    assert check[0] == "check: would declare a dead; 2 project(s) would be elected elsewhere"
    assert all("not elected" not in line for line in check)
