# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-task wall-time records of a playbook run, one JSON object a line (summarize with tests/lab/task_times.py).

Only names and timings are written, never a module's arguments or results. ``TaskTimesRecorder`` holds the
bookkeeping on plain strings and floats (no Ansible objects); ``CallbackModule`` turns Ansible's events into
its calls.
"""
from __future__ import annotations

import json
import os
import time

from ansible.playbook.handler import Handler
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: smc_task_times
type: aggregate
short_description: Append per-task and per-host wall times of a run to a JSON lines file
description:
  - Appends one JSON line per task and host (names, start and end epoch seconds, duration, status),
    one line per task once it is finished (wall time from its first start to its last result), and one
    line when the run ends (total wall time, per-host recap counts).
  - Works with the linear, free and host_pinned strategies and Mitogen's strategies, which send the same events.
    With a free-like strategy task lines are written at the end of each play, since a task is finished only then.
  - A looped task gives one line per host (with its item count), not one per item.
  - Module arguments and results are never written, only names and timings.
  - Summarize the file with C(python tests/lab/task_times.py FILE).
requirements:
  - enable it in ansible.cfg (C(callbacks_enabled = smc_task_times)) or with E(ANSIBLE_CALLBACKS_ENABLED),
    with this directory in E(ANSIBLE_CALLBACK_PLUGINS)
options:
  output:
    description:
      - The JSON lines file to append to; C(~) is expanded and missing directories are created.
      - When empty the plugin does nothing.
    type: str
    default: ''
    env:
      - name: SMC_TASK_TIMES
    ini:
      - section: smc_task_times
        key: output
"""

# Strategy names whose tasks finish for every host before the next task starts: linear, mitogen_linear, debug.
LOCKSTEP_STRATEGY_WORDS = ("linear", "debug")


def epoch_now():
    return round(time.time(), 3)


def append_json_line(path, record):
    """Append ``record`` as one line with a single write(2) on an O_APPEND descriptor: writers never interleave."""
    line = (json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def is_lockstep_strategy(strategy):
    return any(word in (strategy or "") for word in LOCKSTEP_STRATEGY_WORDS)


class TaskTiming:
    """One run of one task: when it started, which hosts are under way, which have a result."""

    def __init__(self, fields, start):
        self.fields = fields
        self.start = start
        self.end = start
        self.host_starts = {}
        self.hosts_done = set()
        self.items = {}

    def host_started(self, host, now):
        self.host_starts[host] = now

    def count_item(self, host):
        self.items[host] = self.items.get(host, 0) + 1

    def is_pending(self):
        return bool(self.host_starts)

    def host_record(self, host, status, now):
        """The host's line, or None for a second result no start announced (an include's load error after its ok)."""
        start = self.host_starts.pop(host, None)
        if start is None:
            if host in self.hosts_done:
                return None
            start = self.start
        self.hosts_done.add(host)
        self.end = max(self.end, now)
        record = dict(self.fields, type="host", host=host, status=status,
                      start=start, end=now, duration=round(max(0.0, now - start), 3))
        if host in self.items:
            record["items"] = self.items.pop(host)
        return record

    def task_record(self):
        return dict(self.fields, type="task", start=self.start, end=self.end,
                    wall=round(max(0.0, self.end - self.start), 3), hosts=len(self.hosts_done))


class TaskTimesRecorder:
    """The records of one ansible-playbook run, handed to ``write`` (a function taking one dict) as they complete."""

    def __init__(self, write):
        self.write = write
        self.run = None
        self.playbooks = []
        self.run_start = None
        self.play = {"playbook": "", "play": ""}
        self.lockstep = True
        self.open_tasks = {}
        self.finished_tasks = {}

    def playbook_started(self, playbook, now):
        if self.run is None:
            self.run, self.run_start = "%d-%d" % (now, os.getpid()), now
        self.playbooks.append(playbook)
        self.play = {"playbook": playbook, "play": ""}

    def play_started(self, play, strategy):
        self.finish_tasks(pending_too=True)
        self.play = dict(self.play, play=play)
        self.lockstep = is_lockstep_strategy(strategy)

    def task_started(self, task_id, fields, now):
        """Open a run of the task; a repeated start (free strategy: one a host) keeps the first."""
        if task_id in self.open_tasks:
            return self.open_tasks[task_id]
        if self.lockstep:
            self.finish_tasks(pending_too=False)
        timing = TaskTiming(dict(self.play, run=self.run, task_id=task_id, **fields), now)
        self.open_tasks[task_id] = timing
        return timing

    def host_started(self, task_id, fields, host, now):
        self.task_started(task_id, fields, now).host_started(host, now)

    def item_done(self, task_id, fields, host, now):
        self.task_started(task_id, fields, now).count_item(host)

    def host_done(self, task_id, fields, host, status, now, extra=None):
        timing = self.open_tasks.get(task_id) or self.finished_tasks.get(task_id)
        if timing is None:
            timing = self.task_started(task_id, fields, now)
        record = timing.host_record(host, status, now)
        if record is not None:
            self.write(dict(record, **(extra or {})))

    def finish_tasks(self, pending_too):
        for task_id, timing in list(self.open_tasks.items()):
            if pending_too or not timing.is_pending():
                del self.open_tasks[task_id]
                self.finished_tasks[task_id] = timing
                self.write(timing.task_record())

    def run_finished(self, recap, now):
        self.finish_tasks(pending_too=True)
        start = self.run_start if self.run_start is not None else now
        self.write({"type": "playbook", "run": self.run, "playbook": self.playbooks[-1] if self.playbooks else "",
                    "playbooks": self.playbooks, "start": start, "end": now,
                    "wall": round(max(0.0, now - start), 3), "recap": recap})


def plain(value):
    return "" if value is None else str(value)


def task_fields(task):
    """The names of a task (no arguments): what every line about it carries."""
    role = getattr(task, "_role", None)
    return {
        "task": plain(task.name or task.action),
        "role": plain(role.get_name(include_role_fqcn=False)) if role else "",
        "path": plain(task.get_path()),
        "action": plain(task.action),
        "handler": isinstance(task, Handler),
    }


def host_recap(stats):
    recap = {}
    for host in sorted(stats.processed):
        counts = stats.summarize(host)
        recap[host] = {"ok": counts["ok"], "changed": counts["changed"], "failed": counts["failures"],
                       "unreachable": counts["unreachable"], "skipped": counts["skipped"]}
    return recap


class CallbackModule(CallbackBase):
    """Feeds Ansible's events to a ``TaskTimesRecorder`` writing to the ``output`` file."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "smc_task_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.output = ""
        self.recorder = TaskTimesRecorder(self._write)
        self._write_failed = False

    def set_options(self, task_keys=None, var_options=None, direct=None):
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        output = self.get_option("output") or ""
        self.output = os.path.abspath(os.path.expanduser(output)) if output else ""
        self.disabled = not self.output

    def _write(self, record):
        if self._write_failed or not self.output:
            return
        try:
            os.makedirs(os.path.dirname(self.output), exist_ok=True)
            append_json_line(self.output, record)
        except OSError as error:
            self._write_failed = True
            self._display.warning("smc_task_times: cannot append to %s: %s" % (self.output, error))

    def _host_done(self, result, status, extra=None):
        task = result.task
        self.recorder.host_done(task._uuid, task_fields(task), result.host.get_name(), status, epoch_now(), extra)

    def v2_playbook_on_start(self, playbook):
        self.recorder.playbook_started(plain(getattr(playbook, "_file_name", "")), epoch_now())

    def v2_playbook_on_play_start(self, play):
        self.recorder.play_started(plain(play.get_name()), plain(getattr(play, "strategy", "")))

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.recorder.task_started(task._uuid, task_fields(task), epoch_now())

    def v2_playbook_on_handler_task_start(self, task):
        self.recorder.task_started(task._uuid, task_fields(task), epoch_now())

    def v2_runner_on_start(self, host, task):
        self.recorder.host_started(task._uuid, task_fields(task), host.get_name(), epoch_now())

    def v2_runner_on_ok(self, result):
        self._host_done(result, "changed" if result.is_changed() else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._host_done(result, "failed", {"ignored": True} if ignore_errors else None)

    def v2_runner_on_skipped(self, result):
        self._host_done(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._host_done(result, "unreachable")

    def _item_done(self, result):
        task = result.task
        self.recorder.item_done(task._uuid, task_fields(task), result.host.get_name(), epoch_now())

    def v2_runner_item_on_ok(self, result):
        self._item_done(result)

    def v2_runner_item_on_failed(self, result):
        self._item_done(result)

    def v2_runner_item_on_skipped(self, result):
        self._item_done(result)

    def v2_playbook_on_stats(self, stats):
        self.recorder.run_finished(host_recap(stats), epoch_now())
