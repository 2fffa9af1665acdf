"""Retention: UTC names, GFS buckets, safety (foreign, held, needed, newest), DST independence."""
import calendar
import datetime as dt
import os
import time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.smc.backend.plugins.module_utils import retention as r

POLICY = {"frequent": 4, "hourly": 24, "daily": 7, "weekly": 4, "monthly": 3}
T0 = calendar.timegm((2024, 3, 30, 0, 0, 0))


def utc(*args):
    return calendar.timegm(args + (0,) * (6 - len(args)))


def names(epochs, prefix="smc"):
    return [r.snapshot_name(prefix, e) for e in epochs]


def every(start, stop, step):
    return list(range(start, stop, step))


def test_name_is_utc_and_round_trips():
    assert r.snapshot_name("smc", utc(2024, 3, 31, 1, 15)) == "smc_2024-03-31T01:15:00Z"
    assert r.parse_name("smc", "smc_2024-03-31T01:15:00Z") == utc(2024, 3, 31, 1, 15)


@pytest.mark.parametrize("name", [
    "smc_2024-02-30T00:00:00Z", "smc_2024-13-01T00:00:00Z", "smc_2024-01-01T24:00:00Z", "smc_2024-01-01",
    "smcx_2024-01-01T00:00:00Z", "autosnap_2024-01-01_00:00:00_hourly", "smc_2024-01-01T00:00:00+01:00",
])
def test_names_that_are_not_ours_do_not_parse(name):
    assert r.parse_name("smc", name) is None


def test_name_does_not_depend_on_the_host_time_zone(monkeypatch):
    epoch = utc(2024, 10, 27, 0, 30)
    seen = set()
    for tz in ("UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"):
        monkeypatch.setenv("TZ", tz)
        time.tzset()
        seen.add(r.snapshot_name("smc", epoch))
    time.tzset()
    assert seen == {"smc_2024-10-27T00:30:00Z"}


@pytest.mark.parametrize("policy, field", [
    ({"hourly": -1}, "policy.hourly"), ({"daily": "7"}, "policy.daily"), ({"hourli": 3}, "hourli"),
    ({"frequent_minutes": 7}, "frequent_minutes"), ({"weekly": True}, "policy.weekly"), ([], "mapping"),
])
def test_bad_policy_names_the_field(policy, field):
    with pytest.raises(r.PolicyError, match=field):
        r.validate_policy(policy)


@pytest.mark.parametrize("prefix", ["", "smc_x", "1smc", "s m", "a" * 33, None])
def test_bad_prefix_is_refused(prefix):
    with pytest.raises(r.PolicyError, match="prefix"):
        r.plan([], POLICY, T0, prefix=prefix)


def test_gfs_keeps_exactly_the_expected_snapshots():
    # Every 15 minutes for 40 days, ending 2024-03-31 12:00 UTC (across the EU DST start).
    end = utc(2024, 3, 31, 12)
    epochs = every(end - 40 * 86400, end + 1, 900)
    p = r.plan([(n, 0) for n in names(epochs)], POLICY, end)
    kept = set(p.keep)
    expect = set(names(every(end - 3 * 900, end + 1, 900)))                    # frequent: 4
    expect |= set(names(every(end - 23 * 3600, end + 1, 3600)))                # hourly: 24 (first of hour)
    expect |= set(names(every(utc(2024, 3, 25), end, 86400)))                  # daily: 7 (00:00 UTC)
    expect |= set(names([utc(2024, 3, 25), utc(2024, 3, 18), utc(2024, 3, 11), utc(2024, 3, 4)]))  # Mondays
    expect |= set(names([utc(2024, 3, 1), utc(2024, 2, 20, 12)]))              # monthly: 3, Feb starts late
    assert kept == expect
    assert set(p.destroy) == set(names(epochs)) - expect
    assert p.keep[r.snapshot_name("smc", end)] == ["frequent", "hourly", "newest"]
    assert p.keep[r.snapshot_name("smc", utc(2024, 3, 25))] == ["daily", "weekly"]


def test_held_needed_foreign_future_and_unparsed_are_never_destroyed():
    now = utc(2024, 6, 1)
    old = names(every(now - 30 * 86400, now - 20 * 86400, 3600))
    snaps = [(n, 0) for n in old]
    snaps[5] = (old[5], 2)
    foreign = ["autosnap_2024-05-01_00:00:00_hourly", "manual", "smc-repl-base"]
    snaps += [(n, 0) for n in foreign]
    snaps += [("smc_2030-01-01T00:00:00Z", 0), ("smc_garbage", 0)]
    p = r.plan(snaps, {"daily": 1}, now, needed={old[7]})
    assert old[5] in p.keep and p.keep[old[5]] == ["held"]
    assert p.keep[old[7]] == ["needed"]
    assert p.keep["smc_2030-01-01T00:00:00Z"] == ["future"]
    assert p.keep["smc_garbage"] == ["unparsed"]
    assert p.foreign == sorted(foreign)
    assert not set(p.destroy) & (set(foreign) | {old[5], old[7]})
    assert p.keep[old[-1]] == ["newest"]
    assert p.keep[old[-24]] == ["daily"]


def test_empty_policy_keeps_only_the_newest():
    epochs = every(T0, T0 + 10 * 3600, 3600)
    p = r.plan([(n, 0) for n in names(epochs)], {}, T0 + 86400)
    assert list(p.keep) == names(epochs[-1:]) and p.destroy == names(epochs[:-1])


def test_other_prefixes_are_foreign():
    snaps = [(n, 0) for n in names(every(T0, T0 + 7200, 900), prefix="other")]
    p = r.plan(snaps, {}, T0 + 86400)
    assert p.destroy == [] and p.keep == {} and len(p.foreign) == 8


def _local_day_buckets(epochs, tz):
    buckets = {}
    for e in epochs:
        buckets.setdefault(dt.datetime.fromtimestamp(e, ZoneInfo(tz)).date(), []).append(e)
    return buckets


@pytest.mark.parametrize("tz, day", [
    ("Europe/Berlin", (2024, 3, 31)), ("Europe/Berlin", (2024, 10, 27)),
    ("America/New_York", (2024, 3, 10)), ("America/New_York", (2024, 11, 3)),
])
def test_dst_changes_do_not_move_anything(monkeypatch, tz, day):
    start = utc(*day) - 2 * 86400
    epochs = every(start, start + 5 * 86400, 900)
    end = epochs[-1]
    # Local days around the change have 23 or 25 hours: bucketing by local time would be uneven.
    local_sizes = {len(v) for v in _local_day_buckets(epochs[4 * 24 * 1:4 * 24 * 4], tz).values()}
    assert {92, 100} & local_sizes
    results = []
    for zone in ("UTC", tz):
        monkeypatch.setenv("TZ", zone)
        time.tzset()
        results.append(r.plan([(n, 0) for n in names(epochs)], POLICY, end))
    time.tzset()
    assert results[0] == results[1]
    daily = sorted(n for n, why in results[0].keep.items() if "daily" in why)
    assert daily == names(every(start, start + 5 * 86400, 86400))
    hourly = sorted(n for n, why in results[0].keep.items() if "hourly" in why)
    assert hourly == names(every(end - 23 * 3600 - 2700, end, 3600))
    # Names are strictly increasing in time even where local clocks repeat an hour.
    assert names(epochs) == sorted(names(epochs))


snapshot_sets = st.lists(
    st.tuples(st.integers(min_value=T0 - 400 * 86400, max_value=T0 + 3600), st.integers(0, 2)),
    max_size=120,
)
policies = st.fixed_dictionaries({k: st.integers(0, 6) for k in r.PERIODS})


@settings(max_examples=300, deadline=None)
@given(snapshot_sets, policies, st.sets(st.integers(0, 119), max_size=5))
def test_properties_safety_coverage_idempotence(snaps, policy, needed_idx):
    by_name = {}
    for e, refs in snaps:
        by_name[r.snapshot_name("smc", e)] = refs
    items = sorted(by_name.items())
    needed = {items[i][0] for i in needed_idx if i < len(items)}
    now = T0
    p = r.plan(items, policy, now, needed=needed)
    ours = set(by_name)
    assert set(p.keep) | set(p.destroy) == ours
    assert not set(p.keep) & set(p.destroy)
    assert all(by_name[n] == 0 and n not in needed for n in p.destroy)
    past = sorted(n for n in ours if r.parse_name("smc", n) <= now)
    if past:
        assert past[-1] in p.keep
    assert p.destroy == sorted(p.destroy)
    again = r.plan([(n, by_name[n]) for n in p.keep], policy, now, needed=needed)
    assert again.destroy == [] and again.keep == p.keep
    total = sum(policy[k] for k in r.PERIODS)
    unconditional = {n for n, why in p.keep.items() if set(why) & {"held", "needed", "future", "newest"}}
    assert len(p.keep) <= total + len(unconditional)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2 ** 33), max_size=50), st.sampled_from(
    ["UTC", "Europe/Berlin", "America/Sao_Paulo", "Asia/Kolkata", "Pacific/Chatham"]))
def test_property_time_zone_never_changes_the_plan(epochs, tz):
    snaps = [(n, 0) for n in names(epochs)]
    now = max(epochs, default=0)
    base = r.plan(snaps, POLICY, now)
    old = os.environ.get("TZ")
    os.environ["TZ"] = tz
    time.tzset()
    try:
        assert r.plan(snaps, POLICY, now) == base
    finally:
        if old is None:
            os.environ.pop("TZ")
        else:
            os.environ["TZ"] = old
        time.tzset()


# The lab's DST scenario (molecule/zfs test_retention_across_dst_with_faketime_and_holds): snapshots taken
# around the end of CEST (2024-10-27 01:00 UTC; Berlin 03:00 CEST -> 02:00 CET, so local 02:xx happens twice).
DST_TIMES = [utc(2024, 10, 26, 23, 30), utc(2024, 10, 27, 0, 0), utc(2024, 10, 27, 0, 30), utc(2024, 10, 27, 0, 45),
             utc(2024, 10, 27, 1, 0), utc(2024, 10, 27, 1, 15), utc(2024, 10, 27, 1, 30), utc(2024, 10, 27, 1, 45),
             utc(2024, 10, 27, 2, 0)]
DST_POLICY = {"frequent": 4, "hourly": 3, "daily": 2}


@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin", "America/New_York"])
def test_lab_dst_sequence_keeps_frequent_hourly_daily_and_the_held_one(monkeypatch, tz):
    monkeypatch.setenv("TZ", tz)
    time.tzset()
    try:
        snaps = names(DST_TIMES)
        assert [r.parse_name("smc", n) for n in snaps] == DST_TIMES
        assert snaps == sorted(snaps) and len(set(snaps)) == len(snaps)
        now = utc(2024, 10, 27, 2, 5)
        p = r.plan([(n, 1 if n == snaps[0] else 0) for n in snaps], DST_POLICY, now)
        assert sorted(p.keep) == [snaps[0], snaps[1], snaps[4], snaps[5], snaps[6], snaps[7], snaps[8]]
        assert p.destroy == [snaps[2], snaps[3]]
        assert p.keep[snaps[0]] == ["daily", "held"] and p.keep[snaps[8]] == ["frequent", "hourly", "newest"]
        assert p.keep[snaps[1]] == ["daily", "hourly"] and p.keep[snaps[4]] == ["hourly"]
        # Pruned to `keep`, the same plan destroys nothing more (the dry run after the prune).
        kept = [(n, 1 if n == snaps[0] else 0) for n in snaps if n in p.keep]
        assert r.plan(kept, DST_POLICY, now).destroy == []
    finally:
        monkeypatch.undo()
        time.tzset()


def test_newest_is_by_name_whatever_order_the_listing_gives():
    snaps = names(DST_TIMES)
    p = r.plan([(n, 0) for n in reversed(snaps)], {}, utc(2024, 10, 27, 2, 5))
    assert p.keep == {snaps[-1]: ["newest"]} and p.destroy == snaps[:-1]
    # A name dated after `now` (a clock that was ahead, e.g. a faketime run) is kept, and is not "newest".
    p = r.plan([(n, 0) for n in snaps], {}, utc(2024, 10, 27, 1, 0))
    assert p.keep == {snaps[4]: ["newest"], snaps[5]: ["future"], snaps[6]: ["future"], snaps[7]: ["future"],
                      snaps[8]: ["future"]}
