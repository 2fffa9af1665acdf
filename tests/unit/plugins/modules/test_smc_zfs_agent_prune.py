"""smc-zfs-agent prune end to end against a fake pool that runs the agent's real channel program (LUA_DESTROY)
in Lua 5.2, the version inside OpenZFS: holds and smc:needed marks are checked at destroy time, the listing
asks for names only (zfs list's fast mode), and the dry run destroys nothing."""
import json
import subprocess

import pytest
from lupa import lua52

from test_smc_zfs_agent import load_agent, run_agent

ROOT = "tank/p"
HOURS = ["smc_2024-01-01T%02d:00:00Z" % h for h in range(10)]
EBUSY = 16


class FakePool:
    """Datasets under ``tank/p`` with snapshots, holds (userrefs), smc:needed marks and kernel refusals.

    ``zfs program`` runs the script it is given in Lua 5.2 with ``zfs.get_prop``, ``zfs.sync.destroy`` and
    ``zfs.check.destroy`` and ``zfs.list.snapshots`` served from this state; ``before_program`` runs before a
    destroy program (a hold placed between the agent's listing and its destroy), ``before_list`` before a
    listing program."""

    def __init__(self, snaps):
        self.snaps = {ds: list(names) for ds, names in snaps.items()}
        self.holds, self.marks, self.refuse, self.calls = {}, {}, {}, []
        self.before_program = self.before_list = None

    def exists(self, full):
        ds, sep, snap = full.partition("@")
        return snap in self.snaps.get(ds, []) if sep else ds in self.snaps

    def list_snapshots(self, ds):
        """zfs.list.snapshots: a Lua iterator (a function returning the next name, then nil)."""
        if not self.exists(ds):
            raise LookupError("dataset '%s' does not exist" % ds)
        names = iter(["%s@%s" % (ds, snap) for snap in self.snaps[ds]])
        return lambda *ignored: next(names, None)

    def get_prop(self, full, prop):
        if not self.exists(full):
            raise LookupError("dataset '%s' does not exist" % full)  # a Lua error that ends the program
        return self.holds.get(full, 0) if prop == "userrefs" else self.marks.get(full)

    def destroy(self, full, really):
        if not self.exists(full):
            return 2
        if self.holds.get(full) or full in self.refuse:
            return self.refuse.get(full, EBUSY)
        if really:
            ds, _sep, snap = full.partition("@")
            self.snaps[ds].remove(snap)
        return 0

    def program(self, argv):
        """zfs program [-jn] [-t instructions] [-m memory] pool script args..."""
        rest, read_only = list(argv[2:]), False
        while rest[0].startswith("-"):
            flag = rest.pop(0)
            read_only |= flag == "-n"
            if flag in ("-t", "-m"):
                assert int(rest.pop(0)) <= 100 * 1024 * 1024, "above the zfs module's maximum"
        with open(rest[1], encoding="utf-8") as f:
            script = f.read()
        lua = lua52.LuaRuntime(unpack_returned_tuples=True)
        lua.globals().pcall = None  # channel programs have no pcall
        zfs = lua.table_from({
            "exists": self.exists,
            "get_prop": self.get_prop,
            "list": lua.table_from({"snapshots": self.list_snapshots}),
            "check": lua.table_from({"destroy": lambda s: self.destroy(s, False)}),
            "sync": lua.table_from({"destroy": lambda s: self.destroy(s, not read_only)}),
        })
        if read_only:
            zfs.sync = None  # zfs program -n: the zfs.sync functions are not there
        lua.globals().zfs = zfs
        ret = lua.execute(script, lua.table_from({"argv": lua.table_from(rest[2:])}))

        def plain(value):
            if lua52.lua_type(value) == "table":
                return {k: plain(v) for k, v in value.items()}
            return int(value) if isinstance(value, float) else value
        return json.dumps({"return": plain(ret)})

    def __call__(self, argv, capture_output=True, text=True, **kwargs):
        self.calls.append(list(argv))
        out = ""
        if argv[:2] == ["zfs", "list"] and "filesystem" in argv:
            out = "".join("%s\t0\t-\tprimary\t-\n" % ds for ds in [ROOT] + sorted(self.snaps))
        elif argv[:2] == ["zfs", "list"] and "snapshot" in argv:
            fields, target = argv[argv.index("-o") + 1].split(","), argv[-1]
            for ds in sorted(self.snaps):
                if ds != target and not ("-r" in argv and ds.startswith(target + "/")):
                    continue
                for snap in self.snaps[ds]:
                    full = "%s@%s" % (ds, snap)
                    row = {"name": full, "userrefs": str(self.holds.get(full, 0)),
                           "smc:needed": self.marks.get(full, "-")}
                    out += "\t".join(row[f] for f in fields) + "\n"
        elif argv[:2] == ["zfs", "destroy"]:  # zfs destroy ds@a,b,c: all or nothing
            ds, _sep, snaps = argv[2].partition("@")
            fulls = ["%s@%s" % (ds, snap) for snap in snaps.split(",")]
            if any(self.destroy(full, False) for full in fulls):
                return subprocess.CompletedProcess(argv, 1, "", "cannot destroy snapshots: dataset is busy")
            for full in fulls:
                self.destroy(full, True)
        elif argv[:2] == ["zfs", "program"]:
            destroying = "destroy" in argv or "check" in argv
            hook = self.before_program if destroying else self.before_list
            if hook:
                hook()
            out = self.program(argv)
        else:
            raise AssertionError("unexpected command %s" % argv)
        return subprocess.CompletedProcess(argv, 0, out, "")


@pytest.fixture
def prune(tmp_path, monkeypatch):
    """Run ``smc-zfs-agent prune`` (keep the 3 newest hourly) on a FakePool; returns (pool, run)."""
    mod = load_agent()
    pool = FakePool({ROOT + "/a": HOURS, ROOT + "/b": HOURS})
    pool.agent = mod
    monkeypatch.setattr(mod.subprocess, "run", pool)

    def run(*extra, **cfg):
        return run_agent(mod, tmp_path, ["--now", "2024-01-01T10:00:00Z", "prune"] + list(extra), dict(
            {"roots": [ROOT], "needed_dir": str(tmp_path / "needed"), "classes": {"default": {"hourly": 3}}}, **cfg))
    return pool, run


def last_report(capsys):
    out = capsys.readouterr().out.splitlines()
    return json.loads(out[-1]), out[:-1]


def test_prune_keeps_what_the_policy_keeps_and_lists_in_one_read_only_program(prune, capsys):
    pool, run = prune
    assert run() == 0
    assert pool.snaps == {ROOT + "/a": HOURS[-3:], ROOT + "/b": HOURS[-3:]}
    report = last_report(capsys)[0]
    assert report["destroyed"] == 14 and report["kept"] == {} and report["failed"] == {}
    assert not [c for c in pool.calls if c[:2] == ["zfs", "list"] and "snapshot" in c]  # no zfs list per snapshot
    programs = [c for c in pool.calls if c[:2] == ["zfs", "program"]]
    assert len(programs) == 2  # one listing both datasets, one destroying in both
    assert "-n" in programs[0] and programs[0][-2:] == [ROOT + "/a", ROOT + "/b"]
    assert "-n" not in programs[1] and "destroy" in programs[1]


def test_a_long_listing_resumes_where_the_program_stopped(prune, capsys):
    """The listing program stops after the dataset that reaches the name limit; the agent resumes there."""
    pool, run = prune
    pool.snaps[ROOT + "/c"] = list(HOURS)
    pool.agent.NAMES_PER_LIST = 5
    assert run() == 0
    listings = [c for c in pool.calls if c[:2] == ["zfs", "program"] and "-n" in c]
    assert [c[c.index("5") + 1] for c in listings] == [ROOT + "/a", ROOT + "/b", ROOT + "/c"]
    assert all(names == HOURS[-3:] for names in pool.snaps.values()), pool.snaps


def test_a_dataset_destroyed_before_the_listing_is_skipped(prune, capsys):
    pool, run = prune
    pool.before_list = lambda: pool.snaps.pop(ROOT + "/a")
    assert run() == 0
    assert last_report(capsys)[0]["destroyed"] == 7 and pool.snaps == {ROOT + "/b": HOURS[-3:]}


def test_holds_and_marks_set_after_the_listing_are_still_respected(prune, capsys):
    pool, run = prune
    held, marked = ROOT + "/a@" + HOURS[2], ROOT + "/b@" + HOURS[4]

    def late():  # replication holds one and marks another after the agent listed them
        pool.holds[held] = 1
        pool.marks[marked] = "dc2-s1"
    pool.before_program = late
    assert run() == 0
    report = last_report(capsys)[0]
    assert report["destroyed"] == 12
    assert report["kept"] == {held: "held (userrefs 1)", marked: "needed (smc:needed=dc2-s1)"}
    assert HOURS[2] in pool.snaps[ROOT + "/a"] and HOURS[4] in pool.snaps[ROOT + "/b"]


def test_a_refused_destroy_is_reported_and_fails_the_run(prune, capsys):
    pool, run = prune
    pool.refuse[ROOT + "/a@" + HOURS[0]] = EBUSY  # e.g. the origin of a clone
    assert run() == 1
    report = last_report(capsys)[0]
    assert report["destroyed"] == 13 and list(report["failed"]) == [ROOT + "/a@" + HOURS[0]]
    assert "errno 16" in report["failed"][ROOT + "/a@" + HOURS[0]]


def test_a_snapshot_gone_before_the_program_is_not_counted_as_destroyed(prune, capsys):
    pool, run = prune
    gone = ROOT + "/b@" + HOURS[1]
    pool.before_program = lambda: pool.snaps[ROOT + "/b"].remove(HOURS[1])
    assert run() == 1
    report = last_report(capsys)[0]
    assert report["destroyed"] == 13 and list(report["failed"]) == [gone]


def test_dry_run_uses_a_read_only_program_and_destroys_nothing(prune, capsys):
    pool, run = prune
    pool.holds[ROOT + "/a@" + HOURS[0]] = 2
    assert run("--dry-run") == 0
    report, lines = last_report(capsys)
    assert pool.snaps == {ROOT + "/a": HOURS, ROOT + "/b": HOURS}
    assert report["would_destroy"] == 13 and report["destroyed"] == 0 and "failed" not in report
    assert report["kept"] == {ROOT + "/a@" + HOURS[0]: "held (userrefs 2)"}
    assert len(lines) == 13 and all(line.startswith("would destroy ") for line in lines)
    assert all("-n" in c for c in pool.calls if c[:2] == ["zfs", "program"])


def test_needed_files_are_honoured_without_any_property_read(prune, capsys, tmp_path):
    pool, run = prune
    (tmp_path / "needed").mkdir()
    (tmp_path / "needed" / "dc3-s1.list").write_text(ROOT + "/a@" + HOURS[0] + "\n")
    assert run() == 0
    assert pool.snaps[ROOT + "/a"] == [HOURS[0]] + HOURS[-3:]


def test_the_destroy_method_reads_holds_in_the_listing(prune, capsys):
    """destroy_method=destroy has no program to check holds at destroy time: it lists userrefs and marks."""
    pool, run = prune
    pool.holds[ROOT + "/a@" + HOURS[0]] = 1
    assert run(destroy_method="destroy") == 0
    listing = [c for c in pool.calls if c[:2] == ["zfs", "list"] and "snapshot" in c]
    assert [c[c.index("-o") + 1] for c in listing] == ["name,userrefs,smc:needed"]
    assert pool.snaps == {ROOT + "/a": [HOURS[0]] + HOURS[-3:], ROOT + "/b": HOURS[-3:]}
    assert [c[2].count(",") + 1 for c in pool.calls if c[:2] == ["zfs", "destroy"]] == [6, 7]  # batched


def test_both_destroy_methods_report_a_dry_run_the_same_way(prune, capsys):
    """The dry run's report has would_destroy and would_fail whichever method would destroy, never failed."""
    pool, run = prune
    for method in ("program", "destroy"):
        assert run("--dry-run", destroy_method=method) == 0
        report, lines = last_report(capsys)
        assert report["would_destroy"] == 14 and report["would_fail"] == {} and "failed" not in report, method
        assert len(lines) == 14, method
    assert pool.snaps == {ROOT + "/a": HOURS, ROOT + "/b": HOURS}
    assert not [c for c in pool.calls if c[:2] == ["zfs", "destroy"]]


def test_plan_of_one_dataset_lists_that_dataset_alone(prune, capsys, tmp_path):
    pool, run = prune
    pool.holds[ROOT + "/a@" + HOURS[0]] = 1
    agent = pool.agent
    cfg = {"roots": [ROOT], "needed_dir": str(tmp_path / "needed"), "classes": {"default": {"hourly": 3}}}
    assert run_agent(agent, tmp_path, ["--now", "2024-01-01T10:00:00Z", "plan", ROOT + "/a"], cfg) == 0
    plan = json.loads(capsys.readouterr().out)
    assert sorted(plan["keep"]) == [HOURS[0]] + HOURS[-3:] and plan["destroy"] == HOURS[1:7]
    assert plan["keep"][HOURS[0]] == ["held"]
    listing = [c for c in pool.calls if c[:2] == ["zfs", "list"] and "snapshot" in c]
    assert len(listing) == 1 and listing[0][-1] == ROOT + "/a" and "-r" not in listing[0]
    assert run_agent(agent, tmp_path, ["plan", "tank/elsewhere"], cfg) == 2
    assert "tank/elsewhere is not a dataset directly under the roots " + ROOT in capsys.readouterr().err


@pytest.mark.parametrize("method", ["program", "destroy"])
def test_a_malformed_name_of_our_prefix_is_kept_and_reported(prune, capsys, method):
    """A year-0 name (smc_0000-...) parses to no time: retention keeps it; the report and a warning name it."""
    pool, run = prune
    bad = "smc_0000-01-01T00:00:00Z"
    pool.snaps[ROOT + "/a"].insert(3, bad)
    assert run(destroy_method=method) == 0
    assert pool.snaps == {ROOT + "/a": [bad] + HOURS[-3:], ROOT + "/b": HOURS[-3:]}
    out, err = capsys.readouterr()
    report = json.loads(out.splitlines()[-1])
    assert report["destroyed"] == 14 and report["failed"] == {}
    assert report["unparsed"] == {ROOT + "/a": [bad]} and report["unparsed_count"] == 1
    assert "warning: %s/a: 1 snapshot(s) named smc_..." % ROOT in err and bad in err


def test_no_unparsed_names_report_empty(prune, capsys):
    pool, run = prune
    assert run("--dry-run") == 0
    report, _lines = last_report(capsys)
    assert report["unparsed"] == {} and report["unparsed_count"] == 0
