# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Operators' overrides of the collection's alert rules (pure, standard library only).

The collection ships one Prometheus rule file (roles/monitoring/files/smc-alerts.yml). Its thresholds and
``for:`` windows are the design's defaults; an operator tunes them per alert without copying the file:

    {"SmcReplicationLagHigh": {"for": "30m", "threshold": 7200}, "SmcPoolFull": {"severity": "critical"}}

``for`` is a Prometheus duration, ``severity`` one of critical/warning/info, ``threshold`` the number the
alert's expression compares against: only alerts whose expression is one condition ending in ``<op> <number>``
have one (the others refuse it, naming the alert). Unknown alerts and keys are refused, so a typo never
silently leaves a default in place.
"""

import copy
import math
import re

__all__ = ["AlertRulesError", "OVERRIDE_KEYS", "SEVERITIES", "alerts", "threshold", "apply_overrides"]

OVERRIDE_KEYS = ("for", "severity", "threshold")
SEVERITIES = ("critical", "warning", "info")
DURATION_RE = re.compile(r"(?:[0-9]+(?:ms|s|m|h|d|w|y))+\Z")
THRESHOLD_RE = re.compile(r"(?P<head>.*(?:>=|<=|==|!=|>|<)\s*)(?P<number>-?[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)\s*\Z",
                          re.S)
COMPOUND_RE = re.compile(r"\b(?:and|or|unless)\b")


class AlertRulesError(ValueError):
    """An override that cannot apply; the message names the alert and the key."""


def alerts(doc):
    """{alert name: rule} of a parsed rule file."""
    if not isinstance(doc, dict) or not isinstance(doc.get("groups"), list):
        raise AlertRulesError("the rule file must be a mapping with a list of groups")
    found = {}
    for group in doc["groups"]:
        for rule in (group or {}).get("rules") or []:
            if isinstance(rule, dict) and "alert" in rule:
                found[rule["alert"]] = rule
    return found


def _comparison(rule):
    """The match of a simple expression's final ``<op> <number>``; None for one that ends otherwise or
    joins several conditions (and, or, unless), where "the" threshold would be ambiguous."""
    expr = str(rule.get("expr", ""))
    if COMPOUND_RE.search(expr):
        return None
    return THRESHOLD_RE.match(expr)


def threshold(rule):
    """The number the rule's expression compares against, or None when it has no single one."""
    m = _comparison(rule)
    return float(m.group("number")) if m else None


def _number(value, where):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or math.isinf(value):
        raise AlertRulesError("%s must be a number, got %r" % (where, value))
    return int(value) if float(value).is_integer() else value


def apply_overrides(doc, overrides):
    """A copy of the parsed rule file ``doc`` with ``overrides`` ({alert: {for, severity, threshold}})
    applied; ``doc`` is left as it was."""
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, dict):
        raise AlertRulesError("monitoring_alert_overrides must be a mapping of alert name to settings, got %s"
                              % type(overrides).__name__)
    out = copy.deepcopy(doc)
    rules = alerts(out)
    for name in sorted(overrides):
        where = "monitoring_alert_overrides[%r]" % (name,)
        if name not in rules:
            raise AlertRulesError("%s: no such alert; the collection's alerts are %s"
                                  % (where, ", ".join(sorted(rules))))
        settings = overrides[name]
        if not isinstance(settings, dict) or not settings:
            raise AlertRulesError("%s must be a mapping with some of %s" % (where, ", ".join(OVERRIDE_KEYS)))
        unknown = sorted(set(settings) - set(OVERRIDE_KEYS))
        if unknown:
            raise AlertRulesError("%s: unknown keys %s (known: %s)"
                                  % (where, ", ".join(map(str, unknown)), ", ".join(OVERRIDE_KEYS)))
        rule = rules[name]
        if "for" in settings:
            value = settings["for"]
            if not isinstance(value, str) or not DURATION_RE.match(value):
                raise AlertRulesError("%s.for must be a Prometheus duration such as 90s, 5m or 1h30m, got %r"
                                      % (where, value))
            rule["for"] = value
        if "severity" in settings:
            if settings["severity"] not in SEVERITIES:
                raise AlertRulesError("%s.severity must be one of %s, got %r"
                                      % (where, ", ".join(SEVERITIES), settings["severity"]))
            rule.setdefault("labels", {})["severity"] = settings["severity"]
        if "threshold" in settings:
            m = _comparison(rule)
            if not m:
                raise AlertRulesError("%s.threshold: the expression of %s compares against no single number; "
                                      "replace the rule with a file of your own (monitoring_rule_files)"
                                      % (where, name))
            rule["expr"] = m.group("head") + repr(_number(settings["threshold"], where + ".threshold"))
    return out
