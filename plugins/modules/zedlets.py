#!/usr/bin/python
# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: zedlets
short_description: Keep the ZFS event daemon from forking shells for every snapshot
description:
  - ZFS posts a C(history_event) for every snapshot, dataset creation and destroy, and zed forks every
    C(all-*) and C(history_event-*) zedlet for each one. The packaged C(all-syslog.sh) and
    C(history_event-zfs-list-cacher.sh) links therefore cost two shells per snapshot, although zed.rc keeps
    history events out of syslog by default and the list cacher does nothing unless the mount generator's
    cache is set up. On a host with thousands of datasets snapshotted every 15 minutes that is thousands of
    processes per round.
  - With O(quiet_history=true) the syslog zedlet is linked once per event subclass in O(syslog_classes)
    (C(<class>-syslog.sh)) and the two packaged links are removed. With O(quiet_history=false) the packaged
    links are restored and the per-class links removed.
  - Only links to the packaged zedlets are created or removed. Regular files (an operator's own zedlets) are
    never touched; one standing in the way fails the task with nothing changed.
  - Restart C(zfs-zed) after a change (the role does it through a handler).
author: smc.backend developers (@smc-backend)
attributes:
  check_mode:
    support: full
    description: Reports the links that would be created and removed.
  diff_mode:
    support: full
    description: The zedlet directory's managed links before and after.
options:
  dir:
    description: Directory zed reads its zedlets from.
    type: path
    default: /etc/zfs/zed.d
  source:
    description: Directory of the packaged zedlets (Debian V(/usr/lib/zfs-linux/zed.d); upstream
      V(/usr/libexec/zfs/zed.d)). It must hold C(all-syslog.sh).
    type: path
    default: /usr/lib/zfs-linux/zed.d
  quiet_history:
    description: Per-class syslog links and no list cacher (V(true)), or the packaged links (V(false)).
    type: bool
    default: true
  syslog_classes:
    description: Event subclasses logged to syslog when O(quiet_history=true), for example V(statechange),
      V(checksum), V(scrub_finish).
    type: list
    elements: str
    default: [checksum, data, io, delay, deadman, probe_failure, statechange, scrub_finish, resilver_finish]
"""

EXAMPLES = r"""
- name: No shell per snapshot; pool and disk events still logged
  smc.backend.zedlets:
    syslog_classes: [checksum, data, io, statechange, scrub_finish, resilver_finish]
  notify: Restart zed
"""

RETURN = r"""
created:
  description: Links created or re-pointed, name -> target.
  returned: always
  type: dict
  sample: {"statechange-syslog.sh": "/usr/lib/zfs-linux/zed.d/all-syslog.sh"}
removed:
  description: Links removed.
  returned: always
  type: list
  elements: str
  sample: ["all-syslog.sh", "history_event-zfs-list-cacher.sh"]
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smc.backend.plugins.module_utils.zedlets import SYSLOG, ZedletError, plan


def read_dir(path):
    """{name: link target, or None for anything that is not a link} of the directory's entries."""
    out = {}
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        out[name] = os.readlink(full) if os.path.islink(full) else None
    return out


def describe(state, names):
    return "".join("%s -> %s\n" % (n, state[n] or "(file)") for n in sorted(names) if n in state)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dir=dict(type="path", default="/etc/zfs/zed.d"),
            source=dict(type="path", default="/usr/lib/zfs-linux/zed.d"),
            quiet_history=dict(type="bool", default=True),
            syslog_classes=dict(type="list", elements="str", default=[
                "checksum", "data", "io", "delay", "deadman", "probe_failure", "statechange", "scrub_finish",
                "resilver_finish"]),
        ),
        supports_check_mode=True,
    )
    p = module.params
    source = p["source"].rstrip("/")
    if not os.path.isdir(p["dir"]):
        module.fail_json(msg="dir: %s is not a directory; is zfs-zed installed? Nothing was changed." % p["dir"])
    if not os.path.isfile(os.path.join(source, SYSLOG)):
        module.fail_json(msg="source: %s has no %s; set it to the packaged zedlets' directory (Debian "
                             "/usr/lib/zfs-linux/zed.d, upstream /usr/libexec/zfs/zed.d). Nothing was changed."
                             % (source, SYSLOG))
    before = read_dir(p["dir"])
    try:
        create, remove = plan(before, source, p["quiet_history"], p["syslog_classes"])
    except ZedletError as exc:
        module.fail_json(msg="%s (in %s). Nothing was changed." % (exc, p["dir"]))
    after = {k: v for k, v in before.items() if k not in remove}
    after.update(create)
    touched = set(create) | set(remove)
    if touched and not module.check_mode:
        for name in remove:
            os.unlink(os.path.join(p["dir"], name))
        for name, target in sorted(create.items()):
            tmp = os.path.join(p["dir"], ".%s.smc-tmp" % name)
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(target, tmp)
            os.rename(tmp, os.path.join(p["dir"], name))
    module.exit_json(changed=bool(touched), created=create, removed=remove,
                     diff=dict(before=describe(before, touched), after=describe(after, touched)))


if __name__ == "__main__":
    main()
