# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: fleet_status
short_description: Shape what playbooks/status.yml read from the hosts into one fleet summary
version_added: 0.1.0
description:
  - Takes the storage hosts' names and their host variables (C(dc) and the registered results
    C(status_zpool) of C(zpool list -Hp -o name,health,size,allocated,free) and C(status_agent) of
    C(smc-zfs-agent status --json)) and the registered result of Prometheus' C(/api/v1/alerts), and returns
    hosts by DC, pools, replication lag percentiles and the alerts firing, as JSON-ready data.
  - A host whose agent prints no replication status is reported as having none yet; a host not reached
    is listed as such. Pure logic in C(plugins/module_utils/fleet_status.py);
    M(smc.backend.fleet_status_text) turns the summary into lines for one screen.
options:
  _input:
    description: Inventory names of the storage hosts.
    type: list
    elements: str
    required: true
  hostvars:
    description: C(hostvars), or a mapping of host name to its variables.
    type: dict
    required: true
  alerts:
    description: The registered C(ansible.builtin.uri) result of C(/api/v1/alerts), or null.
    type: dict
  monitoring_host:
    description: Name of the monitoring host asked for alerts; empty when the inventory has none.
    type: str
  now:
    description: Current Unix time, for the lag of records that give only their last success.
    type: float
  coordination:
    description: >-
      The registered command result (stdout: one JSON line of C(smc-etcdctl endpoint status --cluster -w json),
      one of C(endpoint health --cluster -w json)) read on O(coordination_host), or null.
    type: dict
  coordination_host:
    description: Name of the coordination (etcd) host asked; empty when the inventory has none.
    type: str
"""

EXAMPLES = r"""
- name: Shape the summary
  ansible.builtin.set_fact:
    status_summary: "{{ groups['storage'] | smc.backend.fleet_status(hostvars, alerts=status_alerts,
                        monitoring_host='mon-1', now=now(utc=true).timestamp()) }}"
"""

RETURN = r"""
_value:
  description: The fleet summary.
  type: dict
  contains:
    hosts:
      description: Per host - name, dc, reachable, pools (health, sizes, capacity_ratio), pool_error,
        replication (copies, peers, failing, never, lag_seconds percentiles) or replication_note.
      type: list
      elements: dict
    dcs:
      description: DC to its host names.
      type: dict
    unreachable:
      description: Hosts not reached.
      type: list
      elements: str
    pools:
      description: count, unhealthy (pools not ONLINE) and fullest.
      type: dict
    replication:
      description: Fleet-wide copies, failing, never replicated, lag_seconds (p50, p90, p99, max), hosts reporting.
      type: dict
    alerts:
      description: source, firing (alertname, severity, instance, summary, active_at), error.
      type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.smc.backend.plugins.module_utils.fleet_status import summarize


def _plain(value):
    return dict(value) if isinstance(value, dict) else None


def fleet_status(hosts, hostvars, alerts=None, monitoring_host=None, now=None, coordination=None,
                 coordination_host=None):
    """The fleet summary of ``hosts`` from their variables in ``hostvars``."""
    if isinstance(hosts, (str, bytes)) or not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError("fleet_status: input must be a list of host names, got %s" % type(hosts).__name__)
    raw = {}
    for name in hosts:
        try:
            hv = hostvars[name]
        except KeyError:
            raise AnsibleFilterError("fleet_status: host %r is not in hostvars" % (name,)) from None
        raw[str(name)] = dict(dc=hv.get("dc"), zpool=_plain(hv.get("status_zpool")),
                              agent=_plain(hv.get("status_agent")))
    try:
        now = None if now is None else float(now)
    except (TypeError, ValueError):
        raise AnsibleFilterError("fleet_status: now must be a Unix time, got %r" % (now,)) from None
    return summarize(raw, alerts=_plain(alerts), monitoring_host=monitoring_host or None, now=now,
                     coordination=_plain(coordination), coordination_host=coordination_host or None)


class FilterModule:
    def filters(self):
        return {"fleet_status": fleet_status}
