"""A reload of the HA loop (``systemctl reload smc-ha``, roles/zfs_storage/files/smc_ha.py): the old code renews
its lease, leaves a watchdog and execs the new code, which recalls the lease (no fence, no failover) and calls
the watchdog off; a lease that cannot be renewed makes the loop exit instead (systemd fences and restarts),
and a handed-over lease that is gone fences the host first. The watchdog is the real shell line."""
import os
import subprocess
import sys
import time

import pytest

from test_smc_ha import loop_for, smc_ha  # pylint: disable=import-error


class Leases:
    """keepalive answers (TTL seconds left) in order; grant is not expected."""

    def __init__(self, *ttls):
        self.ttls, self.calls = list(ttls), []

    def keepalive(self, lease):
        self.calls.append(lease)
        return self.ttls.pop(0)


class Exec(Exception):
    """What the fake execv raises: the arguments the new code would have started with."""


def fake_execv(path, argv):
    raise Exec(path, argv)


def test_a_reload_renews_leaves_the_watchdog_and_execs_with_the_lease(tmp_path, monkeypatch):
    loop = loop_for(tmp_path)
    loop.lease_client, loop.lease = Leases(20), 77
    os.makedirs(os.path.dirname(loop.ha["state"]), exist_ok=True)
    ran = []
    monkeypatch.setattr(smc_ha.subprocess, "run", lambda args, check=False: ran.append(args))
    monkeypatch.delenv(smc_ha.RENEWED_ENV, raising=False)
    with pytest.raises(Exec) as done:
        loop.hand_over(execv=fake_execv)
    assert done.value.args == (sys.executable, [sys.executable] + sys.argv)
    assert loop.lease_client.calls == [77]
    renewed = float(os.environ.pop(smc_ha.RENEWED_ENV))
    assert 0 <= time.monotonic() - renewed < 5
    marker = os.path.join(os.path.dirname(loop.ha["state"]), "handover")
    assert open(marker, encoding="utf-8").read() == "77\n"
    assert open(os.path.join(os.path.dirname(loop.ha["state"]), "lease"), encoding="utf-8").read() == "77\n"
    assert ran == [smc_ha.watchdog_command(loop.ha["fence_after"] - 1.0, marker, os.path.realpath(sys.argv[0]))]
    assert '"event": "reload"' in loop.out.getvalue()


def test_a_reload_without_a_renewed_lease_exits_for_a_restart(tmp_path, monkeypatch):
    loop = loop_for(tmp_path)
    loop.lease_client, loop.lease = Leases(0), 77
    monkeypatch.setattr(smc_ha.subprocess, "run", lambda *a, **k: pytest.fail("no watchdog without a lease"))
    with pytest.raises(smc_ha.HaError, match="reload without a renewed lease"):
        loop.hand_over(execv=fake_execv)
    loop.lease = None
    with pytest.raises(smc_ha.HaError):
        loop.hand_over(execv=fake_execv)


def handed_over_loop(tmp_path, monkeypatch, ttl, seconds_ago=3.0):
    loop = loop_for(tmp_path)
    run = os.path.dirname(loop.ha["state"])
    os.makedirs(run, exist_ok=True)
    with open(os.path.join(run, "lease"), "w", encoding="utf-8") as f:
        f.write("77\n")
    with open(os.path.join(run, "handover"), "w", encoding="utf-8") as f:
        f.write("77\n")
    loop.lease_client = Leases(ttl)
    monkeypatch.setenv(smc_ha.RENEWED_ENV, repr(time.monotonic() - seconds_ago))
    fenced = []
    monkeypatch.setattr(loop, "fence", lambda reason, processes=True: fenced.append(reason))
    return loop, os.path.join(run, "handover"), fenced


def test_the_new_code_recalls_the_lease_and_calls_the_watchdog_off(tmp_path, monkeypatch):
    loop, marker, fenced = handed_over_loop(tmp_path, monkeypatch, ttl=17)
    started = loop.resume_lease()
    assert loop.lease == 77 and fenced == [] and not os.path.exists(marker)
    assert 2.5 < time.monotonic() - started < 10  # the time without renewal counts from the old code's renewal
    assert smc_ha.RENEWED_ENV not in os.environ  # (not passed on to the senders it starts)
    assert '"reloaded_after"' in loop.out.getvalue()


def test_a_handed_over_lease_that_is_gone_fences_first(tmp_path, monkeypatch):
    loop, marker, fenced = handed_over_loop(tmp_path, monkeypatch, ttl=0, seconds_ago=30)
    loop.resume_lease()
    assert loop.lease is None and fenced == ["the lease handed over by a reload expired"]
    assert not os.path.exists(marker)


@pytest.mark.parametrize("value", ["soon", "future"])
def test_a_bad_or_future_handover_time_is_ignored(tmp_path, monkeypatch, value):
    loop = loop_for(tmp_path)
    monkeypatch.setenv(smc_ha.RENEWED_ENV, repr(time.monotonic() + 3600) if value == "future" else value)
    assert loop._handed_over() is None  # pylint: disable=protected-access


@pytest.mark.parametrize("keep_marker, fenced", [(True, True), (False, False)])
def test_the_watchdog_fences_only_while_the_marker_is_there(tmp_path, keep_marker, fenced):
    agent = tmp_path / "agent"
    agent.write_text("#!/bin/sh\necho \"$@\" >> %s\n" % (tmp_path / "calls"))
    agent.chmod(0o755)
    marker = tmp_path / "handover"
    marker.write_text("77\n")
    started = time.monotonic()
    subprocess.run(smc_ha.watchdog_command(0.5, str(marker), str(agent)), check=True, timeout=5)
    assert time.monotonic() - started < 0.5  # the shell returned at once; the watchdog waits on its own
    if not keep_marker:
        marker.unlink()
    time.sleep(1.5)
    calls = (tmp_path / "calls").read_text() if (tmp_path / "calls").exists() else ""
    assert (calls == "ha-fence\n") == fenced, calls
