#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: tinc_files
short_description: Write a tinc network's configuration files in one call, remove revoked host files
version_added: 0.1.0
description:
  - Writes every file of O(files) below O(path) whose content differs (atomically, with its mode) and
    removes the files named in O(absent); one module run instead of one per file, which matters with
    1,000 host files per node.
  - Paths are relative, must stay below O(path), and host files must be named C(hosts/NAME) with a
    tinc node name (C([A-Za-z0-9_]+)).
  - Never touches a file that is neither in O(files) nor in O(absent).
author: smc.backend developers (@smc-backend)
attributes:
  check_mode:
    support: full
    description: Compares every file and reports what would be written or removed; writes nothing.
  diff_mode:
    support: full
    description: Returns before and after text of every file written or removed.
options:
  path:
    description: The network directory, for example C(/etc/tinc/smc); created if missing.
    type: path
    required: true
  files:
    description: Relative path to the text the file must hold.
    type: dict
    default: {}
  executables:
    description: Relative paths of O(files) written with mode C(0755) instead of O(mode).
    type: list
    elements: str
    default: []
  mode:
    description: Mode of the other files.
    type: str
    default: "0644"
  absent:
    description: Relative paths to remove when present.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Write tinc.conf, the scripts and every host file
  smc.backend.tinc_files:
    path: /etc/tinc/smc
    files:
      tinc.conf: "Name = dc1_s1\nConnectTo = dc2_s1\n"
      tinc-up: "#!/bin/sh\nip link set dev \"$INTERFACE\" up\n"
      hosts/dc1_s1: "Address = 10.77.0.11\nSubnet = 10.88.1.1/32\n"
    executables: [tinc-up]
    absent: [hosts/old_host]
  register: tinc_written
"""

RETURN = r"""
changed_files:
  description: Relative paths written (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [tinc.conf, hosts/dc3_s2]
removed_files:
  description: Relative paths removed (or that would be).
  returned: always
  type: list
  elements: str
  sample: [hosts/old_host]
"""

import os
import re
import tempfile

from ansible.module_utils.basic import AnsibleModule

_HOST_FILE = re.compile(r"^hosts/[A-Za-z0-9_]+$")
_TOP_FILE = re.compile(r"^[A-Za-z0-9_.-]+$")


def check_relpath(rel):
    """Error text for a relative path the module refuses, else None."""
    if not isinstance(rel, str) or rel.startswith("/") or ".." in rel.split("/"):
        return f"{rel!r} is not a relative path below the network directory"
    if rel.startswith("hosts/"):
        return None if _HOST_FILE.match(rel) else f"{rel!r} is not hosts/<tinc node name>"
    return None if _TOP_FILE.match(rel) else f"{rel!r} is not a plain file name"


def read_text(path):
    """Current content, or None when the file is missing."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


def plan_changes(base, files, absent, modes):
    """(to_write, to_remove): relative paths whose content or mode differs / that exist and must go."""
    to_write = []
    for rel in sorted(files):
        full = os.path.join(base, rel)
        current = read_text(full)
        if current is None or current != files[rel] or (os.stat(full).st_mode & 0o7777) != modes[rel]:
            to_write.append(rel)
    to_remove = [rel for rel in sorted(set(absent) - set(files)) if os.path.lexists(os.path.join(base, rel))]
    return to_write, to_remove


def write_atomic(base, rel, content, mode):
    full = os.path.join(base, rel)
    os.makedirs(os.path.dirname(full), mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tinc_files.", dir=os.path.dirname(full))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(content)
        os.chmod(tmp, mode)
        os.replace(tmp, full)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            files=dict(type="dict", default={}),
            executables=dict(type="list", elements="str", default=[]),
            mode=dict(type="str", default="0644"),
            absent=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    base = module.params["path"]
    files = {k: "" if v is None else str(v) for k, v in module.params["files"].items()}
    absent = module.params["absent"]
    try:
        mode = int(module.params["mode"], 8)
    except ValueError:
        module.fail_json(msg=f"mode {module.params['mode']!r} is not an octal mode")
    errors = [e for e in (check_relpath(r) for r in list(files) + absent) if e]
    errors += [f"{r!r} is in executables but not in files" for r in module.params["executables"] if r not in files]
    if errors:
        module.fail_json(msg="; ".join(errors))
    modes = {rel: 0o755 if rel in module.params["executables"] else mode for rel in files}

    to_write, to_remove = plan_changes(base, files, absent, modes)
    result = dict(changed=bool(to_write or to_remove), changed_files=to_write, removed_files=to_remove)
    if module._diff:
        result["diff"] = [
            dict(before_header=os.path.join(base, rel), after_header=os.path.join(base, rel),
                 before=read_text(os.path.join(base, rel)) or "", after=files[rel])
            for rel in to_write
        ] + [dict(before_header=os.path.join(base, rel), after_header="(absent)",
                  before=read_text(os.path.join(base, rel)) or "", after="") for rel in to_remove]
    if module.check_mode:
        module.exit_json(**result)
    for rel in to_write:
        write_atomic(base, rel, files[rel], modes[rel])
    for rel in to_remove:
        os.unlink(os.path.join(base, rel))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
