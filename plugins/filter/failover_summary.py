# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: failover_summary
short_description: The closing lines of playbooks/failover.yml
version_added: 0.1.0
description:
  - Turns the report of C(smc-zfs-agent ha-failover) and the primaries C(smc-zfs-agent ha-status) names now
    into lines - the hosts declared dead (or that would be, in check mode), and each project that had to move,
    from which primary to which, or that it is not elected yet.
  - Pure logic in C(plugins/module_utils/failover.py).
options:
  _input:
    description: The JSON report of C(smc-zfs-agent ha-failover).
    type: dict
    required: true
  primary:
    description: C(primary) of C(smc-zfs-agent ha-status) - project to C({host, epoch}).
    type: dict
    required: true
  check:
    description: Whether the play ran in check mode (nothing declared).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Summary
  ansible.builtin.debug:
    msg: "{{ report | smc.backend.failover_summary(status.primary, ansible_check_mode) }}"
"""

RETURN = r"""
_value:
  description: Lines of text.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.smc.backend.plugins.module_utils.failover import failover_summary as render


def failover_summary(report, primary, check=False):
    if not isinstance(report, dict) or "moves" not in report:
        raise AnsibleFilterError("failover_summary: input must be the JSON report of smc-zfs-agent ha-failover")
    if not isinstance(primary, dict):
        raise AnsibleFilterError("failover_summary: primary must be the 'primary' mapping of smc-zfs-agent ha-status")
    return render(report, primary, bool(check))


class FilterModule:
    def filters(self):
        return {"failover_summary": failover_summary}
