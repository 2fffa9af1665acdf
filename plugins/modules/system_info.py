#!/usr/bin/python
# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: system_info
short_description: Read which packages are installed, systemd units' state and small files, in one call
description:
  - Reads, and changes nothing - which of O(packages) the dpkg status database lists as installed (no apt, no
    dpkg-query), the load, active and enablement state of O(units) (one C(systemctl show) for all of them) and
    the text of O(files).
  - The read half of M(smc.backend.system_state), for roles that must decide on the controller before any
    change, for example from what every host recorded (the tinc role reads its manifest and daemon state).
author: smc.backend developers (@smc-backend)
attributes:
  check_mode:
    support: full
    description: Reads the same in check mode; it never changes anything.
  diff_mode:
    support: none
    description: It changes nothing, so there is nothing to show.
options:
  packages:
    description: Debian package names (optionally C(name:arch)).
    type: list
    elements: str
    default: []
  units:
    description: systemd unit names.
    type: list
    elements: str
    default: []
  files:
    description: Absolute paths of text files to read (at most 1 MiB each); a missing file reads as null.
    type: list
    elements: str
    default: []
seealso:
  - module: smc.backend.system_state
"""

EXAMPLES = r"""
- name: Read the members this host recorded, and whether tinc is installed and running
  smc.backend.system_info:
    packages: [tinc, openssl]
    units: [tinc, tinc@smc]
    files: [/etc/tinc/smc/.smc-managed]
  register: tinc_probe
"""

RETURN = r"""
missing_packages:
  description: Packages of O(packages) that are not installed, in the given order.
  returned: always
  type: list
  elements: str
  sample: [tinc]
units:
  description: Unit name to its state; C(enabled) as C(systemctl is-enabled) counts it (enabled, static,
    generated, transient), C(active) as C(systemctl is-active) counts it (active or reloading).
  returned: always
  type: dict
  sample: {"tinc@smc": {"load_state": "loaded", "active_state": "active", "unit_file_state": "enabled",
                        "enabled": true, "active": true}}
files:
  description: Path to the file's text, or null when it does not exist.
  returned: always
  type: dict
  sample: {"/etc/tinc/smc/.smc-managed": "{\"members\": {}}"}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smc.backend.plugins.module_utils import system_state as ss

DPKG_STATUS = "/var/lib/dpkg/status"
MAX_FILE = 1 << 20


def check(params):
    """Error texts for names and paths the module refuses."""
    errors = [ss.check_name("packages[%d]" % i, n, ss.PACKAGE_RE, "a Debian package name")
              for i, n in enumerate(params["packages"])]
    errors += [ss.check_name("units[%d]" % i, n, ss.UNIT_RE, "a systemd unit name (not starting with '-' or '.')")
               for i, n in enumerate(params["units"])]
    errors += [ss.check_path("files[%d]" % i, p) for i, p in enumerate(params["files"])]
    return [e for e in errors if e]


def read_file(path):
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE + 1)
    except FileNotFoundError:
        return None
    if len(data) > MAX_FILE:
        raise ss.StateError("files: %s is larger than 1 MiB; read it another way" % path)
    return data.decode("utf-8", errors="replace")


def main():
    module = AnsibleModule(
        argument_spec=dict(packages=dict(type="list", elements="str", default=[]),
                           units=dict(type="list", elements="str", default=[]),
                           files=dict(type="list", elements="str", default=[])),
        supports_check_mode=True,
    )
    p = module.params
    errors = check(p)
    if errors:
        module.fail_json(msg="; ".join(errors))

    def run(args):
        rc, out, err = module.run_command(args)
        if rc != 0:
            raise ss.StateError("%s failed (rc %d): %s" % (" ".join(args), rc, (err or out).strip()))
        return out

    try:
        installed = ss.read_installed(DPKG_STATUS) if p["packages"] else set()
        units = {name: dict(load_state=s["LoadState"], active_state=s["ActiveState"],
                            unit_file_state=s["UnitFileState"], enabled=ss.unit_enabled(s), active=ss.unit_active(s))
                 for name, s in ss.show_units(run, p["units"]).items()}
        files = {path: read_file(path) for path in p["files"]}
    except (ss.StateError, OSError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, missing_packages=[n for n in p["packages"] if n not in installed],
                     units=units, files=files)


if __name__ == "__main__":
    main()
