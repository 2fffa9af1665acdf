"""smc_metrics (roles/zfs_storage/files): the agent's host metrics read from a fake zpool/zfs, a plan, an HA state
file and cgroup files; written as smc-host.prom by ``smc-zfs-agent metrics`` and after every snapshot run."""
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
import yaml

from test_smc_zfs_agent import LIB, ROOT, load_agent, run_agent  # pylint: disable=import-error

FILES = os.path.join(ROOT, "roles", "zfs_storage", "files")
for _path in (FILES, LIB):
    if _path not in sys.path:
        sys.path.insert(0, _path)
import smc_metrics  # noqa: E402  pylint: disable=import-error,wrong-import-position


def _load_parser():
    """The strict text-format parser of metrics_text's own tests."""
    path = os.path.join(ROOT, "tests", "unit", "plugins", "module_utils", "test_metrics_text.py")
    spec = importlib.util.spec_from_file_location("metrics_text_parser", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


PARSER = _load_parser()
NOW = 1729994400  # 2024-10-27T02:00:00Z
NOW_TEXT = "2024-10-27T02:00:00Z"


def stamp(seconds_ago):
    return "smc_" + time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - seconds_ago))


# zpool list -H -p -o name,health,size,alloc,free (OpenZFS 2.1: tabs, bytes)
ZPOOL = ("tank\tONLINE\t10737418240\t2147483648\t8589934592\n"
         "backup\tDEGRADED\t5368709120\t4831838208\t536870912\n"
         "gone\tUNAVAIL\t-\t-\t-\n")
# zfs list -H -p -t filesystem -d 1 -o name,written,smc:class,smc:role,smc:snapshot,smc:fenced,smc:epoch tank/projects
DATASETS = ("tank/projects\t0\t-\t-\t-\t-\t-\n"
            "tank/projects/p1\t0\tmember\tprimary\t-\t-\t3\n"        # unchanged since its last snapshot
            "tank/projects/p2\t81920\t-\tprimary\t-\t-\t1\n"         # written since: its age counts
            "tank/projects/p3\t0\t-\treplica\t-\t-\t2\n"             # a replica: received, not snapshotted
            "tank/projects/p4\t4096\t-\tprimary\toff\tlease\t5\n"    # snapshots off; fenced by the HA loop
            "tank/projects/p5\t12288\tnosuch\tprimary\t-\tswitchover\t-\n")  # unknown class, no snapshot yet
SNAPSHOTS = ["tank/projects/p1@" + stamp(7200), "tank/projects/p1@" + stamp(9000), "tank/projects/p1@manual-1",
             "tank/projects/p2@" + stamp(1800), "tank/projects/p2@smc_garbage", "tank/projects/p2@" + stamp(90000),
             "tank/projects/p3@" + stamp(60), "tank/projects/p4@" + stamp(100000)]
CLASSES = {"default": {"frequent": 4, "hourly": 24}, "member": {"frequent": 0, "hourly": 48, "daily": 14},
           "trial": {"daily": 3}}


class FakeHost:
    """zpool and zfs as the agent and smc_metrics call them. ``fail``: {"zpool list" | "zfs list filesystem" |
    "zfs list snapshot" | "zfs program": (rc, stderr) or an exception to raise}."""

    def __init__(self, zpool=ZPOOL, datasets=DATASETS, snapshots=None):
        self.zpool, self.datasets = zpool, datasets
        self.snapshots = list(SNAPSHOTS if snapshots is None else snapshots)
        self.fail, self.calls = {}, []

    @staticmethod
    def key(argv):
        if argv[:2] == ["zfs", "list"]:
            return "zfs list " + ("snapshot" if "snapshot" in argv else "filesystem")
        return " ".join(argv[:2])

    def __call__(self, argv, capture_output=True, text=True, **kwargs):
        self.calls.append(list(argv))
        key = self.key(argv)
        fail = self.fail.get(key)
        if isinstance(fail, BaseException):
            raise fail
        if fail:
            return subprocess.CompletedProcess(argv, fail[0], "", fail[1])
        out = ""
        if key == "zpool list":
            out = self.zpool
        elif key == "zfs list filesystem":  # the columns asked for (the agent's are the first five of these)
            width = len(argv[argv.index("-o") + 1].split(","))
            out = "".join("\t".join(line.split("\t")[:width]) + "\n" for line in self.datasets.splitlines())
        elif key == "zfs list snapshot":
            out = "".join(s + "\n" for s in self.snapshots if s.split("@")[0] in argv)
        elif key == "zfs program":
            names = argv[next(i for i, a in enumerate(argv) if a.endswith(".lua")) + 2:]
            found = [s for s in self.snapshots if s.split("@")[0] in names]
            out = json.dumps({"return": {"names": {str(i + 1): s for i, s in enumerate(found)},
                                         "resume": len(names) + 2}})
        elif key == "zfs snapshot":
            self.snapshots += argv[2:]
        elif key == "zfs get":  # the agent reads smc:role again under its locks (the listing's 4th column)
            roles = dict((line.split("\t")[0], line.split("\t")[3]) for line in self.datasets.splitlines())
            out = "".join("%s\t%s\n" % (name, roles.get(name, "-")) for name in argv[argv.index("smc:role") + 1:])
        elif key != "zpool sync":
            raise AssertionError("unexpected command %s" % argv)
        return subprocess.CompletedProcess(argv, 0, out, "")

    def count(self, key):
        return sum(1 for c in self.calls if self.key(c) == key)


def config(tmp_path, **extra):
    textdir = tmp_path / "textfile"
    textdir.mkdir(exist_ok=True)
    cfg = {"roots": ["tank/projects"], "classes": CLASSES, "default_class": "default",
           "replication": {"metrics_textfile": str(textdir / "smc-replication.prom"),
                           "plan": str(tmp_path / "plan.json")}}
    cfg.update(extra)
    return cfg


def full_config(tmp_path, **extra):
    """The agent's config as load_config makes it (defaults filled in), for calling smc_metrics directly."""
    agent = load_agent()
    cfg = dict(agent.DEFAULTS, **config(tmp_path, **extra))
    cfg["replication"] = dict(agent.REPLICATION_DEFAULTS, **cfg["replication"])
    return cfg


def write_plan(tmp_path, projects):
    plan = {"format": 1, "host": "s1", "hosts": ["s1", "s2"], "addresses": ["10.88.0.1", "10.88.0.2"],
            "projects": {p: {"ring": [0, 1], "primary": 0, "epoch": 1} for p in projects}}
    (tmp_path / "plan.json").write_text(json.dumps(plan))


def families(tmp_path, fake, monkeypatch, **kw):
    """smc_metrics.host_families against ``fake``: (parsed exposition, failed)."""
    monkeypatch.setattr(subprocess, "run", fake)
    cfg = full_config(tmp_path, **kw.pop("cfg", {}))
    fams, failed = smc_metrics.host_families(cfg, NOW, limits_config=str(tmp_path / "no-limits.json"), **kw)
    return PARSER.parse(smc_metrics.metrics_text.render(fams)), failed


def value(parsed, name, **labels):
    return parsed[name]["samples"][frozenset(labels.items())]


# ------------------------------------------------------------------------------------------------- reading
def test_zpool_output_is_parsed_with_a_degraded_and_an_unavailable_pool(monkeypatch):
    monkeypatch.setattr(subprocess, "run", FakeHost())
    pools = smc_metrics.read_pools()
    assert pools == {"tank": {"health": "ONLINE", "size_bytes": 10737418240, "allocated_bytes": 2147483648,
                              "free_bytes": 8589934592},
                     "backup": {"health": "DEGRADED", "size_bytes": 5368709120, "allocated_bytes": 4831838208,
                                "free_bytes": 536870912},
                     "gone": {"health": "UNAVAIL"}}


def test_pool_families_show_the_degraded_pool_and_its_capacity(tmp_path, monkeypatch):
    parsed, failed = families(tmp_path, FakeHost(), monkeypatch)
    assert failed == {}
    assert value(parsed, "smc_pool_health", pool="backup", state="degraded") == 1
    assert value(parsed, "smc_pool_health", pool="backup", state="online") == 0
    assert value(parsed, "smc_pool_health", pool="tank", state="online") == 1
    assert value(parsed, "smc_pool_health", pool="gone", state="unavail") == 1
    assert value(parsed, "smc_pool_capacity_ratio", pool="backup") == pytest.approx(0.9)
    assert value(parsed, "smc_pool_capacity_ratio", pool="tank") == pytest.approx(0.2)
    assert frozenset({("pool", "gone")}) not in parsed["smc_pool_capacity_ratio"]["samples"]


def test_datasets_carry_the_agents_class_role_fence_and_epoch(tmp_path, monkeypatch):
    monkeypatch.setattr(subprocess, "run", FakeHost())
    info = smc_metrics.read_datasets(full_config(tmp_path))
    assert sorted(info) == ["tank/projects/p%d" % i for i in range(1, 6)]
    assert info["tank/projects/p1"] == {"written": 0, "class": "member", "role": "primary", "snapshot": "-",
                                        "fenced": "-", "epoch": 3}
    assert info["tank/projects/p5"]["class"] == "default" and info["tank/projects/p5"]["epoch"] is None
    assert info["tank/projects/p4"]["fenced"] == "lease"


def test_a_root_that_does_not_exist_has_no_datasets_but_another_error_fails(tmp_path, monkeypatch):
    fake = FakeHost(datasets="")
    fake.fail["zfs list filesystem"] = (1, "cannot open 'tank/projects': dataset does not exist\n")
    monkeypatch.setattr(subprocess, "run", fake)
    assert smc_metrics.read_datasets(full_config(tmp_path)) == {}
    fake.fail["zfs list filesystem"] = (1, "cannot open 'tank/projects': pool I/O is currently suspended\n")
    with pytest.raises(smc_metrics.ProbeError, match="suspended"):
        smc_metrics.read_datasets(full_config(tmp_path))


# ----------------------------------------------------------------------------------------------- snapshots
@pytest.mark.parametrize("lister", ["program", "zfs list"])
def test_snapshots_per_class_count_ours_and_age_only_changed_datasets(tmp_path, monkeypatch, lister):
    fake = FakeHost()
    agent = load_agent()
    kw = {"list_names": agent.list_snapshot_names} if lister == "program" else {}
    parsed, failed = families(tmp_path, fake, monkeypatch, **kw)
    assert failed == {}
    assert fake.count("zfs program" if lister == "program" else "zfs list snapshot") == 1
    # p1 (member): two of ours (manual-1 is not); unchanged since, so not stale however old its newest is
    assert value(parsed, "smc_snapshots", **{"class": "member"}) == 2
    assert value(parsed, "smc_snapshot_newest_age_seconds", **{"class": "member"}) == 0
    # default: p2 (two of ours, newest 30 min old, written since) and p5 (unknown class, none yet);
    # p3 (a replica) and p4 (smc:snapshot=off) are not the agent's to snapshot
    assert value(parsed, "smc_snapshot_datasets", **{"class": "default"}) == 2
    assert value(parsed, "smc_snapshots", **{"class": "default"}) == 2
    assert value(parsed, "smc_snapshot_datasets_without_snapshot", **{"class": "default"}) == 1
    assert value(parsed, "smc_snapshot_newest_age_seconds", **{"class": "default"}) == 1800
    assert parsed["smc_snapshot_period_seconds"]["samples"] == {
        frozenset({("class", "default")}): 900, frozenset({("class", "member")}): 3600,
        frozenset({("class", "trial")}): 86400}


def test_a_failed_snapshot_listing_fails_that_probe_only(tmp_path, monkeypatch, capsys):
    fake = FakeHost()
    fake.fail["zfs list snapshot"] = (1, "internal error: out of memory\n")
    parsed, failed = families(tmp_path, fake, monkeypatch)
    assert sorted(failed) == ["snapshots"] and "out of memory" in failed["snapshots"]
    assert "smc_snapshots" not in parsed and "smc_pool_health" in parsed and "smc_host_fenced" in parsed
    assert value(parsed, "smc_metrics_probe_failed", probe="snapshots") == 1
    assert "metrics: snapshots" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ fencing, lease
def test_fenced_by_the_lease_mark_only_and_no_lease_family_with_ha_off(tmp_path, monkeypatch):
    parsed, _failed = families(tmp_path, FakeHost(), monkeypatch)
    assert value(parsed, "smc_host_fenced") == 1  # p4: smc:fenced=lease
    assert value(parsed, "smc_project_epoch_max") == 5
    assert "smc_lease_held" not in parsed and "smc_lease_expiry_timestamp_seconds" not in parsed
    switchover_only = DATASETS.replace("\tlease\t", "\t-\t")
    parsed, _failed = families(tmp_path, FakeHost(datasets=switchover_only), monkeypatch)
    assert value(parsed, "smc_host_fenced") == 0  # smc:fenced=switchover is a planned step, not a fence


@pytest.mark.parametrize("state, held", [
    (None, 0),                                          # absent: the HA loop is down or fenced itself
    ({"confirmed": NOW - 2, "lease": 7587}, 1),         # confirmed within fence_after (8 s)
    ({"confirmed": NOW - 60, "lease": 7587}, 0),        # stale
    ({"confirmed": NOW - 2, "lease": None}, 0),
    ("not json", 0),
])
def test_lease_held_with_ha_on_from_the_state_file(tmp_path, monkeypatch, state, held):
    path = tmp_path / "state.json"
    if state is not None:
        path.write_text(state if isinstance(state, str) else json.dumps(state))
        if isinstance(state, dict):  # the HA loop confirms a state by its file's mtime
            os.utime(path, (state["confirmed"], state["confirmed"]))
    ha = {"enabled": True, "endpoints": ["https://10.0.0.1:2379"], "state": str(path)}
    parsed, failed = families(tmp_path, FakeHost(), monkeypatch, cfg={"ha": ha})
    assert failed == {}
    assert value(parsed, "smc_lease_held") == held


# --------------------------------------------------------------------------------------------- placement
def test_plan_drift_counts_missing_and_unexpected_copies(tmp_path, monkeypatch):
    write_plan(tmp_path, ["p1", "p2", "p9", "p10"])
    parsed, failed = families(tmp_path, FakeHost(), monkeypatch)
    assert failed == {}
    assert value(parsed, "smc_placement_missing_copies") == 2       # p9, p10
    assert value(parsed, "smc_placement_unexpected_copies") == 3    # p3, p4, p5


def test_no_plan_leaves_placement_out_and_a_bad_plan_is_a_failed_probe(tmp_path, monkeypatch):
    parsed, failed = families(tmp_path, FakeHost(), monkeypatch)
    assert "smc_placement_missing_copies" not in parsed and failed == {}
    (tmp_path / "plan.json").write_text("{not json")
    parsed, failed = families(tmp_path, FakeHost(), monkeypatch)
    assert sorted(failed) == ["placement"] and "smc_placement_missing_copies" not in parsed
    assert value(parsed, "smc_metrics_probe_failed", probe="placement") == 1
    assert value(parsed, "smc_metrics_probe_failed", probe="pools") == 0


# ------------------------------------------------------------------------------------------------ limits
def test_limits_sum_the_slices_events_per_class(tmp_path):
    conf = tmp_path / "project-limits.json"
    conf.write_text(json.dumps({"parent": "smc_projects.slice", "active": "mounted", "projects": {
        "p1": {"slice": "smc_projects-u1.slice", "class": "member"},
        "p2": {"slice": "smc_projects-u2.slice", "class": "member"},
        "p3": {"slice": "smc_projects-u3.slice", "class": "default"}}}))
    for unit, oom, hits in (("smc_projects-u1.slice", 2, 0), ("smc_projects-u2.slice", 3, 7)):
        d = tmp_path / "cg" / "smc_projects.slice" / unit
        d.mkdir(parents=True)
        (d / "memory.events").write_text("low 0\nhigh 12\nmax 4\noom %d\noom_kill %d\noom_group_kill 0\n" % (oom, oom))
        (d / "pids.events").write_text("max %d\n" % hits)
    out = smc_metrics.limits_inputs(str(conf), str(tmp_path / "cg"))
    assert out == {"member": {"oom_kills": 5, "tasks_max_hits": 7}, "default": {"oom_kills": 0, "tasks_max_hits": 0}}
    assert smc_metrics.limits_inputs(str(tmp_path / "absent.json"), str(tmp_path / "cg")) is None
    conf.write_text(json.dumps({"parent": "../etc", "projects": {}}))
    with pytest.raises(smc_metrics.ProbeError, match="parent"):
        smc_metrics.limits_inputs(str(conf), str(tmp_path / "cg"))


# ----------------------------------------------------------------------------------------- failing probes
@pytest.mark.parametrize("key, fail, down", [
    ("zpool list", (1, "internal error\n"), ["pools"]),
    ("zpool list", FileNotFoundError(2, "No such file or directory", "zpool"), ["pools"]),
    ("zfs list filesystem", (1, "pool I/O is currently suspended\n"), ["datasets", "fencing", "placement", "snapshots"]),
])
def test_a_failing_probe_leaves_its_families_out_and_the_others_in(tmp_path, monkeypatch, key, fail, down):
    write_plan(tmp_path, ["p1"])
    fake = FakeHost()
    fake.fail[key] = fail
    parsed, failed = families(tmp_path, fake, monkeypatch)
    assert sorted(failed) == down
    for probe in smc_metrics.PROBES:
        assert value(parsed, "smc_metrics_probe_failed", probe=probe) == (probe in down)
    assert ("smc_pool_health" in parsed) == ("pools" not in down)
    assert ("smc_host_fenced" in parsed) == ("fencing" not in down)
    assert ("smc_placement_missing_copies" in parsed) == ("placement" not in down)
    assert ("smc_snapshots" in parsed) == ("snapshots" not in down)


def test_a_short_zpool_line_or_a_policy_the_builder_refuses_fails_that_probe_only(tmp_path, monkeypatch):
    parsed, failed = families(tmp_path, FakeHost(zpool="tank\tONLINE\t10\t5\n"), monkeypatch)
    assert sorted(failed) == ["pools"] and "4 fields" in failed["pools"] and "smc_snapshots" in parsed
    parsed, failed = families(tmp_path, FakeHost(), monkeypatch, cfg={"classes": {"default": {"hourly": -1}}})
    assert sorted(failed) == ["snapshots"] and "hourly" in failed["snapshots"]
    assert "smc_pool_health" in parsed and "smc_snapshots" not in parsed


# ------------------------------------------------------------------------------------------------ the file
def test_the_written_file_passes_the_strict_parser_and_promtool(tmp_path, monkeypatch):
    write_plan(tmp_path, ["p1", "p9"])
    monkeypatch.setattr(subprocess, "run", FakeHost())
    cfg = full_config(tmp_path)
    report = smc_metrics.write_host_metrics(cfg, NOW, limits_config=str(tmp_path / "none.json"))
    path = tmp_path / "textfile" / "smc-host.prom"
    assert report == {"path": str(path), "written": True, "failed": {}}
    text = path.read_text()
    parsed = PARSER.parse(text)
    for name, fam in parsed.items():
        assert name.startswith("smc_") and fam["help"].endswith(".")
    monkeypatch.undo()
    promtool = shutil.which("promtool")
    if promtool:
        out = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False)
        assert out.returncode == 0 and not out.stdout.strip(), out.stdout + out.stderr


def test_without_the_textfile_directory_nothing_runs_or_is_written(tmp_path, monkeypatch):
    fake = FakeHost()
    monkeypatch.setattr(subprocess, "run", fake)
    cfg = full_config(tmp_path)
    cfg["replication"]["metrics_textfile"] = str(tmp_path / "absent" / "smc-replication.prom")
    report = smc_metrics.write_host_metrics(cfg, NOW)
    assert report["written"] is False and "no textfile directory" in report["error"]
    assert fake.calls == []


def test_the_alert_rules_use_names_the_host_writes_but_the_vpn_ones(tmp_path, monkeypatch):
    """Every smc_* name of the rules is written by smc-host.prom or by replication's textfile, except the VPN
    peers: tinc 1.0 leaves no per-peer state to read (see smc_metrics' docstring)."""
    write_plan(tmp_path, ["p1"])
    ha = {"enabled": True, "endpoints": ["https://10.0.0.1:2379"], "state": str(tmp_path / "state.json")}
    conf = tmp_path / "limits.json"
    conf.write_text(json.dumps({"parent": "smc_projects.slice", "projects": {"p1": {"slice": "smc_projects-u1.slice"}}}))
    monkeypatch.setattr(subprocess, "run", FakeHost())
    fams, failed = smc_metrics.host_families(full_config(tmp_path, ha=ha), NOW, limits_config=str(conf),
                                             cgroup_root=str(tmp_path / "cg"))
    assert failed == {}
    host = {f.name for f in fams if f.samples}
    repl = {f.name for f in smc_metrics.metrics_text.replication_metrics({"d": {"p": {"last_success": 1}}}, 2)}
    with open(os.path.join(ROOT, "roles", "monitoring", "files", "smc-alerts.yml"), encoding="utf-8") as f:
        rules = [r for g in yaml.safe_load(f)["groups"] for r in g["rules"]]
    used = {n for r in rules for n in re.findall(r"\bsmc_[a-z_]+", r["expr"])}
    assert used - host - repl == {"smc_vpn_peer_reachable", "smc_vpn_peers"}


# --------------------------------------------------------------------------------------------- the agent
@pytest.fixture
def agent(tmp_path, monkeypatch):
    mod = load_agent()
    fake = FakeHost()
    monkeypatch.setattr(mod.subprocess, "run", fake)
    monkeypatch.setattr(smc_metrics, "LIMITS_CONFIG", str(tmp_path / "no-limits.json"))
    return mod, fake


def test_metrics_subcommand_writes_the_file_once(agent, tmp_path, capsys):
    mod, fake = agent
    write_plan(tmp_path, ["p1", "p2"])
    assert run_agent(mod, tmp_path, ["--now", NOW_TEXT, "metrics"], config(tmp_path)) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["written"] is True and report["failed"] == {}
    parsed = PARSER.parse((tmp_path / "textfile" / "smc-host.prom").read_text())
    assert value(parsed, "smc_placement_missing_copies") == 0
    assert value(parsed, "smc_snapshot_newest_age_seconds", **{"class": "default"}) == 1800
    # one zpool call, one zfs list of the datasets, one listing of the snapshot names (the channel program)
    assert [fake.count(k) for k in ("zpool list", "zfs list filesystem", "zfs program", "zfs list snapshot")] \
        == [1, 1, 1, 0]


def test_metrics_subcommand_fails_when_a_probe_fails(agent, tmp_path, capsys):
    mod, fake = agent
    fake.fail["zpool list"] = (1, "no pools\n")
    assert run_agent(mod, tmp_path, ["metrics"], config(tmp_path)) == 1
    assert json.loads(capsys.readouterr().out)["failed"].keys() == {"pools"}
    assert (tmp_path / "textfile" / "smc-host.prom").exists()


def test_every_snapshot_run_refreshes_the_file_after_snapshotting(agent, tmp_path, capsys):
    mod, fake = agent
    path = tmp_path / "textfile" / "smc-host.prom"
    assert run_agent(mod, tmp_path, ["--now", NOW_TEXT, "snapshot", "--dry-run"], config(tmp_path)) == 0
    assert not path.exists()  # a dry run changes nothing
    capsys.readouterr()
    assert run_agent(mod, tmp_path, ["--now", NOW_TEXT, "snapshot"], config(tmp_path)) == 0
    report = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert report["snapshotted"] == 2 and report["metrics"]["written"] is True  # p2 and p5 were written to
    parsed = PARSER.parse(path.read_text())
    # the snapshot just taken counts: p5 has one now (the fake's written stays as listed, so p2's counts too)
    assert value(parsed, "smc_snapshot_datasets_without_snapshot", **{"class": "default"}) == 0
    assert value(parsed, "smc_snapshots", **{"class": "default"}) == 4
    assert value(parsed, "smc_snapshot_newest_age_seconds", **{"class": "default"}) == 0
    kinds = [fake.key(c) for c in fake.calls]
    assert kinds.index("zpool list") > max(i for i, k in enumerate(kinds) if k == "zfs snapshot")


def test_a_failing_snapshot_run_still_writes_the_pools(agent, tmp_path, capsys):
    mod, fake = agent
    fake.fail["zfs list filesystem"] = (1, "pool I/O is currently suspended\n")
    fake.zpool = "tank\tSUSPENDED\t10737418240\t2147483648\t8589934592\n"
    assert run_agent(mod, tmp_path, ["snapshot"], config(tmp_path, sync_before_snapshot=False)) == 2
    assert "suspended" in capsys.readouterr().err
    parsed = PARSER.parse((tmp_path / "textfile" / "smc-host.prom").read_text())
    assert value(parsed, "smc_pool_health", pool="tank", state="suspended") == 1
    assert value(parsed, "smc_metrics_probe_failed", probe="datasets") == 1
