"""End to end: playbooks/provision_gce.yml and ansible-inventory against the GCE endpoint.

The endpoint runs as its own process (``python -m gce_endpoint``) on 127.0.0.1, a random port.
"""
import json
import os
import re
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BIN = os.path.dirname(sys.executable)
TOKEN = "e2e-token-5f0c2a9b"
ZONES = ["us-central1-a", "us-central1-b"]


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    port_file = tmp_path_factory.mktemp("gce") / "port"
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "tests"))
    proc = subprocess.Popen([sys.executable, "-m", "gce_endpoint", "--port", "0", "--port-file", str(port_file),
                             "--op-seconds", "0.05", "--token", TOKEN], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"endpoint did not start: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port_file.read_text()}"
    proc.terminate()
    proc.wait(timeout=10)


def ansible_env():
    return dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"), ANSIBLE_NOCOLOR="1",
                ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_PYTHON_INTERPRETER=sys.executable,
                PATH=BIN + os.pathsep + os.environ.get("PATH", ""))


def playbook(endpoint, **extra):
    extra_vars = {"gce_project": "e2e", "gce_dc": "lab1", "gce_zones": ZONES, "gce_count": 2,
                  "gce_machine_type": "e2-standard-2", "gce_auth_kind": "accesstoken", "gce_access_token": TOKEN,
                  "gce_api_endpoint": endpoint, "gce_wait_timeout": 30,
                  "gce_zfs_disks": [{"name": "zfs0", "size_gb": 50, "type": "pd-ssd"}]}
    extra_vars.update(extra)
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", "playbooks/provision_gce.yml",
                           "-e", json.dumps(extra_vars)], cwd=ROOT, env=ansible_env(), capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert TOKEN not in proc.stdout
    changed = sum(int(n) for n in re.findall(r"^\S+\s*:\s*ok=\d+\s+changed=(\d+)", proc.stdout, re.M))
    return changed, proc.stdout


def inventory(endpoint, tmp_path, statuses):
    config = tmp_path / "e2e.gce.yml"
    config.write_text(json.dumps({"plugin": "smc.backend.gce", "projects": ["e2e"], "auth_kind": "accesstoken",
                                  "access_token": TOKEN, "api_endpoint": endpoint, "statuses": statuses}))
    proc = subprocess.run([os.path.join(BIN, "ansible-inventory"), "-i", str(config), "--list"], cwd=ROOT,
                          env=ansible_env(), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


def unsafe(value):
    """ansible-inventory marks plugin-provided strings as {"__ansible_unsafe": ...}."""
    return value.get("__ansible_unsafe") if isinstance(value, dict) and "__ansible_unsafe" in value else value


def test_provision_rerun_relabel_stop_start_inventory_delete(endpoint, tmp_path):
    changed, out = playbook(endpoint)
    assert changed == 2  # one changed task per instance
    assert "storage-lab1-01 in us-central1-a: RUNNING (create)" in out
    assert "storage-lab1-02 in us-central1-b: RUNNING (create)" in out

    changed, out = playbook(endpoint)
    assert changed == 0 and out.count("(no change)") == 2

    changed, out = playbook(endpoint, gce_extra_labels={"tier": "hot"})
    assert changed == 2 and out.count("RUNNING (set_labels)") == 2

    changed, out = playbook(endpoint, gce_state="stopped", gce_extra_labels={"tier": "hot"})
    assert changed == 2 and out.count("TERMINATED (stop)") == 2

    changed, out = playbook(endpoint, gce_state="started", gce_extra_labels={"tier": "hot"})
    assert changed == 2 and out.count("RUNNING (start)") == 2

    inv = inventory(endpoint, tmp_path, ["RUNNING"])
    assert sorted(inv["dc_lab1"]["hosts"]) == ["storage-lab1-01", "storage-lab1-02"]
    hostvars = inv["_meta"]["hostvars"]["storage-lab1-02"]
    assert unsafe(hostvars["dc"]) == "lab1" and unsafe(hostvars["gce_zone"]) == "us-central1-b"
    labels = {k: unsafe(v) for k, v in hostvars["gce_labels"].items()}
    assert labels == {"dc": "lab1", "role": "storage", "tier": "hot"}

    changed, out = playbook(endpoint, gce_state="absent")
    assert changed == 2 and out.count("ABSENT (delete, kept disks") == 2
    assert "storage-lab1-01-zfs0" in out
    assert "dc_lab1" not in inventory(endpoint, tmp_path, [])
