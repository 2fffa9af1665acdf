# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: tinc_plan
short_description: Plan the tinc VPN mesh (addresses, hubs, bounded ConnectTo lists) for a list of hosts
version_added: 0.1.0
description:
  - Validates the members of the VPN and fails with every problem at once (duplicate or out-of-subnet
    VPN addresses, hubs that are not members, hosts without a data center or a reachable address).
  - Gives each member a VPN address (its C(vpn_address) host variable, else the address it had before,
    else a hash of its name into the subnet) that does not change when other hosts come or go.
  - Picks hubs and the ConnectTo list of every member; no member gets more than O(max_connect) entries.
  - Pure logic in C(plugins/module_utils/tinc_topology.py); this filter only reads host variables.
options:
  _input:
    description: Inventory names of the VPN members.
    type: list
    elements: str
    required: true
  hostvars:
    description: The C(hostvars) mapping (or any mapping of host name to variables).
    type: dict
    required: true
  subnet:
    description: The VPN subnet, for example C(10.88.0.0/16).
    type: str
    required: true
  hubs:
    description: Hub hosts; empty means the first O(hubs_per_dc) hosts of each data center (natural order).
    type: list
    elements: str
    default: []
  hubs_per_dc:
    description: Hubs chosen per data center when O(hubs) is empty.
    type: int
    default: 2
  max_connect:
    description: Most ConnectTo entries of any host (at least 2).
    type: int
    default: 3
  leaf_hubs:
    description: Hubs each non-hub host connects to (its own data center's first).
    type: int
    default: 2
  previous:
    description: Host name to the VPN address it had before, read back from the hosts; keeps addresses stable.
    type: dict
    default: {}
  manifests:
    description:
      - Host name to the text of the manifest the role left on that host (C(/etc/tinc/NET/.smc-managed));
        the addresses recorded there count as O(previous). Empty or unreadable text counts as nothing.
    type: dict
    default: {}
  dc_var:
    description: Host variable naming the data center.
    type: str
    default: dc
  address_var:
    description: Host variable with the address other hosts reach this one at.
    type: str
    default: private_ip
  vpn_address_var:
    description: Host variable with a fixed VPN address (optional per host).
    type: str
    default: vpn_address
  settings:
    description:
      - Daemon settings that reach tinc.conf and the host files, checked strictly and returned as RV(_value.settings)
        - C(port) (1-65535), C(mtu) (576-65535), C(compression) (0-11), C(max_timeout) (1-900),
          C(mode) (router, switch, hub),
        C(address_family) (ipv4, ipv6, any), C(network) (1-15 of C([A-Za-z0-9_])).
      - Host names, data centers (C([A-Za-z0-9][A-Za-z0-9_.-]*)) and addresses (an IP address or a DNS name) are
        always checked, so no value can carry a newline into every member's files.
    type: dict
"""

EXAMPLES = r"""
- name: Plan the mesh once for every host
  ansible.builtin.set_fact:
    tinc_mesh: "{{ groups['storage'] | smc.backend.tinc_plan(hostvars, subnet='10.88.0.0/16', hubs_per_dc=2) }}"
  run_once: true

- name: Show this host's ConnectTo list
  ansible.builtin.debug:
    msg: "{{ tinc_mesh.nodes[inventory_hostname].connect_to }}"
"""

RETURN = r"""
_value:
  description: The plan.
  type: dict
  contains:
    subnet:
      description: The VPN subnet in CIDR form.
      type: str
    prefixlen:
      description: Its prefix length.
      type: int
    hubs:
      description: Inventory names of the hubs.
      type: list
      elements: str
    nodes:
      description: >-
        Per inventory name - C(name), C(tinc_name) (only C([A-Za-z0-9_])), C(dc), C(address), C(vpn_address),
        C(hub) (bool) and C(connect_to) (tinc names).
      type: dict
    settings:
      description: The O(settings) given, checked (numbers as integers).
      type: dict
    revoked:
      description:
        - Per host given in O(manifests), the tinc names its manifest lists that are no longer members
          (the host files to remove there); names not made of C([A-Za-z0-9_]) are never listed.
      type: dict
"""

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.smc.backend.plugins.module_utils.tinc_topology import (
    TincTopologyError,
    plan,
    previous_addresses,
    revoked,
    validate_settings,
)


def _int(value):
    """Extra vars arrive as strings: '4' -> 4; anything else is left for the validation to name."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def tinc_plan(members, hostvars, subnet, hubs=None, hubs_per_dc=2, max_connect=3, leaf_hubs=2, previous=None,
              manifests=None, dc_var="dc", address_var="private_ip", vpn_address_var="vpn_address", settings=None):
    """Build the node list from host variables and return :func:`tinc_topology.plan`."""
    if settings is not None and not isinstance(settings, Mapping):
        raise AnsibleFilterError(f"tinc_plan: settings must be a mapping, got {settings!r}")
    if hubs is not None and (isinstance(hubs, (str, Mapping)) or not isinstance(hubs, (list, tuple))):
        raise AnsibleFilterError(f"tinc_plan: hubs must be a list of host names, got {hubs!r}")
    if not isinstance(members, (list, tuple)) or not all(isinstance(m, str) for m in members):
        raise AnsibleFilterError(f"tinc_plan: the input must be a list of host names, got {members!r}")
    nodes = []
    for name in members:
        if name not in hostvars:
            raise AnsibleFilterError(f"tinc_plan: host {name} is not in the inventory")
        hv = hostvars[name]
        nodes.append({
            "name": name,
            "dc": hv.get(dc_var),
            "address": hv.get(address_var),
            "vpn_address": hv.get(vpn_address_var),
        })
    for key, value in (("manifests", manifests), ("previous", previous)):
        if value is not None and not isinstance(value, Mapping):
            raise AnsibleFilterError(f"tinc_plan: {key} must be a mapping of host name to text, got {value!r}")
    remembered = previous_addresses(dict(manifests or {}))
    remembered.update(previous or {})
    try:
        checked = validate_settings(dict(settings or {}))
        result = plan(nodes, subnet, hubs=list(hubs or []), k=_int(max_connect), leaf_hubs=_int(leaf_hubs),
                      hubs_per_dc=_int(hubs_per_dc), previous=remembered)
        result["settings"] = checked
    except TincTopologyError as exc:
        raise AnsibleFilterError("tinc VPN: " + "; ".join(exc.errors)) from None
    result["revoked"] = revoked(dict(manifests or {}), members)
    return result


class FilterModule:
    """The tinc_plan filter."""

    def filters(self):
        return {"tinc_plan": tinc_plan}
