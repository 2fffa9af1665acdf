"""roles/tinc and roles/storage_host refuse hostile input in their first tasks, before any task reaches a host.

The role's own check tasks (read from its tasks/main.yml, with its defaults and vars) run by ansible-playbook on
the controller: assert and set_fact only, connection local, so nothing here touches a host. Each case runs in
a block whose rescue records the failure message; one playbook run holds every case of a role."""
import json
import os
import subprocess

import pytest
import yaml

from local_ansible import ENV, PLAYBOOK, ROOT  # pylint: disable=import-error
LAB = {"dc%d-s%d" % (d, s): {"dc": "dc%d" % d, "private_ip": "10.77.0.%d" % (10 + 2 * (d - 1) + s),
                             "ansible_connection": "local"}
       for d in (1, 2, 3) for s in (1, 2)}


def role_tasks(role):
    with open(os.path.join(ROOT, "roles", role, "tasks", "main.yml"), encoding="utf-8") as f:
        return yaml.safe_load(f)


def task(role, name):
    (found,) = [t for t in role_tasks(role) if t["name"] == name]
    return {k: v for k, v in found.items() if k != "tags"}


def run_cases(tmp_path, role, tasks, cases, inventory=None, record="None"):
    """Run ``tasks`` (the role's own) once per case ``{name: vars}``; returns ``errors`` (``{name: failure message
    or None}``) and ``result`` (the expression ``record`` after the last case, with its variables)."""
    blocks = []
    for name, case_vars in cases.items():
        blocks.append({"name": name, "vars": case_vars, "block": tasks + [
            {"name": "Passed", "ansible.builtin.set_fact": {"__errors": "{{ __errors | combine({%r: None}) }}" % name}}],
            "rescue": [{"name": "Failed", "ansible.builtin.set_fact": {
                "__errors": "{{ __errors | combine({%r: ansible_failed_result.msg | string}) }}" % name}}]})
    blocks.append({"name": "Record", "vars": case_vars, "ansible.builtin.copy": {
        "dest": str(tmp_path / "out.json"), "mode": "0644",
        "content": "{{ {'errors': __errors, 'result': %s} | to_json }}" % record}})
    play = [{"name": "Checks of " + role, "hosts": "dc1-s1", "gather_facts": False,
             "vars_files": [os.path.join(ROOT, "roles", role, d, "main.yml") for d in ("defaults", "vars")],
             "vars": {"__errors": {}}, "tasks": blocks}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play), encoding="utf-8")
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory or {"all": {"children": {"storage": {"hosts": LAB}}}}),
                                        encoding="utf-8")
    out = subprocess.run([PLAYBOOK, "-i", str(tmp_path / "hosts.yml"),
                          str(tmp_path / "play.yml")], capture_output=True, text=True, env=ENV, cwd=str(tmp_path),
                         timeout=300, check=False)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    with open(str(tmp_path / "out.json"), encoding="utf-8") as f:
        return json.load(f)


# --- roles/tinc ---------------------------------------------------------------------------------------------
TINC_CHECK = "Check the network name, port, MTU, compression, mode and address family"
TINC_PLAN = "Validate the inventory and plan addresses, hubs and ConnectTo lists"
TINC_PROBE = {"name": "What the probe would have read", "ansible.builtin.set_fact": {
    "__tinc_probe": "{{ {'files': {__tinc_manifest: ''}} }}"}}
TINC_HOSTILE = {
    "dash": {"tinc_network": "-x"}, "backslash": {"tinc_network": "a\\b"}, "long": {"tinc_network": "n" * 40},
    "newline": {"tinc_network": "smc\nConnectTo = evil"}, "dotdot": {"tinc_network": "../../root"},
    "port0": {"tinc_port": 0}, "port_big": {"tinc_port": 65536}, "mtu": {"tinc_mtu": 100},
    "compression": {"tinc_compression": 12}, "max_timeout": {"tinc_max_timeout": 0}, "mode": {"tinc_mode": "hub\n"}, "family": {"tinc_address_family": "x"}}
TINC_FIELD = {"dash": "network", "backslash": "network", "long": "network", "newline": "network", "dotdot": "network",
              "port0": "port", "port_big": "port", "mtu": "mtu", "compression": "compression", "max_timeout": "max_timeout", "mode": "mode",
              "family": "address_family"}


def test_tinc_checks_its_settings_before_its_first_host_task():
    names = [t["name"] for t in role_tasks("tinc")]
    first_remote = next(i for i, t in enumerate(role_tasks("tinc"))
                        if not {"ansible.builtin.assert", "ansible.builtin.set_fact"} & set(t))
    assert names.index(TINC_CHECK) < first_remote
    assert "settings=__tinc_settings" in str(task("tinc", TINC_CHECK)["ansible.builtin.assert"]["that"])
    assert "settings=__tinc_settings" in task("tinc", TINC_PLAN)["ansible.builtin.set_fact"]["__tinc_plan"]


def test_tinc_shell_quotes_the_network_directory():
    (shell,) = [t for t in role_tasks("tinc") if "ansible.builtin.shell" in t]
    cmd = shell["ansible.builtin.shell"]["cmd"]
    assert "{{ __tinc_dir | quote }}" in cmd and "{{ (__tinc_dir ~ '/hosts') | quote }}" in cmd
    assert "{{ __tinc_dir }}" not in cmd and "tinc_network" not in cmd


@pytest.mark.parametrize("name", [TINC_CHECK, TINC_PLAN])
def test_tinc_refuses_hostile_settings_naming_the_setting(tmp_path, name):
    cases = dict({"defaults": {}, "strings": {"tinc_port": "655", "tinc_mtu": "1400"}}, **TINC_HOSTILE)
    out = run_cases(tmp_path, "tinc", [TINC_PROBE, task("tinc", name)], cases,
                    record="__tinc_plan.settings if __tinc_plan is defined else None")
    errors = out["errors"]
    assert errors.pop("defaults") is None and errors.pop("strings") is None, out
    for case, error in errors.items():
        assert error and "tinc VPN: " + TINC_FIELD[case] + " " in error and "must be" in error, (case, error)
    if name == TINC_PLAN:  # the last plan made (case "strings") carries the checked settings, numbers as integers
        assert out["result"] == {"network": "smc", "port": 655, "mtu": 1400, "compression": 0, "mode": "router",
                                 "address_family": "ipv4", "max_timeout": 30}


# --- roles/storage_host -------------------------------------------------------------------------------------
STORAGE_CHECK = "Check every storage host's private_ip and name before they go into /etc/hosts"
STORAGE_HOSTILE = {  # case: (the hostile host, its variables, what the message must say)
    "newline": ("dc1-s9", {"private_ip": "10.77.0.11\n10.0.0.1 evil"}, 'private_ip of dc1-s9: "10.77.0.11\\n'),
    "scope": ("dc1-s8", {"private_ip": "fe80::1%x\n1.2.3.4 evil"}, "private_ip of dc1-s8: "),
    "empty": ("dc1-s7", {"private_ip": ""}, 'private_ip of dc1-s7: ""'),
    "space": ("dc1 s9", {"private_ip": "10.77.0.99"}, 'host name "dc1 s9" is not a DNS name'),
    "dash": ("-dc1", {"private_ip": "10.77.0.99"}, 'host name "-dc1" is not a DNS name'),
    "underscore": ("dc1_s9", {"private_ip": "10.77.0.99"}, 'host name "dc1_s9" is not a DNS name'),
}


def test_storage_host_checks_before_its_first_host_task():
    names = [t["name"] for t in role_tasks("storage_host")]
    first_remote = next(i for i, t in enumerate(role_tasks("storage_host")) if "ansible.builtin.assert" not in t)
    assert names.index(STORAGE_CHECK) < first_remote


def test_storage_host_refuses_a_hostile_private_ip_or_name_naming_host_and_field(tmp_path):
    groups = {"good": {"hosts": {h: {} for h in LAB}}}
    hosts = {h: dict(hv) for h, hv in LAB.items()}
    for case, (host, hostvars, _message) in STORAGE_HOSTILE.items():
        hosts[host] = hostvars
        groups[case] = {"hosts": dict({h: {} for h in LAB}, **{host: {}})}
    inventory = {"all": {"hosts": hosts, "children": groups}}
    cases = dict({"good": {"storage_host_group": "good"},
                  "off": {"storage_host_group": "newline", "storage_host_manage_etc_hosts": False}},
                 **{case: {"storage_host_group": case} for case in STORAGE_HOSTILE})
    cases["good_again"] = {"storage_host_group": "good"}
    out = run_cases(tmp_path, "storage_host", [task("storage_host", STORAGE_CHECK)], cases, inventory=inventory,
                    record="__storage_host_blocks[0].block")
    errors = out["errors"]
    assert errors.pop("good") is None and errors.pop("good_again") is None and errors.pop("off") is None, out
    for case, (_host, _vars, message) in STORAGE_HOSTILE.items():
        assert message in errors[case], (case, errors[case])
    assert "is not an IP address; set it to the host's private address" in errors["newline"]
    # what system_state writes into /etc/hosts: the same lines the role's template wrote before the check
    assert out["result"] == "".join("%s %s\n" % (LAB[h]["private_ip"], h) for h in sorted(LAB))


# --- roles/zfs_storage --------------------------------------------------------------------------------------
ZED_CHECK = "Check the zed event classes are plain class names"
ZED_HOSTILE = {"slash": ["statechange", "a/b"], "dotdot": [".."], "newline": ["statechange\nx"],
               "dash": ["-x"], "upper": ["StateChange"], "space": ["vdev online"], "empty": [""]}


def test_zfs_storage_checks_its_zed_classes_before_its_first_host_task():
    assert role_tasks("zfs_storage")[0]["name"] == ZED_CHECK


def test_zfs_storage_refuses_a_hostile_zed_class_naming_the_setting_and_ships_one_zedlet_per_class(tmp_path):
    cases = dict({"defaults": {}, "none": {"zfs_storage_agent_zed_classes": []}},
                 **{case: {"zfs_storage_agent_zed_classes": v} for case, v in ZED_HOSTILE.items()})
    cases["again"] = {"zfs_storage_agent_zed_classes": ["statechange", "resilver_finish"]}
    out = run_cases(tmp_path, "zfs_storage", [task("zfs_storage", ZED_CHECK)], cases,
                    record="__zfs_storage_zedlet_files | map(attribute='path') | list")
    errors = out["errors"]
    assert errors.pop("defaults") is None and errors.pop("none") is None and errors.pop("again") is None, out
    for case, value in ZED_HOSTILE.items():
        assert errors[case].startswith("zfs_storage_agent_zed_classes: each entry must be"), (case, errors[case])
        bad = [v for v in value if v != "statechange"]
        assert json.dumps(bad) in errors[case] and errors[case].endswith("Nothing was changed."), (case, errors[case])
    assert out["result"] == ["/etc/zfs/zed.d/statechange-smc-metrics.sh", "/etc/zfs/zed.d/resilver_finish-smc-metrics.sh"]
