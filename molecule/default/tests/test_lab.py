"""The lab itself: private network, ZFS, pools on the extra disks."""
import os

import yaml

_INVENTORY = os.path.join(os.environ.get("MOLECULE_PROJECT_DIRECTORY", "."), "inventory", "lab", "hosts.yml")


def _lab_hosts():
    with open(_INVENTORY, encoding="utf-8") as f:
        inv = yaml.safe_load(f)
    hosts = {}
    for dc in inv["all"]["children"]["storage"]["children"].values():
        hosts.update(dc["hosts"])
    return hosts


def test_every_peer_answers_over_the_private_bridge(host):
    me = host.check_output("hostname")
    peers = {name: v["private_ip"] for name, v in _lab_hosts().items() if name != me}
    assert len(peers) >= 5
    unreachable = [name for name, ip in peers.items() if host.run(f"ping -c1 -W3 {ip}").rc != 0]
    assert unreachable == []


def test_private_address_is_only_on_eth1(host):
    me = host.check_output("hostname")
    ip = _lab_hosts()[me]["private_ip"]
    assert f"inet {ip}/24" in host.check_output("ip -4 addr show dev eth1")
    assert ip not in host.check_output("ip -4 addr show dev eth0")


def test_peer_names_resolve_to_private_addresses(host):
    for name, v in _lab_hosts().items():
        assert host.check_output(f"getent hosts {name}").split()[0] == v["private_ip"]


def test_zfs_module_loaded_and_tools_match(host):
    assert host.file("/sys/module/zfs").exists
    out = host.check_output("zfs version")
    assert "zfs-kmod-" in out and "zfs-" in out


def test_pool_can_be_created_on_an_extra_disk(host):
    disk = "/dev/disk/by-id/virtio-smc-d4"
    assert host.file(disk).exists
    pool = "labcheck"
    try:
        host.check_output(f"zpool create -f -o ashift=12 {pool} {disk}")
        assert host.check_output(f"zpool list -H -o health {pool}") == "ONLINE"
        host.check_output(f"zfs create {pool}/probe && dd if=/dev/urandom of=/{pool}/probe/f bs=64k count=16 2>/dev/null && sync")
        assert int(host.check_output(f"zfs get -Hp -o value used {pool}/probe")) >= 1024 * 1024
    finally:
        # A pool this test made itself on a lab disk: remove it and clear its label so the disk is blank again.
        host.run(f"zpool destroy {pool}")
        host.run(f"zpool labelclear -f {disk}-part1")
        host.run(f"wipefs -a {disk}")
    assert host.run(f"zpool list {pool}").rc != 0
    assert host.run(f"zpool import -d {disk} -D 2>&1 | grep -q {pool}").rc != 0, "the pool's label survived"
