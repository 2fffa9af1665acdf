"""Failover on the lab: hosts die (their VMs paused mid-work), a DC is cut off, etcd members stop. Every case
writes known bytes first and checks them byte for byte afterwards, and the sampler (tests/lab/chaos_lab.py)
asserts that no project ever has two writable copies. Failover times are printed (pytest -s / the verifier's
log). The cases with an operator in the loop (failover.yml, switchover.yml) are scenario chaos_operator's.
"""
import json
import time

import etcd_lab  # tests/lab, on sys.path by conftest
from chaos_lab import PROJECTS as ROOT, etcd_primary, plan, projects_of, say, serving_host, snapshot_and_send
from lab_ssh import agent, checksums, guids, write_known  # tests/lab, on sys.path by conftest

FAILOVER_TIMEOUT = 120


def newest(host, ds):
    """(creation, name) of the copy's newest snapshot."""
    out = host.out("zfs list -H -p -t snapshot -o creation,name -s creation -d 1 %s | tail -1" % ds).split()
    return (int(out[0]), out[1].split("@", 1)[1]) if out else (0, "")


def wait_failover(lab, pid, old, since, timeout=FAILOVER_TIMEOUT):
    """The new primary of ``pid`` once etcd names a live host other than ``old`` (the CAS) and its copy is
    writable; and the seconds from ``since`` (the moment ``old`` died) to the CAS."""
    ds = "%s/%s" % (ROOT, pid)
    deadline = since + timeout
    while time.monotonic() < deadline:
        host, _epoch = etcd_primary(pid)
        if host not in (None, old) and host in lab.live():
            switched = time.monotonic() - since
            while time.monotonic() < deadline and ds not in lab.writable(host):
                time.sleep(0.5)
            assert ds in lab.writable(host), (host, ds)
            return host, switched
        time.sleep(0.5)
    raise AssertionError("no failover of %s within %d s of %s dying" % (pid, timeout, old))


def slice_file(host, pid, present, wait=20):
    """Wait until the project's slice unit file (role project_limits, kept by smc-project sync, which the HA
    loop runs after a claim, a demotion or a fence) is there (present) or gone; whether it got so."""
    name = json.loads(host.out("smc-project info %s" % pid))["slice"]
    deadline = time.monotonic() + wait
    while True:
        there = host.run("test -f /etc/systemd/system/%s" % name, check=False)[0] == 0
        if there == present or time.monotonic() > deadline:
            return there == present
        time.sleep(1)


def test_primary_killed_mid_send_then_four_more_hosts_and_the_first_returns_as_a_replica(lab):
    """The primary dies in the middle of a send (the most up-to-date copy wins), then four more of the
    project's six hosts die one after another (every write survives on the last one), then the first one
    returns: it learns the epoch before it sends, stays read-only, and its divergent tail is kept aside."""
    old = serving_host(lab)
    pid = projects_of(lab, old)[0]
    ds = "%s/%s" % (ROOT, pid)
    assert len(plan(lab[old])["projects"][pid]["ring"]) == 6
    epoch_before = lab.primaries()[pid][1]
    first = {"f-a": write_known(lab[old], ds, "f-a", 2)}
    assert snapshot_and_send(lab[old])["failed"] == 0
    second = dict(first, **{"f-b": write_known(lab[old], ds, "f-b", 8)})
    agent(lab[old], "snapshot")
    sender = lab[old].popen("/usr/local/sbin/smc-zfs-agent replicate")
    time.sleep(3)  # some replicas have f-b, some are midway
    tail = lab[old].out("mp=$(zfs get -H -o value mountpoint %s); echo tail > $mp/f-tail; sync; "
                        "sha256sum $mp/f-tail | cut -d' ' -f1" % ds).strip()
    died = lab.pause(old)
    sender.kill()
    current, seconds = wait_failover(lab, pid, old, died)
    times = [seconds]
    say("failover of %s from %s (paused mid-send) to %s in %.1f s" % (pid, old, current, seconds))

    # the winner is the most up-to-date live copy, and it serves exactly what its newest snapshot holds
    ranks = dict((n, newest(lab[n], ds)) for n in lab.live())
    assert ranks[current] == max(ranks.values()), ranks
    want = checksums(lab[current], ds)
    assert want in (first, second)
    epoch = lab.primaries()[pid][1]
    assert epoch == epoch_before + 1
    assert lab[current].out("zfs get -H -o value smc:epoch %s" % ds).strip() == str(epoch)
    assert slice_file(lab[current], pid, True), "no slice for %s on its new primary %s" % (pid, current)

    # users keep working; four more hosts die one after another, each after its last send
    for i in range(4):
        want["f-%d" % i] = write_known(lab[current], ds, "f-%d" % i, 1)
        report = snapshot_and_send(lab[current])
        assert report["failed"] == 0 and set(report.get("skipped_down", {})) == lab.paused, report  # no timeouts
        for n in lab.live():
            assert checksums(lab[n], ds) == want, (i, n)
        died_name, died = current, lab.pause(current)
        current, seconds = wait_failover(lab, pid, current, died)
        times.append(seconds)
        assert checksums(lab[current], ds) == want, (i, current)
        say("host %d of 6 down (%s); %s serves every write" % (i + 2, died_name, current))
    say("%s survived 5 of 6 hosts: failovers in %s s, now on %s" % (pid, ", ".join("%.1f" % t for t in times),
                                                                    current))
    assert lab.live() == [current]
    want["f-last"] = write_known(lab[current], ds, "f-last", 1)
    assert checksums(lab[current], ds) == want
    assert max(times) <= 45, times

    # the first primary returns: read-only, no slice, sends nothing of it, its tail kept aside
    window = lab.resume(old)
    say("returning %s: writable copies fenced %.1f s after it resumed" % (old, window))
    assert window <= 60, window  # a just-resumed TCG guest is slow to do anything
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        st = lab.ha(old)
        if st.get("fresh") and st["state"]["primary"].get(pid, {}).get("host") == current:
            break
        time.sleep(1)
    assert lab[old].out("zfs get -H -o value readonly %s" % ds).strip() == "on"
    assert slice_file(lab[old], pid, False), "%s keeps the slice of %s it no longer serves" % (old, pid)
    would = agent(lab[old], "replicate --dry-run")["replication"]
    assert ds not in [d for p in would["peers"].values() for d in p["datasets"]], would  # it sends nothing of it
    report = snapshot_and_send(lab[current])
    assert report["failed"] == 0, report
    [kept] = [q for q in report["quarantined"] if q["dataset"] == ds and q["target"] == old]
    say("returning %s: tail of %s kept as %s (%s)" % (old, pid, kept["renamed"], kept["reason"]))
    assert checksums(lab[old], kept["renamed"]).get("f-tail") == tail
    assert guids(lab[old], ds) == guids(lab[current], ds) and checksums(lab[old], ds) == want


def test_a_dc_cut_off_fences_its_primaries_and_rejoins_as_replicas_with_tails_kept(lab):
    before = lab.primaries()
    # the DC that serves the most primaries (failovers since the converge may leave one serving none)
    site = max(sorted(set(h.split("-")[0] for h in lab.hosts)),
               key=lambda d: sum(1 for h, _e in before.values() if h.startswith(d + "-")))
    dc = sorted(h for h in lab.hosts if h.startswith(site + "-"))
    moved = dict((p, h) for h in dc for p in projects_of(lab, h))
    holder = next(h for h in dc if projects_of(lab, h))
    pid = projects_of(lab, holder)[0]
    ds = "%s/%s" % (ROOT, pid)
    tail = write_known(lab[holder], ds, "f-tail", 1)  # written, never snapshotted: the divergent tail
    cut = time.monotonic()
    for h in dc:
        lab.link(h, False)
    etcd_lab.link(etcd_lab.member(site), "down")
    # the cut-off DC fences itself: its member has no quorum alone
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(lab.writable(h) for h in dc):
        time.sleep(1)
    fenced_in = time.monotonic() - cut
    assert not any(lab.writable(h) for h in dc), "%s still writable %.0f s after the cut" % (site, fenced_in)
    assert all(lab.ha(h)["etcd"] == "unavailable" for h in dc)
    others = [h for h in sorted(lab.hosts) if h not in dc]
    deadline = time.monotonic() + FAILOVER_TIMEOUT
    while time.monotonic() < deadline:
        now = lab.primaries()
        if all(now[p][0] in others for p in moved):
            break
        time.sleep(1)
    took = time.monotonic() - cut
    say("%s cut off: fenced itself in %.1f s; its %d primaries served elsewhere after %.1f s"
        % (site, fenced_in, len(moved), took))
    assert all(now[p][0] in others and "%s/%s" % (ROOT, p) in lab.writable(now[p][0]) for p in moved), now
    # the rest lost one etcd member (dc2's) and nothing else: their primaries and epochs did not move
    assert dict((p, v) for p, v in now.items() if p not in moved) == \
        dict((p, v) for p, v in before.items() if p not in moved)
    new = now[pid][0]
    served = checksums(lab[new], ds)
    assert "f-tail" not in served
    # heal: the DC's copies rejoin as replicas, the tail is kept aside
    for h in dc:
        lab.link(h, True)
    etcd_lab.link(etcd_lab.member(site), "up")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(lab.ha(h).get("fresh") for h in dc):
        time.sleep(1)
    stale = [h for h in dc if not lab.ha(h).get("fresh")]
    assert not stale, "no fresh HA state 60 s after the heal on %s:\n%s" % (stale, "\n".join(
        lab[h].out("journalctl -u smc-ha --no-pager -n 25 -o cat", check=False) for h in stale))
    assert all(lab.ha(h)["state"]["primary"][pid]["host"] == new for h in dc)
    report = snapshot_and_send(lab[new])
    assert report["failed"] == 0, report
    [kept] = [q for q in report["quarantined"] if q["dataset"] == ds and q["target"] == holder]
    assert checksums(lab[holder], kept["renamed"])["f-tail"] == tail
    assert checksums(lab[holder], ds) == checksums(lab[new], ds)
    for h in sorted(lab.hosts):  # every copy, the healed DC's included: the new primary's history, snapshot by snapshot
        assert guids(lab[h], ds) == guids(lab[new], ds), h


def test_one_etcd_member_down_changes_nothing_two_stop_failovers_and_say_why(lab):
    before = lab.primaries()
    writable = dict((h, lab.writable(h)) for h in lab.hosts)
    etcd_lab.stop(etcd_lab.member("dc3"))
    stopped = time.monotonic()
    primary = serving_host(lab)
    pid = projects_of(lab, primary)[0]
    ds = "%s/%s" % (ROOT, pid)
    want = dict(checksums(lab[primary], ds), **{"f-one-down": write_known(lab[primary], ds, "f-one-down", 1)})
    assert snapshot_and_send(lab[primary])["failed"] == 0
    time.sleep(max(0.0, stopped + 25 - time.monotonic()))  # longer than a lease since the member stopped
    assert lab.primaries() == before
    assert dict((h, lab.writable(h)) for h in lab.hosts) == writable

    etcd_lab.stop(etcd_lab.member("dc2"))
    lost = time.monotonic()
    deadline = lost + 60  # fence_after 8 s, then a zfs set per host on slow guests, all hosts polled at once
    while time.monotonic() < deadline and lab.writable_anywhere():
        time.sleep(1)
    say("etcd quorum lost: every host read-only after %.1f s" % (time.monotonic() - lost))
    assert not lab.writable_anywhere()
    st = lab.ha("dc1-s1")
    assert st["etcd"] == "unavailable" and "no failover" in st["reason"], st
    report = agent(lab[primary], "replicate", check=False)
    assert "HA" in " ".join(report.get("replication", {}).get("errors", [])), report  # sends nothing, says why

    etcd_lab.start(etcd_lab.member("dc2"))
    etcd_lab.start(etcd_lab.member("dc3"))
    etcd_lab.wait_healthy()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and dict((h, lab.writable(h)) for h in lab.hosts) != writable:
        time.sleep(1)
    assert dict((h, lab.writable(h)) for h in lab.hosts) == writable  # the same primaries, unfenced
    assert lab.primaries() == before  # no failover happened, no epoch moved
    assert checksums(lab[primary], ds) == want
