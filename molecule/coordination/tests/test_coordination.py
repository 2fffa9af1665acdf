"""Role coordination on the lab: etcd over TLS with client certificates, a backup that restores, a member
removed and joined again with every key kept, a dead member replaced by a new host, on dc1-s1, dc2-s1 and dc3-s1
(members; dc3-s2 replaces dc3-s1) and dc1-s2, dc2-s2 (clients with certificates of role tls_certificate).
Scenario order matters only for the last tests, which change the membership; each test writes keys of its
own."""
import json
import os
import subprocess
import sys
import time

import lab_ssh  # tests/lab, on sys.path by conftest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(REPO, "plugins", "module_utils"))
sys.path.insert(0, os.path.join(REPO, "tests"))
import local_commands  # noqa: E402
import tls_ca  # noqa: E402 (the collection's CA code, run here as the controller runs it)
from etcd_local import LocalEtcd  # noqa: E402

tls_ca.use(local_commands.run)

INVENTORY = [lab_ssh.INVENTORY, os.path.join(REPO, "molecule", "coordination", "inventory", "groups.yml")]
MEMBERS = ("dc1-s1", "dc2-s1", "dc3-s1")
CLIENT_DIR = "/etc/smc-etcd-client"


def playbook(*args, check=True):
    return lab_ssh.playbook(*args, inventories=INVENTORY, check=check)


def ctl(host, args, check=True):
    """smc-etcdctl (the role's etcdctl with the member's certificate) on a member."""
    rc, out, err = host.run("/usr/local/sbin/smc-etcdctl " + args, check=check)
    return out if check else (rc, out, err)


def members(host):
    return sorted(m.get("name", "") for m in json.loads(ctl(host, "member list -w json"))["members"])


def endpoints(names=MEMBERS):
    """The members' client URLs, at their private addresses in the lab inventory."""
    storage = lab_ssh.inventory()["children"]["storage"]["children"]
    address = {n: hv["private_ip"] for dc in storage.values() for n, hv in dc["hosts"].items()}
    return ",".join("https://%s:2379" % address[m] for m in names)


def client_python(host, script):
    """Python on a client host with the agents' etcd client (the etcd_v3.py shipped to every storage host)."""
    return host.out("cd /usr/local/lib/smc-zfs-agent && python3 - <<'PY'\n%s\nPY" % script)


def test_every_member_is_healthy_over_tls(lab):
    health = json.loads(ctl(lab["dc1-s1"], "endpoint health --cluster -w json"))
    assert len(health) == 3 and all(h["health"] for h in health), health
    assert all(h["endpoint"].startswith("https://") for h in health), health
    assert members(lab["dc2-s1"]) == sorted(MEMBERS)


def test_a_client_without_a_certificate_or_with_another_cas_is_refused(lab, tmp_path):
    host, eps = lab["dc1-s2"], endpoints()
    base = "ETCDCTL_API=3 etcdctl --endpoints %s --dial-timeout 3s --command-timeout 5s " % eps
    rc, _out, _err = host.run(base + "--cacert %s/ca.crt get /x" % CLIENT_DIR, check=False)
    assert rc != 0, "a client without a certificate was served"
    rc, _out, _err = host.run(base.replace("https://", "http://") + "get /x", check=False)
    assert rc != 0, "plain HTTP was served"
    # A certificate for the same name, signed by a CA of its own.
    other = str(tmp_path / "other-ca")
    pem, _created = tls_ca.ensure_ca(other, "not-the-coordination-ca")
    host.run("mkdir -p /tmp/other && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
             "-out /tmp/other/k.pem 2>/dev/null")
    csr = host.out("openssl req -new -key /tmp/other/k.pem -subj /CN=dc1-s2")
    cert = tls_ca.sign(other, csr, "dc1-s2", [], usage="client")
    host.run("cat > /tmp/other/c.pem <<'EOF'\n%sEOF" % cert)
    rc, _out, _err = host.run(base + "--cacert %s/ca.crt --cert /tmp/other/c.pem --key /tmp/other/k.pem get /x"
                              % CLIENT_DIR, check=False)
    assert rc != 0, "a certificate from another CA was accepted"
    assert pem not in host.out("cat %s/ca.crt" % CLIENT_DIR)


def test_the_agents_client_writes_and_reads_with_its_certificate(lab):
    script = """
import json, etcd_v3
c = etcd_v3.Client(%r, ca_file=%r, cert_file=%r, key_file=%r)
c.put("/smc-test/client/{host}", "written by {host}")
print(json.dumps(c.range("/smc-test/client/")))
""" % (endpoints().split(","), CLIENT_DIR + "/ca.crt", CLIENT_DIR + "/client.crt", CLIENT_DIR + "/client.key")
    for name in ("dc1-s2", "dc2-s2"):
        client_python(lab[name], script.replace("{host}", name))
    seen = ctl(lab["dc3-s1"], "get --prefix /smc-test/client/ --print-value-only").split()
    assert seen.count("written") == 2 and "dc1-s2" in seen and "dc2-s2" in seen, seen


def put_known(host, prefix, count):
    """``count`` keys with known values, written through the member's etcdctl; returns them."""
    want = {"%s/%03d" % (prefix, i): "value-%d-%s" % (i, "x" * (i % 7)) for i in range(count)}
    host.run("\n".join("/usr/local/sbin/smc-etcdctl put %s %s >/dev/null" % (k, v) for k, v in want.items()))
    return want


def read_prefix(host, prefix, endpoint=None):
    env = "SMC_ETCD_ENDPOINTS=%s " % endpoint if endpoint else ""
    lines = host.out("%s/usr/local/sbin/smc-etcdctl get --prefix %s/" % (env, prefix)).splitlines()
    return dict(zip(lines[0::2], lines[1::2]))


def test_a_backup_restores_every_key_written(lab, tmp_path):
    want = put_known(lab["dc2-s1"], "/smc-test/backup", 50)
    backups = tmp_path / "backups"
    _rc, out = playbook("playbooks/coordination_backup.yml", "-e", "coordination_backup_dir=%s" % backups)
    assert "etcd snapshot from dc" in out, out[-2000:]
    files = sorted(backups.glob("etcd-*.db"))
    assert len(files) == 1, files
    # Restore it into an etcd of its own on the controller and read the keys back.
    etcd = LocalEtcd(tmp_path / "restored", name="restored")
    subprocess.run(["etcdctl", "snapshot", "restore", str(files[0]), "--data-dir", etcd.data_dir, "--name", "restored",
                    "--initial-cluster", etcd.initial_cluster, "--initial-advertise-peer-urls", etcd.peer_url],
                   check=True, capture_output=True, env=dict(os.environ, ETCDCTL_API="3"))
    etcd.start()
    try:
        got = subprocess.run(["etcdctl", "--endpoints", etcd.url, "get", "--prefix", "/smc-test/backup/"],
                             check=True, capture_output=True, text=True, env=dict(os.environ, ETCDCTL_API="3"))
        lines = got.stdout.splitlines()
        assert dict(zip(lines[0::2], lines[1::2])) == want
    finally:
        etcd.stop()


def test_the_status_playbook_shows_every_member_healthy_and_the_leader():
    _rc, out = playbook("playbooks/status.yml")
    assert "etcd: 3 of 3 members healthy, leader https://" in out, out[-3000:]


def test_a_member_removed_and_joined_again_keeps_every_key(lab):
    want = put_known(lab["dc1-s1"], "/smc-test/membership", 30)
    rc, out = playbook("playbooks/coordination_remove_member.yml", "-e", "coordination_remove=dc3-s1", check=False)
    assert rc != 0 and "coordination_confirm_remove must repeat it" in out, out[-2000:]
    confirm = ["-e", "coordination_remove=dc3-s1", "-e", "coordination_confirm_remove=dc3-s1"]
    playbook("--check", "playbooks/coordination_remove_member.yml", *confirm)
    assert members(lab["dc1-s1"]) == sorted(MEMBERS), "--check removed a member"
    _rc, out = playbook("playbooks/coordination_remove_member.yml", *confirm)
    assert "removed etcd member dc3-s1" in out, out[-2000:]
    assert members(lab["dc1-s1"]) == ["dc1-s1", "dc2-s1"]
    assert read_prefix(lab["dc2-s1"], "/smc-test/membership") == want
    kept = lab["dc3-s1"].out("ls -d /var/lib/smc-etcd.removed-* && ls /var/lib/smc-etcd.removed-*/member").split()
    assert kept and "wal" in kept, kept
    assert lab["dc3-s1"].run("systemctl is-active -q smc-etcd", check=False)[0] != 0
    more = put_known(lab["dc1-s1"], "/smc-test/membership-while-two", 10)
    # dc3-s1 is still in group coordination: the next run joins it again, with no data of its own.
    started = time.monotonic()
    _rc, out = playbook("playbooks/coordination.yml")
    print("\nrejoin: playbooks/coordination.yml took %.1f s" % (time.monotonic() - started))
    assert "join of dc3-s1" in out, out[-2000:]
    assert members(lab["dc1-s1"]) == sorted(MEMBERS)
    local = "https://127.0.0.1:2379"
    assert read_prefix(lab["dc3-s1"], "/smc-test/membership", local) == want
    assert read_prefix(lab["dc3-s1"], "/smc-test/membership-while-two", local) == more


def test_a_check_run_after_the_join_changes_nothing(lab):
    _rc, out = playbook("--check", "playbooks/coordination.yml")
    assert "changed=0" in out and "failed=0" in out, out[-2000:]
    assert members(lab["dc1-s1"]) == sorted(MEMBERS)


def test_a_dead_member_is_removed_and_a_new_host_joins_in_its_place_with_every_key(lab, tmp_path):
    """dc3-s1's VM is destroyed (a dead host: its SSH port refuses); the remove playbook takes it out of the
    cluster all the same and says it could not stop it; dc3-s2, added to group coordination, joins as the third
    member and holds every key. The scenario's end restores the lab, dc3-s1 included."""
    want = put_known(lab["dc1-s1"], "/smc-test/replaced", 20)
    subprocess.run(["virsh", "-c", "qemu:///system", "destroy", "dc3-s1"], check=True, capture_output=True)
    more = put_known(lab["dc2-s1"], "/smc-test/replaced-while-dead", 10)  # two of three: still a quorum
    confirm = ["-e", "coordination_remove=dc3-s1", "-e", "coordination_confirm_remove=dc3-s1"]
    _rc, out = playbook("playbooks/coordination_remove_member.yml", *confirm)
    assert "removed etcd member dc3-s1" in out and "dc3-s1 did not answer" in out, out[-2000:]
    assert members(lab["dc1-s1"]) == ["dc1-s1", "dc2-s1"]
    with open(INVENTORY[1], encoding="utf-8") as f:
        groups = f.read().replace("        dc3-s1:\n", "        dc3-s2:\n")
    assert "dc3-s1" not in groups
    (tmp_path / "groups.yml").write_text(groups, encoding="utf-8")
    replaced = [lab_ssh.INVENTORY, str(tmp_path / "groups.yml")]
    started = time.monotonic()
    _rc, out = lab_ssh.playbook("playbooks/coordination.yml", inventories=replaced)
    print("\nreplacement: playbooks/coordination.yml took %.1f s" % (time.monotonic() - started))
    assert "join of dc3-s2" in out, out[-2000:]
    assert members(lab["dc1-s1"]) == ["dc1-s1", "dc2-s1", "dc3-s2"]
    local = "https://127.0.0.1:2379"
    assert read_prefix(lab["dc3-s2"], "/smc-test/replaced", local) == want
    assert read_prefix(lab["dc3-s2"], "/smc-test/replaced-while-dead", local) == more
    health = json.loads(ctl(lab["dc1-s1"], "endpoint health --cluster -w json"))
    assert sorted(h["endpoint"] for h in health if h["health"]) == sorted(
        endpoints(("dc1-s1", "dc2-s1", "dc3-s2")).split(",")), health
