"""onprem_vm: hostile VM fields fail validation naming each field before anything runs; removal with confirmation
deletes only the role's own files of VMs it defined, inside their own directory (a fake virsh on PATH)."""
import json
import os
import re
import subprocess
import sys

import yaml
from hypothesis import Phase, given, settings, strategies as st

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
BIN = os.path.dirname(sys.executable)
MARK = "<metadata><smc:vm xmlns:smc='https://smc.backend/onprem_vm'>managed</smc:vm></metadata>"
FAKE_VIRSH = """#!/bin/sh
echo "$*" >> "$FAKE_LOG"
case "$*" in
  *"list --all --name"*) printf '%%s\\n' $FAKE_DEFINED ;;
  *"dumpxml --inactive alien"*) echo "<domain><name>alien</name></domain>" ;;
  *dumpxml*) echo "<domain>%s</domain>" ;;
esac
""" % MARK


def playbook(tmp_path, extra, defined=""):
    (tmp_path / "bin").mkdir(exist_ok=True)
    virsh = tmp_path / "bin" / "virsh"
    virsh.write_text(FAKE_VIRSH)
    virsh.chmod(0o755)
    play = tmp_path / "play.yml"
    play.write_text("- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
                    "    - ansible.builtin.include_role:\n        name: smc.backend.onprem_vm\n")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, FAKE_DEFINED=defined, FAKE_LOG=str(tmp_path / "virsh.log"),
               PATH=str(tmp_path / "bin") + os.pathsep + BIN + os.pathsep + os.environ.get("PATH", ""))
    extra = dict({"onprem_vm_start_libvirtd": False}, **extra)
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", str(play), "-e", json.dumps(extra)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    log = (tmp_path / "virsh.log").read_text() if (tmp_path / "virsh.log").exists() else ""
    return proc.returncode, proc.stdout + proc.stderr, log


NAMES = st.one_of(st.sampled_from([".", "..", "-f", "a/b", "a\n", "../x", "", "a b", "\u00e9", "x" * 64, "a'b"]),
                  st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1,
                          max_size=6).map(lambda t: "-" + t))


# Each example is one ansible-playbook run (about 5 s): few examples, each with many hostile names at once.
@settings(max_examples=3, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(names=st.lists(NAMES, min_size=8, max_size=12, unique=True))
def test_hostile_names_fail_validation_naming_each_item(tmp_path_factory, names):
    tmp = tmp_path_factory.mktemp("v")
    vms = [{"name": n, "base_image": "/b.qcow2"} for n in names]
    vms.append({"name": "dc1-s1", "base_image": "/b.qcow2", "data_disks": [{"serial": "../x", "size_gb": -1}],
                "ssh_forward_port": 70000})
    rc, out, log = playbook(tmp, {"onprem_vm_state": "running", "onprem_vm_dir": str(tmp / "vms"),
                                  "onprem_vm_instances": vms})
    assert rc != 0 and log == "", out[-3000:]
    for i in range(len(names)):
        assert "onprem_vm_instances[%d].name" % i in out
    for field in ("data_disks[0].serial", "data_disks[0].size_gb", "ssh_forward_port"):
        assert field in out


def test_removal_deletes_only_the_roles_files_of_defined_vms(tmp_path):
    base = tmp_path / "vms"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "smc-d1.raw").write_text("precious")
    for vm in ("ours", "extra", "never", "linked_disk"):
        (base / vm).mkdir(parents=True)
        for f in ("root.qcow2", "serial.log", "smc-d1.raw", "smc-d2.qcow2"):
            (base / vm / f).write_text("x")
        if vm != "never":
            (base / vm / "domain.xml").write_text("<domain><name>%s</name>%s<serial>smc-d1</serial>"
                                                  "<serial>smc-d2</serial></domain>" % (vm, MARK))
    (base / "extra" / "user.txt").write_text("keep")
    (base / "linked_disk" / "smc-d1.raw").unlink()
    (base / "linked_disk" / "smc-d1.raw").symlink_to(outside / "smc-d1.raw")
    (base / "linked_dir").symlink_to(outside)
    vms = [{"name": n} for n in ("ours", "extra", "never", "linked_disk", "linked_dir", "missing")]
    rc, out, log = playbook(tmp_path, {"onprem_vm_state": "absent", "onprem_vm_confirm_remove_disks": True,
                                       "onprem_vm_dir": str(base), "onprem_vm_instances": vms}, defined="ours")
    assert rc == 0, out[-3000:]
    assert not (base / "ours").exists()
    assert sorted(os.listdir(base / "extra")) == ["user.txt"]
    assert sorted(os.listdir(base / "never")) == ["root.qcow2", "serial.log", "smc-d1.raw", "smc-d2.qcow2"]
    assert os.listdir(base / "linked_disk") == ["smc-d1.raw"] and (outside / "smc-d1.raw").read_text() == "precious"
    assert sorted(os.listdir(outside)) == ["smc-d1.raw"]
    undefined = [line.split()[-1] for line in log.splitlines() if " undefine " in line]
    assert undefined == ["ours"], log


def test_a_domain_without_the_roles_metadata_is_never_removed(tmp_path):
    (tmp_path / "vms" / "alien").mkdir(parents=True)
    (tmp_path / "vms" / "alien" / "root.qcow2").write_text("x")
    rc, out, log = playbook(tmp_path, {"onprem_vm_state": "absent", "onprem_vm_confirm_remove_disks": True,
                                       "onprem_vm_dir": str(tmp_path / "vms"), "onprem_vm_instances": [{"name": "alien"}]},
                            defined="alien")
    assert rc != 0 and "not by smc.backend.onprem_vm" in out
    assert "undefine" not in log and (tmp_path / "vms" / "alien" / "root.qcow2").exists()


def uri_pattern():
    with open(os.path.join(ROOT, "roles", "onprem_vm", "tasks", "validate.yml"), encoding="utf-8") as f:
        tasks = yaml.safe_load(f)
    return re.compile(tasks[0]["ansible.builtin.set_fact"]["__onprem_vm_re"]["uri"])


SHELL_META = set("&;|<>()$`\\\"' \t\n*[]#~!{}")


@settings(max_examples=300, deadline=None)
@given(uri=st.text(st.sampled_from("qemu:/system?=&;|$`'\" \n+@.-_%abc()<>*#~"), max_size=30))
def test_an_accepted_libvirt_uri_has_no_shell_metacharacter(uri):
    if uri_pattern().match(uri):  # Jinja's match test is re.match; the pattern ends in \Z
        assert not SHELL_META & set(uri) and uri.count("?") <= 1, uri


def test_libvirt_uri_pattern_keeps_the_usual_uris():
    for uri in ("qemu:///system", "qemu:///session", "qemu+ssh://root@host.example:22/system?keyfile=/root/.ssh/id",
                "qemu+unix:///system?socket=/run/libvirt/libvirt-sock", "test:///default"):
        assert uri_pattern().match(uri), uri


def test_a_libvirt_uri_with_shell_metacharacters_fails_naming_it_and_runs_nothing(tmp_path):
    rc, out, log = playbook(tmp_path, {"onprem_vm_state": "absent", "onprem_vm_dir": str(tmp_path / "vms"),
                                       "onprem_vm_libvirt_uri": "qemu:///system?x&reboot",  # the old pattern took it
                                       "onprem_vm_instances": [{"name": "dc1-s1"}]}, defined="dc1-s1")
    assert rc != 0 and log == "", out[-3000:]
    assert "onprem_vm_libvirt_uri a libvirt URI" in out and '"qemu:///system?x&reboot"' in out, out[-3000:]
    assert "Nothing was changed" in out


def test_a_libvirt_uri_with_a_query_reaches_virsh_as_one_argument(tmp_path):
    uri = "qemu+ssh://root@h/system?keyfile=/k"
    rc, out, log = playbook(tmp_path, {"onprem_vm_state": "absent", "onprem_vm_dir": str(tmp_path / "vms"),
                                       "onprem_vm_libvirt_uri": uri, "onprem_vm_instances": []})
    assert rc == 0, out[-3000:]
    assert log.splitlines() == ["-c %s list --all --name" % uri], log
