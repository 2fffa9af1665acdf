"""Failover with an operator in the loop, on the lab: playbooks/failover.yml declares a live primary dead and
revives it; without etcd's quorum it promotes a dead host's projects offline and etcd takes the promotions
when it returns; playbooks/switchover.yml whose new primary dies is rolled back. Every case writes known
bytes first and checks them byte for byte afterwards, and the sampler (tests/lab/chaos_lab.py) asserts that no
project ever has two writable copies.
"""
import json
import os
import re
import subprocess
import time

import etcd_lab  # tests/lab, on sys.path by conftest
from chaos_lab import PROJECTS as ROOT, REPO, etcd_primary, projects_of, say, serving_host, snapshot_and_send
from lab_ssh import checksums, guids, write_known  # tests/lab, on sys.path by conftest


def failover_playbook(extra, check=False):
    """playbooks/failover.yml against the lab, as ops run it; (rc, output)."""
    args = ["ansible-playbook", "-i", os.path.join(REPO, "inventory", "lab", "hosts.yml"),
            os.path.join(REPO, "playbooks", "failover.yml"), "-e", json.dumps(extra)] + (["--check"] if check else [])
    p = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=900, check=False)
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
    placement = os.path.join(REPO, "inventory", "lab", "placement.json")
    with open(placement, encoding="utf-8") as f:
        placed = f.read()
    # (an operator's shorter connect timeout: the inventory's 180 s is for loaded TCG guests that do answer)
    ssh = re.sub(r"ServerAliveInterval=\d+", "ServerAliveInterval=5", re.sub(
        r"ConnectTimeout=\d+", "ConnectTimeout=20", lab.common["ansible_ssh_common_args"]))
    started = time.monotonic()
    play = subprocess.Popen(["ansible-playbook", "-i", os.path.join(REPO, "inventory", "lab", "hosts.yml"),
                             os.path.join(REPO, "playbooks", "switchover.yml"), "-e", "project=%s" % pid,
                             "-e", "to=%s" % new, "-e", json.dumps({"ansible_ssh_common_args": ssh,
                                                                    "switchover_promote_timeout": 30})],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
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
