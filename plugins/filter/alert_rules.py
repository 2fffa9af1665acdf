# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: alert_rules
short_description: The collection's alert rule file with an operator's thresholds, windows and severities
version_added: 0.1.0
description:
  - Takes the text of a Prometheus rule file (role monitoring's C(smc-alerts.yml)) and returns it with
    per-alert overrides applied, as rule file text. Without overrides the text comes back unchanged.
  - Pure logic in C(plugins/module_utils/alert_rules.py); an unknown alert, an unknown key, a bad duration
    or a threshold for an expression without one fails with a message naming the alert and the key.
options:
  _input:
    description: The rule file's text.
    type: str
    required: true
  overrides:
    description:
      - Alert name to settings; each of C(for) (a Prometheus duration), C(severity) (critical, warning,
        info) and C(threshold) (the number the expression compares against) is optional.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Rules with a longer replication lag window
  ansible.builtin.copy:
    dest: /etc/prometheus/rules/smc-alerts.yml
    content: "{{ lookup('ansible.builtin.file', 'smc-alerts.yml')
                 | smc.backend.alert_rules({'SmcReplicationLagHigh': {'for': '30m', 'threshold': 7200}}) }}"
    mode: "0644"
"""

RETURN = r"""
_value:
  description: The rule file's text, overrides applied (a header comment lists them).
  type: str
"""

import json

import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.smc.backend.plugins.module_utils.alert_rules import AlertRulesError, apply_overrides


def alert_rules(text, overrides):
    """``text`` with ``overrides`` applied (``text`` itself when there are none)."""
    if not isinstance(text, str):
        raise AnsibleFilterError("alert_rules: input must be the rule file's text")
    if not overrides:
        return text
    try:
        doc = yaml.safe_load(text)
        # plain types: Ansible hands over its own str/dict subclasses, which yaml.safe_dump cannot represent
        out = apply_overrides(doc, json.loads(json.dumps(overrides, default=str)))
    except (AlertRulesError, yaml.YAMLError) as exc:
        raise AnsibleFilterError("alert_rules: %s" % exc) from exc
    header = ("# smc.backend's alert rules with the inventory's monitoring_alert_overrides applied:\n# %s\n"
              % json.dumps(overrides, sort_keys=True, default=str))
    return header + yaml.safe_dump(out, default_flow_style=False, sort_keys=False, width=120)


class FilterModule:
    def filters(self):
        return {"alert_rules": alert_rules}
