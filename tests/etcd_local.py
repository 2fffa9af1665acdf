"""A real etcd member on 127.0.0.1 for unit tests (Debian's etcd-server, which ``make deps`` installs).

``LocalEtcd(data_dir)`` picks two free loopback ports; ``start()`` waits until the member answers, ``stop()``
ends the process it started (by PID) and ``restart()`` does both on the same ports and data.
"""
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalEtcd:
    def __init__(self, data_dir):
        self.binary = shutil.which("etcd") or "/usr/bin/etcd"
        if not os.path.exists(self.binary):
            raise RuntimeError("etcd is not installed: run 'make deps' (it installs Debian's etcd-server)")
        self.data_dir = str(data_dir)
        self.client_port, self.peer_port = free_port(), free_port()
        self.url = "http://127.0.0.1:%d" % self.client_port
        self.proc = None

    def start(self, wait=30.0):
        peer = "http://127.0.0.1:%d" % self.peer_port
        log = open(os.path.join(os.path.dirname(self.data_dir), "etcd-%d.log" % self.client_port), "ab")
        self.proc = subprocess.Popen(
            [self.binary, "--name", "unit", "--data-dir", self.data_dir,
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", "unit=" + peer],
            stdout=log, stderr=log)
        log.close()
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
