"""The lab refuses bad host state with a clear message and starts nothing.

Runs tests/lab/lab_up.yml for a one-VM lab in a data center named `zz` (never part of the real lab), so the
running lab is not touched, and checks that no domain of that lab was defined or started.
"""
import os
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def lab_up(*extra):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"))
    cmd = [os.path.join(BIN, "ansible-playbook"), "tests/lab/lab_up.yml", "-e", '{"lab_dcs": ["zz"]}',
           "-e", "lab_hosts_per_dc=1", "-e", f"lab_inventory={ROOT}/build/zz-hosts.yml"] + list(extra)
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)


def zz_domains():
    out = subprocess.run(["virsh", "-c", "qemu:///system", "list", "--all", "--name"],
                         capture_output=True, text=True, check=False).stdout.split()
    return [d for d in out if d.startswith("zz-")]


@pytest.fixture
def taken_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_port_taken_by_another_program(taken_port):
    # zz-s1 is index 1, so its SSH port is base + 1.
    proc = lab_up("-e", f"lab_ssh_port_base={taken_port - 1}")
    assert proc.returncode != 0
    assert f"127.0.0.1:{taken_port}" in proc.stdout and "already in use" in proc.stdout
    assert "Nothing was started" in proc.stdout
    assert zz_domains() == []


def test_too_little_disk():
    proc = lab_up("-e", "lab_min_free_gb=100000000")
    assert proc.returncode != 0
    assert "the lab needs 100000000 GiB" in proc.stdout and "SMC_LAB_CACHE" in proc.stdout
    assert zz_domains() == []


def test_missing_tun_device():
    proc = lab_up("-e", "lab_tun_device=/dev/net/no-such-tun")
    assert proc.returncode != 0
    assert "/dev/net/no-such-tun is missing" in proc.stdout and "Nothing was changed" in proc.stdout
    assert zz_domains() == []


def test_no_python_312_is_a_clear_error(tmp_path):
    # Only an old Python on PATH and no pyenv: the finder says what to do and exits non-zero.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to("/usr/bin/python3")  # Debian 12's 3.11
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(tmp_path), "PYENV_ROOT": str(tmp_path / "nopyenv")}
    proc = subprocess.run(["bash", "tests/lab/find-python.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=False)
    assert proc.returncode != 0
    assert "no Python >= 3.12 found" in proc.stderr and "pyenv install 3.12" in proc.stderr
