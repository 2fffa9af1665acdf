"""placement module: parsing, the file it writes, check/diff mode, atomic write."""
import json

import pytest
import yaml

from ansible_collections.smc.backend.plugins.module_utils.placement import PlacementError
from ansible_collections.smc.backend.plugins.modules import placement as mod

HOSTS = [{"name": "a1", "dc": "a"}, {"name": "a2", "dc": "a"}, {"name": "a3", "dc": "a"},
         {"name": "b1", "dc": "b"}, {"name": "b2", "dc": "b", "weight": 2}, {"name": "b3", "dc": "b"}]
PROJECTS = ["p%03d" % i for i in range(60)]


def params(**kw):
    out = dict((k, v.get("default")) for k, v in mod.ARGUMENT_SPEC.items())
    out.update(hosts=HOSTS, projects=PROJECTS)
    out.update(kw)
    return out


def reader(files):
    return files.get


def test_argument_spec_matches_documentation():
    doc = yaml.safe_load(mod.DOCUMENTATION)
    assert set(doc["options"]) == set(mod.ARGUMENT_SPEC)
    for key, spec in mod.ARGUMENT_SPEC.items():
        assert doc["options"][key].get("default") == spec.get("default"), key
        assert doc["options"][key]["type"] == spec["type"], key
    assert doc["attributes"]["check_mode"]["support"] == "full"
    assert doc["attributes"]["diff_mode"]["support"] == "full"
    yaml.safe_load(mod.EXAMPLES)
    yaml.safe_load(mod.RETURN)


def test_parse_projects_lines_json_and_object():
    assert mod.parse_projects("a\n\n b # note\n# only a comment\nc\n") == ["a", "b", "c"]
    assert mod.parse_projects('["a", "b"]') == ["a", "b"]
    assert mod.parse_projects('{"projects": ["x"]}') == ["x"]
    with pytest.raises(PlacementError, match="projects_file"):
        mod.parse_projects('{"other": 1}')


def test_first_run_then_same_run_is_unchanged():
    result, text = mod.compute(params(), reader({}))
    assert result["previous_found"] is False
    assert set(result["placement"]) == set(PROJECTS)
    assert result["moves"]["added_projects"] == 60
    assert result["moves"]["slots_moved"] == 0
    data = json.loads(text)
    assert data["format"] == 2 and data["replicas_per_dc"] == 2
    again, text2 = mod.compute(params(previous_path="/prev"), reader({"/prev": text}))
    assert text2 == text
    assert again["previous_found"] is True
    assert again["moves"]["slots_moved"] == 0 and again["moves"]["projects_changed"] == 0
    assert again["diff"]["before"] == again["diff"]["after"]


def test_moves_when_a_host_goes_down():
    text = mod.compute(params(), reader({}))[1]
    hosts = [dict(h, state="down") if h["name"] == "a2" else h for h in HOSTS]
    result = mod.compute(params(hosts=hosts, previous_path="/prev"), reader({"/prev": text}))[0]
    moves = result["moves"]
    assert moves["slots_moved"] > 0
    assert moves["per_host"]["a2"]["out"] == moves["slots_moved"]
    assert all(m["from"] == "a2" and m["to"] in ("a1", "a3") for m in moves["list"])
    assert result["per_host"].get("a2") is None
    assert "move " in result["diff"]["after"]


def test_draining_keeps_previous():
    text = mod.compute(params(), reader({}))[1]
    hosts = [dict(h, state="draining") if h["name"] == "b2" else h for h in HOSTS]
    result, text2 = mod.compute(params(hosts=hosts, previous_path="/prev"), reader({"/prev": text}))
    assert result["moves"]["slots_moved"] == 0 and text2 == text


def test_projects_file_and_bare_previous():
    files = {"/ids": "\n".join(PROJECTS), "/prev": json.dumps({"p000": ["a1", "a2", "b1", "b2"]})}
    result = mod.compute(params(projects=None, projects_file="/ids", previous_path="/prev",
                                return_placement=False), reader(files))[0]
    assert "placement" not in result and result["previous_found"]
    assert result["moves"]["added_projects"] == 59


@pytest.mark.parametrize("kw, pattern", [
    (dict(projects=None, projects_file="/missing"), "does not exist"),
    (dict(projects=["x"], projects_file="/ids"), "not both"),
    (dict(projects=None), "give projects"),
    (dict(hosts=[{"name": "a1", "dc": "a"}]), "allow_degraded"),
])
def test_errors(kw, pattern):
    with pytest.raises(PlacementError, match=pattern):
        mod.compute(params(**kw), reader({"/ids": "x"}))


class FakeModule:
    def __init__(self, p, check_mode=False, diff=True):
        self.params, self.check_mode, self._diff = p, check_mode, diff
        self.result = None

    def exit_json(self, **kw):
        self.result = kw
        raise SystemExit(0)

    def fail_json(self, **kw):
        self.result = dict(kw, failed=True)
        raise SystemExit(1)

    def atomic_move(self, src, dest):
        import os
        os.replace(src, dest)


def run(monkeypatch, fake):
    monkeypatch.setattr(mod, "AnsibleModule", lambda **kw: fake)
    with pytest.raises(SystemExit):
        mod.main()
    return fake.result


def test_main_writes_only_when_changed_and_not_in_check_mode(tmp_path, monkeypatch):
    dest = str(tmp_path / "placement.json")
    res = run(monkeypatch, FakeModule(params(dest=dest, previous_path=dest), check_mode=True))
    assert res["changed"] is True and not (tmp_path / "placement.json").exists()
    assert "diff" in res
    res = run(monkeypatch, FakeModule(params(dest=dest, previous_path=dest), diff=False))
    assert res["changed"] is True and "diff" not in res
    written = (tmp_path / "placement.json").read_text()
    res = run(monkeypatch, FakeModule(params(dest=dest, previous_path=dest)))
    assert res["changed"] is False and (tmp_path / "placement.json").read_text() == written
    assert [p.name for p in tmp_path.iterdir()] == ["placement.json"]


def test_main_report_only_changes_nothing(monkeypatch):
    res = run(monkeypatch, FakeModule(params()))
    assert res["changed"] is False and "dest" not in res


def test_main_fails_cleanly(monkeypatch):
    res = run(monkeypatch, FakeModule(params(replicas_per_dc=0)))
    assert res["failed"] and "replicas_per_dc" in res["msg"]


ADDRESSES = dict((h["name"], "10.9.0.%d" % i) for i, h in enumerate(HOSTS, 1))


def test_plans_per_host_and_a_ring_change_keeps_the_current_primary():
    from ansible_collections.smc.backend.plugins.module_utils import host_plan
    first, text = mod.compute(params(plans_dir="/p", addresses=ADDRESSES), reader({}))
    assert set(first["plan_texts"]) == set(ADDRESSES)
    plan = host_plan.parse_plan(first["plan_texts"]["a1"], "a1.json")
    assert plan["addresses"][plan["hosts"].index("b2")] == "10.9.0.5"
    # a3 weighs 5 now: the ring picks other primaries; every current primary is up and keeps serving
    hosts = [dict(h, weight=5) if h["name"] == "a3" else h for h in HOSTS]
    files = {"prev": text}
    second, text2 = mod.compute(params(hosts=hosts, previous_path="prev", plans_dir="/p", addresses=ADDRESSES),
                                reader(files))
    assert second["pending_moves"]["count"] > 0
    for move in second["pending_moves"]["list"]:
        assert second["per_host"][move["from"]]["primary"].count(move["project"]) == 1
    assert json.loads(text2)["current"]  # recorded beside the ring
    # the next run with the same ring changes nothing more
    third, text3 = mod.compute(params(hosts=hosts, previous_path="prev", plans_dir="/p", addresses=ADDRESSES),
                               reader({"prev": text2}))
    assert text3 == text2 and third["pending_moves"] == second["pending_moves"]


def test_addresses_come_from_the_last_plans_when_not_given():
    first, text = mod.compute(params(plans_dir="/p", addresses=ADDRESSES), reader({}))
    files = dict(("/p/%s.json" % h, t) for h, t in first["plan_texts"].items())
    files["prev"] = text
    again, _text = mod.compute(params(previous_path="prev", plans_dir="/p", addresses={}), reader(files))
    assert again["plan_texts"] == first["plan_texts"]
    with pytest.raises(PlacementError, match="addresses: no address for"):
        mod.compute(params(plans_dir="/p", addresses={}), reader({}))


def test_switchover_option_records_the_new_primary_and_epoch():
    first, text = mod.compute(params(), reader({}))
    pid = PROJECTS[0]
    to = first["placement"][pid][1]
    result, text2 = mod.compute(params(previous_path="prev", switchover={"project": pid, "to": to}),
                                reader({"prev": text}))
    assert result["switchover"]["to"] == to and result["switchover"]["epoch"] == 2
    assert json.loads(text2)["current"][pid]["epoch"] == 2
    assert pid in result["per_host"][to]["primary"]
    with pytest.raises(PlacementError, match="switchover.to"):
        mod.compute(params(previous_path="prev", switchover={"project": pid, "to": "nope"}), reader({"prev": text}))
