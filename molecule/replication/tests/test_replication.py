"""Replication on the lab: known bytes written on a primary reach all five replicas byte for byte with the
same snapshot GUIDs; a cut-off send resumes; a replica written to is quarantined, never overwritten; an offline
replica catches up incrementally from its kept base after pruning; lower epochs and second receives are refused.

Each test takes a project of its own from the plans (the converged lab seeded every placed project at
converge), so the tests do not disturb each other; the scenario restores the converged lab when it ends.
"""
import json
import os
import re
import time

import pytest
from lab_ssh import AGENT, agent, checksums, guids, write_known  # tests/lab, on sys.path by conftest
from lab_ssh import playbook as lab_playbook

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROOT = "tank/projects"
LIB = "/usr/local/lib/smc-zfs-agent"
USED = set()


@pytest.fixture(scope="module", autouse=True)
def no_timer(lab):
    """The tests run the agent themselves: stop the timer on every host (the restore at the end brings it back)."""
    for host in lab.values():
        host.run("systemctl stop smc-zfs-agent.timer; while systemctl is-active -q smc-zfs-agent.service; "
                 "do sleep 1; done")


def plan(host):
    return json.loads(host.out("cat /etc/smc/plan.json"))


def serving(host):
    """{project: (host, epoch)} as etcd names the primaries (read through ``host``'s agent); None with HA off."""
    st = agent(host, "ha-status")
    if not st.get("enabled"):
        return None
    assert st.get("etcd") == "ok", "%s cannot read etcd: %s" % (host.name, st)
    return dict((pid, (v["host"], v["epoch"])) for pid, v in st["primary"].items())


def project_on(lab, primary):
    """A placed project whose primary is ``primary`` (in the plan and, with HA on, in etcd at the seed's epoch 1:
    a converged lab whose elections moved some primaries keeps others in place) and that no other test took:
    (id, [replica hosts])."""
    p = plan(lab[primary])
    names = p["hosts"]
    etcd = serving(lab[primary])
    for pid, entry in sorted(p["projects"].items()):
        if etcd is not None and etcd.get(pid) != (primary, 1):
            continue
        if names[entry["primary"]] == primary and pid not in USED:
            USED.add(pid)
            copies = [names[i] for i in entry["ring"]] + [names[i] for i in entry.get("extra", [])]
            return pid, [h for h in dict.fromkeys(copies) if h != primary]
    raise AssertionError("no unused project with primary %s at epoch 1 (etcd: %s); restore a lab that scenario "
                         "default converged" % (primary, etcd))


def newest_name(host, ds):
    """The newest snapshot's short name (our names sort by UTC time)."""
    return max(guids(host, ds)).split("@", 1)[1]


def snapshot_and_replicate(host):
    agent(host, "snapshot")
    return agent(host, "replicate")


def test_every_placed_project_is_seeded_on_all_its_copies(lab):
    """After converge: each project's newest snapshot GUID on its primary is on every copy (24 projects)."""
    newest = {}
    for name, host in lab.items():
        for line in host.out("zfs list -H -p -t snapshot -o name,guid,createtxg -d 2 %s" % ROOT).splitlines():
            snap, guid, txg = line.split("\t")
            newest.setdefault(name, {}).setdefault(snap.split("@")[0], {})[guid] = int(txg)
    p = plan(lab["dc1-s1"])
    checked = 0
    for name in lab:
        for pid, entry in plan(lab[name])["projects"].items():
            primary = p["hosts"][entry["primary"]]
            if primary != name:
                continue
            ds = "%s/%s" % (ROOT, pid)
            mine = newest[name].get(ds) or {}
            assert mine, "primary %s has no snapshot of %s" % (name, pid)
            top = max(mine, key=mine.get)
            for replica in set(p["hosts"][i] for i in entry["ring"]) - {name}:
                assert top in (newest.get(replica, {}).get(ds) or {}), "%s lacks %s@guid %s" % (replica, ds, top)
                checked += 1
    assert checked >= 24 * 5


def test_known_bytes_reach_all_five_replicas_with_the_same_guids(lab):
    pid, replicas = project_on(lab, "dc2-s2")
    assert len(replicas) == 5
    ds = "%s/%s" % (ROOT, pid)
    primary = lab["dc2-s2"]
    want = {"f-big": write_known(primary, ds, "f-big", 4), "f-small": write_known(primary, ds, "f-small", 1)}
    report = snapshot_and_replicate(primary)["replication"]
    assert report["failed"] == 0, report
    assert set(report["peers"]) == set(replicas)  # one session per peer
    src = guids(primary, ds)
    for name in replicas:
        assert guids(lab[name], ds) == src, name
        assert checksums(lab[name], ds) == want, name
        props = lab[name].out("zfs get -H -o value readonly,smc:role,smc:epoch %s" % ds).split()
        assert props == ["on", "replica", "1"], (name, props)
    # nothing new: no send and no SSH round trip
    again = agent(primary, "replicate")["replication"]
    assert again["peers"] == {} and again["idle"] > 0


def test_a_send_killed_midway_resumes_from_its_token(lab):
    pid, replicas = project_on(lab, "dc2-s1")
    ds = "%s/%s" % (ROOT, pid)
    primary, target = lab["dc2-s1"], lab[replicas[0]]
    want = {"f-resume": write_known(primary, ds, "f-resume", 12)}
    agent(primary, "snapshot")
    sender = primary.popen("%s replicate" % AGENT)
    # kill the sender once the target's zfs receive has read 2 MiB of the 12 (a stream cut off midway)
    received = "p=$(pgrep -f '^zfs receive' | head -1); [ -n \"$p\" ] && awk '/^rchar/ {print $2}' /proc/$p/io || echo 0"
    deadline = time.time() + 180
    while int(target.out(received).strip() or 0) < 2 * 2**20:
        assert time.time() < deadline and sender.poll() is None, "the receive never got 2 MiB"
        time.sleep(0.3)
    primary.run("pkill -KILL -f 'smc-zfs-agent replicate'; pkill -KILL -f 'zfs send' || true", check=False)
    sender.wait()
    deadline = time.time() + 60
    while target.out("ps -eo args | grep '[z]fs receive' || true").strip():
        assert time.time() < deadline
        time.sleep(0.5)
    token = target.out("zfs get -H -o value receive_resume_token %s" % ds).strip()
    assert token not in ("", "-"), "the cut-off receive left no resume token"
    report = agent(primary, "replicate")["replication"]
    assert report["failed"] == 0, report
    assert guids(target, ds) == guids(primary, ds)
    assert checksums(target, ds) == want
    assert target.out("zfs get -H -o value receive_resume_token %s" % ds).strip() == "-"


def test_a_replica_written_to_is_quarantined_and_reseeded_never_overwritten(lab):
    pid, replicas = project_on(lab, "dc3-s1")
    ds = "%s/%s" % (ROOT, pid)
    primary, rogue = lab["dc3-s1"], lab[replicas[-1]]
    rogue_sum = rogue.out("""set -e
zfs set readonly=off %(ds)s
zfs mount %(ds)s 2>/dev/null || true
mp=$(zfs get -H -o value mountpoint %(ds)s)
echo "written on a replica" > "$mp/f-rogue"; sync; zpool sync tank
sha256sum "$mp/f-rogue" | cut -d' ' -f1
zfs unmount %(ds)s
""" % {"ds": ds}).strip()
    want = {"f-new": write_known(primary, ds, "f-new", 1)}
    report = snapshot_and_replicate(primary)["replication"]
    assert report["failed"] == 0, report
    [moved] = [q for q in report["quarantined"] if q["dataset"] == ds]
    assert moved["target"] == rogue.name and "written" in moved["reason"]
    # the rogue write is kept aside, intact; the replica is a fresh, exact copy of the primary
    kept = moved["renamed"]
    assert re.fullmatch(r"tank/quarantine/%s-\d{8}T\d{6}Z" % re.escape(pid), kept)
    assert rogue.out("zfs get -H -o value smc:role,smc:origin %s" % kept).split() == ["quarantined", ds]
    assert checksums(rogue, kept).get("f-rogue") == rogue_sum
    assert guids(rogue, ds) == guids(primary, ds)
    assert checksums(rogue, ds) == dict(checksums(primary, ds), **want)


def test_an_offline_replica_catches_up_incrementally_from_its_kept_base(lab):
    pid, replicas = project_on(lab, "dc1-s2")
    ds = "%s/%s" % (ROOT, pid)
    primary, offline = lab["dc1-s2"], lab[replicas[0]]
    base = guids(offline, ds)
    keys = "/var/lib/smc-recv/.ssh/authorized_keys"
    offline.run("mv %s %s.off" % (keys, keys))  # unreachable for replication (fails at once, unlike a cut link)
    # a revoked key ends no connection already made: close the primary's shared ones (replication.persist)
    primary.run("for s in /run/smc/ssh/*; do [ -S $s ] && ssh -o ControlPath=$s -O exit peer; done; true")
    try:
        start = (int(time.time()) // 86400 + 2) * 86400  # a bucket of its own, two days ahead
        for cycle in range(6):  # six snapshot/replicate/prune cycles a minute apart: the middle ones are pruned
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + cycle * 60))
            write_known(primary, ds, "f-cycle-%d" % cycle, 1)
            agent(primary, "--now %s snapshot" % now)
            agent(primary, "replicate", check=False)  # the offline target fails, the others get it
            agent(primary, "--now %s prune" % now)
        rec = json.loads(primary.out("%s status --json" % AGENT))["records"][ds][offline.name]
        assert rec["consecutive_failures"] >= 6 and rec["last_error"]
        held = primary.out("zfs list -H -t snapshot -o name -d 1 %s | xargs zfs holds -H | "
                           "awk '$2 == \"smc-repl-%s\" {print $1}'" % (ds, offline.name))
        assert held.strip(), "the offline target's base lost its hold"
        taken = [n for n in guids(primary, ds) if n.split("@")[1] > max(base).split("@")[1]]
        assert 2 <= len(taken) < 6, "expected the middle cycles pruned, kept %s" % taken
    finally:
        offline.run("mv %s.off %s" % (keys, keys))
    report = agent(primary, "replicate")["replication"]
    assert report["failed"] == 0, report
    assert report["peers"][offline.name]["kinds"] == {"incremental": 1} and not report["quarantined"]
    assert guids(offline, ds) == guids(primary, ds)
    assert set(base.items()) & set(guids(offline, ds).items()), "the offline copy was replaced, not caught up"
    assert checksums(offline, ds) == checksums(primary, ds)


def session_script(target, body):
    return """python3 - <<'EOF'
import json, subprocess, sys
sys.path.insert(0, "%s")
import replication_wire as w
ssh = ["ssh", "-i", "/etc/smc/repl/id_ed25519", "-o", "BatchMode=yes", "-o",
       "UserKnownHostsFile=/etc/smc/repl/known_hosts", "-l", "smc-recv", "%s", "receive"]
def open_session():
    p = subprocess.Popen(ssh, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    w.write_message(p.stdin, {"op": "hello", "source": "test"})
    assert w.read_message(p.stdout)["ok"]
    return p
%s
EOF""" % (LIB, target, body)


def address(lab, name):
    p = plan(lab[name])
    return p["addresses"][p["hosts"].index(name)]


def test_a_stream_with_a_lower_epoch_is_refused(lab):
    pid, replicas = project_on(lab, "dc2-s2")
    ds = "%s/%s" % (ROOT, pid)
    primary, target = lab["dc2-s2"], lab[replicas[0]]
    before = guids(target, ds)
    target.run("zfs set smc:epoch=7 %s" % ds)  # as if a newer primary (epoch 7) had written this history
    write_known(primary, ds, "f-stale", 1)
    agent(primary, "snapshot")
    base, new = newest_name(target, ds), newest_name(primary, ds)
    out = primary.out(session_script(address(lab, target.name), """
p = open_session()
send = subprocess.Popen(["zfs", "send", "-I", "%s@%s", "%s@%s"], stdout=subprocess.PIPE)
w.write_message(p.stdin, {"op": "recv", "dataset": "%s", "epoch": 1, "kind": "incremental"})
w.write_frames(p.stdin, send.stdout)
w.write_message(p.stdin, {"op": "sync"})  # receives are answered at sync
print(json.dumps(w.read_message(p.stdout)))
""" % (ds, base, ds, new, ds)))
    answer = json.loads(out.strip().splitlines()[-1])
    assert not answer["ok"] and "epoch 7" in answer["error"] and "epoch 1" in answer["error"]
    assert guids(target, ds) == before
    # the agent itself refuses to send to a copy with a newer epoch, and says so
    report = agent(primary, "replicate", check=False)["replication"]
    assert any("epoch 7" in e for e in report["peers"][target.name]["errors"]), report
    target.run("zfs set smc:epoch=1 %s" % ds)  # give the next tests a lab whose epochs agree again
    assert agent(primary, "replicate")["replication"]["failed"] == 0


def test_two_receives_into_one_dataset_are_refused(lab):
    pid, replicas = project_on(lab, "dc3-s2")
    ds = "%s/%s" % (ROOT, pid)
    primary, target = lab["dc3-s2"], lab[replicas[0]]
    before = guids(target, ds)
    write_known(primary, ds, "f-two", 4)
    agent(primary, "snapshot")
    base, newest = newest_name(target, ds), newest_name(primary, ds)
    out = primary.out(session_script(address(lab, target.name), """
first = open_session()
send = subprocess.Popen(["zfs", "send", "-I", "%(ds)s@%(base)s", "%(ds)s@%(new)s"], stdout=subprocess.PIPE)
w.write_message(first.stdin, {"op": "recv", "dataset": "%(ds)s", "epoch": 1, "kind": "incremental"})
first.stdin.write(b"\\0\\0\\x10\\0" + send.stdout.read(4096)); first.stdin.flush()  # one frame, then stall
import time; time.sleep(3)
second = open_session()
w.write_message(second.stdin, {"op": "recv", "dataset": "%(ds)s", "epoch": 1, "kind": "incremental"})
w.write_frames(second.stdin, send.stdout)
w.write_message(second.stdin, {"op": "sync"})  # receives are answered at sync
print(json.dumps(w.read_message(second.stdout)))
first.kill()
""" % {"ds": ds, "base": base, "new": newest}))
    answer = json.loads(out.strip().splitlines()[-1])
    assert not answer["ok"] and "busy" in answer["error"], answer
    time.sleep(2)
    report = agent(primary, "replicate")["replication"]  # the cut-off first receive resumes or restarts cleanly
    assert report["failed"] == 0, report
    assert guids(target, ds) == guids(primary, ds)


def writable(lab, ds):
    """The hosts where the project's copy is writable: there must be exactly one."""
    return [n for n, h in lab.items() if h.out("zfs get -H -o value readonly %s" % ds).strip() == "off"]


def playbook(*args):
    return lab_playbook(*args)[1]


def slice_of(host, pid):
    """'present' or 'absent': the project's slice unit file (role project_limits) on this host, and the slice
    name (smc-project knows every project the host holds a copy of)."""
    name = json.loads(host.out("smc-project info %s" % pid))["slice"]
    return host.out("test -f /etc/systemd/system/%s && echo present || echo absent" % name).strip(), name


def test_switchover_there_and_back_keeps_every_write(lab):
    pid, replicas = project_on(lab, "dc2-s2")
    ds = "%s/%s" % (ROOT, pid)
    old, new = lab["dc2-s2"], lab[replicas[0]]
    want = {"f-before": write_known(old, ds, "f-before", 2)}
    placement = os.path.join(REPO, "inventory/lab/placement.json")
    with open(placement, encoding="utf-8") as f:
        before = f.read()
    out = playbook("--check", "playbooks/switchover.yml", "-e", "project=%s" % pid, "-e", "to=%s" % new.name)
    assert "switchover of %s: dc2-s2 (epoch 1) -> %s (epoch 2)" % (pid, new.name) in out
    with open(placement, encoding="utf-8") as f:
        assert f.read() == before  # --check changed nothing
    assert old.out("zfs get -H -o value readonly %s" % ds).strip() == "off"

    playbook("playbooks/switchover.yml", "-e", "project=%s" % pid, "-e", "to=%s" % new.name)
    assert new.out("zfs get -H -o value readonly,smc:epoch,smc:role %s" % ds).split() == ["off", "2", "primary"]
    assert writable(lab, ds) == [new.name]  # one writable copy, never two
    assert old.out("zfs get -H -o value readonly,smc:epoch %s" % ds).split() == ["on", "2"]
    # the project's slice (its limits) followed the primary (issue 15)
    assert slice_of(new, pid)[0] == "present" and slice_of(old, pid)[0] == "absent", (slice_of(new, pid), slice_of(old, pid))
    assert checksums(new, ds) == want  # the write made just before the switchover is there
    want["f-after"] = write_known(new, ds, "f-after", 1)
    report = snapshot_and_replicate(new)["replication"]
    assert report["failed"] == 0, report
    for name in [old.name] + replicas[1:]:
        assert guids(lab[name], ds) == guids(new, ds), name
    assert checksums(old, ds) == want

    playbook("playbooks/switchover.yml", "-e", "project=%s" % pid, "-e", "to=dc2-s2")
    assert old.out("zfs get -H -o value readonly,smc:epoch %s" % ds).split() == ["off", "3"]
    assert writable(lab, ds) == [old.name]
    assert slice_of(old, pid)[0] == "present" and slice_of(new, pid)[0] == "absent"
    assert checksums(old, ds) == want
    snapshot_and_replicate(old)
    for name in replicas:
        assert guids(lab[name], ds) == guids(old, ds), name
        assert lab[name].out("zfs get -H -o value readonly,smc:epoch %s" % ds).split() == ["on", "3"], name


def test_a_ring_change_never_flips_a_primary_onto_a_copy_without_its_writes(lab):
    """site.yml with every weight tripled: the ring orders hosts differently and picks another primary for
    7 of the 24 projects. Each keeps its current (writable, up-to-date) primary, the run reports the pending
    moves, no copy changes read-only state, and replication goes on from the current primaries."""
    def states():
        out = {}
        for name, host in lab.items():
            for line in host.out("zfs list -H -o name,readonly -d 1 %s" % ROOT).splitlines()[1:]:
                ds, readonly = line.split("\t")
                out[(name, ds)] = readonly
        return out
    before = states()
    out = playbook("playbooks/site.yml", "-e", "weight=3")
    assert " 7 pending primary moves" in out, out[-3000:]
    assert states() == before
    p = plan(lab["dc2-s2"])
    moved = [pid for pid, e in p["projects"].items() if e["primary"] != e["ring"][0]]
    assert len(moved) == 7
    pid = moved[0]
    primary = lab[p["hosts"][p["projects"][pid]["primary"]]]
    ds = "%s/%s" % (ROOT, pid)
    want = {"f-ring": write_known(primary, ds, "f-ring", 1)}
    report = snapshot_and_replicate(primary)["replication"]
    assert report["failed"] == 0, report
    for name in lab:
        if name != primary.name:
            assert guids(lab[name], ds) == guids(primary, ds), name
            assert checksums(lab[name], ds)["f-ring"] == want["f-ring"], name


def writable_copies(lab):
    """{host: [writable project copies]}, every host read in parallel."""
    procs = dict((name, host.popen("zfs list -H -o name,readonly -d 1 %s" % ROOT)) for name, host in lab.items())
    out = {}
    for name, proc in procs.items():
        text, _err = proc.communicate(timeout=120)
        out[name] = sorted(line.split("\t")[0] for line in text.splitlines()[1:] if line.endswith("\toff"))
    return out


def test_a_reload_of_every_ha_loop_moves_no_primary_and_fences_nothing(lab):
    """systemctl reload smc-ha on all six hosts at once, as a converge with new agent code does: each loop
    starts the new code beside it and keeps its lease until the new code renewed it and took over (issue 14:
    a restart on a loaded guest outlasted the lease and failed its projects over). No primary moves in etcd, no
    writable copy turns read-only at any sample, and every host logs the handover and how long it took."""
    before_primary = agent(lab["dc1-s1"], "ha-status")["primary"]
    before = writable_copies(lab)
    mark = lab["dc1-s1"].out("date -u '+%Y-%m-%d %H:%M:%S'").strip()
    procs = [host.popen("systemctl reload smc-ha.service") for host in lab.values()]
    for proc in procs:
        proc.communicate(timeout=120)
        assert proc.returncode == 0
    started, samples, took = time.monotonic(), 0, {}
    while time.monotonic() - started < 120 and len(took) < len(lab):
        assert writable_copies(lab) == before
        samples += 1
        for name, host in lab.items():
            log = host.out("journalctl -u smc-ha --since '%s' -o cat --no-pager" % mark)
            events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
            assert not [e for e in events if e.get("event") in ("fenced", "lease-lost")], (name, events)
            done = [e for e in events if e.get("event") == "reloaded"]
            if done:
                took[name] = done[-1]["seconds"]
    assert len(took) == len(lab), took
    assert agent(lab["dc1-s1"], "ha-status")["primary"] == before_primary
    assert writable_copies(lab) == before
    print("[replication] reload of six HA loops at once: no primary moved, nothing fenced (%d samples); each "
          "new process renewed the lease %.1f-%.1f s after it started"
          % (samples, min(took.values()), max(took.values())), flush=True)
