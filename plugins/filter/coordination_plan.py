# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: coordination_plan
short_description: Plan the etcd members of group coordination - names, client URLs, each member's config file
version_added: 0.2.0
description:
  - Builds the member list from host variables, checks it (names, IP addresses, DCs, an odd count) and the
    raft timings, and fails naming the field before anything reaches a host.
  - From which members already hold data, decides whether this run bootstraps a new cluster, joins one new
    member to the running ones (one at a time), or only keeps members as they are.
  - Returns each member's configuration (etcd's C(--config-file), as a mapping). A member that holds data keeps
    the initial-cluster settings of its current file (etcd ignores them once it has data), so adding or
    removing a member does not rewrite - and restart - every other member.
  - Pure logic in C(plugins/module_utils/etcd_member.py).
options:
  _input:
    description: Inventory names of the members (the group's hosts, in inventory order).
    type: list
    elements: str
    required: true
  hostvars:
    description: The C(hostvars) mapping.
    type: dict
    required: true
  with_data:
    description: Inventory name to whether the member's data directory already holds a member.
    type: dict
    default: {}
  previous:
    description: Inventory name to the text of its current config file (JSON), where one exists.
    type: dict
    default: {}
  name_var:
    description: Host variable with the member's etcd name (default the inventory name).
    type: str
    default: coordination_member_name
  address_var:
    description: Host variable with the member's address on the private network.
    type: str
    default: private_ip
  dc_var:
    description: Host variable naming the member's data center.
    type: str
    default: dc
  tls:
    description: Paths C(ca), C(cert), C(key) on the members.
    type: dict
    required: true
  data_dir:
    description: The members' data directory.
    type: str
    required: true
  timings:
    description: C(heartbeat_ms), C(election_ms), C(snapshot_count), C(quota_backend_bytes), C(compaction_hours).
    type: dict
    default: {}
  cluster_token:
    description: The cluster's token (distinct per cluster, so two clusters' members never mix).
    type: str
    default: smc
  client_port:
    description: Client port.
    type: int
    default: 2379
  peer_port:
    description: Peer port.
    type: int
    default: 2380
"""

EXAMPLES = r"""
- name: Plan the members once
  ansible.builtin.set_fact:
    coordination: "{{ groups['coordination'] | smc.backend.coordination_plan(hostvars, tls=tls, data_dir='/var/lib/smc-etcd') }}"
  run_once: true
"""

RETURN = r"""
_value:
  description: The plan.
  type: dict
  contains:
    members:
      description: C(name), C(address), C(dc) and C(host) (inventory name) of each member.
      type: list
    endpoints:
      description: Every member's client URL (the agents' C(smc_etcd_endpoints)).
      type: list
    mode:
      description: C(bootstrap), C(join) or C(running).
      type: str
    joining:
      description: Inventory names of the member joining now.
      type: list
    configs:
      description: Inventory name to that member's configuration mapping.
      type: dict
"""

import json
import re

from ansible.errors import AnsibleFilterError

from ansible_collections.smc.backend.plugins.module_utils import etcd_member

_TOKEN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")


def _previous_initial(text):
    """The initial-cluster settings of a member's current config file, or None."""
    try:
        old = json.loads(text) if text else None
    except ValueError:
        return None
    if isinstance(old, dict) and isinstance(old.get("initial-cluster"), str):
        return {k: old[k] for k in ("initial-cluster", "initial-cluster-state", "initial-cluster-token") if k in old}
    return None


def coordination_plan(hosts, hostvars, tls, data_dir, with_data=None, previous=None,
                      name_var="coordination_member_name", address_var="private_ip", dc_var="dc", timings=None,
                      cluster_token="smc", client_port=2379, peer_port=2380):
    if not isinstance(hosts, (list, tuple)) or not all(isinstance(h, str) for h in hosts):
        raise AnsibleFilterError("coordination: the input must be the list of member hosts, got %r" % (hosts,))
    if not hosts:
        raise AnsibleFilterError("coordination: group coordination has no hosts: add three (one per DC)")
    members = []
    for h in hosts:
        hv = hostvars[h]
        members.append({"name": hv.get(name_var) or h, "address": hv.get(address_var), "dc": hv.get(dc_var)})
    error = (etcd_member.members_error(members, "coordination members (%s)" % ", ".join(hosts))
             or etcd_member.timings_error(dict(timings or {}), "coordination"))
    if error:
        raise AnsibleFilterError(error)
    if not isinstance(cluster_token, str) or not _TOKEN_RE.match(cluster_token):
        raise AnsibleFilterError("coordination_cluster_token: %r: letters, digits, '_', '.' and '-'" % (cluster_token,))
    for key in ("ca", "cert", "key"):
        if not isinstance((tls or {}).get(key), str) or not tls[key].startswith("/"):
            raise AnsibleFilterError("coordination TLS paths: %s must be an absolute path" % key)
    name_of = dict(zip(hosts, (m["name"] for m in members)))
    running = [name_of[h] for h in hosts if (with_data or {}).get(h)]
    try:
        join = etcd_member.join_plan(members, running)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None
    state = "new" if join["mode"] == "bootstrap" else "existing"
    configs = {}
    for h in hosts:
        me = name_of[h]
        joining = me in join["joining"]
        config = etcd_member.member_config(me, members, tls, data_dir, state, cluster_token, timings, client_port,
                                           peer_port, initial=running + [me] if joining else None)
        kept = None if joining or state == "new" else _previous_initial((previous or {}).get(h))
        if kept:
            config.update(kept)
        configs[h] = config
    return {
        "members": [dict(m, host=h) for h, m in zip(hosts, members)],
        "endpoints": etcd_member.client_urls(members, client_port),
        "mode": join["mode"],
        "joining": [h for h in hosts if name_of[h] in join["joining"]],
        "configs": configs,
    }


class FilterModule:
    """The coordination_plan filter."""

    def filters(self):
        return {"coordination_plan": coordination_plan}
