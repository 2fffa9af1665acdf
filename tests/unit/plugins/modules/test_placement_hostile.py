"""placement: hostile weights fail naming the host and the field; a previous-placement file of the wrong shape
fails naming the file and the key, never with a traceback or a misread."""
import json

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.smc.backend.plugins.module_utils.placement import (
    MAX_WEIGHT, PlacementError, place, validate_hosts)
from ansible_collections.smc.backend.plugins.modules import placement as mod

HOSTS = [{"name": "a1", "dc": "a"}, {"name": "a2", "dc": "a"}, {"name": "b1", "dc": "b"}, {"name": "b2", "dc": "b"}]


def params(**kw):
    out = dict((k, v.get("default")) for k, v in mod.ARGUMENT_SPEC.items())
    out.update(hosts=HOSTS, projects=["p1", "p2"])
    out.update(kw)
    return out


BAD_WEIGHTS = st.one_of(st.floats(min_value=MAX_WEIGHT, exclude_min=True), st.floats(max_value=0),
                        st.just(float("nan")), st.just(float("inf")), st.integers(MAX_WEIGHT + 1, 10 ** 300),
                        st.integers(max_value=0), st.text(max_size=5), st.booleans(), st.just([1]))


@settings(max_examples=100, deadline=None)
@given(weight=BAD_WEIGHTS)
def test_bad_weight_names_host_and_field(weight):
    hosts = [dict(h) for h in HOSTS]
    hosts[2]["weight"] = weight
    with pytest.raises(PlacementError, match=r"hosts\[2\] \(b1\)\.weight"):
        place(hosts, ["p1"])
    with pytest.raises(PlacementError, match=r"dc_weights\.a"):
        place(HOSTS, ["p1"], dc_weights={"a": weight})


def test_the_largest_weight_is_accepted():
    assert validate_hosts([{"name": "a1", "dc": "a", "weight": MAX_WEIGHT}])[0][2] == MAX_WEIGHT


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=4),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids, max_size=3),
                    max_leaves=8)


@settings(max_examples=25, deadline=None)
@given(data=JSON | st.dictionaries(st.sampled_from(["p1", "p2", "placement", "format"]), JSON, max_size=3))
def test_previous_file_of_any_shape_is_read_or_refused_naming_file_and_key(data):
    text = json.dumps(data)
    prev = data.get("placement", data) if isinstance(data, dict) else data
    try:
        result, _text = mod.compute(params(previous_path="/srv/prev.json"), {"/srv/prev.json": text}.get)
    except PlacementError as exc:
        if "would get a writable primary without their data" not in str(exc):
            assert "/srv/prev.json" in str(exc)
            return
        # well formed, but its projects' data is only on hosts the inventory lost: refused, naming them
        result = None
    assert isinstance(prev, dict) and all(isinstance(v, list) and all(isinstance(h, str) for h in v)
                                          for v in prev.values())
    assert result is None or result["previous_found"]


@pytest.mark.parametrize("text, key", [('{"p1": "a1"}', '"p1"'), ('{"placement": {"p2": [1]}}', '"p2"'),
                                       ('{"format": 1, "placement": "x"}', "placement"), ("[1]", "object"),
                                       ("{not json", "not JSON")])
def test_previous_file_errors(text, key):
    with pytest.raises(PlacementError) as exc:
        mod.compute(params(previous_path="/p.json"), {"/p.json": text}.get)
    assert "/p.json" in str(exc.value) and key in str(exc.value)


def test_projects_file_that_is_not_json_names_the_file():
    with pytest.raises(PlacementError, match="/ids.json"):
        mod.compute(params(projects=None, projects_file="/ids.json"), {"/ids.json": "[oops"}.get)
