"""replication_plan.decide: GUID-matched bases, resume, forks quarantined (never -F), epochs fence."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.smc.backend.plugins.module_utils import replication_plan as rp


def snaps(*guids, start=10):
    return [{"name": "smc_%d" % g, "guid": g, "txg": start + i} for i, g in enumerate(guids)]


def target(*guids, **kw):
    out = {"snapshots": snaps(*guids, start=100), "epoch": 1, "written": 0, "resume_token": None}
    out.update(kw)
    return out


def test_no_source_snapshot_is_skipped():
    assert rp.decide({"snapshots": []}, None, 1).kind == "skip"


def test_absent_target_is_seeded_with_a_full_send():
    a = rp.decide({"snapshots": snaps(1, 2, 3)}, None, 1)
    assert a.kind == "full" and a.to["guid"] == 3


def test_incremental_from_newest_common_by_guid_not_name():
    src = {"snapshots": snaps(1, 2, 3, 4)}
    tgt = target(1, 2)
    tgt["snapshots"][1]["name"] = "renamed"  # a name differs; the GUID decides
    a = rp.decide(src, tgt, 1)
    assert (a.kind, a.base["guid"], a.to["guid"]) == ("incremental", 2, 4)


def test_same_name_other_guid_is_not_common():
    src = {"snapshots": snaps(1, 2)}
    tgt = {"snapshots": [{"name": "smc_2", "guid": 99, "txg": 5}], "epoch": 1}
    assert rp.decide(src, tgt, 1).kind == "quarantine"


def test_up_to_date_is_skip():
    assert rp.decide({"snapshots": snaps(1, 2)}, target(1, 2), 1).kind == "skip"


def test_pruned_base_uses_the_bookmark():
    src = {"snapshots": snaps(3, 4), "bookmarks": [{"name": "smc-repl-x", "guid": 2, "txg": 11}]}
    a = rp.decide(src, target(1, 2), 1)
    assert a.kind == "incremental" and a.base.get("bookmark") and a.base["name"] == "smc-repl-x"


@pytest.mark.parametrize("tgt,why", [
    (target(1, 2, 77), "snapshot(s) the source lacks"),
    (target(1, 2, written=4096), "written to"),
    (target(), "holds no snapshot"),
    (target(88), "no snapshot in common"),
])
def test_forks_are_quarantined_never_overwritten(tgt, why):
    a = rp.decide({"snapshots": snaps(1, 2, 3)}, tgt, 1)
    assert a.kind == "quarantine" and why in a.reason


def test_higher_target_epoch_refuses():
    a = rp.decide({"snapshots": snaps(1, 2, 3)}, target(1, epoch=5), 4)
    assert a.kind == "refuse" and "epoch 5" in a.reason


def test_resume_token_resumes_and_stale_token_aborts():
    src = {"snapshots": snaps(1, 2, 3)}
    assert rp.decide(src, target(1, resume_token="1-abc", resume_toguid=3), 1).kind == "resume"
    assert rp.decide(src, target(1, resume_token="1-abc", resume_toguid=42), 1).kind == "abort"
    assert rp.decide(src, target(1, resume_token="1-abc"), 1).kind == "resume"


@pytest.mark.parametrize("bad", [{"snapshots": [{"name": "x", "guid": "1", "txg": 1}]},
                                 {"snapshots": ["smc_1"]}, {"snapshots": [], "epoch": -1},
                                 {"snapshots": [], "epoch": True}])
def test_malformed_listing_names_the_field(bad):
    with pytest.raises(rp.ReplicationPlanError, match=r"source\.(snapshots|epoch)"):
        rp.decide(bad, None, 1)


@settings(max_examples=300, deadline=None)
@given(src=st.lists(st.integers(1, 30), unique=True, max_size=8),
       dst=st.lists(st.integers(1, 30), unique=True, max_size=8),
       written=st.integers(0, 3), epoch=st.integers(1, 3), tepoch=st.integers(0, 3))
def test_never_sends_over_a_target_with_history_the_source_lacks(src, dst, written, epoch, tepoch):
    tgt = target(*dst, written=written, epoch=tepoch)
    a = rp.decide({"snapshots": snaps(*src)}, tgt, epoch)
    if a.kind in ("incremental", "full"):
        assert tepoch <= epoch
        if a.kind == "incremental":
            # the base is the target's newest snapshot and the source has it: nothing on the target is lost
            assert a.base["guid"] == dst[-1] and dst[-1] in src and written == 0
        else:
            assert not dst
    if tepoch > epoch and src:
        assert a.kind == "refuse"
