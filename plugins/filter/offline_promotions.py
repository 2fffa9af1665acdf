# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: offline_promotions
short_description: What playbooks/failover.yml promotes when etcd has no quorum
version_added: 0.1.0
description:
  - From the C(smc-zfs-agent ha-survey) reports of every live storage host and the hosts an operator confirmed
    dead, the projects whose last known primary is dead, each with its winner (the most up-to-date live copy;
    ties go to the plan's order) and its new epoch (the highest any copy or view knows, plus one).
  - A project without a live copy that has a snapshot is refused; so is every promotion while any live host
    still reaches etcd (etcd decides then).
  - Pure logic in C(plugins/module_utils/failover.py).
options:
  _input:
    description: Host name to the JSON report of C(smc-zfs-agent ha-survey) on that host.
    type: dict
    required: true
  dead:
    description: The hosts confirmed dead.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Plan the promotions
  ansible.builtin.set_fact:
    promotions: "{{ surveys | smc.backend.offline_promotions(confirm_dead) }}"
"""

RETURN = r"""
_value:
  description: C(moves) (project, from, to, epoch, newest), C(refused) (sentences), C(etcd) (hosts that reach
    etcd) and C(dead).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.smc.backend.plugins.module_utils import failover


def offline_promotions(surveys, dead):
    if not isinstance(surveys, dict) or not all(isinstance(s, dict) and "projects" in s for s in surveys.values()):
        raise AnsibleFilterError("offline_promotions: input must map host names to smc-zfs-agent ha-survey reports")
    if not isinstance(dead, list) or not all(isinstance(h, str) for h in dead):
        raise AnsibleFilterError("offline_promotions: dead must be a list of host names")
    return dict(failover.offline_promotions(surveys, dead), dead=sorted(set(dead)))


class FilterModule:
    def filters(self):
        return {"offline_promotions": offline_promotions}
