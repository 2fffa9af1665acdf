"""A reload of the HA loop (``systemctl reload smc-ha``, roles/zfs_storage/files/smc_ha.py): the old loop starts
the new code beside it and keeps its lease renewed (confirming nothing) while the new code starts; the new
code renews the same lease, names itself the unit's main process over $NOTIFY_SOCKET (a real datagram socket
here) and tells the old loop to step aside; a successor that cannot renew the lease, or that dies, leaves the
old loop serving."""
import os
import signal
import socket
import sys
import time

import pytest

from test_smc_ha import loop_for, smc_ha  # pylint: disable=import-error


class Leases:
    """keepalive answers (TTL seconds left) in order."""

    def __init__(self, *ttls):
        self.ttls, self.calls = list(ttls), []

    def keepalive(self, lease):
        self.calls.append(lease)
        return self.ttls.pop(0)


class Child:
    """What the fake spawn returns: a successor that runs until ``rc`` is set."""
    pid = 4242
    returncode = None

    def poll(self):
        return self.returncode


def test_a_reload_starts_the_new_code_with_the_old_loops_pid_and_pauses(tmp_path):
    loop = loop_for(tmp_path)
    loop.lease = 77
    os.makedirs(os.path.dirname(loop.ha["state"]), exist_ok=True)
    spawned = []

    def spawn(argv, env):
        spawned.append((argv, env))
        return Child()
    child = loop.hand_over(spawn=spawn)
    assert spawned[0][0] == [sys.executable] + sys.argv
    assert spawned[0][1][smc_ha.SUCCEED_ENV] == str(os.getpid())
    assert open(os.path.join(os.path.dirname(loop.ha["state"]), "lease"), encoding="utf-8").read() == "77\n"
    assert loop.successor is child and '"event": "reload"' in loop.out.getvalue()
    # while the new code starts, renewals confirm nothing (the main pass that would apply changes is paused)
    smc_ha.write_state(loop.ha["state"], {"host": "a"})
    loop.doc, loop.watching, loop.ranged = {"host": "a"}, True, time.monotonic()
    old = time.time() - 5
    os.utime(loop.ha["state"], (old, old))
    loop._confirm_by_lease()  # pylint: disable=protected-access
    assert os.stat(loop.ha["state"]).st_mtime == pytest.approx(old, abs=0.01)
    # a successor that died: logged, the old loop carries on
    assert not loop.successor_failed()
    child.returncode = 3
    assert loop.successor_failed() and loop.successor is None
    assert "the new code exited (rc 3) before it took over" in loop.out.getvalue()


@pytest.fixture(name="notify")
def fixture_notify(tmp_path, monkeypatch):
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield sock
    sock.close()


def successor(tmp_path, monkeypatch, ttl):
    loop = loop_for(tmp_path)
    run = os.path.dirname(loop.ha["state"])
    os.makedirs(run, exist_ok=True)
    with open(os.path.join(run, "lease"), "w", encoding="utf-8") as f:
        f.write("77\n")
    loop.lease_client = Leases(ttl)
    monkeypatch.setenv(smc_ha.SUCCEED_ENV, "31337")
    killed = []
    monkeypatch.setattr(smc_ha.os, "kill", lambda pid, sig: killed.append((pid, sig)))
    return loop, killed


def test_the_new_code_renews_the_same_lease_becomes_main_and_sends_the_old_one_aside(tmp_path, monkeypatch, notify):
    loop, killed = successor(tmp_path, monkeypatch, ttl=17)
    loop.resume_lease()
    assert loop.lease == 77 and loop.lease_client.calls == [77]
    assert notify.recv(4096).decode() == "MAINPID=%d\nREADY=1" % os.getpid()
    assert killed == [(31337, signal.SIGUSR1)]
    assert smc_ha.SUCCEED_ENV not in os.environ  # (not passed on to the senders it starts)
    assert '"event": "reloaded"' in loop.out.getvalue()


def test_a_successor_that_cannot_renew_the_lease_ends_and_the_old_loop_serves_on(tmp_path, monkeypatch, notify):
    loop, killed = successor(tmp_path, monkeypatch, ttl=0)
    with pytest.raises(smc_ha.HaError, match="the old loop keeps serving"):
        loop.resume_lease()
    assert killed == []
    notify.settimeout(0.2)
    with pytest.raises(socket.timeout):
        notify.recv(4096)  # it never named itself the main process


def test_without_systemd_nothing_is_notified(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert smc_ha.sd_notify("READY=1") is False


def test_an_abstract_notify_socket_is_reached(monkeypatch):
    name = "smc-test-%d" % os.getpid()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        assert smc_ha.sd_notify("READY=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(64) == b"READY=1"
    finally:
        sock.close()
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)


def test_a_real_loop_reloaded_by_sighup_hands_its_lease_to_the_new_process(tmp_path):
    """The agent's ``ha`` as a process (a fake zfs on PATH, a real etcd): SIGHUP starts the new code, which
    sends MAINPID=<its pid> and READY=1, renews the same lease (the host key keeps its lease) and sends the
    old process away, which exits 0 without fencing."""
    from etcd_local import LocalEtcd  # pylint: disable=import-error,import-outside-toplevel
    import json  # pylint: disable=import-outside-toplevel
    import subprocess  # pylint: disable=import-outside-toplevel
    from test_smc_zfs_agent import AGENT, LIB  # pylint: disable=import-error,import-outside-toplevel
    server = LocalEtcd(tmp_path / "etcd").start()
    procs = []
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(60)
    try:
        (tmp_path / "bin").mkdir()
        (tmp_path / "bin" / "zfs").write_text("#!/bin/sh\necho \"$@\" >> %s\n" % (tmp_path / "zfs-calls"))
        (tmp_path / "bin" / "zfs").chmod(0o755)
        plan = {"format": 1, "host": "b", "hosts": ["a", "b"], "addresses": ["10.88.0.1", "10.88.0.2"],
                "projects": {"p": {"ring": [1, 0], "primary": 1, "epoch": 1}}}
        (tmp_path / "plan.json").write_text(json.dumps(plan))
        conf = {"lock_dir": str(tmp_path / "locks"), "receive_lock_dir": str(tmp_path / "recv"),
                "replication": {"plan": str(tmp_path / "plan.json"), "records": str(tmp_path / "records.json")},
                "ha": {"enabled": True, "endpoints": [server.url], "state": str(tmp_path / "run" / "state.json"),
                       "offline": str(tmp_path / "lib" / "offline.json"),
                       "stop_project_command": str(tmp_path / "no-such-tool")}}
        (tmp_path / "agent.json").write_text(json.dumps(conf))
        env = dict(os.environ, NOTIFY_SOCKET=path, PATH="%s:%s" % (tmp_path / "bin", os.environ["PATH"]))
        env.pop(smc_ha.SUCCEED_ENV, None)
        old = subprocess.Popen([sys.executable, AGENT, "--config", str(tmp_path / "agent.json"), "--lib", LIB, "ha"],
                               env=env, stdout=open(tmp_path / "log", "w", encoding="utf-8"), stderr=subprocess.STDOUT)
        procs.append(old.pid)
        assert sock.recv(4096) == b"READY=1"
        client = smc_ha.etcd_v3.Client([server.url])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "/smc/hosts/b" not in client.range("/smc/hosts/")[0]:
            time.sleep(0.2)
        lease = client.range("/smc/hosts/")[0]["/smc/hosts/b"][2]
        old.send_signal(signal.SIGHUP)
        message = sock.recv(4096).decode()
        assert message.startswith("MAINPID=") and message.endswith("\nREADY=1"), message
        new = int(message.split("\n")[0].split("=")[1])
        procs.append(new)
        assert new != old.pid
        assert old.wait(timeout=30) == 0
        time.sleep(3)
        os.kill(new, 0)  # the new code runs on
        assert client.range("/smc/hosts/")[0]["/smc/hosts/b"][2] == lease  # the same lease, kept alive
        log = (tmp_path / "log").read_text()
        assert '"event": "reloaded"' in log and '"event": "handed-over"' in log
        assert '"event": "fenced"' not in log
    finally:
        for pid in reversed(procs):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        sock.close()
        server.stop()
