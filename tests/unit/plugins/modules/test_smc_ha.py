"""The HA loop's idle path (roles/zfs_storage/files/smc_ha.py): the state file's mtime is its confirmation,
a lease renewal confirms it only while the watch runs with nothing pending and a fresh full read, and the
watch of etcd (a real member on 127.0.0.1) wakes the loop on a change and says when it is down."""
import io
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from etcd_local import LocalEtcd  # pylint: disable=import-error
from test_smc_zfs_agent import LIB, ROOT  # pylint: disable=import-error

FILES = os.path.join(ROOT, "roles", "zfs_storage", "files")
for _path in (FILES, LIB):
    if _path not in sys.path:
        sys.path.insert(0, _path)
import etcd_v3  # noqa: E402  pylint: disable=import-error,wrong-import-position
import smc_ha  # noqa: E402  pylint: disable=import-error,wrong-import-position


def loop_for(tmp_path, endpoints=("http://127.0.0.1:9",), **ha):
    cfg = {"roots": ["tank/projects"], "replication": {"plan": str(tmp_path / "plan.json")},
           "ha": dict({"enabled": True, "endpoints": list(endpoints), "state": str(tmp_path / "ha" / "state.json")},
                      **ha)}
    conf = smc_ha.ha_config(cfg)
    watch = smc_ha.client_for(conf) if endpoints else None
    return smc_ha.Loop(cfg, conf, None, None, out=io.StringIO(), watch_client=watch)


def age(path, seconds):
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_the_state_is_as_fresh_as_its_mtime(tmp_path):
    loop = loop_for(tmp_path)
    smc_ha.write_state(loop.ha["state"], {"host": "a", "primary": {"p": {"host": "a", "epoch": 3}}})
    assert smc_ha.read_state(loop.ha)["primary"]["p"]["epoch"] == 3
    age(loop.ha["state"], loop.ha["fence_after"] + 1)
    assert smc_ha.read_state(loop.ha) is None  # the sender acts as primary of nothing
    assert smc_ha.confirm_state(loop.ha["state"]) is True
    assert smc_ha.read_state(loop.ha) is not None
    os.unlink(loop.ha["state"])
    assert smc_ha.confirm_state(loop.ha["state"]) is False
    assert not os.path.exists(loop.ha["state"])  # a confirmation never creates a state


@pytest.mark.parametrize("change, confirms", [
    ({}, True),
    ({"watching": False}, False),          # the watch is down: only a full read confirms
    ({"woken": True}, False),              # a change waits for the main loop
    ({"fenced": True}, False),
    ({"doc": None}, False),
    ({"ranged_ago": 9.0}, False),          # the main loop's last full read is older than fence_after (8 s)
    ({"ranged_ago": None}, False),
])
def test_a_renewal_confirms_only_a_current_view(tmp_path, change, confirms):
    loop = loop_for(tmp_path)
    smc_ha.write_state(loop.ha["state"], {"host": "a", "primary": {}})
    age(loop.ha["state"], 100)
    loop.doc, loop.watching, loop.fenced = {"host": "a"}, True, False
    loop.ranged = time.monotonic() - 1.0
    for key, value in change.items():
        if key == "woken":
            loop.wake.set()
        elif key == "ranged_ago":
            loop.ranged = None if value is None else time.monotonic() - value
        else:
            setattr(loop, key, value)
    loop._confirm_by_lease()  # pylint: disable=protected-access
    assert (smc_ha.read_state(loop.ha) is not None) is confirms


def test_quiet_loops_read_etcd_every_range_every_seconds_else_every_tick(tmp_path):
    loop = loop_for(tmp_path, range_every=7)
    loop.doc, loop.watching = {"host": "a"}, True
    assert loop.period() == 7
    loop.elections = {"p": time.monotonic()}
    assert loop.period() == loop.ha["tick"]
    loop.elections, loop.watching = {}, False
    assert loop.period() == loop.ha["tick"]


@pytest.mark.parametrize("bad", [0, -1, "5", True, 1e9])
def test_range_every_must_be_seconds(tmp_path, bad):
    with pytest.raises(smc_ha.HaError, match="ha.range_every"):
        loop_for(tmp_path, range_every=bad)


def wait_for(predicate, seconds=15.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_the_watch_wakes_the_loop_on_a_change_and_says_when_etcd_is_gone(tmp_path):
    etcd = LocalEtcd(tmp_path / "etcd").start()
    try:
        loop = loop_for(tmp_path, endpoints=[etcd.url], watch_timeout=1)
        threading.Thread(target=loop.watch_keys, daemon=True).start()
        assert wait_for(lambda: loop.watching)
        loop.wake.clear()
        time.sleep(1.5)  # a quiet stream times out and watches again: no wake, still watching
        assert loop.watching and not loop.wake.is_set()
        etcd_v3.Client([etcd.url]).put("/other/key", "x")
        time.sleep(0.5)
        assert not loop.wake.is_set()  # outside the prefix
        etcd_v3.Client([etcd.url]).put("/smc/hosts/b", json.dumps({"since": 1}))
        assert wait_for(loop.wake.is_set)
        loop.wake.clear()
        etcd.stop()
        assert wait_for(lambda: not loop.watching)
        assert loop.wake.is_set()  # the loop reads every tick until the watch is back
        etcd.start()
        assert wait_for(lambda: loop.watching)
    finally:
        etcd.stop()


def test_a_switchover_note_renews_the_state_and_keeps_its_time_in_the_mtime_only(tmp_path):
    loop = loop_for(tmp_path)
    smc_ha.write_state(loop.ha["state"], {"host": "a", "primary": {"q": {"host": "b", "epoch": 1}}})
    age(loop.ha["state"], 2)
    smc_ha.note_primary(loop.ha, "p", "a", 3)
    with open(loop.ha["state"], encoding="utf-8") as f:
        written = json.load(f)
    assert "confirmed" not in written
    assert written["primary"] == {"q": {"host": "b", "epoch": 1}, "p": {"host": "a", "epoch": 3}}
    assert time.time() - smc_ha.read_state(loop.ha)["confirmed"] < 2


class CountingClient(etcd_v3.Client):
    """A real client that counts its full reads (of this host's keys)."""
    ranges = 0

    def range_many(self, prefixes=(), keys=(), batch=128):
        self.ranges += 1
        return super().range_many(prefixes, keys, batch)


@pytest.fixture(name="serving")
def fixture_serving(tmp_path, monkeypatch):
    """Host b of a real etcd, holding its lease and named primary of project p, with a client that counts its
    full reads: (loop, plan). No zfs here: the dataset listing is empty, and nothing else runs zfs for a
    serving primary."""
    server = LocalEtcd(tmp_path / "etcd").start()
    try:
        plan = {"format": 1, "host": "b", "hosts": ["a", "b"], "addresses": ["10.88.0.1", "10.88.0.2"],
                "projects": {"p": {"ring": [0, 1], "primary": 1, "epoch": 2}}}
        (tmp_path / "plan.json").write_text(json.dumps(plan))
        loop = loop_for(tmp_path, endpoints=(server.url,))
        loop.client = CountingClient([server.url])
        loop.lease = loop.client.grant(60)
        loop.last_renew = time.monotonic()
        loop.client.put("/smc/hosts/b", "{}", lease=loop.lease)
        loop.client.put("/smc/primary/p", json.dumps({"host": "b", "epoch": 2, "lease": loop.lease}))
        monkeypatch.setattr(smc_ha.repl, "run", lambda args, check=True: subprocess.CompletedProcess(args, 0, "", ""))
        yield loop, plan
    finally:
        server.stop()


def test_a_quiet_pass_reads_one_key_and_a_full_read_follows_any_change(serving):
    loop, _plan = serving
    loop.step()
    assert loop.client.ranges == 1 and smc_ha.read_state(loop.ha)["primary"]["p"]["host"] == "b"
    age(loop.ha["state"], 5)
    loop.step()  # nothing changed anywhere: one key read, the state confirmed
    assert loop.client.ranges == 1 and time.time() - os.stat(loop.ha["state"]).st_mtime < 2
    loop.client.put("/elsewhere", "x")  # any write moves etcd's revision: the next pass reads everything
    loop.step()
    assert loop.client.ranges == 2
    loop.checked -= loop.ha["recheck_every"]  # and so does a due recheck, revision or not
    loop.step()
    assert loop.client.ranges == 3


def test_a_pass_reads_only_the_keys_of_this_hosts_projects(serving):
    """A million projects' keys are not read by every host: only every lease, and the primary and candidates
    of the projects this host holds a copy of."""
    loop, plan = serving
    loop.client.put_many([("/smc/primary/q%04d" % i, json.dumps({"host": "a", "epoch": 1})) for i in range(500)]
                         + [("/smc/candidates/q0001/2/a", "{}"), ("/smc/primaryx", "{}")])
    kvs = loop.read_mine(plan)[0]
    assert sorted(kvs) == ["/smc/hosts/b", "/smc/primary/p"]
    loop.step()
    assert smc_ha.read_state(loop.ha)["primary"] == {"p": {"host": "b", "epoch": 2}}
