"""tests/lab/task_times.py: the summarizer of smc_task_times records, on synthetic records."""
import importlib.util
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
_SPEC = importlib.util.spec_from_file_location("lab_task_times", os.path.join(ROOT, "tests", "lab", "task_times.py"))
task_times = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = task_times  # NamedTuple classes look their module up
_SPEC.loader.exec_module(task_times)


def host(task, node, start, end, status="ok", role="", run="r1", task_id=None):
    return {"type": "host", "run": run, "task_id": task_id or task, "task": task, "role": role, "host": node,
            "playbook": "site.yml", "start": start, "end": end, "duration": end - start, "status": status}


def task(name, wall, role="", run="r1", task_id=None):
    return {"type": "task", "run": run, "task_id": task_id or name, "task": name, "role": role, "wall": wall,
            "start": 0.0, "end": wall}


def playbook(wall, run="r1"):
    return {"type": "playbook", "run": run, "playbook": "site.yml", "playbooks": ["site.yml"], "wall": wall,
            "start": 0.0, "end": wall, "recap": {}}


def converge():
    """A run: a slow role task changed on two hosts, a quick task, a handler-free role task cut short."""
    return [
        host("Install packages", "a", 10.0, 40.0, "changed", role="base"),
        host("Install packages", "b", 10.0, 50.0, "changed", role="base"),
        task("Install packages", 40.0, role="base"),
        host("Write config", "a", 50.0, 51.0),
        host("Write config", "b", 50.0, 53.0, "changed"),
        task("Write config", 3.0),
        host("Build pool", "a", 60.0, 65.0, role="zfs"),
        playbook(70.0),
    ]


def test_load_records_leaves_out_blank_and_truncated_lines(tmp_path):
    path = tmp_path / "times.jsonl"
    path.write_text(json.dumps(playbook(1.0)) + "\n\n" + json.dumps(task("t", 1.0)) + "\n" + '{"type": "ho')
    assert [r["type"] for r in task_times.load_records(str(path))] == ["playbook", "task"]


def test_task_label_prefixes_the_role():
    assert task_times.task_label({"task": "Install", "role": "base"}) == "base : Install"
    assert task_times.task_label({"task": "Install", "role": ""}) == "Install"


def test_summarize_tasks_wall_hosts_mean_max_changed():
    summaries = task_times.summarize_tasks(converge())
    install = summaries["base : Install packages"]
    assert (install.wall, install.hosts, install.mean, install.max, install.changed, install.times) == (
        40.0, 2, 35.0, 40.0, 2, 1)
    assert summaries["Write config"].changed == 1


def test_wall_from_host_records_when_the_task_record_is_missing():
    assert task_times.summarize_tasks(converge())["zfs : Build pool"].wall == 5.0


def test_a_name_met_twice_is_one_row_adding_up():
    records = converge() + [host("Write config", "a", 100.0, 102.0, run="r2"), task("Write config", 2.0, run="r2")]
    summary = task_times.summarize_tasks(records)["Write config"]
    assert (summary.wall, summary.times, summary.hosts) == (5.0, 2, 2)
    assert task_times.task_cells(summary)[0] == "Write config (x2)"


def test_run_totals_complete_and_cut_short():
    cut = [host("Install packages", "a", 100.0, 130.0, run="r2")]
    totals = task_times.run_totals(converge() + cut)
    assert totals == [task_times.RunTotal("site.yml", 70.0, True), task_times.RunTotal("site.yml", 30.0, False)]
    assert task_times.describe_totals(totals) == "100.0 s (site.yml 70.0 s; site.yml 30.0 s, cut short)"


def test_top_tasks_slowest_first_and_limited():
    top = task_times.top_tasks(task_times.summarize_tasks(converge()), 2)
    assert [s.label for s in top] == ["base : Install packages", "zfs : Build pool"]


def test_compare_matches_by_role_and_task_and_ranks_by_the_slower_side():
    before = task_times.summarize_tasks(converge())
    after = task_times.summarize_tasks([
        host("Install packages", "a", 0.0, 5.0, role="base"), task("Install packages", 5.0, role="base"),
        host("Check pool", "a", 5.0, 6.0, role="zfs"), task("Check pool", 1.0, role="zfs"), playbook(8.0)])
    rows = task_times.compare(before, after, 10)
    assert [r.label for r in rows] == ["base : Install packages", "zfs : Build pool", "Write config", "zfs : Check pool"]
    assert (rows[0].before.wall, rows[0].after.wall) == (40.0, 5.0)
    assert rows[1].after is None and rows[3].before is None
    assert len(task_times.compare(before, after, 2)) == 2


def test_comparison_cells_show_removed_merged_and_new():
    summary = task_times.TaskSummary("t", 10.0, 2, 5.0, 6.0, 2, 1)
    gone = task_times.comparison_cells(task_times.Comparison("t", summary, None))
    assert gone == ["t", "10.0", "removed/merged", "", "2 -> -"]
    assert task_times.comparison_cells(task_times.Comparison("t", None, summary))[1:3] == ["new", "10.0"]
    kept = task_times.comparison_cells(task_times.Comparison("t", summary, summary._replace(wall=5.0, changed=0)))
    assert kept[3:] == ["-5.0 (-50%)", "2 -> 0"]


def test_delta_without_a_before_time_has_no_percentage():
    assert task_times.delta(0.0, 1.5) == "+1.5"


def test_render_top_markdown_table_escapes_pipes():
    records = converge() + [host("a|b", "a", 0.0, 1.0), task("a|b", 1.0)]
    text = task_times.render_top(task_times.summarize_tasks(records), task_times.run_totals(records), 20, True)
    lines = text.splitlines()
    assert lines[0] == "| # | Task | Wall s | Hosts | Mean s | Max s | Changed |"
    assert lines[1] == "|---:|:---|---:|---:|---:|---:|---:|"
    assert lines[2] == "| 1 | base : Install packages | 40.0 | 2 | 35.0 | 40.0 | 2 |"
    assert "| a\\|b |" in text
    assert text.rstrip().endswith("Total wall time: 70.0 s (site.yml 70.0 s)")


def test_render_plain_text_pads_columns():
    text = task_times.render_table(["#", "Task", "Wall s"], [["1", "long task name", "1.0"], ["2", "t", "10.0"]], False)
    assert text.splitlines() == ["#  Task            Wall s", "-  --------------  ------",
                                 "1  long task name     1.0", "2  t                 10.0"]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_main_top_and_before(tmp_path, capsys):
    after = write_jsonl(tmp_path / "after.jsonl", [host("Write config", "a", 0.0, 1.0), task("Write config", 1.0),
                                                   playbook(2.0)])
    before = write_jsonl(tmp_path / "before.jsonl", converge())
    assert task_times.main([after, "--top", "1"]) == 0
    assert "Write config" in capsys.readouterr().out
    assert task_times.main([after, "--before", before, "--markdown", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "| 1 | base : Install packages | 40.0 | removed/merged |  | 2 -> - |" in out
    assert "| 3 | Write config | 3.0 | 1.0 | -2.0 (-67%) | 1 -> 0 |" in out
    assert "|  | Total wall time | 70.0 | 2.0 | -68.0 (-97%) |  |" in out


@pytest.mark.parametrize("argv", [[], ["x", "--top", "many"]])
def test_main_rejects_bad_arguments(argv):
    with pytest.raises(SystemExit):
        task_times.main(argv)
