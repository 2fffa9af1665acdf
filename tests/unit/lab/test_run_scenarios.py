"""tests/lab/run_scenarios.py: the budget, the speed taken from the first scenario, the summary, a failure."""
import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
_SPEC = importlib.util.spec_from_file_location("lab_run_scenarios", os.path.join(ROOT, "tests", "lab", "run_scenarios.py"))
run_scenarios = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(run_scenarios)


@pytest.fixture
def lab(monkeypatch):
    """Stated minutes as in the molecule.yml files; a scenario 'runs' for the minutes given, on a fake clock."""
    stated = {"default": 14, "replication": 17, "limits": 6, "zfs": 5}
    clock = {"now": 1000.0}
    took = {}
    ran = []

    def fake_run(scenario):
        ran.append(scenario)
        clock["now"] += took[scenario] * 60
        return (3 if scenario == took.get("fail") else 0), took[scenario]
    monkeypatch.setattr(run_scenarios, "stated_minutes", lambda s: stated[s])
    monkeypatch.setattr(run_scenarios, "run", fake_run)
    monkeypatch.setattr(run_scenarios.time, "time", lambda: clock["now"])
    monkeypatch.setenv("SMC_TEST_START", "1000")
    return took, ran


def test_without_a_budget_every_scenario_runs(lab, monkeypatch, capsys):
    took, ran = lab
    monkeypatch.delenv("SMC_TEST_BUDGET_MIN", raising=False)
    took.update(default=40, replication=50, limits=20, zfs=15)
    assert run_scenarios.main(["default", "replication", "limits", "zfs"]) == 0
    assert ran == ["default", "replication", "limits", "zfs"]


def test_a_slow_machine_runs_what_fits_and_lists_the_rest(lab, monkeypatch, capsys):
    took, ran = lab
    monkeypatch.setenv("SMC_TEST_BUDGET_MIN", "78")
    # speed 2: replication's forecast 34 fits in 50; limits' 12 in 20; zfs' 10 in the last 10; a 5th would not
    took.update(default=28, replication=30, limits=10, zfs=9)
    stated_default = run_scenarios.stated_minutes("default")
    assert stated_default == 14
    assert run_scenarios.main(["default", "replication", "limits", "zfs"]) == 0
    assert ran == ["default", "replication", "limits", "zfs"]
    out = capsys.readouterr().out
    assert "speed 2.00" in out and "NOT RUN" not in out


def test_a_forecast_larger_than_what_is_left_is_not_run_but_smaller_later_ones_are(lab, monkeypatch, capsys):
    took, ran = lab
    monkeypatch.setenv("SMC_TEST_BUDGET_MIN", "78")
    took.update(default=42, limits=25, zfs=9)  # speed 3: replication 51 > 36 left; limits 18 fits; zfs 15 > 11
    assert run_scenarios.main(["default", "replication", "limits", "zfs"]) == 0
    assert ran == ["default", "limits"]
    out = capsys.readouterr().out
    assert "replication NOT RUN: forecast 51 min (stated 17 x speed 3.00), 36 min of the budget left" in out
    assert "zfs NOT RUN" in out
    assert "not run (budget)" in out


def test_a_failed_scenario_stops_the_run_and_fails_it(lab, monkeypatch, capsys):
    took, ran = lab
    monkeypatch.delenv("SMC_TEST_BUDGET_MIN", raising=False)
    took.update(default=14, replication=17, fail="replication")
    assert run_scenarios.main(["default", "replication", "limits"]) == 1
    assert ran == ["default", "replication"]
    out = capsys.readouterr().out
    assert "FAILED (rc 3)" in out and "not run (after replication failed)" in out


def test_a_scenario_without_stated_minutes_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(run_scenarios, "ROOT", str(tmp_path))
    (tmp_path / "molecule" / "new").mkdir(parents=True)
    (tmp_path / "molecule" / "new" / "molecule.yml").write_text("---\n# no minutes here\n")
    with pytest.raises(SystemExit, match="CI minutes: about N"):
        run_scenarios.stated_minutes("new")


def test_every_scenario_of_the_makefile_states_its_minutes():
    with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as f:
        line = next(ln for ln in f if ln.startswith("SCENARIOS ?="))
    for scenario in line.split("?=")[1].split():
        assert run_scenarios.stated_minutes(scenario) > 0
