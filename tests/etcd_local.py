"""A real etcd member on 127.0.0.1 for unit tests (Debian's etcd-server, which ``make deps`` installs).

``LocalEtcd(data_dir)`` picks two free loopback ports; ``start()`` waits until the member answers, ``stop()``
ends the process it started (by PID) and ``restart()`` does both on the same ports and data.
``local_cluster(base_dir, 3)`` makes three members of one cluster (short raft timings, so a member that lost
its peers knows it within seconds); start them with ``start_all``.
"""
import json
import os
import shutil
import subprocess
import time
import urllib.request

from local_ports import free_port  # pylint: disable=import-error


class LocalEtcd:
    def __init__(self, data_dir, name="unit"):
        self.binary = shutil.which("etcd") or "/usr/bin/etcd"
        if not os.path.exists(self.binary):
            raise RuntimeError("etcd is not installed: run 'make deps' (it installs Debian's etcd-server)")
        self.data_dir, self.name = str(data_dir), name
        self.client_port, self.peer_port = free_port(), free_port()
        self.url = "http://127.0.0.1:%d" % self.client_port
        self.peer_url = "http://127.0.0.1:%d" % self.peer_port
        self.initial_cluster = "%s=%s" % (name, self.peer_url)
        self.extra = []
        self.proc = None

    def launch(self):
        """Start the process without waiting for it (a cluster's members answer only once a quorum is up)."""
        log = open(os.path.join(os.path.dirname(self.data_dir), "etcd-%d.log" % self.client_port), "ab")
        self.proc = subprocess.Popen(
            [self.binary, "--name", self.name, "--data-dir", self.data_dir,
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
             "--initial-cluster", self.initial_cluster] + self.extra,
            stdout=log, stderr=log)
        log.close()
        return self

    def start(self, wait=30.0):
        self.launch()
        return self.wait_healthy(wait)

    def wait_healthy(self, wait=30.0):
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as resp:
                    if json.load(resp).get("health") == "true":
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("etcd did not answer at %s within %.0f s" % (self.url, wait))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()


def local_cluster(base_dir, size=3):
    """``size`` members of one cluster under ``base_dir`` (not started)."""
    members = [LocalEtcd(os.path.join(str(base_dir), "m%d" % i), name="m%d" % i) for i in range(size)]
    initial = ",".join("%s=%s" % (m.name, m.peer_url) for m in members)
    for m in members:
        m.initial_cluster = initial
        m.extra = ["--heartbeat-interval", "100", "--election-timeout", "500"]
    return members


def start_all(members, wait=30.0):
    for m in members:
        m.launch()
    for m in members:
        m.wait_healthy(wait)
    return members
