# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a converge's time goes: the slowest tasks of a run recorded by the smc_task_times callback.

    python tests/lab/task_times.py RECORDS.jsonl [--top 20] [--before OLD.jsonl] [--markdown]

Tasks are named ``role : task`` (just ``task`` outside roles) and a name met more than once in the file (the same
task in several plays or runs, an included file included twice) is one row whose wall time is the sum. A task's
wall time runs from its first start to its last result on any host; the mean and max are over its hosts' own
durations. With ``--before`` the two files' rows are matched by that name: a row only before shows
"removed/merged", one only after "new". ``--markdown`` prints tables to paste into README.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import NamedTuple

REMOVED = "removed/merged"
NEW = "new"
TEXT_COLUMN = 1  # the task names; the first column numbers the rows


class TaskSummary(NamedTuple):
    label: str
    wall: float
    hosts: int
    mean: float
    max: float
    changed: int
    times: int


class RunTotal(NamedTuple):
    playbook: str
    wall: float
    complete: bool


class Comparison(NamedTuple):
    label: str
    before: TaskSummary | None
    after: TaskSummary | None


def load_records(path):
    """The file's records; a line that is not JSON (the last one of a killed run) is left out."""
    records = []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
    return records


def task_label(record):
    task, role = record.get("task", ""), record.get("role", "")
    return "%s : %s" % (role, task) if role else task


def task_occurrences(records):
    """(run, task id) to the task's label, its hosts' records and its own records' wall times."""
    occurrences = {}
    for record in records:
        if record.get("type") not in ("host", "task"):
            continue
        key = (record.get("run"), record.get("task_id") or (record.get("path"), task_label(record)))
        occurrence = occurrences.setdefault(key, {"label": task_label(record), "hosts": [], "walls": []})
        if record["type"] == "host":
            occurrence["hosts"].append(record)
        else:
            occurrence["walls"].append(float(record.get("wall", 0.0)))
    return occurrences


def occurrence_wall(occurrence):
    """The task records' wall time; from the host records when the run was cut before the task's record."""
    if occurrence["walls"]:
        return sum(occurrence["walls"])
    hosts = occurrence["hosts"]
    return max(r["end"] for r in hosts) - min(r["start"] for r in hosts) if hosts else 0.0


def summarize_tasks(records):
    """Label to TaskSummary, every occurrence of a label added up."""
    walls, host_records, times = {}, {}, {}
    for occurrence in task_occurrences(records).values():
        label = occurrence["label"]
        walls[label] = walls.get(label, 0.0) + occurrence_wall(occurrence)
        host_records.setdefault(label, []).extend(occurrence["hosts"])
        times[label] = times.get(label, 0) + 1
    return {label: task_summary(label, walls[label], host_records[label], times[label]) for label in walls}


def task_summary(label, wall, host_records, times):
    durations = [float(r.get("duration", 0.0)) for r in host_records]
    return TaskSummary(
        label=label, wall=wall, hosts=len({r.get("host") for r in host_records}),
        mean=sum(durations) / len(durations) if durations else 0.0, max=max(durations, default=0.0),
        changed=sum(1 for r in host_records if r.get("status") == "changed"), times=times)


def run_totals(records):
    """One RunTotal a run: its playbook record, or its host records' span when the run was cut short."""
    playbooks, spans = {}, {}
    for record in records:
        run = record.get("run")
        if record.get("type") == "playbook":
            playbooks[run] = RunTotal(" ".join(record.get("playbooks") or [record.get("playbook", "")]),
                                      float(record.get("wall", 0.0)), True)
        elif record.get("type") == "host":
            playbook, start, end = spans.get(run, (record.get("playbook", ""), record["start"], record["end"]))
            spans[run] = (playbook, min(start, record["start"]), max(end, record["end"]))
    cut_short = [RunTotal(playbook, end - start, False)
                 for run, (playbook, start, end) in spans.items() if run not in playbooks]
    return list(playbooks.values()) + cut_short


def top_tasks(summaries, count):
    return sorted(summaries.values(), key=lambda s: (-s.wall, s.label))[:count]


def compare(before, after, count):
    """The ``count`` labels slowest before or after, each with its summary of both sides (None where absent)."""
    labels = set(before) | set(after)

    def slowest_side(label):
        return max(side[label].wall for side in (before, after) if label in side)

    ranked = sorted(labels, key=lambda label: (-slowest_side(label), label))[:count]
    return [Comparison(label, before.get(label), after.get(label)) for label in ranked]


def seconds(value):
    return "%.1f" % value


def delta(before, after):
    change = after - before
    percent = " (%+.0f%%)" % (100.0 * change / before) if before > 0 else ""
    return "%+.1f%s" % (change, percent)


def total_wall(totals):
    return sum(total.wall for total in totals)


def describe_totals(totals):
    """'12.3 s (site.yml 10.0 s, lab_up.yml 2.3 s)': the runs' wall times and their sum."""
    parts = ["%s %s s%s" % (t.playbook, seconds(t.wall), "" if t.complete else ", cut short") for t in totals]
    return "%s s (%s)" % (seconds(total_wall(totals)), "; ".join(parts) or "no run recorded")


def task_cells(summary):
    label = summary.label + (" (x%d)" % summary.times if summary.times > 1 else "")
    return [label, seconds(summary.wall), str(summary.hosts), seconds(summary.mean), seconds(summary.max),
            str(summary.changed)]


def comparison_cells(row):
    before, after = row.before, row.after
    return [row.label,
            seconds(before.wall) if before else NEW,
            seconds(after.wall) if after else REMOVED,
            delta(before.wall, after.wall) if before and after else "",
            "%s -> %s" % (before.changed if before else "-", after.changed if after else "-")]


def render_table(headers, rows, markdown):
    """A table with its second column (the task) left-aligned, the others right: Markdown, or padded plain text."""
    if markdown:
        aligns = ["---:" if i != TEXT_COLUMN else ":---" for i in range(len(headers))]
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(aligns) + "|"]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(cells[i]) for cells in [headers] + rows) for i in range(len(headers))]

    def line(cells):
        padded = (c.ljust(w) if i == TEXT_COLUMN else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(cells) for cells in rows])


def numbered(rows):
    return [[str(number)] + cells for number, cells in enumerate(rows, 1)]


def render_top(summaries, totals, count, markdown):
    headers = ["#", "Task", "Wall s", "Hosts", "Mean s", "Max s", "Changed"]
    rows = numbered([task_cells(summary) for summary in top_tasks(summaries, count)])
    return "%s\n\nTotal wall time: %s\n" % (render_table(headers, rows, markdown), describe_totals(totals))


def render_compare(rows, before_totals, after_totals, markdown):
    headers = ["#", "Task", "Before s", "After s", "Change s", "Changed"]
    cells = numbered([comparison_cells(row) for row in rows])
    cells.append(["", "Total wall time", seconds(total_wall(before_totals)), seconds(total_wall(after_totals)),
                  delta(total_wall(before_totals), total_wall(after_totals)), ""])
    table = render_table(headers, cells, markdown)
    return "%s\n\n- Before: %s\n- After: %s\n" % (table, describe_totals(before_totals), describe_totals(after_totals))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("records", help="JSON lines written by the smc_task_times callback")
    parser.add_argument("--top", type=int, default=20, help="how many tasks to list (default 20)")
    parser.add_argument("--before", help="an earlier run's records, to compare with")
    parser.add_argument("--markdown", action="store_true", help="Markdown tables, for README")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    after = load_records(args.records)
    if args.before is None:
        text = render_top(summarize_tasks(after), run_totals(after), args.top, args.markdown)
    else:
        before = load_records(args.before)
        rows = compare(summarize_tasks(before), summarize_tasks(after), args.top)
        text = render_compare(rows, run_totals(before), run_totals(after), args.markdown)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
