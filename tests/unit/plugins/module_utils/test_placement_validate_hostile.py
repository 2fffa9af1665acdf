# -*- coding: utf-8 -*-
"""placement against hostile input: a bad weight, dc_weights value or dc name is refused with PlacementError
naming the host and the field; nothing else (OverflowError, TypeError, ...) is ever raised.  (The module's own
hostile tests are tests/unit/plugins/modules/test_placement_hostile.py; a basename must be unique.)"""
import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.smc.backend.plugins.module_utils import placement as pl
from ansible_collections.smc.backend.plugins.module_utils import tinc_topology
from ansible_collections.smc.backend.plugins.module_utils.placement import PlacementError, place
from ansible_collections.smc.backend.plugins.modules import placement as mod

PROJECTS = ["p%03d" % i for i in range(20)]
HUGE = [10 ** 400, -10 ** 400, 10 ** 5000, 2 ** 1024, float("inf"), float("-inf"), float("nan"), 0, -1, 100.0001, 101,
        True, "1", [1]]


def hosts(weight=1, dc="a"):
    return [{"name": "h1", "dc": dc, "weight": weight}, {"name": "h2", "dc": dc}, {"name": "h3", "dc": dc}]


@pytest.mark.parametrize("weight", HUGE, ids=lambda w: type(w).__name__)
def test_bad_host_weight_names_host_and_field(weight):
    with pytest.raises(PlacementError, match=r"hosts\[0\] \(h1\)\.weight: .*> 0 and <= 100"):
        place(hosts(weight), PROJECTS)


@pytest.mark.parametrize("weight", HUGE, ids=lambda w: type(w).__name__)
def test_bad_dc_weight_names_dc_and_field(weight):
    with pytest.raises(PlacementError, match=r"dc_weights\.a: .*> 0 and <= 100"):
        place(hosts(), PROJECTS, dc_weights={"a": weight})


@pytest.mark.parametrize("field", ["weight", "dc_weights"])
def test_module_compute_refuses_huge_int_with_placement_error(field):
    """plugins/modules/placement.py main catches PlacementError/ValueError only: no OverflowError may escape."""
    params = dict((k, v.get("default")) for k, v in mod.ARGUMENT_SPEC.items())
    params.update(hosts=hosts(10 ** 400 if field == "weight" else 1), projects=["p1"],
                  dc_weights={"a": 10 ** 400} if field == "dc_weights" else {})
    with pytest.raises(PlacementError, match=r"\.weight: |dc_weights\.a: "):
        mod.compute(params, {}.get)


def test_huge_int_message_is_short():
    with pytest.raises(PlacementError) as info:
        place(hosts(10 ** 5000), PROJECTS)
    assert len(str(info.value)) < 300


def test_dc_weights_not_a_dict():
    with pytest.raises(PlacementError, match="dc_weights: expected a dict"):
        place(hosts(), PROJECTS, dc_weights=[("a", 1)])


@pytest.mark.parametrize("dc", ["dc1\n", "dc1\r", " dc1", "dc1 ", "-dc1", ".dc", "a/b", "..", "dc\x00", "a" * 64,
                                "d\u00e9", "dc;rm", "dc$x"], ids=repr)
def test_bad_dc_name_refused(dc):
    with pytest.raises(PlacementError, match=r"hosts\[0\] \(h1\)\.dc: .*not a data center name"):
        place(hosts(dc=dc), PROJECTS)


@pytest.mark.parametrize("dc", ["a", "dc1", "eu-west_1.b", "A" * 63])
def test_good_dc_names_accepted(dc):
    assert len(place(hosts(dc=dc), PROJECTS)) == len(PROJECTS)


def test_dc_pattern_matches_tinc_topology():
    assert pl._DC_RE.pattern == tinc_topology._DC_RE.pattern


def test_max_weight_accepted():
    assert pl.validate_hosts(hosts(pl.MAX_WEIGHT))[0][2] == float(pl.MAX_WEIGHT)


@settings(max_examples=150, deadline=None)
@given(weight=st.one_of(st.integers(min_value=-2 ** 2000, max_value=2 ** 2000), st.floats(allow_nan=True),
                        st.text(max_size=5), st.none(), st.booleans()),
       dc=st.one_of(st.text(max_size=70), st.integers(), st.none()))
def test_validate_hosts_only_raises_placement_error(weight, dc):
    try:
        result = pl.validate_hosts(hosts(weight, dc))
    except PlacementError as exc:
        assert "hosts[0] (h1)." in str(exc)
        return
    name, got_dc, got_weight, _state = result[0]
    assert pl._DC_RE.match(got_dc) and 0 < got_weight <= pl.MAX_WEIGHT
