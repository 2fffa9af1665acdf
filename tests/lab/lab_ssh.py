"""Direct SSH to the lab hosts (one persistent connection per host), for scenario tests that act on several hosts.

testinfra's ansible backend starts an ansible process per command (seconds each on this lab); the replication
and chaos tests run hundreds of commands, so they talk to the hosts with OpenSSH through one ControlMaster
each, with the lab inventory's address, port and key. ``lab_hosts`` also gives each host's VM name and tap,
for tests that pause a VM or unplug it from the private bridge.
"""
import json
import os
import shlex
import subprocess

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INVENTORY = os.path.join(ROOT, "inventory", "lab", "hosts.yml")


class Host:
    def __init__(self, name, address, port, key, control_dir, tap=None):
        self.name, self.tap = name, tap
        self.base = ["ssh", "-i", key, "-p", str(port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                     "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ControlMaster=auto",
                     "-o", "ControlPersist=300", "-o", "ControlPath=%s/%%C" % control_dir,
                     "-o", "ServerAliveInterval=10", "-o", "ConnectTimeout=120", "root@%s" % address]

    def run(self, script, check=True, timeout=600):
        """Run a shell script on the host; returns (rc, stdout, stderr)."""
        p = subprocess.run(self.base + ["bash -s"], input=script, capture_output=True, text=True, timeout=timeout,
                           check=False)
        if check and p.returncode != 0:
            raise AssertionError("%s: rc=%d\n--- script\n%s\n--- stdout\n%s\n--- stderr\n%s"
                                 % (self.name, p.returncode, script, p.stdout[-3000:], p.stderr[-3000:]))
        return p.returncode, p.stdout, p.stderr

    def out(self, script, **kw):
        return self.run(script, **kw)[1]

    def popen(self, script):
        return subprocess.Popen(self.base + ["bash -c %s" % shlex.quote(script)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def forget_connection(self):
        """Close the ControlMaster (after a pause or a network cut its session may be dead)."""
        subprocess.run(self.base[:-1] + ["-O", "exit", self.base[-1]], capture_output=True, check=False, timeout=30)


def _walk(tree):
    for name, value in (tree.get("hosts") or {}).items():
        yield name, value or {}
    for child in (tree.get("children") or {}).values():
        yield from _walk(child or {})


def inventory():
    with open(INVENTORY, encoding="utf-8") as f:
        return yaml.safe_load(f)["all"]


def lab_hosts(control_dir):
    """{name: Host} of the storage group, and the inventory's top-level vars."""
    inv = inventory()
    common = inv.get("vars") or {}
    hosts = {}
    for name, hv in _walk(inv["children"]["storage"]):
        hv = dict(common, **hv)
        hosts[name] = Host(name, hv["ansible_host"], hv.get("ansible_port", 22), hv["ansible_ssh_private_key_file"],
                           control_dir, tap=hv.get("smc_lab_tap"))
    return hosts, common


# What the scenario tests ask of a project's copy, the same way in every scenario.
AGENT = "/usr/local/sbin/smc-zfs-agent"


def agent(host, command, check=True, timeout=600):
    """smc-zfs-agent COMMAND on the host; its JSON report (or {rc, stderr} when it printed none)."""
    rc, out, err = host.run("%s %s" % (AGENT, command), check=False, timeout=timeout)
    if check and rc != 0:
        raise AssertionError("%s: smc-zfs-agent %s rc=%d\n%s\n%s" % (host.name, command, rc, out[-3000:], err[-3000:]))
    return json.loads(out) if out.strip().startswith("{") else {"rc": rc, "stderr": err}


def guids(host, ds):
    """{dataset@snapshot: guid} of one copy ({} when it does not exist)."""
    out = host.out("zfs list -H -p -t snapshot -o name,guid -d 1 %s 2>/dev/null || true" % ds)
    return dict(line.split("\t") for line in out.splitlines())


def write_known(host, ds, name, mib):
    """Random bytes into a writable copy; returns their sha256 (computed on the host)."""
    return host.out("set -e; mp=$(zfs get -H -o value mountpoint %s); head -c %dM /dev/urandom > \"$mp/%s\"; "
                    "sync; sha256sum \"$mp/%s\" | cut -d' ' -f1" % (ds, mib, name, name)).strip()


def checksums(host, ds):
    """{file: sha256} of the f-* files of a copy, mounting it read-only for the read when it is not mounted."""
    out = host.out("""set -e
ds=%s
mp=$(zfs get -H -o value mountpoint "$ds")
if [ "$(zfs get -H -o value mounted "$ds")" = no ]; then
  zfs mount -o ro "$ds"; trap 'zfs unmount "$ds"' EXIT
fi
(cd "$mp" && find . -maxdepth 1 -type f -name 'f-*' -exec sha256sum {} + | sort -k2)
""" % ds)
    return dict((line.split()[1][2:], line.split()[0]) for line in out.splitlines())


def playbook(*args, inventories=None, check=True):
    """ansible-playbook from this checkout against the lab, as ops run it: (rc, its output on one line, the
    callback's wrapping undone). ``check``: fail the test on a non-zero rc, with the output's end."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"))
    env.pop("ANSIBLE_INVENTORY", None)
    command = ["ansible-playbook"] + [arg for path in inventories or [INVENTORY] for arg in ("-i", path)] + list(args)
    p = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900, check=False)
    if check:
        assert p.returncode == 0, p.stdout[-5000:] + p.stderr[-3000:]
    return p.returncode, " ".join(p.stdout.split())
