"""Failover on the lab: hosts die (their VMs paused mid-work), a DC is cut off, etcd members stop, an operator
declares a live host dead (playbooks/failover.yml). Every case
writes known bytes first and checks them byte for byte afterwards, and the sampler (conftest) asserts that no
project ever has two writable copies. Failover times are printed (pytest -s / the verifier's log).
"""
import json
import os
import re
import subprocess
import time

import etcd_lab  # tests/lab, on sys.path by conftest
from lab_ssh import agent, checksums, guids, write_known  # tests/lab, on sys.path by conftest

ROOT = "tank/projects"
FAILOVER_TIMEOUT = 120


def say(msg):
    print("[chaos] " + msg, flush=True)


def plan(host):
    return json.loads(host.out("cat /etc/smc/plan.json"))


def projects_of(lab, primary):
    """Placed projects whose primary (in etcd) is ``primary``."""
    return sorted(p for p, (h, _e) in lab.primaries().items() if h == primary)


def serving_host(lab, prefer="dc2-s2", besides=None):
    """``prefer`` when etcd names it primary of some project, else the host serving the most (failovers since
    the converge can leave a host serving none); never ``besides``."""
    counts = {}
    for host, _epoch in lab.primaries().values():
        if host != besides:
            counts[host] = counts.get(host, 0) + 1
    return prefer if counts.get(prefer) else max(sorted(counts), key=counts.get)


def newest(host, ds):
    """(creation, name) of the copy's newest snapshot."""
    out = host.out("zfs list -H -p -t snapshot -o creation,name -s creation -d 1 %s | tail -1" % ds).split()
    return (int(out[0]), out[1].split("@", 1)[1]) if out else (0, "")


def snapshot_and_send(host):
    agent(host, "snapshot")
    return agent(host, "replicate", timeout=900)["replication"]


def etcd_primary(pid):
    """etcd's primary of ``pid`` as (host, epoch), read from the controller through a member's namespace."""
    p = etcd_lab.ctl("get", "/smc/primary/" + pid, "--print-value-only")
    doc = json.loads(p.stdout) if p.returncode == 0 and p.stdout.strip() else {}
    return doc.get("host"), doc.get("epoch", 0)


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
        died = lab.pause(current)
        current, seconds = wait_failover(lab, pid, current, died)
        times.append(seconds)
        assert checksums(lab[current], ds) == want, (i, current)
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


def failover_playbook(extra, check=False):
    """playbooks/failover.yml against the lab, as ops run it; (rc, output)."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    args = ["ansible-playbook", "-i", os.path.join(repo, "inventory", "lab", "hosts.yml"),
            os.path.join(repo, "playbooks", "failover.yml"), "-e", json.dumps(extra)] + (["--check"] if check else [])
    p = subprocess.run(args, capture_output=True, text=True, cwd=repo, timeout=900, check=False)
    return p.returncode, p.stdout + p.stderr


def known_bytes_sent(lab, primary, name, mib):
    """The projects ``primary`` serves, the first one's id and dataset, and its files' checksums once ``mib``
    MiB of known bytes were written to it as ``name``, snapshotted and sent to every copy."""
    mine = projects_of(lab, primary)
    ds = "%s/%s" % (ROOT, mine[0])
    want = dict(checksums(lab[primary], ds), **{name: write_known(lab[primary], ds, name, mib)})
    assert snapshot_and_send(lab[primary])["failed"] == 0
    return mine, mine[0], ds, want


def revive_and_resend(lab, old, new, ds, want):
    """failover.yml revives ``old``; once ``new`` sees it alive, the next send reaches it (nothing skipped) and
    its copy of ``ds`` holds ``want``, byte for byte."""
    rc, out = failover_playbook({"revive": [old]})
    assert rc == 0 and "revived: %s" % old in out, out[-3000:]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and old not in lab.ha(new).get("alive", []):
        time.sleep(1)
    report = snapshot_and_send(lab[new])
    assert report["failed"] == 0 and old not in report.get("skipped_down", {}), report
    assert checksums(lab[old], ds) == want


def test_an_operator_declares_a_live_primary_dead_and_revives_it(lab):
    """playbooks/failover.yml on a host that still runs: --check shows the moves and changes nothing; the
    declaration fences it (its lease revoked) and its projects are elected among their live copies once its
    window closes, with every replicated write; it stays a read-only replica while declared, and after it is
    revived (nothing moves back)."""
    old = serving_host(lab)
    mine, pid, ds, want = known_bytes_sent(lab, old, "f-op", 2)
    before, writable = lab.primaries(), lab.writable(old)

    rc, out = failover_playbook({"failover_hosts": [old]}, check=True)
    assert rc == 0, out[-3000:]
    assert "check: would declare %s dead; %d project(s) would be elected elsewhere" % (old, len(mine)) in out, out[-3000:]
    assert lab.primaries() == before and lab.writable(old) == writable  # a check changes nothing

    started = time.monotonic()
    rc, out = failover_playbook({"failover_hosts": [old], "confirm_dead": [old]})
    took = time.monotonic() - started
    assert rc == 0, out[-3000:]
    after = lab.primaries()
    moved = dict((p, after[p]) for p in mine)
    say("failover.yml declared %s dead: %d primaries elected elsewhere, the play took %.1f s"
        % (old, len(mine), took))
    assert all(h != old and e == before[p][1] + 1 for p, (h, e) in moved.items()), moved
    assert dict((p, v) for p, v in after.items() if p not in mine) == dict((p, v) for p, v in before.items()
                                                                           if p not in mine)
    assert "declared dead: %s" % old in out and "%s: %s (epoch" % (pid, old) in out, out[-3000:]
    new = moved[pid][0]
    assert ds in lab.writable(new) and checksums(lab[new], ds) == want
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and lab.writable(old):
        time.sleep(1)
    assert lab.writable(old) == [], "the declared host kept writable copies"
    assert lab[old].out("zfs get -H -o value readonly %s" % ds).strip() == "on"

    # still declared: it counts as down, so the new primary sends it nothing and it stays read-only
    want["f-after"] = write_known(lab[new], ds, "f-after", 1)
    report = snapshot_and_send(lab[new])
    assert report["failed"] == 0 and old in report.get("skipped_down", {}), report
    assert "f-after" not in checksums(lab[old], ds) and lab.writable(old) == []

    # revived: it votes and receives again, as a replica; nothing moves back
    revive_and_resend(lab, old, new, ds, want)
    assert lab.primaries() == after and lab.writable(old) == []


def test_without_quorum_an_operator_promotes_a_replica_and_etcd_takes_it_when_it_returns(lab):
    """etcd loses its quorum (two members stop), then a primary dies: nothing can be elected and every host
    fenced itself. failover.yml, with the dead host confirmed, promotes the most up-to-date live copy of each of
    its projects offline: writable at epoch + 1, its users write, it sends to the other copies. When etcd is back
    the HA loops declare the host dead and write each promotion by CAS; the dead host returns as a read-only
    replica of the new primary and gets every byte after it is revived."""
    old = serving_host(lab)
    mine, pid, ds, want = known_bytes_sent(lab, old, "f-before", 1)
    before = lab.primaries()

    etcd_lab.stop(etcd_lab.member("dc3"))
    etcd_lab.stop(etcd_lab.member("dc2"))
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and any(lab.writable(h) for h in lab.hosts):
        time.sleep(1)
    assert not any(lab.writable(h) for h in lab.hosts), "a host kept writable copies without etcd's quorum"
    lab.pause(old)

    rc, out = failover_playbook({"failover_hosts": [old]}, check=True)
    assert rc == 0, out[-3000:]
    flat = " ".join(out.split())  # (the callback wraps long lines)
    assert "would promote %d project(s) offline; declared dead: %s" % (len(mine), old) in flat, out[-3000:]
    assert not any(lab.writable(h) for h in lab.live())  # a check changes nothing

    started = time.monotonic()
    rc, out = failover_playbook({"failover_hosts": [old], "confirm_dead": [old]})
    took = time.monotonic() - started
    assert rc == 0, out[-3000:]
    promoted = dict((m.group(1), (m.group(2), int(m.group(3))))
                    for m in re.finditer(r"(\S+): %s -> (\S+) at epoch (\d+)" % old, " ".join(out.split())))
    assert sorted(promoted) == mine, out[-3000:]
    assert all(e == before[p][1] + 1 and h != old for p, (h, e) in promoted.items()), (promoted, before)
    new = promoted[pid][0]
    say("no quorum: failover.yml promoted %d projects of %s offline in %.1f s" % (len(mine), old, took))
    writable = sorted(d for h in lab.live() for d in lab.writable(h))
    assert writable == sorted("%s/%s" % (ROOT, p) for p in mine)  # those, and nothing else
    assert checksums(lab[new], ds) == want

    # its users write; it sends to the other copies (not to the dead host) while etcd is still down
    want["f-offline"] = write_known(lab[new], ds, "f-offline", 1)
    report = snapshot_and_send(lab[new])
    assert report["failed"] == 0 and old in report.get("skipped_down", {}), report
    other = next(h for h in lab.live() if h != new)
    assert checksums(lab[other], ds) == want

    # etcd returns: the promotions are written to it, the dead host declared
    etcd_lab.start(etcd_lab.member("dc2"))
    etcd_lab.start(etcd_lab.member("dc3"))
    etcd_lab.wait_healthy()
    back = time.monotonic()
    deadline = back + 90
    while time.monotonic() < deadline and any(etcd_primary(p) != promoted[p] for p in mine):
        time.sleep(1)
    assert dict((p, etcd_primary(p)) for p in mine) == promoted
    say("etcd back: the %d offline promotions in etcd after %.1f s" % (len(mine), time.monotonic() - back))
    assert etcd_lab.ctl("get", "/smc/dead/" + old, "--print-value-only").stdout.strip()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and lab[new].run("test -e /var/lib/smc/ha/offline.json", check=False)[0] == 0:
        time.sleep(1)
    assert "done" in lab[new].out("cat /var/lib/smc/ha/offline.json.history")
    assert lab[new].run("test -e /var/lib/smc/ha/offline.json", check=False)[0] != 0, "record not reconciled"
    assert ds in lab.writable(new) and checksums(lab[new], ds) == want

    # the dead host returns: a read-only replica while declared; revived, it receives every byte
    lab.resume(old)
    assert lab.writable(old) == []
    revive_and_resend(lab, old, new, ds, want)
    assert dict((p, etcd_primary(p)) for p in mine) == promoted and lab.writable(old) == []


def test_a_switchover_whose_new_primary_dies_is_rolled_back_with_every_write(lab):
    """playbooks/switchover.yml while its new primary dies (its VM paused as the old primary's fence starts):
    the promotion gets no answer, the old primary is writable again at its own epoch once etcd shows it is
    still the primary (the announcement withdrawn, so a late promotion would fail), the placement is not
    touched, and every write, before and after, reaches the dead host once it returns."""
    new = "dc3-s1"
    old = serving_host(lab, "dc1-s2", besides=new)
    _mine, pid, ds, want = known_bytes_sent(lab, old, "f-switch", 2)
    epoch = etcd_primary(pid)[1]
    lab[new].run("true")  # (its SSH master is up: the play's connection to it hangs, then times out)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    placement = os.path.join(repo, "inventory", "lab", "placement.json")
    with open(placement, encoding="utf-8") as f:
        placed = f.read()
    # (an operator's shorter connect timeout: the inventory's 180 s is for loaded TCG guests that do answer)
    ssh = re.sub(r"ServerAliveInterval=\d+", "ServerAliveInterval=5", re.sub(
        r"ConnectTimeout=\d+", "ConnectTimeout=20", lab.common["ansible_ssh_common_args"]))
    started = time.monotonic()
    play = subprocess.Popen(["ansible-playbook", "-i", os.path.join(repo, "inventory", "lab", "hosts.yml"),
                             os.path.join(repo, "playbooks", "switchover.yml"), "-e", "project=%s" % pid,
                             "-e", "to=%s" % new, "-e", json.dumps({"ansible_ssh_common_args": ssh,
                                                                    "switchover_promote_timeout": 30})],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=repo)
    lines = []
    for line in play.stdout:
        lines.append(line)
        if "TASK [Fence the old primary" in line and new not in lab.paused:
            lab.pause(new)
            say("switchover of %s %s -> %s: %s paused as the fence started" % (pid, old, new, new))
    rc, out, took = play.wait(timeout=900), " ".join("".join(lines).split()), time.monotonic() - started
    say("switchover with its new primary dead: rolled back, the play took %.1f s" % took)
    assert new in lab.paused, out[-3000:]
    assert rc != 0 and "switchover of %s to %s did not happen: %s did not answer" % (pid, new, new) in out, out[-3000:]
    assert "%s is writable again at epoch %d (rolled back)" % (old, epoch) in out, out[-3000:]
    assert etcd_primary(pid) == (old, epoch)
    value = json.loads(etcd_lab.ctl("get", "/smc/primary/" + pid, "--print-value-only").stdout)
    assert "switching" not in value, value  # withdrawn: a late promotion's CAS would fail
    with open(placement, encoding="utf-8") as f:
        assert f.read() == placed
    assert ds in lab.writable(old)
    assert lab[old].out("zfs get -H -o value smc:fenced %s" % ds).strip() == "-"
    want["f-after"] = write_known(lab[old], ds, "f-after", 1)
    assert snapshot_and_send(lab[old])["failed"] == 0
    # the dead host returns: a replica, and it catches up with every write
    lab.resume(new)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and new not in lab.ha(old).get("alive", []):
        time.sleep(1)
    report = snapshot_and_send(lab[old])
    assert report["failed"] == 0 and new not in report.get("skipped_down", {}), report
    for name in lab.live():  # every copy: the same bytes and snapshot GUIDs, one writable
        assert checksums(lab[name], ds) == want and guids(lab[name], ds) == guids(lab[old], ds), name
        assert (ds in lab.writable(name)) == (name == old), name
    assert etcd_primary(pid) == (old, epoch)
