"""tests/lab/callback_plugins/smc_task_times.py: a real ansible-playbook run on two local hosts, and its recorder."""
import collections
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PLUGINS = os.path.join(ROOT, "tests", "lab", "callback_plugins")
SECRET = "s3cr3t-not-for-the-record"
_SPEC = importlib.util.spec_from_file_location("lab_smc_task_times", os.path.join(PLUGINS, "smc_task_times.py"))
smc_task_times = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(smc_task_times)

PLAYBOOK = """\
- name: Linear play
  hosts: lab
  gather_facts: false
  roles:
    - r1
  tasks:
    - name: Looped task
      ansible.builtin.debug:
        msg: "{{ item }}"
      loop: [1, 2, 3]
    - name: Skipped task
      ansible.builtin.debug:
        msg: never
      when: false
    - name: Failing task
      ansible.builtin.fail:
        msg: boom
      ignore_errors: true
    - name: Include some tasks
      ansible.builtin.include_tasks: included.yml
- name: Free play
  hosts: lab
  gather_facts: false
  strategy: free
  tasks:
    - name: Free task
      ansible.builtin.command: "true"
      changed_when: false
"""
FILES = {
    "inventory.ini": "[lab]\nh1\nh2\n[lab:vars]\nansible_connection=local\nansible_python_interpreter=%s\n"
                     % sys.executable,
    "playbook.yml": PLAYBOOK,
    "included.yml": "- name: Included task\n  ansible.builtin.debug:\n    msg: included\n",
    "roles/r1/tasks/main.yml": textwrap.dedent("""\
        - name: Task with a secret
          ansible.builtin.command:
            cmd: echo %s
          changed_when: true
          notify: Role handler
        """ % SECRET),
    "roles/r1/handlers/main.yml": "- name: Role handler\n  ansible.builtin.debug:\n    msg: handled\n",
    "ansible.cfg": "[defaults]\n",
}
TASKS = ["Task with a secret", "Looped task", "Skipped task", "Failing task", "Include some tasks", "Included task",
         "Role handler", "Free task"]
NAME_FIELDS = {"type", "run", "playbook", "play", "task", "role", "path", "action", "handler", "task_id"}
HOST_FIELDS = NAME_FIELDS | {"host", "start", "end", "duration", "status", "items", "ignored"}
TASK_FIELDS = NAME_FIELDS | {"start", "end", "wall", "hosts"}


def run_playbook(directory, output):
    for name, text in FILES.items():
        os.makedirs(os.path.dirname(os.path.join(directory, name)), exist_ok=True)
        with open(os.path.join(directory, name), "w", encoding="utf-8") as handle:
            handle.write(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=os.path.join(directory, "ansible.cfg"), ANSIBLE_CALLBACK_PLUGINS=PLUGINS,
               ANSIBLE_CALLBACKS_ENABLED="smc_task_times", SMC_TASK_TIMES=output, ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=os.path.join(directory, "tmp"), ANSIBLE_HOME=os.path.join(directory, "home"))
    playbook_bin = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return subprocess.run([playbook_bin, "-v", "-i", "inventory.ini", "playbook.yml"], cwd=directory, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def recorded_text(tmp_path_factory):
    """The records file of one run of PLAYBOOK, as text."""
    directory = str(tmp_path_factory.mktemp("play"))
    output = os.path.join(directory, "records", "times.jsonl")
    done = run_playbook(directory, output)
    assert done.returncode == 0, done.stdout + done.stderr
    assert SECRET in done.stdout  # -v shows it in Ansible's own output: its absence from the records means something
    with open(output, encoding="utf-8") as handle:
        return handle.read()


@pytest.fixture(scope="module")
def records(recorded_text):
    return [json.loads(line) for line in recorded_text.splitlines()]


def by_type(records, kind):
    return [r for r in records if r["type"] == kind]


def host_record(records, task, host):
    (record,) = [r for r in by_type(records, "host") if r["task"] == task and r["host"] == host]
    return record


def test_one_record_per_host_per_task(records):
    pairs = collections.Counter((r["task"], r["host"]) for r in by_type(records, "host"))
    assert pairs == {(task, host): 1 for task in TASKS for host in ("h1", "h2")}


def test_one_task_record_per_task_with_its_wall_time(records):
    tasks = by_type(records, "task")
    assert sorted(r["task"] for r in tasks) == sorted(TASKS)
    for record in tasks:
        durations = [r["duration"] for r in by_type(records, "host") if r["task_id"] == record["task_id"]]
        assert record["hosts"] == 2 and record["wall"] >= max(durations) - 0.002


def test_a_looped_task_is_one_record_with_its_item_count(records):
    assert host_record(records, "Looped task", "h1")["items"] == 3
    assert "items" not in host_record(records, "Free task", "h1")


def test_statuses(records):
    assert host_record(records, "Skipped task", "h1")["status"] == "skipped"
    assert host_record(records, "Task with a secret", "h2")["status"] == "changed"
    failing = host_record(records, "Failing task", "h1")
    assert (failing["status"], failing["ignored"]) == ("failed", True)
    assert host_record(records, "Free task", "h2")["status"] == "ok"


def test_names_role_path_handler_play(records):
    secret_task = host_record(records, "Task with a secret", "h1")
    assert (secret_task["role"], secret_task["action"], secret_task["handler"]) == ("r1", "ansible.builtin.command", False)
    assert secret_task["path"].endswith(os.path.join("roles", "r1", "tasks", "main.yml") + ":1")
    handler = host_record(records, "Role handler", "h1")
    assert (handler["role"], handler["handler"]) == ("r1", True)
    assert host_record(records, "Included task", "h2")["path"].endswith("included.yml:1")
    assert host_record(records, "Free task", "h1")["play"] == "Free play"
    assert {r["playbook"] for r in records} == {"playbook.yml"}
    assert len({r["run"] for r in records}) == 1


def test_times_are_ordered_and_durations_not_negative(records):
    for record in by_type(records, "host"):
        assert record["duration"] >= 0 and record["end"] >= record["start"]
    (run,) = by_type(records, "playbook")
    assert all(run["start"] <= r["start"] and r["end"] <= run["end"] for r in by_type(records, "host"))


def test_playbook_record_recaps_each_host(records):
    (run,) = by_type(records, "playbook")
    assert records[-1] is run and run["wall"] > 0
    assert run["recap"]["h1"] == {"ok": 7, "changed": 1, "failed": 0, "unreachable": 0, "skipped": 1}


def test_only_names_and_timings_are_written(recorded_text, records):
    text = recorded_text
    assert SECRET not in text and "echo" not in text and "boom" not in text and "handled" not in text
    allowed = {"host": HOST_FIELDS, "task": TASK_FIELDS, "playbook": {"type", "run", "playbook", "playbooks",
                                                                      "start", "end", "wall", "recap"}}
    for record in records:
        assert set(record) <= allowed[record["type"]], record


@pytest.fixture
def plugin():
    from ansible.plugins.loader import callback_loader

    callback_loader.add_directory(PLUGINS)
    return callback_loader.get("smc_task_times")


def test_empty_output_disables_the_plugin(plugin, monkeypatch):
    monkeypatch.setenv("SMC_TASK_TIMES", "")
    plugin.set_options()
    assert plugin.disabled and plugin.output == ""
    monkeypatch.setenv("SMC_TASK_TIMES", "~/times.jsonl")
    plugin.set_options()
    assert not plugin.disabled and plugin.output == os.path.expanduser("~/times.jsonl")


def test_a_file_that_cannot_be_written_warns_once(plugin, monkeypatch, tmp_path):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("SMC_TASK_TIMES", str(tmp_path / "a-file" / "times.jsonl"))
    plugin.set_options()
    warnings = []
    monkeypatch.setattr(plugin._display, "warning", warnings.append)
    plugin.v2_playbook_on_start(None)
    plugin.recorder.run_finished({}, 1.0)
    plugin.recorder.run_finished({}, 2.0)
    assert len(warnings) == 1 and "cannot append" in warnings[0]


class Recording:
    """A TaskTimesRecorder whose records land in a list."""

    def __init__(self, strategy):
        self.records = []
        self.recorder = smc_task_times.TaskTimesRecorder(self.records.append)
        self.recorder.playbook_started("site.yml", 100.0)
        self.recorder.play_started("play", strategy)

    def types(self):
        return [(r["type"], r.get("task"), r.get("host")) for r in self.records]


def test_lockstep_strategy_writes_a_task_when_the_next_one_starts():
    rec = Recording("mitogen_linear")
    rec.recorder.task_started("A", {"task": "a"}, 101.0)
    rec.recorder.host_started("A", {"task": "a"}, "h1", 101.5)
    rec.recorder.host_done("A", {"task": "a"}, "h1", "ok", 103.0)
    rec.recorder.task_started("B", {"task": "b"}, 104.0)
    assert rec.types() == [("host", "a", "h1"), ("task", "a", None)]
    assert (rec.records[0]["duration"], rec.records[1]["wall"]) == (1.5, 2.0)


def test_free_strategy_keeps_tasks_open_until_the_play_ends():
    rec = Recording("ansible.builtin.free")
    for host, start in (("h1", 101.0), ("h2", 102.0)):
        rec.recorder.task_started("A", {"task": "a"}, start)
        rec.recorder.host_started("A", {"task": "a"}, host, start)
        rec.recorder.task_started("B", {"task": "b"}, start + 0.5)
    rec.recorder.host_done("A", {"task": "a"}, "h2", "changed", 104.0)
    rec.recorder.host_done("A", {"task": "a"}, "h1", "ok", 105.0)
    rec.recorder.play_started("next play", "linear")
    assert rec.types() == [("host", "a", "h2"), ("host", "a", "h1"), ("task", "a", None), ("task", "b", None)]
    assert (rec.records[0]["duration"], rec.records[2]["wall"], rec.records[2]["hosts"]) == (2.0, 4.0, 2)


def test_a_second_result_without_a_start_is_dropped_a_rerun_is_kept():
    rec = Recording("linear")
    rec.recorder.host_started("H", {"task": "handler"}, "h1", 101.0)
    rec.recorder.host_done("H", {"task": "handler"}, "h1", "ok", 102.0)
    rec.recorder.host_done("H", {"task": "handler"}, "h1", "failed", 102.5)
    rec.recorder.host_started("H", {"task": "handler"}, "h1", 103.0)
    rec.recorder.host_done("H", {"task": "handler"}, "h1", "ok", 104.0)
    rec.recorder.run_finished({"h1": {}}, 110.0)
    assert [r["type"] for r in rec.records] == ["host", "host", "task", "playbook"]
    assert rec.records[-1]["wall"] == 10.0 and rec.records[-1]["playbooks"] == ["site.yml"]


def test_append_json_line_appends_whole_lines(tmp_path):
    path = str(tmp_path / "times.jsonl")
    for number in range(3):
        smc_task_times.append_json_line(path, {"n": number})
    with open(path, encoding="utf-8") as handle:
        assert [json.loads(line)["n"] for line in handle] == [0, 1, 2]
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
