#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: tls_sign
short_description: The coordination CA on the controller - its certificate, and certificates signed for host keys
version_added: 0.2.0
description:
  - Run on the controller (C(delegate_to) C(localhost)). Keeps the CA's key and certificate in O(ca_dir)
    (made on first use with O(create_ca); the key never leaves that directory and is never returned).
  - With O(csr), signs a certificate for the request's key with the O(common_name), O(subject_alt_names)
    and O(usage) given here - never those the request asks for - after checking the request's signature and
    that its subject is O(common_name).
author: smc.backend developers (@smc-backend)
attributes:
  check_mode:
    support: full
    description: Creates no CA and signs nothing; reports what it would do.
  diff_mode:
    support: none
    description: Certificates are public and the CA key is never shown; there is no file diff to give.
options:
  ca_dir:
    description: Directory of C(ca.key) and C(ca.crt) on the controller (keep it out of the repository and back it up).
    type: path
    required: true
  ca_common_name:
    description: The CA's subject CN, used when it is made.
    type: str
    default: smc-coordination-ca
  create_ca:
    description: Make the CA when O(ca_dir) has none. A directory holding only one of the two files is an error.
    type: bool
    default: true
  csr:
    description: A certificate request (PEM) from M(smc.backend.tls_identity).
    type: str
  common_name:
    description: The certificate's CN; required with O(csr).
    type: str
  subject_alt_names:
    description: Host names and IP addresses for the certificate.
    type: list
    elements: str
    default: []
  usage:
    description: C(server_client) for members (they serve clients and peers and are peers' clients), C(client)
      for agents.
    type: str
    choices: [server_client, client]
    default: server_client
  days:
    description: Validity of the certificate.
    type: int
    default: 825
"""

EXAMPLES = r"""
- name: Sign the member's certificate
  smc.backend.tls_sign:
    ca_dir: "{{ coordination_ca_dir }}"
    csr: "{{ member_tls.csr }}"
    common_name: etcd-dc1
    subject_alt_names: [10.77.0.11]
  delegate_to: localhost
  register: signed
"""

RETURN = r"""
ca_certificate:
  description: The CA certificate (PEM); empty in check mode before the CA exists.
  returned: always
  type: str
ca_created:
  description: Whether the CA was made now.
  returned: always
  type: bool
certificate:
  description: The signed certificate (PEM).
  returned: with csr, not in check mode
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.smc.backend.plugins.module_utils import tls_ca


def main():
    module = AnsibleModule(
        argument_spec={
            "ca_dir": {"type": "path", "required": True},
            "ca_common_name": {"type": "str", "default": "smc-coordination-ca"},
            "create_ca": {"type": "bool", "default": True},
            "csr": {"type": "str"},
            "common_name": {"type": "str"},
            "subject_alt_names": {"type": "list", "elements": "str", "default": []},
            "usage": {"type": "str", "choices": list(tls_ca.USAGES), "default": "server_client"},
            "days": {"type": "int", "default": 825},
        },
        required_by={"csr": ["common_name"]},
        supports_check_mode=True,
    )
    p = module.params
    tls_ca.use(lambda args, data=None: module.run_command(args, data=data, binary_data=True))
    if not p["ca_dir"].startswith("/") or "/../" in p["ca_dir"] + "/":
        module.fail_json(msg="ca_dir: %r must be an absolute path without '..' parts" % p["ca_dir"])
    if not 1 <= p["days"] <= 3650:
        module.fail_json(msg="days: %d is outside 1..3650" % p["days"])
    exists = os.path.exists(os.path.join(p["ca_dir"], "ca.key"))
    result = {"changed": False, "ca_created": False, "ca_certificate": ""}
    if not exists and not p["create_ca"]:
        module.fail_json(msg="ca_dir: %s has no CA and create_ca is false: restore the CA from backup, or set "
                             "create_ca to make a new one" % p["ca_dir"], **result)
    try:
        if not exists and module.check_mode:
            result.update(changed=True, ca_created=True)
            module.exit_json(**result)
        pem, created = tls_ca.ensure_ca(p["ca_dir"], p["ca_common_name"])
        result.update(ca_certificate=pem, ca_created=created, changed=created)
        if p["csr"]:
            result["changed"] = True
            if not module.check_mode:
                result["certificate"] = tls_ca.sign(p["ca_dir"], p["csr"], p["common_name"], p["subject_alt_names"],
                                                    p["usage"], p["days"])
    except tls_ca.TlsError as exc:
        module.fail_json(msg=str(exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
