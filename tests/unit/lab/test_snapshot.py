"""tests/lab/snapshot.py: the lab inventory it reads, and the order of a save and a revert."""
import importlib.util
import os

import jinja2
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SPEC = importlib.util.spec_from_file_location("lab_snapshot", os.path.join(ROOT, "tests", "lab", "snapshot.py"))
snapshot = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(snapshot)


class FakeEtcdLab:
    """Stands in for tests/lab/etcd_lab.py: a unit test must never stop or copy the real lab's etcd members."""
    class EtcdLabError(Exception):
        pass

    NETNS, BRIDGE = "smclab", "smcbr0"

    def __init__(self):
        self.calls = []

    def save(self, name):
        self.calls.append(("save", name))

    def restore(self, name, wait=True):
        self.calls.append(("restore", name))

    def has(self, name):
        return True

    def wait_healthy(self):
        self.calls.append(("wait_healthy",))


@pytest.fixture(autouse=True, name="etcd")
def fixture_etcd(monkeypatch):
    fake = FakeEtcdLab()
    monkeypatch.setattr(snapshot, "etcd_lab", fake)
    return fake


def rendered_inventory(tmp_path):
    """The inventory exactly as tests/lab/lab_up.yml writes it, for a 2-DC lab."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(ROOT, "tests", "lab", "templates")))
    vms = [{"name": "dc1-s1", "dc": "dc1", "port": 2221, "tap": "smct1", "private_ip": "10.77.0.11"},
           {"name": "dc2-s1", "dc": "dc2", "port": 2222, "tap": "smct2", "private_ip": "10.77.0.12"}]
    text = env.get_template("lab_hosts.yml.j2").render(
        lab_ssh_key="/k/id", lab_netns="smclab", lab_bridge="smcbr0", lab_dcs=["dc1", "dc2"], lab_vms=vms,
        lab_data_disks=2, lab_inventory_dir="/repo/inventory/lab",
        lab_etcd_endpoints=["http://10.77.0.201:2379", "http://10.77.0.202:2379"])
    path = tmp_path / "hosts.yml"
    path.write_text(text)
    return str(path)


def test_reads_every_vm_with_its_port_and_tap_from_the_generated_inventory(tmp_path):
    hosts, top = snapshot.load_inventory(rendered_inventory(tmp_path))
    assert hosts == {"dc1-s1": {"port": 2221, "tap": "smct1"}, "dc2-s1": {"port": 2222, "tap": "smct2"}}
    # the placement stays beside the lab inventory whichever directory molecule reads the inventory from
    assert top["smc_placement_path"] == "/repo/inventory/lab/placement.json"
    assert top["smc_etcd_endpoints"] == ["http://10.77.0.201:2379", "http://10.77.0.202:2379"]
    assert (top["smc_lab_netns"], top["smc_lab_bridge"], top["ansible_ssh_private_key_file"]) == (
        "smclab", "smcbr0", "/k/id")


def test_no_inventory_means_the_lab_is_not_up(tmp_path):
    with pytest.raises(snapshot.LabError, match="make lab-up"):
        snapshot.load_inventory(str(tmp_path / "missing.yml"))


class FakeVirsh:
    def __init__(self, snapshots, running):
        self.snapshots, self.running, self.calls = snapshots, running, []

    def __call__(self, *args, check=True):
        self.calls.append(args)
        if args[0] == "snapshot-list":
            return "\n".join(self.snapshots.get(args[1], []))
        if args[0] == "list":
            return "\n".join(self.running)
        return ""


def test_a_revert_refuses_before_touching_any_vm_when_one_lacks_the_snapshot(monkeypatch):
    fake = FakeVirsh({"a": ["blank", "converged"], "b": ["blank"]}, ["a", "b"])
    monkeypatch.setattr(snapshot, "virsh", fake)
    with pytest.raises(snapshot.LabError, match=r"no snapshot 'converged' on b\. Fix: make lab"):
        snapshot.revert({"a": {"port": 1, "tap": "t1"}, "b": {"port": 2, "tap": "t2"}}, {}, "converged")
    assert all(call[0] in ("snapshot-list",) for call in fake.calls)


def test_a_revert_frees_each_tap_before_qemu_opens_it_and_resumes_only_when_all_are_back(monkeypatch):
    fake = FakeVirsh({"a": ["blank"], "b": ["blank"]}, ["a"])
    monkeypatch.setattr(snapshot, "virsh", fake)
    monkeypatch.setattr(snapshot, "netns", lambda top, action, tap: fake.calls.append((action, tap)))
    snapshot.revert({"a": {"port": 1, "tap": "t1"}, "b": {"port": 2, "tap": "t2"}}, {}, "blank")
    acts = [c[0] for c in fake.calls if c[0] not in ("snapshot-list", "list")]
    assert acts == ["destroy", "prepare-tap", "prepare-tap", "snapshot-revert", "snapshot-revert",
                    "attach-tap", "attach-tap", "resume", "resume"]
    assert ("destroy", "a") in fake.calls and ("destroy", "b") not in fake.calls
    assert all("--paused" in c for c in fake.calls if c[0] == "snapshot-revert")


def test_a_save_replaces_an_old_snapshot_and_resumes_even_when_it_fails(monkeypatch):
    fake = FakeVirsh({"a": ["converged"], "b": []}, ["a", "b"])

    def failing(*args, check=True):
        if args[0] == "snapshot-create-as" and args[1] == "b":
            raise snapshot.LabError("disk full")
        return fake(*args, check=check)

    monkeypatch.setattr(snapshot, "virsh", failing)
    with pytest.raises(snapshot.LabError, match="disk full"):
        snapshot.save({"a": {}, "b": {}}, "converged")
    names = [(c[0], c[1]) for c in fake.calls if c[0] != "snapshot-list"]
    assert ("snapshot-delete", "a") in names and ("snapshot-delete", "b") not in names
    assert {("resume", "a"), ("resume", "b")} <= set(names)


def test_blank_is_saved_only_while_no_vm_was_converged(monkeypatch, tmp_path, capsys, etcd):
    inventory = rendered_inventory(tmp_path)
    fake = FakeVirsh({"dc1-s1": [], "dc2-s1": []}, ["dc1-s1", "dc2-s1"])
    monkeypatch.setattr(snapshot, "virsh", fake)
    monkeypatch.setattr(snapshot, "close_ssh_masters", lambda _d: 0)
    monkeypatch.setattr(snapshot, "hosts_with_path", lambda hosts, key, path: ["dc2-s1"])
    assert snapshot.main(["save", "blank", "--if-missing", "--unless-path", "/etc/smc", "--inventory", inventory]) == 0
    assert "not saved: /etc/smc already on dc2-s1" in capsys.readouterr().out
    assert not [c for c in fake.calls if c[0] in ("suspend", "snapshot-create-as")]
    monkeypatch.setattr(snapshot, "hosts_with_path", lambda hosts, key, path: [])
    assert snapshot.main(["save", "blank", "--if-missing", "--unless-path", "/etc/smc", "--inventory", inventory]) == 0
    assert [c[1] for c in fake.calls if c[0] == "snapshot-create-as"] == ["dc1-s1", "dc2-s1"]
    assert etcd.calls == [("save", "blank")]  # the lab's etcd members are saved with the VMs, once
