# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: etc_hosts_block
short_description: The /etc/hosts lines (address and name) of a list of hosts, each value checked strictly
version_added: 0.1.0
description:
  - Returns one C(ADDRESS NAME) line per host that has the address host variable, in the order given.
  - Fails, naming the host and the field, when an address is not a plain IPv4 or IPv6 address (no scope id,
    space or newline) or a host name is not a DNS name (dot-separated labels of letters, digits and C(-)), so
    no value can add a line to /etc/hosts on every host. Hosts without the variable are left out.
options:
  _input:
    description: Inventory names of the hosts.
    type: list
    elements: str
    required: true
  hostvars:
    description: The C(hostvars) mapping (or any mapping of host name to variables).
    type: dict
    required: true
  address_var:
    description: Host variable with the address to write.
    type: str
    default: private_ip
"""

EXAMPLES = r"""
- name: The storage hosts' block of /etc/hosts
  ansible.builtin.debug:
    msg: "{{ groups['storage'] | sort | smc.backend.etc_hosts_block(hostvars) }}"
"""

RETURN = r"""
_value:
  description: The lines, each ending in a newline (empty when no host has the address variable).
  type: str
"""

import ipaddress
import json
import re
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

_IP_CHARS = re.compile(r"[0-9A-Fa-f:.]+")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(r"(?=.{1,253}\Z)(?:%s\.)*%s" % (_LABEL, _LABEL))


def _shown(value):
    return json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def address_error(host, value, field="private_ip"):
    """Why ``value`` cannot be ``host``'s address in /etc/hosts, or None."""
    if isinstance(value, str) and _IP_CHARS.fullmatch(value):
        try:
            ipaddress.ip_address(value)
            return None
        except ValueError:
            pass
    return f"{field} of {host}: {_shown(value)} is not an IP address; set it to the host's private address"


def name_error(host):
    """Why ``host`` cannot be a name in /etc/hosts, or None."""
    if isinstance(host, str) and _HOST_NAME.fullmatch(host) and not re.fullmatch(r"[0-9.]+", host):
        return None
    return (f"host name {_shown(host)} is not a DNS name (dot-separated labels of letters, digits and '-', "
            "not all digits); rename the host in the inventory")


def etc_hosts_block(hosts, hostvars, address_var="private_ip"):
    """``"ADDRESS NAME\\n"`` per host of ``hosts`` that has ``address_var``; every problem at once."""
    if isinstance(hosts, (str, Mapping)) or not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError(f"etc_hosts_block: the input must be a list of host names, got {_shown(hosts)}")
    if not isinstance(hostvars, Mapping):
        raise AnsibleFilterError("etc_hosts_block: hostvars must be a mapping of host name to variables")
    errors, lines = [], []
    for host in hosts:
        problem = name_error(host)
        if problem:
            errors.append(problem)
            continue
        if host not in hostvars:
            errors.append(f"host {host} is not in the inventory")
            continue
        hv = hostvars[host]
        if address_var not in hv:
            continue
        value = hv[address_var]
        problem = address_error(host, value, address_var)
        if problem:
            errors.append(problem)
            continue
        lines.append(f"{value} {host}\n")
    if errors:
        raise AnsibleFilterError("; ".join(errors))
    return "".join(lines)


class FilterModule:
    """The etc_hosts_block filter."""

    def filters(self):
        return {"etc_hosts_block": etc_hosts_block}
