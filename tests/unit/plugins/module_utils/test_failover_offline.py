"""failover without etcd's quorum: an operator's confirmed promotion picks the most up-to-date live copy at the
highest known epoch + 1, is refused while etcd answers anywhere, holds its project's election, and is written
to etcd by CAS when etcd returns, unless etcd moved the project meanwhile (then etcd wins)."""
import json

from ansible_collections.smc.backend.plugins.module_utils import failover

PREFIX = "/smc/"
COPIES = ["a", "b", "c", "d"]  # plan order: a was the primary


def survey(epoch=3, newest=None, known=("a", 3), role="replica", etcd="unavailable", pid="p"):
    return {"etcd": etcd, "projects": {pid: {
        "newest": newest, "epoch": epoch, "role": role, "copies": COPIES,
        "known": {"host": known[0], "epoch": known[1]} if known else None}}}


def snap(creation):
    return {"creation": creation, "name": "smc_%d" % creation, "guid": creation * 7}


def state(alive=(), primary=None, dead=(), leases=None):
    out = {}
    for h in alive:
        out[PREFIX + "hosts/" + h] = ("{}", 5, (leases or {}).get(h, 70))
    for h in dead:
        out[PREFIX + "dead/" + h] = ("{}", 6, 0)
    for pid, (host, epoch, rev, lease) in (primary or {}).items():
        out[PREFIX + "primary/" + pid] = (json.dumps({"host": host, "epoch": epoch, "lease": lease}), rev, 0)
    return failover.parse_state(out, PREFIX)


def test_the_most_up_to_date_live_copy_wins_at_the_highest_known_epoch_plus_one():
    surveys = {"b": survey(newest=snap(100)), "c": survey(epoch=4, newest=snap(120), known=("a", 4)),
               "d": survey(newest=snap(120))}
    got = failover.offline_promotions(surveys, ["a"])
    assert got["refused"] == [] and got["etcd"] == []
    # c and d tie on the newest snapshot: the plan's order decides; the epoch is above every one known
    assert got["moves"] == [{"project": "p", "from": "a", "to": "c", "epoch": 5, "newest": "smc_120"}]


def test_a_project_whose_primary_lives_does_not_move():
    surveys = {"b": survey(newest=snap(100), known=("b", 4)), "c": survey(newest=snap(100), known=("a", 3))}
    # b's view has the higher epoch: b is the primary, and b is not declared dead
    assert failover.offline_promotions(surveys, ["a"])["moves"] == []


def test_without_any_view_the_copy_still_marked_primary_or_the_plan_names_the_primary():
    surveys = {"b": survey(newest=snap(100), known=None), "c": survey(newest=snap(90), known=None)}
    assert [m["from"] for m in failover.offline_promotions(surveys, ["a"])["moves"]] == ["a"]  # the plan's first
    assert failover.offline_promotions(surveys, ["d"])["moves"] == []


def test_no_live_copy_with_a_snapshot_is_refused_not_promoted():
    got = failover.offline_promotions({"b": survey(newest=None)}, ["a"])
    assert got["moves"] == [] and "p: no live copy with a snapshot" in got["refused"][0]


def test_every_promotion_is_refused_while_a_live_host_reaches_etcd():
    surveys = {"b": survey(newest=snap(100), etcd="ok"), "c": survey(newest=snap(90))}
    got = failover.offline_promotions(surveys, ["a"])
    assert got["etcd"] == ["b"] and "etcd answers from b" in got["refused"][-1]


def test_a_survey_from_a_host_declared_dead_is_ignored():
    surveys = {"a": survey(newest=snap(500), known=("a", 9)), "b": survey(newest=snap(100))}
    got = failover.offline_promotions(surveys, ["a"])
    assert got["moves"] == [{"project": "p", "from": "a", "to": "b", "epoch": 4, "newest": "smc_100"}]


def test_the_record_keeps_the_highest_epoch_of_a_project_and_every_declared_host():
    move = {"project": "p", "from": "a", "to": "b", "epoch": 4}
    record = failover.merge_record(None, [move], ["a"], 1.0)
    assert record == {"dead": ["a"], "promotions": {"p": {"host": "b", "epoch": 4, "over": "a", "at": 1.0,
                                                          "by": "failover.yml"}}}
    again = failover.merge_record(record, [dict(move, to="c", epoch=3)], ["x"], 2.0)
    assert again["promotions"]["p"]["host"] == "b" and again["dead"] == ["a", "x"]
    later = failover.merge_record(record, [dict(move, to="c", epoch=5)], [], 3.0)
    assert later["promotions"]["p"]["host"] == "c"


RECORD = {"dead": ["a"], "promotions": {"p": {"host": "b", "epoch": 4, "over": "a"}}}


def test_when_etcd_returns_the_dead_are_declared_and_the_recorded_primary_is_swapped_in():
    now = state(alive=["b", "c"], primary={"p": ("a", 3, 41, 9)}, leases={"b": 55})
    assert failover.reconcile(RECORD, now) == [
        ("declare", "a", {}),
        ("swap", "p", {"host": "b", "epoch": 4, "over": "a", "lease": 55, "revision": 41})]
    assert failover.pending(RECORD, now) == {"p"}


def test_the_swap_waits_for_the_recorded_primary_to_hold_a_lease():
    now = state(alive=["c"], primary={"p": ("a", 3, 41, 9)}, dead=["a"])
    assert failover.reconcile(RECORD, now) == [("wait", "p", {"reason": "b, promoted offline, holds no lease yet"})]


def test_a_project_without_a_key_is_swapped_in_from_revision_zero():
    now = state(alive=["b"], dead=["a"], leases={"b": 55})
    assert failover.reconcile(RECORD, now)[0][2]["revision"] == 0


def test_done_once_etcd_names_the_recorded_primary_and_overruled_when_it_names_another():
    assert failover.reconcile(RECORD, state(alive=["b"], primary={"p": ("b", 4, 50, 70)}, dead=["a"])) == [
        ("done", "p", {"host": "b", "epoch": 4})]
    got = failover.reconcile(RECORD, state(alive=["c"], primary={"p": ("c", 4, 50, 70)}, dead=["a"]))
    assert got[0][0] == "overruled" and got[0][2]["host"] == "c"
    assert failover.pending(RECORD, state(alive=["c"], primary={"p": ("c", 4, 50, 70)})) == set()


def test_a_held_project_holds_no_election():
    now = state(alive=["b", "c"], primary={"p": ("a", 3, 41, 9)})
    got = failover.decide("c", {"p": COPIES}, now, {"p": snap(100)}, {"p": 99}, 4, held={"p"})
    assert got == [("wait", "p", {"reason": "an offline promotion of this project waits to be written to etcd"})]
    assert failover.decide("c", {"p": COPIES}, now, {"p": snap(100)}, {"p": 99}, 4)[0][0] == "candidate"


def test_a_held_project_stays_held_while_etcd_still_serves_the_old_primary():
    """After the quorum returns, etcd renews every lease: the dead host's old key looks served until the
    reconcile's declaration revokes it. The recorded primary must not demote itself meanwhile."""
    record = {"dead": ["a"], "promotions": {"p": {"host": "b", "epoch": 4, "over": "a"}}}
    now = state(alive=["a", "b", "c"], primary={"p": ("a", 3, 41, 70)})
    held = failover.pending(record, now)
    assert held == {"p"}
    assert failover.decide("b", {"p": COPIES}, now, {}, {}, 4, held=held)[0][0] == "wait"
    assert failover.decide("b", {"p": COPIES}, now, {}, {}, 4)[0][0] == "replica"  # what happened without it
