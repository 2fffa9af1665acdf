#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: tls_identity
short_description: A host's TLS key (born on the host), its certificate request, and the certificate signed for it
version_added: 0.2.0
description:
  - Makes the private key at O(key_path) when it is missing (EC P-256, mode C(0600) or C(0640) with O(group));
    the key is never read back, returned or shown.
  - Checks the certificate at O(cert_path) against the key, O(ca_certificate), O(common_name),
    O(subject_alt_names) and O(renew_days); when it must be issued again, returns a certificate request for
    the controller to sign (M(smc.backend.tls_sign)).
  - With O(certificate), writes it (after checking it is for this key, these names and this CA) and the CA
    certificate at O(ca_path). A second run with the same inputs changes nothing.
  - Paths must be absolute, without C(..) or control characters; a symbolic link at any of them is refused.
author: smc.backend developers (@smc-backend)
attributes:
  check_mode:
    support: full
    description: Reports whether the key would be made and the certificate written; makes and writes nothing.
  diff_mode:
    support: full
    description: Shows the certificate and CA files before and after (public data only; never the key).
options:
  key_path:
    description: The private key's path.
    type: path
    required: true
  cert_path:
    description: The certificate's path.
    type: path
    required: true
  ca_path:
    description: Where the CA certificate that peers are checked against is kept.
    type: path
    required: true
  ca_certificate:
    description: The CA certificate (PEM).
    type: str
    required: true
  common_name:
    description: The certificate's subject CN (a host or member name).
    type: str
    required: true
  subject_alt_names:
    description: Host names and IP addresses the certificate is valid for.
    type: list
    elements: str
    default: []
  certificate:
    description: The signed certificate (PEM) to write; omit to only check and get a request.
    type: str
  renew_days:
    description: A certificate expiring within this many days is issued again.
    type: int
    default: 30
  group:
    description: Group that may read the key and the certificate (the service's own group, e.g. C(etcd));
      the key is then mode C(0640).
    type: str
"""

EXAMPLES = r"""
- name: Make the member's key on the member and check its certificate
  smc.backend.tls_identity:
    key_path: /etc/etcd/pki/member.key
    cert_path: /etc/etcd/pki/member.crt
    ca_path: /etc/etcd/pki/ca.crt
    ca_certificate: "{{ ca.ca_certificate }}"
    common_name: etcd-dc1
    subject_alt_names: [10.77.0.11, etcd-dc1]
    group: etcd
  register: member_tls
"""

RETURN = r"""
needs_certificate:
  description: Whether the certificate must be (or was just) issued again.
  returned: always
  type: bool
problems:
  description: Why the current certificate is not good enough (empty when it is).
  returned: always
  type: list
  elements: str
  sample: [no certificate yet]
csr:
  description: A certificate request for the key (PEM), when one is needed and the key exists.
  returned: when needs_certificate and not in check mode with a missing key
  type: str
"""

import grp
import os
import re
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.smc.backend.plugins.module_utils import tls_ca

_BAD_PATH = re.compile(r"[\x00-\x1f\x7f]")


def path_error(name, path):
    if not path.startswith("/") or "/../" in path + "/" or _BAD_PATH.search(path):
        return "%s: %r must be an absolute path without '..' parts or control characters" % (name, path)
    if os.path.islink(path):
        return "%s: %s is a symbolic link: this module does not follow links; remove it" % (name, path)
    if os.path.lexists(path) and not os.path.isfile(path):
        return "%s: %s exists and is not a regular file" % (name, path)
    return None


def read(path):
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return None


def write_public(path, text, gid):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tls_identity.")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        if gid is not None:
            os.chown(tmp, 0, gid)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main():
    module = AnsibleModule(
        argument_spec={
            "key_path": {"type": "path", "required": True},
            "cert_path": {"type": "path", "required": True},
            "ca_path": {"type": "path", "required": True},
            "ca_certificate": {"type": "str", "required": True},
            "common_name": {"type": "str", "required": True},
            "subject_alt_names": {"type": "list", "elements": "str", "default": []},
            "certificate": {"type": "str"},
            "renew_days": {"type": "int", "default": 30},
            "group": {"type": "str"},
        },
        supports_check_mode=True,
    )
    p = module.params
    tls_ca.use(lambda args, data=None: module.run_command(args, data=data, binary_data=True))
    for name in ("key_path", "cert_path", "ca_path"):
        error = path_error(name, p[name])
        if error:
            module.fail_json(msg=error)
    error = tls_ca.name_error(p["common_name"]) or tls_ca.san_error(p["subject_alt_names"])
    if error:
        module.fail_json(msg=error)
    if "BEGIN CERTIFICATE" not in p["ca_certificate"]:
        module.fail_json(msg="ca_certificate: not a PEM certificate (give the CA's certificate, as tls_sign returns it)")
    if not 0 <= p["renew_days"] <= 3650:
        module.fail_json(msg="renew_days: %d is outside 0..3650" % p["renew_days"])
    gid = None
    if p["group"]:
        try:
            gid = grp.getgrnam(p["group"]).gr_gid
        except KeyError:
            module.fail_json(msg="group: no group %r on this host (install the service first)" % p["group"])
    for name in ("key_path", "cert_path", "ca_path"):
        if not os.path.isdir(os.path.dirname(p[name])):
            module.fail_json(msg="%s: directory %s does not exist" % (name, os.path.dirname(p[name])))

    result = {"changed": False, "needs_certificate": False, "problems": []}
    key_missing = not os.path.exists(p["key_path"])
    try:
        if key_missing:
            result["changed"] = True
            if module.check_mode:
                result.update(needs_certificate=True, problems=["no key yet"])
                module.exit_json(**result)
            tls_ca.make_key(p["key_path"])
        key_stat = os.stat(p["key_path"])
        if gid is not None and (key_stat.st_gid != gid or key_stat.st_mode & 0o777 != 0o640):
            result["changed"] = True
            if not module.check_mode:
                os.chown(p["key_path"], 0, gid)
                os.chmod(p["key_path"], 0o640)
        current = read(p["cert_path"])
        if p["certificate"] is not None:
            problems = tls_ca.certificate_problems(p["certificate"], p["key_path"], p["ca_certificate"],
                                                   p["common_name"], p["subject_alt_names"], 0)
            if problems:
                module.fail_json(msg="certificate: not usable for this key and these names: %s" % "; ".join(problems))
        problems = tls_ca.certificate_problems(current, p["key_path"], p["ca_certificate"], p["common_name"],
                                               p["subject_alt_names"], p["renew_days"])
        result.update(needs_certificate=bool(problems), problems=problems)
        writes = []
        if p["certificate"] is not None and problems and p["certificate"] != current:
            writes.append((p["cert_path"], current, p["certificate"]))
        current_ca = read(p["ca_path"])
        if current_ca != p["ca_certificate"]:
            writes.append((p["ca_path"], current_ca, p["ca_certificate"]))
        if problems and p["certificate"] is None:
            result["csr"] = tls_ca.make_csr(p["key_path"], p["common_name"])
        if writes:
            result["changed"] = True
            if module._diff:
                result["diff"] = [{"before_header": path, "after_header": path, "before": before or "",
                                   "after": after} for path, before, after in writes]
            if not module.check_mode:
                for path, _before, after in writes:
                    write_public(path, after, gid)
    except (tls_ca.TlsError, OSError) as exc:
        module.fail_json(msg=str(exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
