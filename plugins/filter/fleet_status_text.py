# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: fleet_status_text
short_description: The fleet summary as lines for one screen
version_added: 0.1.0
description:
  - Turns the summary of M(smc.backend.fleet_status) into text lines - hosts by DC with their pools and
    replication, pools not ONLINE and the fullest, lag percentiles, alerts firing (at most 15 listed).
  - Pure logic in C(plugins/module_utils/fleet_status.py).
options:
  _input:
    description: The summary returned by M(smc.backend.fleet_status).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Show the fleet on one screen
  ansible.builtin.debug:
    msg: "{{ status_summary | smc.backend.fleet_status_text | join('\n') }}"
"""

RETURN = r"""
_value:
  description: Lines of text.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.smc.backend.plugins.module_utils.fleet_status import render_text

KEYS = ("hosts", "dcs", "unreachable", "pools", "replication", "alerts")


def fleet_status_text(summary):
    """Lines for one screen."""
    if not isinstance(summary, dict) or any(k not in summary for k in KEYS):
        raise AnsibleFilterError("fleet_status_text: input must be the summary of smc.backend.fleet_status (keys %s)"
                                 % ", ".join(KEYS))
    return render_text(summary)


class FilterModule:
    def filters(self):
        return {"fleet_status_text": fleet_status_text}
