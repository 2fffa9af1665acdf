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
