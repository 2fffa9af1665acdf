# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who may be primary, decided from etcd's state (pure; ships to hosts, where the HA loop applies it).

The model is Patroni's: every storage host holds a lease (key ``<prefix>hosts/<host>``); a project's primary
and epoch live in ``<prefix>primary/<project>``, written only by compare-and-swap on that key's revision. When
the primary's lease is gone, every live host holding a copy publishes how far its copy goes (newest snapshot:
creation time, GUID, name) under ``<prefix>candidates/<project>/<epoch>/<host>`` with its own lease. Once every
live holder has spoken (or ``collect_seconds`` passed), the most up-to-date copy wins (ties: the plan's order of
copies, primary first), and only the winner writes the primary key, at epoch + 1, by CAS. A host that cannot
renew its lease fences itself (its primaries read-only) before the lease can expire: ``timing_errors`` states
the inequalities.

An operator declares a host dead (``playbooks/failover.yml``: ``<prefix>dead/<host>``, kept until revived, and
``<prefix>window/<host>`` under a lease of the HA lease TTL, then the host's own lease revoked): from then on
it counts as not alive (it neither votes nor serves, even with a new lease), and the elections of the projects
it was primary of wait while its window lasts, the time the timing inequalities give a live host to fence
itself once its lease is gone. ``forced_moves`` is the plan such a declaration makes.

Without etcd's quorum nothing is elected. An operator who confirms which hosts are dead may still promote
(``offline_promotions``: the same rule, over what the live hosts report of their copies, at the highest epoch
any of them knows + 1). The decision is recorded on every live host (``merge_record``); while a record waits,
its projects hold no election, and the first host to see etcd again writes the declarations and the new
primaries by compare-and-swap (``reconcile``), unless etcd moved the project meanwhile: then etcd wins and the
recorded primary becomes a replica (its writes after the last common snapshot are kept aside by the sender).
"""

import json

__all__ = ["TimingError", "timing_errors", "keys", "parse_state", "serving", "newest_rank", "elect", "decide",
           "forced_moves", "failover_summary", "offline_promotions", "merge_record", "reconcile", "pending",
           "offline_summary"]


class TimingError(ValueError):
    """HA timeouts that would allow two writable copies."""


def timing_errors(ttl, renew_every, fence_after, skew_margin, tick):
    """The ordering that keeps one writer: a renewal is tried at least twice before fencing, and a host fences
    itself (within one tick) before its lease can expire at etcd, with room for clock rate differences.

        2 * renew_every <= fence_after   and   fence_after + tick + skew_margin < ttl
    """
    errors = []
    if not 0 < renew_every or not 0 < tick:
        errors.append("ha.renew_every and ha.tick must be > 0")
    if 2 * renew_every > fence_after:
        errors.append("ha.fence_after (%s s) must be at least 2 x ha.renew_every (%s s): one failed renewal must "
                      "not fence a host" % (fence_after, renew_every))
    if fence_after + tick + skew_margin >= ttl:
        errors.append("ha.fence_after + ha.tick + ha.skew_margin (%s + %s + %s s) must be below ha.lease_ttl (%s s): "
                      "a host must be read-only before its lease can expire" % (fence_after, tick, skew_margin, ttl))
    return errors


def keys(prefix):
    return {"hosts": prefix + "hosts/", "primary": prefix + "primary/", "candidates": prefix + "candidates/",
            "dead": prefix + "dead/", "window": prefix + "window/"}


def parse_state(kvs, prefix):
    """etcd's range of ``prefix`` ({key: (value, mod_revision, lease)}) as {alive: set, leases: {host: lease},
    primary: {pid: {host, epoch, lease, revision}}, candidates: {pid: {epoch: {host: info}}}, dead: {host: info},
    window: set}. A host declared dead is not alive, whatever lease it holds. Malformed values are ignored (and
    listed)."""
    k = keys(prefix)
    alive, leases, primary, candidates, dead, window, bad = set(), {}, {}, {}, {}, set(), []
    for key, (value, revision, lease) in kvs.items():
        try:
            if key.startswith(k["hosts"]):
                alive.add(key[len(k["hosts"]):])
                leases[key[len(k["hosts"]):]] = lease
            elif key.startswith(k["dead"]):
                doc = json.loads(value)
                dead[key[len(k["dead"]):]] = doc if isinstance(doc, dict) else {}
            elif key.startswith(k["window"]):
                window.add(key[len(k["window"]):])
            elif key.startswith(k["primary"]):
                doc = json.loads(value)
                primary[key[len(k["primary"]):]] = {"host": str(doc["host"]), "epoch": int(doc["epoch"]),
                                                    "lease": int(doc.get("lease") or 0), "revision": revision}
            elif key.startswith(k["candidates"]):
                pid, epoch, host = key[len(k["candidates"]):].split("/")
                candidates.setdefault(pid, {}).setdefault(int(epoch), {})[host] = json.loads(value)
        except (ValueError, KeyError, TypeError):
            bad.append(key)
    return {"alive": alive - set(dead), "leases": leases, "primary": primary, "candidates": candidates,
            "dead": dead, "window": window, "bad": bad}


def serving(state, pid):
    """Whether the primary etcd names for ``pid`` still holds the lease it was named under: a host whose lease
    expired (paused, cut off) and that took a new one is not the primary any more until an election says so."""
    current = state["primary"].get(pid)
    if current is None or current["host"] not in state["alive"]:
        return False
    return not current["lease"] or state["leases"].get(current["host"]) == current["lease"]


def newest_rank(newest):
    """How far a copy goes: (creation time, snapshot name) of its newest snapshot; no snapshot ranks lowest."""
    if not newest:
        return (-1, "")
    return (int(newest.get("creation") or 0), str(newest.get("name") or ""))


def elect(candidates, order):
    """The winner among ``candidates`` ({host: {creation, name, guid}}): the most up-to-date copy; ties go to
    the host first in ``order`` (the plan's copies, primary first)."""
    position = dict((h, i) for i, h in enumerate(order))
    ranked = sorted(candidates, key=lambda h: (newest_rank(candidates[h]), -position.get(h, len(order))),
                    reverse=True)
    return ranked[0] if ranked else None


def decide(me, projects, state, local, waited, collect_seconds, held=()):
    """What this host does for each of its projects, as a list of (action, pid, details) tuples:

    - ("bootstrap", pid, {host, epoch}): no primary in etcd yet and I am the plan's primary: create the key;
    - ("primary", pid, {epoch}): etcd names me at this epoch, under the lease I hold: my copy is writable;
    - ("replica", pid, {host, epoch}): etcd names another host that holds its lease: my copy stays read-only;
    - ("candidate", pid, {epoch, newest}): the primary's lease is gone: publish how far my copy goes;
    - ("claim", pid, {epoch, revision, over}): I won the election: CAS the primary key to epoch + 1;
    - ("wait", pid, {reason}): an election is under way or cannot be decided.

    ``projects``: {pid: [copies, plan primary first]} (host names); ``state``: parse_state(); ``local``: {pid:
    newest snapshot of my copy or None}; ``waited``: {pid: seconds since I first saw its election}; ``held``:
    projects with an offline promotion that etcd does not have yet (``pending``: etcd's epoch is lower): they
    hold no election and change no copy, even while etcd still names a primary at the lower epoch with a live
    lease (its lease outlived the quorum loss: etcd renews every lease when a new leader is elected)."""
    out = []
    declared = state.get("dead") or {}
    for pid, copies in sorted(projects.items()):
        current = state["primary"].get(pid)
        if pid in held:  # (even while etcd names a primary at a lower epoch with a live lease: the record is newer)
            out.append(("wait", pid, {"reason": "an offline promotion of this project waits to be written to etcd"}))
            continue
        if me in declared:  # an operator declared this host dead: it serves nothing and takes no part
            if current is not None and current["host"] != me and serving(state, pid):
                out.append(("replica", pid, {"host": current["host"], "epoch": current["epoch"]}))
            else:
                out.append(("wait", pid, {"reason": "this host was declared dead by an operator (failover.yml)"}))
            continue
        if current is None:
            if copies and copies[0] == me:
                out.append(("bootstrap", pid, {"host": me, "epoch": None}))
            else:
                out.append(("wait", pid, {"reason": "no primary in etcd yet"}))
            continue
        holder, epoch = current["host"], current["epoch"]
        if serving(state, pid):
            if holder == me:
                out.append(("primary", pid, {"epoch": epoch}))
            else:
                out.append(("replica", pid, {"host": holder, "epoch": epoch}))
            continue
        if holder in (state.get("window") or ()):
            out.append(("wait", pid, {"reason": "%s was declared dead: its fencing window is still open" % holder}))
            continue
        # the primary's lease is gone: an election among the live copies at this epoch (the old primary too,
        # when it came back with a new lease: it has to win like anyone else)
        voters = [h for h in copies if h in state["alive"]]
        spoken = dict((h, v) for h, v in (state["candidates"].get(pid, {}).get(epoch) or {}).items() if h in voters)
        if me not in spoken:
            out.append(("candidate", pid, {"epoch": epoch, "newest": local.get(pid)}))
            continue
        if len(spoken) < len(voters) and waited.get(pid, 0) < collect_seconds:
            out.append(("wait", pid, {"reason": "%d of %d live copies reported" % (len(spoken), len(voters))}))
            continue
        winner = elect(spoken, copies)
        if winner == me:
            out.append(("claim", pid, {"epoch": epoch + 1, "revision": current["revision"], "over": holder,
                                       "voters": sorted(spoken)}))
        else:
            out.append(("wait", pid, {"reason": "%s wins the election" % winner}))
    return out


def forced_moves(state, dead):
    """What declaring ``dead`` (host names) dead would do: [{project, host, epoch}] of the projects etcd names
    one of them primary of, sorted; each one's election then runs by the usual rule among its live copies."""
    dead = set(dead)
    return [{"project": pid, "host": cur["host"], "epoch": cur["epoch"]}
            for pid, cur in sorted(state["primary"].items()) if cur["host"] in dead]


def failover_summary(report, primary, check=False, limit=40):
    """failover.yml's closing lines: what was declared (or would be), and each project that had to move, with
    the primary etcd names now. ``report``: ha-failover's report; ``primary``: ha-status' {pid: {host,
    epoch}}. At most ``limit`` projects are listed."""
    declared, moves = report.get("declared") or [], report.get("moves") or []
    dead = set(declared) | set(report.get("already_dead") or [])
    lines = []
    if check:
        lines.append("check: would declare %s dead; %d project(s) would be elected elsewhere"
                     % (", ".join(declared) or "no new host", len(moves)))
    else:
        lines.append("declared dead: %s%s" % (", ".join(declared) or "none new",
                                              "; already: %s" % ", ".join(report["already_dead"])
                                              if report.get("already_dead") else ""))
    if report.get("revived"):
        lines.append("%s: %s" % ("would revive" if check else "revived", ", ".join(report["revived"])))
    left = []
    for move in moves[:limit]:
        now = primary.get(move["project"]) or {}
        if check:
            lines.append("  %s: primary %s (epoch %s) -> elected among its live copies"
                         % (move["project"], move["host"], move["epoch"]))
        elif now.get("host") and now["host"] not in dead:
            lines.append("  %s: %s (epoch %s) -> %s (epoch %s)"
                         % (move["project"], move["host"], move["epoch"], now["host"], now.get("epoch")))
        else:
            left.append(move["project"])
            lines.append("  %s: %s (epoch %s) -> not elected yet" % (move["project"], move["host"], move["epoch"]))
    if len(moves) > limit:
        lines.append("  ... %d more" % (len(moves) - limit))
    if left:
        lines.append("%d project(s) not elected yet: smc-zfs-agent ha-status on a live host says why" % len(left))
    return lines


def _known_primary(views, pid, plan_primary):
    """The primary of ``pid`` with the highest epoch any live host last heard of (etcd's view, as its HA loop
    last saw it), else the plan's."""
    best = None
    for view in views:
        known = (view.get("projects", {}).get(pid) or {}).get("known")
        if known and (best is None or int(known["epoch"]) > int(best["epoch"])):
            best = known
    return best or {"host": plan_primary, "epoch": 0}


def offline_promotions(surveys, dead):
    """The promotions an operator may make without etcd's quorum, from ``surveys`` ({host: smc-zfs-agent
    ha-survey report} of every live host) and the hosts confirmed ``dead``: {"moves": [{project, from, to,
    epoch, newest}], "refused": [sentences], "etcd": [hosts that still reach etcd]}. A project moves when the
    primary its live hosts last knew of is declared dead; the winner is the most up-to-date live copy (ties: the
    plan's order), at the highest epoch any copy or view knows + 1. A project without a live copy that has a
    snapshot is refused, as is every promotion while a live host still reaches etcd (etcd decides then)."""
    dead = set(dead)
    etcd_ok = sorted(h for h, s in surveys.items() if s.get("etcd") == "ok")
    projects = {}
    for host, survey in sorted(surveys.items()):
        if host in dead:
            continue
        for pid, copy in (survey.get("projects") or {}).items():
            projects.setdefault(pid, {})[host] = copy
    moves, refused = [], []
    views = [s for h, s in surveys.items() if h not in dead]
    for pid, copies in sorted(projects.items()):
        order = next(iter(copies.values())).get("copies") or sorted(copies)
        known = _known_primary(views, pid, order[0] if order else None)
        if known["host"] not in dead:
            continue
        candidates = dict((h, c["newest"]) for h, c in copies.items() if c.get("newest"))
        if not candidates:
            refused.append("%s: no live copy with a snapshot (on %s); it stays unserved" % (pid, ", ".join(sorted(copies))))
            continue
        epoch = max([int(known["epoch"])] + [int(c.get("epoch") or 0) for c in copies.values()]) + 1
        winner = elect(candidates, order)
        moves.append({"project": pid, "from": known["host"], "to": winner, "epoch": epoch,
                      "newest": candidates[winner].get("name")})
    if etcd_ok:
        refused.append("etcd answers from %s: without quorum lost everywhere, use the normal failover (etcd "
                       "decides); no offline promotion" % ", ".join(etcd_ok))
    return {"moves": moves, "refused": refused, "etcd": etcd_ok}


def merge_record(record, moves, dead, at, by="failover.yml"):
    """The offline record with ``moves`` added (a later promotion of a project replaces an earlier one only at
    a higher epoch) and ``dead`` added to its declared hosts."""
    record = {"promotions": dict((record or {}).get("promotions") or {}),
              "dead": sorted(set((record or {}).get("dead") or []) | set(dead))}
    for move in moves:
        before = record["promotions"].get(move["project"])
        if before is None or int(before["epoch"]) < int(move["epoch"]):
            record["promotions"][move["project"]] = {"host": move["to"], "epoch": int(move["epoch"]),
                                                     "over": move["from"], "at": at, "by": by}
    return record


def pending(record, state=None):
    """Projects of the record not yet reconciled with etcd (all of them when etcd's state is unknown)."""
    promotions = (record or {}).get("promotions") or {}
    if state is None:
        return set(promotions)
    return set(pid for pid, p in promotions.items()
               if (state["primary"].get(pid) or {}).get("epoch", -1) < int(p["epoch"]))


def reconcile(record, state):
    """What a host with an offline record does once etcd answers again, as (action, key, details) tuples:

    - ("declare", host, {}): a host the operator confirmed dead is declared in etcd too;
    - ("swap", pid, {host, epoch, over, lease, revision}): etcd still has an older epoch: CAS the recorded
      primary in, under its current lease (only once it holds one);
    - ("wait", pid, {reason}): the recorded primary holds no lease yet;
    - ("done", pid, {host, epoch}): etcd names the recorded primary at its epoch or later;
    - ("overruled", pid, {host, epoch, recorded}): etcd moved the project elsewhere meanwhile: etcd wins."""
    out = [("declare", host, {}) for host in sorted(set((record or {}).get("dead") or []) - set(state["dead"]))]
    for pid, rec in sorted(((record or {}).get("promotions") or {}).items()):
        current = state["primary"].get(pid)
        if current is not None and current["epoch"] >= int(rec["epoch"]):
            if current["host"] == rec["host"]:
                out.append(("done", pid, {"host": current["host"], "epoch": current["epoch"]}))
            else:
                out.append(("overruled", pid, {"host": current["host"], "epoch": current["epoch"], "recorded": rec}))
        elif rec["host"] in state["alive"]:
            out.append(("swap", pid, {"host": rec["host"], "epoch": int(rec["epoch"]), "over": rec.get("over"),
                                      "lease": state["leases"].get(rec["host"]) or 0,
                                      "revision": current["revision"] if current else 0}))
        else:
            out.append(("wait", pid, {"reason": "%s, promoted offline, holds no lease yet" % rec["host"]}))
    return out


def offline_summary(promotions, reports, check=False, limit=40):
    """failover.yml's closing lines without etcd's quorum: ``promotions`` (offline_promotions' result with the
    declared ``dead``) and ``reports`` ({host: ha-promote-offline report})."""
    moves, dead = promotions.get("moves") or [], promotions.get("dead") or []
    lines = ["etcd has no quorum (no live host reaches it): %s %d project(s) offline; declared dead: %s"
             % ("would promote" if check else "promoted", len(moves), ", ".join(dead) or "none")]
    for move in moves[:limit]:
        lines.append("  %s: %s -> %s at epoch %s (newest snapshot %s)"
                     % (move["project"], move["from"], move["to"], move["epoch"], move.get("newest")))
    if len(moves) > limit:
        lines.append("  ... %d more" % (len(moves) - limit))
    lines.extend("refused: %s" % r for r in promotions.get("refused") or [])
    if reports:
        lines.append("%s on %d host(s): %s; their HA loops write it to etcd when its quorum returns"
                     % ("would be recorded" if check else "recorded", len(reports), ", ".join(sorted(reports))))
    return lines
