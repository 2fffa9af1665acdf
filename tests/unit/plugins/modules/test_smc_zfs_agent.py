"""smc-zfs-agent (roles/zfs_storage/files): snapshot skip logic against a fake zfs whose ``written`` is only
accounted at a transaction-group sync, as in OpenZFS; the DST sequence of the lab test."""
import importlib.machinery
import importlib.util
import json
import os
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
AGENT = os.path.join(ROOT, "roles", "zfs_storage", "files", "smc-zfs-agent")
LIB = os.path.join(ROOT, "plugins", "module_utils")
DS = "smct_raidz1/p/dst"
TIMES = ["2024-10-26T23:30:00Z", "2024-10-27T00:00:00Z", "2024-10-27T00:30:00Z", "2024-10-27T00:45:00Z",
         "2024-10-27T01:00:00Z", "2024-10-27T01:15:00Z", "2024-10-27T01:30:00Z", "2024-10-27T01:45:00Z",
         "2024-10-27T02:00:00Z"]


def load_agent():
    loader = importlib.machinery.SourceFileLoader("smc_zfs_agent", AGENT)
    spec = importlib.util.spec_from_loader("smc_zfs_agent", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


class FakeZfs:
    """One pool, one project dataset. Writes are dirty until a txg syncs (``zpool sync`` or a snapshot);
    ``written`` counts synced bytes since the most recent snapshot."""

    def __init__(self):
        self.dirty, self.written, self.snaps, self.calls = 0, 24576, [], []
        self.role_now = "-"  # smc:role as `zfs get` reads it (the listing always says "-")

    def write(self, n):
        self.dirty += n

    def __call__(self, argv, capture_output=True, text=True, **kwargs):
        self.calls.append(list(argv))
        out = ""
        if argv[:2] == ["zpool", "sync"]:
            self.written += self.dirty
            self.dirty = 0
        elif argv[:2] == ["zfs", "list"] and "filesystem" in argv:
            out = "smct_raidz1/p\t0\t-\t-\t-\n%s\t%d\t-\t-\t-\n" % (DS, self.written)
        elif argv[:2] == ["zfs", "get"] and "smc:role" in argv:
            out = "".join("%s\t%s\n" % (name, self.role_now) for name in argv[argv.index("smc:role") + 1:])
        elif argv[:2] == ["zfs", "snapshot"]:
            for full in argv[2:]:
                assert full.startswith(DS + "@") and full.split("@")[1] not in self.snaps, full
                self.snaps.append(full.split("@")[1])
            self.dirty = self.written = 0
        else:
            raise AssertionError("unexpected command %s" % argv)
        return subprocess.CompletedProcess(argv, 0, out, "")


def run_agent(mod, tmp_path, argv, cfg):
    """Write ``cfg`` as the agent's config (locks under tmp_path) and run ``smc-zfs-agent <argv>``; the exit code."""
    conf = tmp_path / "agent.json"
    conf.write_text(json.dumps(dict({"lock_dir": str(tmp_path / "locks"),
                                     "receive_lock_dir": str(tmp_path / "recv")}, **cfg)))
    return mod.main(["--config", str(conf), "--lib", LIB] + list(argv))


@pytest.fixture
def agent(tmp_path, monkeypatch):
    mod = load_agent()
    fake = FakeZfs()
    monkeypatch.setattr(mod.subprocess, "run", fake)

    def snapshot(now, **cfg):
        return run_agent(mod, tmp_path, ["--now", now, "snapshot"], dict(
            {"roots": ["smct_raidz1/p"], "classes": {"default": {"frequent": 4, "hourly": 3, "daily": 2}}}, **cfg))
    return fake, snapshot


def test_every_step_of_the_dst_sequence_is_snapshotted(agent, capsys):
    fake, snapshot = agent
    for t in TIMES:
        fake.write(30)  # `date >> f`: a few bytes, still dirty when the agent runs
        assert snapshot(t) == 0
    assert fake.snaps == ["smc_%s" % t for t in TIMES]
    assert fake.snaps == sorted(fake.snaps)
    reports = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [rep["snapshotted"] for rep in reports] == [1] * len(TIMES)
    assert all(c[:2] == ["zpool", "sync"] and c[2:] == ["smct_raidz1"] for c in fake.calls if c[0] == "zpool")


def test_without_the_sync_recent_writes_read_written_0_and_are_skipped(agent):
    """The lab failure: only the first snapshot (written counted the dataset's creation) was taken; every
    later write was still in an open txg when the agent read ``written``."""
    fake, snapshot = agent
    for t in TIMES:
        fake.write(30)
        snapshot(t, sync_before_snapshot=False)
    assert fake.snaps == ["smc_" + TIMES[0]]


def test_idle_dataset_is_skipped(agent, capsys):
    fake, snapshot = agent
    snapshot(TIMES[0])
    snapshot(TIMES[1])
    assert fake.snaps == ["smc_" + TIMES[0]]
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["unchanged"] == 1


class FakeProgram:
    """``zfs program -j`` printing ``stdout``; ``zfs list`` (the fallback count) printing ``left``."""

    def __init__(self, stdout, left=""):
        self.stdout, self.left, self.calls = stdout, left, []

    def __call__(self, argv, capture_output=True, text=True, **kwargs):
        self.calls.append(list(argv))
        out = self.stdout if argv[:2] == ["zfs", "program"] else self.left
        return subprocess.CompletedProcess(argv, 0, out, "")


NAMES = ["tank/p/a@smc_1", "tank/p/a@smc_2", "tank/p/b@smc_1"]


@pytest.mark.parametrize("stdout, left, destroyed, kept, failed, relisted", [
    # The program's own account covers every name: trusted, no second listing of thousands of snapshots.
    ('{"return":{"failed":{"tank/p/a@smc_2":16},"destroyed":2}}', "", 2, [], ["tank/p/a@smc_2"], False),
    ('{"return":{"destroyed":3,"failed":{}}}', "", 3, [], [], False),
    ('{"return":{"destroyed":1,"failed":{},"held":{"tank/p/a@smc_1":1},"needed":{"tank/p/b@smc_1":"dc2-s1"}}}',
     "", 1, ["tank/p/a@smc_1", "tank/p/b@smc_1"], [], False),
    # An account that does not add up, or no account at all: count what is really left.
    ('{"return":{"destroyed":3,"failed":{"tank/p/a@smc_2":16}}}', "tank/p/a@smc_2\n", 2, [], ["tank/p/a@smc_2"],
     True),
    ('{"return":{"destroyed":1,"failed":{},"held":{"tank/p/a@smc_1":1}}}', "tank/p/a@smc_1\ntank/p/b@smc_1\n",
     1, ["tank/p/a@smc_1"], ["tank/p/b@smc_1"], True),
    ("{}", "tank/p/b@smc_1\n", 2, [], ["tank/p/b@smc_1"], True),
    ("", "", 3, [], [], True),
])
def test_destroy_program_counts_only_what_went(monkeypatch, stdout, left, destroyed, kept, failed, relisted):
    mod = load_agent()
    fake = FakeProgram(stdout, left)
    monkeypatch.setattr(mod.subprocess, "run", fake)
    n, keep, errors = mod.destroy_program("tank", list(NAMES))
    assert (n, sorted(keep), sorted(errors)) == (destroyed, kept, failed)
    assert any(c[:2] == ["zfs", "list"] for c in fake.calls) == relisted
    assert fake.calls[0][:3] == ["zfs", "program", "-j"] and fake.calls[0][-4:] == ["destroy"] + NAMES


def test_a_dry_run_without_a_usable_account_is_an_error_not_a_guess(monkeypatch):
    mod = load_agent()
    monkeypatch.setattr(mod.subprocess, "run", FakeProgram("{}"))
    with pytest.raises(mod.AgentError, match="no usable account"):
        mod.destroy_program("tank", list(NAMES), dry_run=True)


def test_a_copy_that_became_a_replica_since_the_listing_is_not_snapshotted(agent, capsys):
    """CI: a first receive into a new copy ran while the agent listed; it finished (smc:role=replica) before
    the snapshot, which forked the replica's history from its primary's (quarantined at the next send)."""
    fake, snapshot = agent
    fake.role_now = "replica"
    assert snapshot(TIMES[0]) == 0
    assert fake.snaps == []
    assert ["zfs", "get", "-H", "-o", "name,value", "smc:role", DS] in fake.calls
    fake.role_now = "primary"
    assert snapshot(TIMES[1]) == 0
    assert fake.snaps == ["smc_%s" % TIMES[1]]


def test_a_copy_a_receive_is_running_into_is_busy_not_snapshotted(agent, tmp_path, capsys):
    import fcntl
    fake, snapshot = agent
    (tmp_path / "recv").mkdir()
    lock = tmp_path / "recv" / (DS.replace("/", "%2F") + ".recv")
    with open(lock, "w", encoding="utf-8") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the receiver's lock, as smc_replication takes it
        capsys.readouterr()
        assert snapshot(TIMES[0]) == 0
        assert fake.snaps == []
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["busy"] == [DS]
    assert snapshot(TIMES[1]) == 0  # the receive ended: its (unheld) lock file is no obstacle
    assert fake.snaps == ["smc_%s" % TIMES[1]]
