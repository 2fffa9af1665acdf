"""roles/onprem_vm/files/wait-boot.py: waits follow each VM's console, not a fixed clock."""
import importlib.util
import os
import socket
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
WAIT_BOOT = os.path.join(ROOT, "roles", "onprem_vm", "files", "wait-boot.py")
SPEC = importlib.util.spec_from_file_location("wait_boot", WAIT_BOOT)
wait_boot = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(wait_boot)


class FakeGuest:
    """A loopback port that accepts like qemu's forward; it sends an SSH banner once sshd 'starts'."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.sshd = threading.Event()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn = self.sock.accept()[0]
            except OSError:
                return
            with conn:
                if self.sshd.is_set():
                    conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")

    def close(self):
        self.sock.close()


@pytest.fixture
def guest():
    fake = FakeGuest()
    yield fake
    fake.close()


def test_a_vm_answering_ssh_is_up(guest, tmp_path, capsys):
    serial = tmp_path / "serial.log"
    serial.write_text("[    0.000000] Linux version 6.1\n")
    guest.sshd.set()
    assert wait_boot.main(["--stall", "5", "dc1-s1:%d:%s" % (guest.port, serial)]) == 0
    assert "dc1-s1: 0 s" in capsys.readouterr().out


def test_a_silent_console_without_ssh_fails_naming_the_vm_and_its_last_line(guest, tmp_path, capsys):
    serial = tmp_path / "serial.log"
    serial.write_text("Begin: Loading essential drivers ...\n")
    # qemu's forward accepts connections before sshd runs: an accepted connection is not SSH.
    assert wait_boot.main(["--stall", "1", "dc2-s1:%d:%s" % (guest.port, serial)]) == 1
    out = capsys.readouterr()
    assert "dc2-s1" in out.err and "console silent for 1 s" in out.err
    assert "Loading essential drivers" in out.out


def test_a_slow_vm_that_keeps_printing_is_waited_for_past_the_stall_time(guest, tmp_path, capsys):
    serial = tmp_path / "serial.log"
    serial.write_text("")

    def boot_slowly():
        for i in range(10):
            with open(serial, "a", encoding="utf-8") as log:
                log.write("[  %d.0] still booting\n" % i)
            time.sleep(0.4)
        guest.sshd.set()

    threading.Thread(target=boot_slowly, daemon=True).start()
    assert wait_boot.main(["--stall", "2", "dc3-s2:%d:%s" % (guest.port, serial)]) == 0
    took = int(capsys.readouterr().out.split("dc3-s2: ")[1].split(" s")[0])
    assert took >= 3  # longer than the stall time: progress, not the clock, decided


def test_the_overall_timeout_bounds_even_a_printing_vm(guest, tmp_path):
    serial = tmp_path / "serial.log"
    stop = threading.Event()

    def chatter():
        while not stop.is_set():
            with open(serial, "a", encoding="utf-8") as log:
                log.write("noise\n")
            time.sleep(0.2)

    threading.Thread(target=chatter, daemon=True).start()
    try:
        assert wait_boot.main(["--stall", "60", "--timeout", "2", "vm:%d:%s" % (guest.port, serial)]) == 1
    finally:
        stop.set()


def test_progress_lines_name_each_vm(guest, tmp_path, monkeypatch):
    serial, progress = tmp_path / "serial.log", tmp_path / "progress.log"
    serial.write_text("systemd[1]: Starting zfs-load-module.service\n")
    monkeypatch.setattr(wait_boot.time, "sleep", lambda _s: None)
    clock = iter(range(0, 10000, 5))
    monkeypatch.setattr(wait_boot.time, "monotonic", lambda: next(clock))
    assert wait_boot.main(["--stall", "40", "--progress", str(progress), "a:%d:%s" % (guest.port, serial)]) == 1
    assert "a=booting: systemd[1]: Starting zfs-load-module" in progress.read_text()


def test_console_lines_are_shown_without_terminal_escapes(tmp_path):
    serial = tmp_path / "serial.log"
    serial.write_bytes(b"\x1b[0;32m  OK  \x1b[0m] Reached target\r\x1b[K[ \x1b[0;31m*\x1b[0m] Job networking.service\n")
    assert wait_boot.last_console_line(str(serial)) == "[ *] Job networking.service"
