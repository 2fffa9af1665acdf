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
  - Paths are relative and must be one of the network directory's own files (C(tinc.conf), C(tinc-up),
    C(tinc-down), C(host-up), C(host-down), C(subnet-up), C(subnet-down), C(.smc-managed)) or a host file
    C(hosts/NAME) with a tinc node name (C([A-Za-z0-9_]+)). The private key C(rsa_key.priv) is never
    written, removed, read or shown; content holding a private key is refused.
  - Never follows a symbolic link - a link at O(path), C(hosts/) or any file named is an error - and every
    line of C(tinc.conf) and host files must be a comment, C(Variable = value) or part of a public key
    (so a value with a newline cannot smuggle in a directive).
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
    description: Mode of the other files; owner read-write, at most C(0755) (no write for group or others, no
      setuid, setgid or sticky bit).
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
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule

_HOST_FILE = re.compile(r"hosts/[A-Za-z0-9_]{1,255}\Z")
# The top-level files of a network directory this module may write or remove; never the key pair.
TOP_FILES = frozenset(["tinc.conf", "tinc-up", "tinc-down", "host-up", "host-down", "subnet-up", "subnet-down",
                       ".smc-managed"])
PRIVATE_KEY = "rsa_key.priv"
_MODE_RE = re.compile(r"0?[0-7]{3}\Z")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_CONFIG_LINE = re.compile(r"(\s*|#.*|[A-Za-z][A-Za-z0-9]*\s*=\s*\S.*|-----(BEGIN|END) [A-Z ]+-----|[A-Za-z0-9+/=]+)\Z")


def check_relpath(rel):
    """Error text for a relative path the module refuses, else None."""
    if not isinstance(rel, str) or rel.startswith("/") or ".." in rel.split("/"):
        return f"{rel!r} is not a relative path below the network directory"
    if rel == PRIVATE_KEY or rel.endswith("/" + PRIVATE_KEY):
        return f"{rel!r} is the private key: this module never writes, removes or shows it"
    if rel.startswith("hosts/"):
        return None if _HOST_FILE.match(rel) else f"{rel!r} is not hosts/<tinc node name>"
    return None if rel in TOP_FILES else f"{rel!r} is not one of the network directory's files ({', '.join(sorted(TOP_FILES))}, hosts/<name>)"


def check_content(rel, text):
    """Error text for content the module refuses to write (it never quotes the content), else None."""
    if "PRIVATE KEY" in text:
        return f"{rel}: the content holds a private key; only public keys go into these files"
    if _CONTROL_RE.search(text):
        return f"{rel}: the content has control characters (only newlines and tabs are allowed)"
    if rel == "tinc.conf" or rel.startswith("hosts/"):
        for number, line in enumerate(text.split("\n"), 1):
            if not _CONFIG_LINE.match(line):
                return f"{rel}: line {number} is not a comment, 'Variable = value' or part of a public key"
    return None


def parse_mode(text):
    """An octal mode string -> int, or None unless it is sane: owner read-write, no write for group or
    others, no setuid, setgid or sticky bit (at most 0755)."""
    if not isinstance(text, str) or not _MODE_RE.match(text):
        return None
    mode = int(text, 8)
    return mode if mode & ~0o755 == 0 and mode & 0o600 == 0o600 else None


class LinkError(ValueError):
    """A path of the network directory is a symbolic link or not a regular file."""


def check_base(base):
    """Error text when the network directory (or its hosts/ directory) is a link or not a directory."""
    if not isinstance(base, str) or not base.startswith("/") or "/../" in base + "/" or re.search(r"[\x00-\x1f\x7f]", base):
        return f"path {base!r} must be an absolute path without '..' parts or control characters"
    for path in (base, os.path.join(base, "hosts")):
        if os.path.islink(path):
            return f"{path} is a symbolic link: this module does not follow links; make it a directory"
        if os.path.lexists(path) and not os.path.isdir(path):
            return f"{path} exists and is not a directory"
    return None


def read_text(path):
    """Current content, or None when the file is missing; never follows a symbolic link."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        if os.path.islink(path):
            raise LinkError(f"{path} is a symbolic link: this module does not follow links; remove it") from None
        raise LinkError(f"{path} cannot be read: {exc.strerror}") from None
    with os.fdopen(fd, encoding="utf-8", errors="replace") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise LinkError(f"{path} is not a regular file")
        return f.read()


def shown(path):
    """A file's text for the diff; a private key found where none belongs is never shown."""
    text = read_text(path) or ""
    return "(content not shown: it holds a private key)\n" if "PRIVATE KEY" in text else text


def plan_changes(base, files, absent, modes):
    """(to_write, to_remove): relative paths whose content or mode differs / that exist and must go."""
    to_write = []
    for rel in sorted(files):
        full = os.path.join(base, rel)
        current = read_text(full)
        if current is None or current != files[rel] or (os.lstat(full).st_mode & 0o7777) != modes[rel]:
            to_write.append(rel)
    to_remove = []
    for rel in sorted(set(absent) - set(files)):
        full = os.path.join(base, rel)
        if os.path.islink(full):
            raise LinkError(f"{full} is a symbolic link: this module does not follow or remove links")
        if os.path.lexists(full):
            to_remove.append(rel)
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


def check_params(params):
    """(errors, files, modes) from the module's parameters; nothing is read from disk."""
    files = {k: "" if v is None else str(v) for k, v in params["files"].items()}
    mode = parse_mode(params["mode"])
    errors = [] if mode is not None else [
        f"mode {params['mode']!r} is not a sane octal mode: owner read-write, no write for group or others, no "
        "setuid/setgid/sticky bit (e.g. 0644, 0640, 0600)"]
    errors += [e for e in (check_relpath(r) for r in list(files) + params["absent"] + params["executables"]) if e]
    errors += [e for e in (check_content(r, t) for r, t in sorted(files.items()) if not check_relpath(r)) if e]
    errors += [f"{r!r} is in executables but not in files" for r in params["executables"] if r not in files]
    err = check_base(params["path"])
    if err:
        errors.insert(0, err)
    modes = {rel: 0o755 if rel in params["executables"] else mode for rel in files}
    return errors, files, modes


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
    errors, files, modes = check_params(module.params)
    if errors:
        module.fail_json(msg="; ".join(errors) + ". Nothing was changed.")
    try:
        to_write, to_remove = plan_changes(base, files, module.params["absent"], modes)
    except LinkError as exc:
        module.fail_json(msg=f"{exc}. Nothing was changed.")
    result = dict(changed=bool(to_write or to_remove), changed_files=to_write, removed_files=to_remove)
    if module._diff:
        result["diff"] = [
            dict(before_header=os.path.join(base, rel), after_header=os.path.join(base, rel),
                 before=shown(os.path.join(base, rel)), after=files[rel])
            for rel in to_write
        ] + [dict(before_header=os.path.join(base, rel), after_header="(absent)",
                  before=shown(os.path.join(base, rel)), after="") for rel in to_remove]
    if module.check_mode:
        module.exit_json(**result)
    for rel in to_write:
        write_atomic(base, rel, files[rel], modes[rel])
    for rel in to_remove:
        os.unlink(os.path.join(base, rel))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
