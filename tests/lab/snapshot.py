"""Save and restore the whole lab in seconds: libvirt internal snapshots (memory and every disk) of all VMs.

    snapshot.py save NAME       pause every lab VM, snapshot each, resume them together
    snapshot.py restore NAME    revert every VM to NAME (paused), resume them together, set their clocks,
                                wait until each answers on SSH
    snapshot.py list            the snapshots each VM has
    snapshot.py has NAME        exit 0 when every VM has NAME
    snapshot.py save NAME --if-missing --unless-path /etc/smc
                                save only when some VM lacks NAME and no VM has the path (lab_up saves
                                'blank' this way: also on a re-run that finishes a boot an earlier run began)

The VMs, their SSH ports, taps and key come from the lab inventory (inventory/lab/hosts.yml, written by
tests/lab/lab_up.yml). All VMs are paused while they are saved and resumed at once after a revert, so the
guests' clocks, tinc sessions and TCP peers agree with one another. A reverted guest's clock is set to the
controller's time over SSH, so snapshot names and leases see real time. Controller SSH masters to the lab
(ControlPersist sockets in the lab's own control directory) are closed first: their guest ends are rewound.
The lab's etcd members (tests/lab/etcd_lab.py) are saved and restored with the VMs, while the VMs are paused,
so the agents' leases and etcd's primaries stay the ones the VMs remember.
"""
import argparse
import concurrent.futures
import glob
import os
import shlex
import socket
import subprocess
import sys
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import etcd_lab  # noqa: E402 (next to this file)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIBVIRT = "qemu:///system"
NETNS_SH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "netns.sh")


class LabError(Exception):
    """A refusal with the reason and the fix."""


def lab_hosts(inventory):
    """Host name -> {port, tap} for every host of the lab inventory, plus the inventory's top-level vars."""
    def walk(group, out):
        for name, hvars in (group.get("hosts") or {}).items():
            out[name] = hvars or {}
        for child in (group.get("children") or {}).values():
            walk(child or {}, out)
        return out
    top = (inventory or {}).get("all") or {}
    hosts = {name: {"port": int(h["ansible_port"]), "tap": h.get("smc_lab_tap")}
             for name, h in walk(top, {}).items() if "ansible_port" in h}
    return hosts, top.get("vars") or {}


def load_inventory(path):
    if not os.path.exists(path):
        raise LabError("%s does not exist: the lab is not up. Fix: make lab-up (or make lab)" % path)
    with open(path, encoding="utf-8") as handle:
        hosts, top = lab_hosts(yaml.safe_load(handle))
    if not hosts:
        raise LabError("%s lists no lab hosts with an ansible_port. Fix: make lab-up rewrites it" % path)
    return hosts, top


def virsh(*args, check=True):
    proc = subprocess.run(["virsh", "-q", "-c", LIBVIRT] + list(args), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise LabError("virsh %s failed: %s" % (" ".join(args), (proc.stderr or proc.stdout).strip()))
    return proc.stdout


def on_all(func, names):
    """Run func(name) for every VM at once; the first failure is raised after all have finished."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(names)) as pool:
        futures = {name: pool.submit(func, name) for name in names}
    return {name: fut.result() for name, fut in futures.items()}


def snapshots_of(name):
    return virsh("snapshot-list", name, "--name", check=False).split()


def close_ssh_masters(control_dir):
    """End the controller's SSH masters into the lab: after a save or revert their guest side is gone."""
    closed = 0
    for sock in glob.glob(os.path.join(control_dir, "*")):
        subprocess.run(["ssh", "-o", "ControlPath=" + sock, "-O", "exit", "lab"], capture_output=True, check=False)
        closed += 1
    return closed


def with_etcd(top):
    """Whether this lab has etcd members (its inventory names their endpoints); points etcd_lab at its net."""
    if not top.get("smc_etcd_endpoints"):
        return False
    etcd_lab.NETNS = top.get("smc_lab_netns", etcd_lab.NETNS)
    etcd_lab.BRIDGE = top.get("smc_lab_bridge", etcd_lab.BRIDGE)
    return True


def save(hosts, name, etcd=False):
    names = sorted(hosts)
    on_all(lambda vm: virsh("snapshot-delete", vm, name) if name in snapshots_of(vm) else None, names)
    on_all(lambda vm: virsh("suspend", vm), names)
    try:
        on_all(lambda vm: virsh("snapshot-create-as", vm, name, "--description", "smc lab: " + name, "--atomic"),
               names)
        if etcd:
            etcd_lab.save(name)
    finally:
        on_all(lambda vm: virsh("resume", vm, check=False), names)


def revert(hosts, top, name, etcd=False):
    """Revert every VM to snapshot NAME and resume them together.

    libvirt reverts a running domain by starting a new qemu from the snapshot, and qemu opens the VM's tap in
    the host namespace. So every VM is stopped first, its tap brought back from the lab's namespace, the qemu
    started paused from the snapshot, the tap put back on the bridge, and only then are all VMs resumed.
    """
    names = sorted(hosts)
    missing = [vm for vm in names if name not in snapshots_of(vm)]
    if missing:
        raise LabError("no snapshot %r on %s. Fix: make lab (saves 'blank' and 'converged') or "
                       "tests/lab/snapshot.py save %s" % (name, ", ".join(missing), name))
    if etcd and not etcd_lab.has(name):
        raise LabError("no etcd snapshot %r for the lab's etcd members. Fix: make lab" % name)
    active = set(virsh("list", "--state-running", "--state-paused", "--name").split())
    on_all(lambda vm: virsh("destroy", vm) if vm in active else None, names)
    if etcd:
        etcd_lab.restore(name, wait=False)
    on_all(lambda vm: netns(top, "prepare-tap", hosts[vm]["tap"]), names)
    on_all(lambda vm: virsh("snapshot-revert", vm, name, "--paused"), names)
    on_all(lambda vm: netns(top, "attach-tap", hosts[vm]["tap"]), names)
    if etcd:
        etcd_lab.wait_healthy()
    on_all(lambda vm: virsh("resume", vm), names)


def netns(top, action, tap):
    """tests/lab/netns.sh prepare-tap|attach-tap for one VM's tap (the lab's namespace and bridge)."""
    args = [NETNS_SH, action, top["smc_lab_netns"]] + ([top["smc_lab_bridge"]] if action == "attach-tap" else [])
    proc = subprocess.run(args + [tap], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LabError("netns.sh %s %s failed: %s" % (action, tap, proc.stderr.strip()))


def ssh_banner(port, wait=60):
    """Whether the guest's sshd sends its banner within ``wait`` seconds. A just-resumed TCG guest can need tens of
    seconds for it (sshd re-executes itself per connection); a probe that gave up after 3 s never saw it, and
    every abandoned probe left sshd one more child to start on a guest already short of CPU."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.settimeout(wait)
            return conn.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def ssh_cmd(port, key):
    return ["ssh", "-i", key, "-p", str(port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=120",
            "-o", "ControlMaster=no", "root@127.0.0.1"]


def hosts_with_path(hosts, key, path):
    """The VMs on which PATH exists (asked over SSH, all at once)."""
    def has(vm):
        proc = subprocess.run(ssh_cmd(hosts[vm]["port"], key) + ["test -e " + shlex.quote(path)],
                              capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode not in (0, 1):
            raise LabError("cannot ask %s whether %s exists: %s" % (vm, path, proc.stderr.strip()))
        return proc.returncode == 0
    return sorted(vm for vm, found in on_all(has, sorted(hosts)).items() if found)


def set_clock(port, key, deadline):
    """Wait for SSH, then set the guest's clock to ours; returns seconds until it answered."""
    start = time.monotonic()
    while not ssh_banner(port, wait=max(10, min(60, deadline - time.monotonic()))):
        if time.monotonic() > deadline:
            raise LabError("127.0.0.1:%d gives no SSH banner after the revert" % port)
        time.sleep(1)
    proc = subprocess.run(ssh_cmd(port, key) + ["date -u -s @%.3f >/dev/null" % time.time()], capture_output=True, text=True,
                          timeout=max(30, deadline - time.monotonic()), check=False)
    if proc.returncode != 0:
        raise LabError("setting the clock over SSH on port %d failed: %s" % (port, proc.stderr.strip()))
    return time.monotonic() - start


def restore(hosts, top, name, timeout):
    begin = time.monotonic()
    revert(hosts, top, name, etcd=with_etcd(top))
    reverted = time.monotonic() - begin
    deadline = time.monotonic() + timeout
    answered = on_all(lambda vm: set_clock(hosts[vm]["port"], top["ansible_ssh_private_key_file"], deadline),
                      sorted(hosts))
    return reverted, answered, time.monotonic() - begin


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["save", "restore", "list", "has"])
    parser.add_argument("name", nargs="?", default="")
    parser.add_argument("--inventory", default=os.path.join(ROOT, "inventory", "lab", "hosts.yml"))
    parser.add_argument("--timeout", type=int, default=300, help="seconds to wait for SSH after a revert")
    parser.add_argument("--if-missing", action="store_true", help="save: only when some VM lacks NAME")
    parser.add_argument("--unless-path", default="", help="save: not when any VM has this path")
    args = parser.parse_args(argv)
    if args.action != "list" and not args.name:
        parser.error("%s needs a snapshot NAME (blank or converged)" % args.action)
    cache = os.environ.get("SMC_LAB_CACHE") or os.path.expanduser("~/.cache/smc-lab")
    control_dir = os.environ.get("ANSIBLE_SSH_CONTROL_PATH_DIR") or os.path.join(cache, "ssh-cp")
    try:
        hosts, top = load_inventory(args.inventory)
        if args.action == "list":
            for vm in sorted(hosts):
                print("%-8s %s" % (vm, " ".join(snapshots_of(vm)) or "(none)"))
            return 0
        if args.action == "has":
            return 0 if all(args.name in snapshots_of(vm) for vm in hosts) else 1
        close_ssh_masters(control_dir)
        start = time.monotonic()
        if args.action == "save":
            if args.if_missing and all(args.name in snapshots_of(vm) for vm in hosts):
                print("lab snapshot %r already on every VM; kept" % args.name)
                return 0
            found = hosts_with_path(hosts, top["ansible_ssh_private_key_file"], args.unless_path) \
                if args.unless_path else []
            if found:
                print("lab snapshot %r not saved: %s already on %s" % (args.name, args.unless_path, ", ".join(found)))
                return 0
            save(hosts, args.name, etcd=with_etcd(top))
            print("lab snapshot %r saved on %d VMs in %.1f s" % (args.name, len(hosts), time.monotonic() - start))
            return 0
        reverted, answered, total = restore(hosts, top, args.name, args.timeout)
        print("lab restored to %r in %.1f s: %d VMs reverted in %.1f s, all answering SSH with clocks set %.1f s "
              "later (slowest %s)" % (args.name, total, len(hosts), reverted, total - reverted,
                                      max(answered, key=answered.get)))
        return 0
    except (LabError, etcd_lab.EtcdLabError) as exc:
        sys.stderr.write("lab snapshot: ERROR: %s\n" % exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
