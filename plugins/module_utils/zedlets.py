# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which zedlet links the ZFS event daemon's directory should hold (pure; no Ansible, no I/O).

zed forks every zedlet whose name starts with an event's class or subclass, and every ``all-*`` zedlet, for
each event. ZFS posts a ``history_event`` for every snapshot, dataset creation and destroy, so the packaged
``all-syslog.sh`` and ``history_event-zfs-list-cacher.sh`` links cost two shells per snapshot. The quiet
layout links the syslog zedlet once per listed subclass instead (``<class>-syslog.sh``) and leaves the list
cacher out.
"""

import re

__all__ = ["ZedletError", "wanted_links", "plan"]

SYSLOG = "all-syslog.sh"
CACHER = "history_event-zfs-list-cacher.sh"
CLASS_RE = re.compile(r"[a-z][a-z0-9_.]*\Z")


class ZedletError(ValueError):
    """Bad input or a directory state we will not touch; the message names the field or file and the fix."""


def wanted_links(source, quiet, classes):
    """{link name: target} the directory should hold for the zedlets this layout manages."""
    if not quiet:
        return {SYSLOG: "%s/%s" % (source, SYSLOG), CACHER: "%s/%s" % (source, CACHER)}
    out = {}
    for i, cls in enumerate(classes):
        if not isinstance(cls, str) or not CLASS_RE.match(cls) or cls == "history_event" or cls == "all":
            raise ZedletError("syslog_classes[%d]: %r is not an event subclass to log (lower-case letters, digits,"
                              " '_' or '.'; not 'all' or 'history_event')" % (i, cls))
        out["%s-syslog.sh" % cls] = "%s/%s" % (source, SYSLOG)
    return out


def plan(existing, source, quiet, classes):
    """Compare the directory, ``existing`` = {name: link target, or None for a regular file}, with the layout.

    Returns (create {name: target}, remove [names]). Only links this layout manages are removed: the
    packaged all-syslog.sh and list cacher in the quiet layout, and any other link to the packaged syslog
    zedlet that is not wanted. Regular files (an operator's own zedlets) are never touched; one standing
    where a link must go or where a packaged link must leave raises ZedletError."""
    want = wanted_links(source, quiet, classes)
    syslog_target = "%s/%s" % (source, SYSLOG)
    create, remove = {}, []
    for name, target in sorted(want.items()):
        if name in existing and existing[name] is None:
            raise ZedletError("%s is a regular file where the link to %s belongs: move it away, or keep it by "
                              "leaving its class out of syslog_classes" % (name, target))
        if existing.get(name) != target:
            create[name] = target
    for name, target in sorted(existing.items()):
        if name in want:
            continue
        packaged = quiet and name in (SYSLOG, CACHER)
        if packaged and target is None:
            raise ZedletError("%s is a regular file, not the packaged link: it would run for every snapshot; "
                              "move it away or set quiet_history to false" % name)
        if packaged or (target == syslog_target and name.endswith("-syslog.sh")):
            remove.append(name)
    return create, remove
