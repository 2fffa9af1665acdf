# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: placement_for_host
short_description: The projects one host is primary for and holds replicas of
version_added: 0.1.0
description:
  - Takes a placement computed by M(smc.backend.placement) (its RV(smc.backend.placement#module:placement)
    result, or the JSON file it writes, already parsed) and returns one host's share, for the per-host plan
    templates of the roles.
  - Pure logic in C(plugins/module_utils/placement.py).
options:
  _input:
    description: Project id to host list (primary first), or the module's file content with a C(placement) key.
    type: dict
    required: true
  host:
    description: The host's inventory name.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Write this host's plan
  ansible.builtin.copy:
    dest: /etc/smc/placement.json
    content: "{{ placement_result.placement | smc.backend.placement_for_host(inventory_hostname) | to_nice_json }}"
    mode: "0644"

- name: From the file the module wrote on the controller
  ansible.builtin.debug:
    msg: "{{ lookup('ansible.builtin.file', '/srv/smc/placement.json') | from_json
             | smc.backend.placement_for_host('st-a1') }}"
"""

RETURN = r"""
_value:
  description: The host's projects, each list sorted.
  type: dict
  contains:
    primary:
      description: Projects whose primary is this host.
      type: list
      elements: str
    replica:
      description: Projects of which this host holds a copy but is not the primary.
      type: list
      elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.smc.backend.plugins.module_utils.placement import host_roles


def placement_for_host(placement, host):
    """``{"primary": [...], "replica": [...]}`` for ``host``."""
    if isinstance(placement, dict) and isinstance(placement.get("placement"), dict):
        placement = placement["placement"]
    if not isinstance(placement, dict):
        raise AnsibleFilterError("placement_for_host: input must be a dict of project id to host list, got %s"
                                 % type(placement).__name__)
    if not isinstance(host, str) or not host:
        raise AnsibleFilterError("placement_for_host: host must be a non-empty string (the inventory name)")
    for pid, hosts in placement.items():
        if isinstance(hosts, (str, bytes)) or not isinstance(hosts, (list, tuple)):
            raise AnsibleFilterError("placement_for_host: placement[%r] must be a list of host names" % (pid,))
    return host_roles(placement, host)


class FilterModule:
    def filters(self):
        return {"placement_for_host": placement_for_host}
