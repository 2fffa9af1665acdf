# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: offline_summary
short_description: The closing lines of playbooks/failover.yml when etcd has no quorum
version_added: 0.1.0
description:
  - Turns the result of C(smc.backend.offline_promotions) and the C(smc-zfs-agent ha-promote-offline) reports
    into lines - each project promoted (or that would be, in check mode), from which host to which at which
    epoch, what was refused, and on which hosts the decision is recorded.
  - Pure logic in C(plugins/module_utils/failover.py).
options:
  _input:
    description: The result of C(smc.backend.offline_promotions).
    type: dict
    required: true
  reports:
    description: Host name to the JSON report of C(smc-zfs-agent ha-promote-offline) there.
    type: dict
    required: true
  check:
    description: Whether the play ran in check mode (nothing recorded or promoted).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Summary
  ansible.builtin.debug:
    msg: "{{ promotions | smc.backend.offline_summary(reports, ansible_check_mode) }}"
"""

RETURN = r"""
_value:
  description: Lines of text.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.smc.backend.plugins.module_utils.failover import offline_summary as render


def offline_summary(promotions, reports, check=False):
    if not isinstance(promotions, dict) or "moves" not in promotions:
        raise AnsibleFilterError("offline_summary: input must be the result of smc.backend.offline_promotions")
    if not isinstance(reports, dict):
        raise AnsibleFilterError("offline_summary: reports must map host names to ha-promote-offline reports")
    return render(promotions, reports, bool(check))


class FilterModule:
    def filters(self):
        return {"offline_summary": offline_summary}
