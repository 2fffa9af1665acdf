"""Wait until every VM answers on its forwarded SSH port, judging progress by its serial console.

    wait-boot.py [--stall S] [--timeout T] [--progress FILE] NAME:PORT:SERIAL_LOG ...

A VM counts as up when 127.0.0.1:PORT sends an SSH banner. A VM fails only when its console log has not grown
for S seconds while SSH still does not answer (the boot stalled), or after T seconds in all. A slow VM that
keeps printing is waited for. Prints one line per VM (seconds to SSH) and exits 0 when all answered; otherwise
prints which VMs stalled with their last console line and exits 1. Standard library only.
"""
import argparse
import os
import re
import socket
import sys
import time


def ssh_banner(port, timeout=15.0):
    """True when 127.0.0.1:port answers with an SSH banner (qemu's forward accepts before sshd runs). A guest
    short of CPU (TCG, several booting at once) can need seconds for the banner: a probe that gives up sooner
    misses it each time, and leaves sshd a child to start for nothing."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            return conn.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def console_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]")


def last_console_line(path, limit=4096):
    try:
        with open(path, "rb") as log:
            log.seek(max(0, console_size(path) - limit))
            text = ANSI.sub("", log.read().decode("utf-8", "replace").replace("\r", "\n"))
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    except OSError:
        return "(no console log)"
    return lines[-1][-120:] if lines else "(console empty)"


def parse_vm(spec):
    name, port, serial = spec.split(":", 2)
    return {"name": name, "port": int(port), "serial": serial, "size": -1, "moved": time.monotonic(), "up": None}


def poll(vm, now):
    """Update one VM's state; returns 'up', 'stalled' or 'booting'."""
    if vm["up"] is not None:
        return "up"
    size = console_size(vm["serial"])
    if size != vm["size"]:
        vm["size"], vm["moved"] = size, now
    if ssh_banner(vm["port"]):
        vm["up"] = now
        return "up"
    return "booting"


def wait(vms, stall, timeout, progress):
    start = last_report = time.monotonic()
    while True:
        now = time.monotonic()
        states = {vm["name"]: poll(vm, now) for vm in vms}
        stalled = [vm for vm in vms if vm["up"] is None and now - vm["moved"] > stall]
        if all(s == "up" for s in states.values()) or stalled or now - start > timeout:
            return start, stalled
        if progress and now - last_report >= 15:
            last_report = now
            line = "%4ds " % (now - start) + "  ".join(
                "%s=%s" % (vm["name"], "up" if vm["up"] else "booting: " + last_console_line(vm["serial"])[:40])
                for vm in vms)
            progress.write(line + "\n")
            progress.flush()
        time.sleep(2)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stall", type=int, default=300)
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument("--progress", default="")
    parser.add_argument("vms", nargs="+", type=parse_vm)
    args = parser.parse_args(argv)
    progress = open(args.progress, "a", encoding="utf-8") if args.progress else None
    try:
        start, stalled = wait(args.vms, args.stall, args.timeout, progress)
    finally:
        if progress:
            progress.close()
    for vm in args.vms:
        took = "%d s" % (vm["up"] - start) if vm["up"] is not None else "no SSH"
        print("%s: %s (last console line: %s)" % (vm["name"], took, last_console_line(vm["serial"])))
    down = [vm["name"] for vm in args.vms if vm["up"] is None]
    if down:
        why = "console silent for %d s" % args.stall if stalled else "still booting after %d s" % args.timeout
        sys.stderr.write("VMs without SSH: %s (%s). Their serial logs tell how far boot got; re-running "
                         "finishes what this run started.\n" % (", ".join(down), why))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
