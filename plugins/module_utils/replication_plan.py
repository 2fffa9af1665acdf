# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What to send from a primary's dataset to one replica (pure: no I/O, no Ansible; ships to hosts).

``decide(source, target, epoch)`` compares one listing of each side and returns an ``Action``:

* ``skip``        the target holds the source's newest snapshot (matched by GUID): nothing to send.
* ``full``        the target has no copy: send the oldest snapshot whole, then the rest incrementally.
* ``incremental`` ``zfs send -I base to``: the base is the newest target snapshot whose GUID the source
                  still has (a snapshot, or a bookmark when the snapshot was pruned: then ``-i``).
* ``resume``      the target holds a resume token of a receive cut off midway whose ``to`` snapshot the source
                  still has: ``zfs send -t token``.
* ``abort``       the token's ``to`` snapshot is gone from the source: clear the partial receive, then plan again.
* ``quarantine``  the target has history or writes the source lacks (a fork): never overwrite (no ``recv -F``);
                  rename the target aside and seed again.
* ``refuse``      the target's epoch is higher than ours: we are not the primary any more and must not send.

Snapshots are dicts ``{"name": "smc_...", "guid": int, "txg": int}`` (``txg`` is createtxg, only comparable
on one side); bookmarks the same. GUIDs, not names, decide what is common.
"""

import collections

__all__ = ["Action", "decide", "newest", "by_txg", "ReplicationPlanError"]

Action = collections.namedtuple("Action", "kind base to reason token")
Action.__new__.__defaults__ = (None, None, "", None)


class ReplicationPlanError(ValueError):
    """A listing of the wrong shape (names the field)."""


def by_txg(snapshots):
    """Oldest first; ties by name, so the order is the same on every run."""
    return sorted(snapshots, key=lambda s: (s["txg"], s["name"]))


def newest(snapshots):
    return by_txg(snapshots)[-1] if snapshots else None


def _check(side, where):
    for key in ("snapshots", "bookmarks"):
        for i, snap in enumerate(side.get(key) or []):
            if not isinstance(snap, dict) or not isinstance(snap.get("name"), str) \
                    or not isinstance(snap.get("guid"), int) or not isinstance(snap.get("txg"), int):
                raise ReplicationPlanError("%s.%s[%d]: expected {name, guid, txg}, got %r" % (where, key, i, snap))
    epoch = side.get("epoch", 0)
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ReplicationPlanError("%s.epoch: expected a whole number >= 0, got %r" % (where, epoch))


def decide(source, target, epoch):
    """One Action for one (dataset, target). ``source``: {snapshots, bookmarks}; ``target``: None when the
    dataset does not exist there, else {snapshots, epoch, written, resume_token, resume_toguid}. ``epoch``
    is the project's epoch on the sending side."""
    _check(source, "source")
    src = by_txg(source.get("snapshots") or [])
    if not src:
        return Action("skip", reason="the source has no snapshot yet")
    latest = src[-1]
    if target is None:
        return Action("full", to=latest, base=None, reason="no copy on the target: seed it")
    _check(target, "target")
    if target.get("epoch", 0) > epoch:
        return Action("refuse", reason="the target's epoch %d is newer than ours (%d): this host is no longer the "
                                       "primary and must not send" % (target["epoch"], epoch))
    src_guids = dict((s["guid"], s) for s in src)
    token = target.get("resume_token")
    if token:
        toguid = target.get("resume_toguid")
        if toguid is not None and toguid not in src_guids:
            return Action("abort", reason="the interrupted receive's snapshot (guid %d) is gone from the source: "
                                          "clear the partial state, then send again" % toguid)
        return Action("resume", token=token, to=src_guids.get(toguid), reason="resume the interrupted receive")
    dst = by_txg(target.get("snapshots") or [])
    if not dst:
        return Action("quarantine", reason="the target dataset exists but holds no snapshot: its content is "
                                           "unknown, so it is kept aside, not overwritten")
    marks = dict((b["guid"], b) for b in source.get("bookmarks") or [])
    common = None
    for snap in reversed(dst):
        if snap["guid"] in src_guids or snap["guid"] in marks:
            common = snap
            break
    if common is None:
        return Action("quarantine", reason="no snapshot in common with the source (by GUID): a different history")
    if common is not dst[-1]:
        extra = [s["name"] for s in dst[dst.index(common) + 1:]]
        return Action("quarantine", reason="the target has %d snapshot(s) the source lacks (%s): a forked history"
                                           % (len(extra), ", ".join(extra[:3])))
    if (target.get("written") or 0) > 0:
        return Action("quarantine", reason="the target was written to (%d bytes) after its newest snapshot"
                                           % target["written"])
    if common["guid"] == latest["guid"]:
        return Action("skip", base=common, to=latest, reason="up to date")
    base = src_guids.get(common["guid"])
    if base is not None:
        return Action("incremental", base=base, to=latest, reason="send -I from the newest common snapshot")
    return Action("incremental", base=dict(marks[common["guid"]], bookmark=True), to=latest,
                  reason="send -i from the bookmark of the pruned common snapshot")
