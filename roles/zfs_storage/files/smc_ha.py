# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent's high-availability loop (``smc-zfs-agent ha``, run by smc-ha.service). Standard library only.

A keepalive thread renews this host's lease in etcd every ``renew_every`` seconds (grants a new one when etcd no
longer knows it). A watch thread follows the HA keys in etcd and wakes the main loop when any of them changes;
the main loop then reads them in one range and acts on failover.decide(): bootstrap the primary key of a project from the plan,
keep the local copy writable exactly when etcd names this host its primary, publish a candidate when a
primary's lease is gone, claim by compare-and-swap when this copy wins, then send to the others at once. It
also reads them every ``range_every`` seconds when nothing changes (the watch may miss a change while it
reconnects), and every ``tick`` seconds while an election runs, the watch is down or the host is fenced. A
quiet pass first reads etcd's revision (one key, no value): when it is the last full read's, no key anywhere
changed, and that counts as a full read at the cost of one key.

Offline promotions (failover.yml without etcd's quorum; ``ha.offline``, a durable record) keep their copies
writable through fences and hold their projects' elections until the loop has written them to etcd by CAS.

Fencing comes first: when no renewal succeeded for ``fence_after`` seconds (monotonic clock), every dataset
this host was primary of goes read-only (marked ``smc:fenced=lease``) and the state file that lets the sender
act as a primary is removed, before the lease can expire at etcd (failover.timing_errors). Only copies this
loop fenced are made writable again, and only when etcd still names this host at the same epoch.

The state file (``ha.state``, in /run: gone after a reboot) tells the sender which projects it is primary
of and at which epoch; its modification time is when etcd last confirmed it, and the sender ignores a state
older than ``fence_after``. A confirmation is a main-loop pass that found nothing new, or a lease renewal while
the watch runs, no change waits for the main loop, and the last full read is younger than ``fence_after``
(touching the file is all it costs: an idle host spends its CPU on nothing but the renewals).
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

import etcd_v3
import failover
import host_plan
import smc_replication as repl

FENCED_PROP = "smc:fenced"
HOST_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")  # a storage host's inventory name
SUCCEED_ENV = "SMC_HA_SUCCEED"  # a reload's successor: the pid of the loop it takes over from
HA_DEFAULTS = {
    "enabled": False,
    "endpoints": [],
    "prefix": "/smc/",
    "lease_ttl": 20,
    "renew_every": 2,
    "fence_after": 8,
    "skew_margin": 4,
    "tick": 1,
    "collect_seconds": 4,
    "recheck_every": 30,
    "range_every": 5,
    "watch_timeout": 30,
    "request_timeout": 1.5,
    "state": "/run/smc/ha/state.json",
    "offline": "/var/lib/smc/ha/offline.json",
    "ca_file": None,
    "cert_file": None,
    "key_file": None,
}


class HaError(ValueError):
    pass


def ha_config(cfg):
    ha = dict(HA_DEFAULTS, **(cfg.get("ha") or {}))
    errors = failover.timing_errors(ha["lease_ttl"], ha["renew_every"], ha["fence_after"], ha["skew_margin"],
                                    ha["tick"])
    if ha["enabled"] and not ha["endpoints"]:
        errors.append("ha.endpoints: the etcd client URLs are needed when ha.enabled")
    for key in ("range_every", "watch_timeout"):
        if isinstance(ha[key], bool) or not isinstance(ha[key], (int, float)) or not 0 < ha[key] <= 3600:
            errors.append("ha.%s: %r is not a number of seconds in (0, 3600]" % (key, ha[key]))
    if not ha["prefix"].startswith("/") or not ha["prefix"].endswith("/"):
        errors.append("ha.prefix must start and end with '/' (e.g. /smc/)")
    if errors:
        raise HaError("; ".join(errors))
    return ha


def write_state(path, doc):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".state.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(doc, f, sort_keys=True)
    os.replace(tmp, path)


def read_state(ha, now=None):
    """The HA state when it is fresh (confirmed by etcd within fence_after: the file's modification time),
    else None. ``confirmed`` in the returned document is that time."""
    try:
        with open(ha["state"], encoding="utf-8") as f:
            doc = json.load(f)
            confirmed = os.fstat(f.fileno()).st_mtime
    except (OSError, ValueError):
        return None
    now = time.time() if now is None else now
    if not isinstance(doc, dict) or now - confirmed > ha["fence_after"]:
        return None
    doc["confirmed"] = confirmed
    return doc


def confirm_state(path):
    """The state file as confirmed now (its mtime); False when there is none (fenced meanwhile)."""
    try:
        os.utime(path)
        return True
    except FileNotFoundError:
        return False


def read_record(ha):
    """The offline record (promotions an operator made without etcd's quorum, not yet written to etcd):
    {"promotions": {pid: {host, epoch, over, at, by}}, "dead": [hosts]}; empty when there is none."""
    try:
        with open(ha["offline"], encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return {"promotions": {}, "dead": []}
    if not isinstance(doc, dict) or not isinstance(doc.get("promotions"), dict):
        raise HaError("%s is not an offline record; move it aside and run failover.yml again" % ha["offline"])
    return doc


def write_record(ha, doc, history=None):
    """Write the record durably (it must outlive a reboot), and append ``history`` lines next to it."""
    os.makedirs(os.path.dirname(ha["offline"]), exist_ok=True)
    if history:
        with open(ha["offline"] + ".history", "a", encoding="utf-8") as f:
            for line in history:
                f.write(json.dumps(line, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(ha["offline"]), prefix=".offline.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(doc, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, ha["offline"])


def offline_mine(ha, me):
    """{pid: epoch} of the offline promotions that name ``me`` (the record, whatever etcd says: it is the
    loop's to reconcile); {} on an unreadable record (then nothing is held writable by it)."""
    try:
        record = read_record(ha)
    except (HaError, OSError, ValueError):
        return {}
    return dict((pid, int(p["epoch"])) for pid, p in record["promotions"].items()
                if isinstance(p, dict) and p.get("host") == me)


def last_view(ha):
    """The primaries this host's HA loop last heard of from etcd, fresh or not ({} when it knows none): the
    state file, or the copy a fence kept of it."""
    best, mtime = {}, -1.0
    for path in (ha["state"], ha["state"] + ".last"):
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
                when = os.fstat(f.fileno()).st_mtime
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and isinstance(doc.get("primary"), dict) and when > mtime:
            best, mtime = doc["primary"], when
    return best


def overlay(plan, ha, wait=0.0, peers_wait=0.0):
    """The plan with etcd's primaries and epochs (sender's view). Without a fresh state (waited for up to
    ``wait`` seconds, e.g. just after the HA loop started) nothing is primary here: a host that does not know
    it is primary sends nothing. Peers without a lease are left out (``ha_down``); ``peers_wait`` seconds are
    given to every peer to take its lease first (a converge starts all HA loops at about the same time)."""
    start = time.monotonic()
    doc = read_state(ha)
    offline = offline_mine(ha, plan["host"]) if doc is None else {}
    while time.monotonic() - start < max(wait, peers_wait):
        fresh = doc is not None
        if fresh and (time.monotonic() - start >= peers_wait or set(plan["hosts"]) <= set(doc.get("alive") or [])):
            break
        if not fresh and (offline or time.monotonic() - start >= wait):
            break  # (promoted offline: no confirmation is coming while etcd has no quorum)
        time.sleep(0.5)
        doc = read_state(ha)
    projects = {}
    index = dict((h, i) for i, h in enumerate(plan["hosts"]))
    offline = offline_mine(ha, plan["host"]) if doc is None else {}  # (confirmed meanwhile: etcd decides)
    for pid, entry in plan["projects"].items():
        known = (doc or {}).get("primary", {}).get(pid)
        entry = dict(entry)
        if pid in offline and plan["host"] in index:  # promoted here by an operator without etcd's quorum
            entry["primary"], entry["epoch"] = index[plan["host"]], offline[pid]
        elif known and known["host"] in index:
            entry["primary"], entry["epoch"] = index[known["host"]], known["epoch"]
        elif plan["hosts"][entry["primary"]] == plan["host"]:
            entry["primary"] = next((i for i in entry["ring"] if plan["hosts"][i] != plan["host"]), entry["primary"])
            if plan["hosts"][entry["primary"]] == plan["host"]:
                continue
        projects[pid] = entry
    down = set(plan["hosts"]) - set((doc or {}).get("alive") or plan["hosts"])
    if offline:
        try:
            down |= set(read_record(ha)["dead"])
        except (HaError, OSError, ValueError):
            pass
    return dict(plan, projects=projects, ha_fresh=doc is not None, ha_down=sorted(down),
                ha_offline=sorted(p for p in offline if p in projects))


def sd_notify(message, environ=None):
    """Tell systemd (Type=notify) ``message`` (READY=1, MAINPID=...) on $NOTIFY_SOCKET; False when not run
    by systemd."""
    where = (os.environ if environ is None else environ).get("NOTIFY_SOCKET")
    if not where:
        return False
    import socket  # noqa: E402 (only under systemd)
    address = "\0" + where[1:] if where.startswith("@") else where
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode("ascii"), address)
    return True


def plan_copies(plan):
    """{pid: [hosts holding a copy, the plan's primary first]} of the host plan."""
    names, out = plan["hosts"], {}
    for pid, entry in plan["projects"].items():
        _primary, out[pid] = host_plan.copies(
            [names[i] for i in entry["ring"]],
            {"primary": names[entry["primary"]], "extra": [names[i] for i in entry.get("extra") or []]})
    return out


class Loop:
    def __init__(self, cfg, ha, client, lease_client, out=sys.stdout, watch_client=None):
        self.cfg, self.ha, self.client, self.lease_client, self.out = cfg, ha, client, lease_client, out
        self.watch_client = watch_client  # None: no watch, a full read every tick
        self.wake = threading.Event()  # set by the watch: something under the prefix changed
        self.watching = False  # a watch stream is established and has not failed since
        self.ranged = None  # monotonic time of the last full read of etcd's state
        self.lock, self.out_lock = threading.Lock(), threading.Lock()
        self.root = cfg["roots"][0]
        self.lease = None
        self.last_renew = None  # monotonic time of the last successful renewal
        self.fenced = False
        self.elections = {}  # pid -> monotonic time I first saw its election
        self.primaries = {}  # pid -> epoch etcd named me primary at (last known)
        self.sender = None
        self.doc, self.seen, self.checked, self._plan = None, None, 0.0, None  # the last state written, what it was made from, when
        self.revision = 0  # etcd's revision at the last full read
        self.successor = None  # a reload's new code while it starts

    def log(self, event, **fields):
        fields.update(event=event, t=round(time.time(), 3))
        with self.out_lock:
            self.out.write(json.dumps(fields, sort_keys=True) + "\n")
            self.out.flush()

    def plan(self):
        path = self.cfg["replication"]["plan"]
        try:
            mtime = os.stat(path).st_mtime
        except FileNotFoundError:
            raise HaError("no plan at %s" % path)
        if self._plan is None or self._plan.get("_mtime") != mtime:
            self._plan = dict(repl.load_plan(self.cfg, authority=False), _mtime=mtime)
        return self._plan

    def renew(self, me):
        """Keep this host's lease (one keepalive); grant a new one, with its host key, when etcd lost it."""
        if self.lease is not None:
            if self.lease_client.keepalive(self.lease) > 0:
                return
            # etcd forgot the lease (this host was paused or cut off longer than its TTL): others may have
            # taken over already, so fence before anything else
            self.log("lease-lost", lease=self.lease)
            self.last_renew = None  # the main loop decides nothing until the new lease is held
            if not self.fenced:
                self.fence("lease %d expired" % self.lease)
        lease = self.lease_client.grant(self.ha["lease_ttl"])
        self.lease_client.put(failover.keys(self.ha["prefix"])["hosts"] + me, json.dumps({"since": time.time()}),
                              lease=lease)
        self.lease = lease
        self._remember_lease(lease)
        self.log("lease", lease=lease, ttl=self.ha["lease_ttl"])

    def _remember_lease(self, lease):
        """A restarted loop (an upgrade) keeps the lease it had: no failover for a service restart."""
        path = os.path.join(os.path.dirname(self.ha["state"]), "lease")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".new", "w", encoding="utf-8") as f:
            f.write("%d\n" % lease)
        os.replace(path + ".new", path)

    def _recall_lease(self):
        try:
            with open(os.path.join(os.path.dirname(self.ha["state"]), "lease"), encoding="utf-8") as f:
                lease = int(f.read().strip())
            if self.lease_client.keepalive(lease) > 0:
                return lease
        except (OSError, ValueError, etcd_v3.EtcdError):
            pass
        return None

    def resume_lease(self):
        """keep_lease's start: the lease of an earlier process (a restart's, or the loop this one succeeds in a
        reload) when etcd still has it. A successor that cannot renew it exits (the old loop keeps serving);
        one that did becomes the unit's main process and tells the old one to step aside. Returns the
        monotonic time from which the time without renewal counts."""
        started = time.monotonic()
        old = os.environ.pop(SUCCEED_ENV, None)
        self.lease = self._recall_lease()
        if self.lease is not None:
            self.last_renew = time.monotonic()
            self.log("lease", lease=self.lease, ttl=self.ha["lease_ttl"], kept=True)
        if old is not None:
            if self.lease is None or not old.isdigit():
                raise HaError("reload: the lease handed over could not be renewed; the old loop keeps serving")
            sd_notify("MAINPID=%d\nREADY=1" % os.getpid())
            os.kill(int(old), signal.SIGUSR1)
            self.log("reloaded", lease=self.lease, after=int(old), seconds=round(time.monotonic() - started, 3))
        return started

    def keep_lease(self, me, started=None):
        """The keepalive thread: renews every renew_every seconds whatever the main loop is doing, and fences
        this host once no renewal succeeded for fence_after seconds (before the lease can expire at etcd).
        ``started``: resume_lease's answer when the caller ran it."""
        started = self.resume_lease() if started is None else started
        while True:
            began = time.monotonic()
            try:
                self.renew(me)
                self.last_renew = time.monotonic()
                self._confirm_by_lease()
            except etcd_v3.EtcdError as exc:
                since = time.monotonic() - (self.last_renew if self.last_renew is not None else started)
                if since >= self.ha["fence_after"] and not self.fenced:
                    # not behind the main loop's lock: fencing must not wait for a slow apply (the apply
                    # checks the flag before it makes anything writable)
                    self.fence("no renewal for %.1f s: %s" % (since, exc))
            except (OSError, ValueError) as exc:
                self.log("error", error="keepalive: %s" % str(exc)[:300])
            time.sleep(max(0.1, self.ha["renew_every"] - (time.monotonic() - began)))

    def _confirm_by_lease(self):
        """A renewal confirms the state when the watch runs, nothing waits for the main loop and its last
        full read is fresh: etcd moves a primary only by a CAS the watch would have reported."""
        if self.doc is None or self.fenced or not self.watching or self.wake.is_set() or self.ranged is None \
                or time.monotonic() - self.ranged >= self.ha["fence_after"] or self.successor is not None:
            return  # (nor while a reload's new code starts: this loop's main pass is paused)
        confirm_state(self.ha["state"])

    def lease_fresh(self):
        return self.last_renew is not None and time.monotonic() - self.last_renew < self.ha["fence_after"]

    def fence(self, reason, processes=True):
        """Every writable copy on this host goes read-only and its project's processes stop, before this
        host's lease can expire elsewhere (after a reboot it does not know which ones it served: all of them).
        ``processes=False`` (the unit's ExecStopPost): only the zfs part, no systemctl call, which would wait
        on the systemd job that runs it; the next loop's start syncs the slices."""
        self.fenced = True
        try:  # kept aside, for ha-survey (what this host last heard of etcd), never read by the sender
            os.replace(self.ha["state"], self.ha["state"] + ".last")
        except FileNotFoundError:
            pass
        # the copies an operator promoted here without etcd's quorum stay writable until etcd has them
        try:
            kept = set("%s/%s" % (self.root, pid) for pid in offline_mine(self.ha, self.plan()["host"]))
        except (HaError, host_plan.PlanError, OSError, ValueError):
            kept = set()
        # the copies etcd last named this host primary of first, in one command (no listing before it), then
        # one listing and one zfs set for any other writable copy: the window after a freeze must be short
        first = ["%s/%s" % (self.root, pid) for pid in sorted(self.primaries)
                 if "%s/%s" % (self.root, pid) not in kept]
        if first:
            repl.run(["zfs", "set", "readonly=on", "%s=lease" % FENCED_PROP] + first, check=False)
        p = repl.run(["zfs", "list", "-H", "-o", "name,readonly", "-d", "1", "-t", "filesystem", self.root], check=False)
        try:
            mine = set("%s/%s" % (self.root, pid) for pid in self.plan()["projects"])
        except (HaError, host_plan.PlanError, OSError, ValueError):
            mine = None  # no readable plan: every writable child (better too many read-only than two writers)
        done = sorted(line.split("\t")[0] for line in p.stdout.splitlines()
                      if line.endswith("\toff") and line.split("\t")[0] != self.root
                      and (mine is None or line.split("\t")[0] in mine) and line.split("\t")[0] not in kept)
        if done:
            p = repl.run(["zfs", "set", "readonly=on", "%s=lease" % FENCED_PROP] + done, check=False)
            if p.returncode != 0:
                self.log("error", error="fence: zfs set: %s" % p.stderr.strip()[:300])
                for ds in done:
                    repl.run(["zfs", "set", "readonly=on", "%s=lease" % FENCED_PROP, ds], check=False)
        fenced = sorted(set(first + done))
        stopper = self.cfg.get("ha", {}).get("stop_project_command") or "/usr/local/sbin/smc-project"
        if fenced and processes and os.path.exists(stopper):
            for ds in fenced:
                repl.run([stopper, "stop", ds.rsplit("/", 1)[1]], check=False)
        self.fenced, self.doc = True, None
        limits = repl.sync_limits(self.cfg) if fenced and processes else None
        self.log("fenced", reason=reason, datasets=fenced, **({"limits": limits} if limits else {}),
                 **({"kept_offline": sorted(kept)} if kept else {}))

    def step(self):
        plan = self.plan()
        now = time.monotonic()
        if self.lease is None or not self.lease_fresh():
            return  # the keepalive thread has no fresh lease: nothing may be decided (it fences when due)
        same_files = self.seen is not None and self.seen[1:] == (plan.get("_mtime"), self._record_mtime())
        quiet = self.doc is not None and same_files and not self.fenced and not self.elections \
            and now - self.checked < self.ha["recheck_every"]
        mine = failover.keys(self.ha["prefix"])["hosts"] + plan["host"]
        try:
            if quiet and self.revision and self.client.revision(mine) == self.revision:
                # no key anywhere in etcd changed since the last full read: the same state, read again at the
                # cost of one key (a full read of a million projects' keys every few seconds is not free)
                self.ranged = now
                if not confirm_state(self.ha["state"]):
                    self.doc = None
                return
            kvs, self.revision = self.read_mine(plan)
        except etcd_v3.EtcdError as exc:
            self.log("error", error="range: %s" % str(exc)[:300])
            return
        self.ranged = now
        # Nothing changed in etcd or in the plan, no election running, checked the datasets lately: only the
        # confirmation is renewed (the pass costs one range and a touch of the state file, no zfs command).
        state = failover.parse_state(kvs, self.ha["prefix"])
        seen = (self._digest(plan, state), plan.get("_mtime"), self._record_mtime())
        if self.doc is not None and seen == self.seen and not self.fenced and not self.elections \
                and now - self.checked < self.ha["recheck_every"]:
            if not confirm_state(self.ha["state"]):
                self.doc = None  # gone (fenced, or removed by hand): the next pass writes it again
            return
        with self.lock:
            if self.fenced and not self.lease_fresh():
                return
            self.apply(plan, state)
        self.seen, self.checked = seen, now

    def read_mine(self, plan):
        """etcd's keys that concern this host, in one consistent view: every host's lease, the declarations and
        fencing windows, and the primary and candidates of each project it holds a copy of. With a million
        projects a host holds a few thousand; it never reads the others' keys."""
        k, pids = failover.keys(self.ha["prefix"]), sorted(plan["projects"])
        return self.client.range_many(prefixes=[k["hosts"], k["dead"], k["window"]]
                                      + [k["candidates"] + pid + "/" for pid in pids],
                                      keys=[k["primary"] + pid for pid in pids])

    def _record_mtime(self):
        try:
            return os.stat(self.ha["offline"]).st_mtime
        except FileNotFoundError:
            return None

    @staticmethod
    def _digest(plan, state):
        """What of etcd's state concerns this host's projects (other projects' churn costs it nothing)."""
        mine = plan["projects"]
        return json.dumps([sorted(state["leases"].items()),
                           sorted((p, v["host"], v["epoch"], v["lease"]) for p, v in state["primary"].items()
                                  if p in mine),
                           sorted((p, e, sorted(c)) for p, by in state["candidates"].items() if p in mine
                                  for e, c in by.items()),
                           sorted(state["dead"]), sorted(state["window"])])

    def apply(self, plan, state):
        """Act on etcd's state with a fresh lease. The keepalive thread may fence meanwhile: then nothing is
        made writable for the rest of this pass (``self.fenced``)."""
        self.fenced = False
        me = plan["host"]
        projects = plan_copies(plan)
        datasets = dict((pid, "%s/%s" % (self.root, pid)) for pid in projects)
        have = self._datasets()
        # snapshots only of the projects in an election (one listing): how far each of my copies goes
        voting = sorted(datasets[p] for p in state["primary"]
                        if p in datasets and not failover.serving(state, p) and datasets[p] in have)
        snaps = repl.listing(self.root, voting) if voting else {}
        local = {}
        for pid, ds in datasets.items():
            newest = repl.replication_plan.newest(snaps[ds]["snapshots"]) if ds in snaps else None
            local[pid] = newest and {"name": newest["name"], "guid": newest["guid"], "creation": newest["creation"]}
        primary, claimed, candidates, demote = {}, [], [], []
        k = failover.keys(self.ha["prefix"])
        held = self.reconcile(plan, state, datasets, have)
        for action, pid, info in failover.decide(me, projects, state, local, self._waited(state),
                                                 self.ha["collect_seconds"], held):
            ds = datasets[pid]
            if action == "bootstrap":
                epoch = max(plan["projects"][pid]["epoch"], have.get(ds, {}).get("epoch", 0))
                if self.client.swap(k["primary"] + pid, json.dumps({"host": me, "epoch": epoch, "lease": self.lease}), 0):
                    self.log("bootstrap", project=pid, epoch=epoch)
                    primary[pid] = epoch
            elif action == "primary":
                primary[pid] = info["epoch"]
                self._writable(ds, have.get(ds), info["epoch"])
            elif action == "replica" and (have.get(ds) or {}).get("role") == "primary":
                demote.append(ds)
            elif action == "candidate" and info["newest"] is not None:
                # (a copy without a snapshot cannot serve: the others decide without it)
                key = "%s%s/%d/%s" % (k["candidates"], pid, info["epoch"], me)
                candidates.append((key, json.dumps(info["newest"], sort_keys=True)))
                self.log("candidate", project=pid, epoch=info["epoch"], newest=info["newest"]["name"])
            elif action == "claim":
                doc = json.dumps({"host": me, "epoch": info["epoch"], "over": info["over"], "lease": self.lease})
                if self.client.swap(k["primary"] + pid, doc, info["revision"]):
                    self.log("claimed", project=pid, epoch=info["epoch"], over=info["over"], voters=info["voters"],
                             newest=local[pid] and local[pid]["name"])
                    primary[pid] = info["epoch"]
                    repl.make_primary(ds, info["epoch"])
                    claimed.append(pid)
        if demote:
            self._demote(demote, state)
        if candidates:
            self.client.put_many(candidates, lease=self.lease)  # one transaction for all of them
        self.primaries = primary
        known = dict((pid, {"host": v["host"], "epoch": v["epoch"]}) for pid, v in state["primary"].items()
                     if pid in plan["projects"] and failover.serving(state, pid))
        known.update((pid, {"host": me, "epoch": e}) for pid, e in primary.items())
        if not self.fenced:  # fenced during this pass: no state that would let the sender act as a primary
            self.doc = {"host": me, "lease": self.lease, "primary": known,
                        "alive": sorted(state["alive"])}
            write_state(self.ha["state"], self.doc)
            if claimed:
                self._send_now(claimed)
        if demote or claimed:
            # the project slices follow the writable copies: after the state and the first send, which must
            # not wait for systemd
            limits = repl.sync_limits(self.cfg)
            if limits:
                self.log("limits", **limits)

    def reconcile(self, plan, state, datasets, have):
        """Offline promotions (failover.yml without etcd's quorum) meet etcd again: the hosts the operator
        confirmed dead are declared, each recorded primary is written by CAS where etcd still has an older
        epoch; a project etcd moved elsewhere meanwhile stays etcd's (a copy promoted here becomes a replica:
        its tail is kept aside by the next send). Reconciled projects leave the record (and go to its history
        file). Returns the projects still held from elections."""
        try:
            record = read_record(self.ha)
        except (HaError, OSError, ValueError) as exc:
            self.log("error", error="offline record: %s" % str(exc)[:300])
            return set()
        if not record["promotions"] and not record["dead"]:
            return set()
        k, now, history, before = failover.keys(self.ha["prefix"]), round(time.time(), 3), [], len(record["dead"])
        actions = failover.reconcile(record, state)
        record["dead"] = [h for h in record["dead"] if h not in state["dead"]]  # (declared by another host)
        for action, key, info in actions:
            if action == "declare":
                try:
                    declare_dead(self.client, self.ha, [key], state, plan["host"], self.out)
                except etcd_v3.EtcdError as exc:  # (another host's loop revoked that lease first: its declaration
                    self.log("error", error="offline declare %s: %s" % (key, str(exc)[:200]))  # shows next pass)
                    continue
                record["dead"] = [h for h in record["dead"] if h != key]
                self.log("offline-declared", host=key)
            elif action == "swap":
                doc = {"host": info["host"], "epoch": info["epoch"], "over": info["over"], "lease": info["lease"],
                       "offline": True}
                if self.client.swap(k["primary"] + key, json.dumps(doc, sort_keys=True), info["revision"]):
                    self.log("offline-reconciled", project=key, host=info["host"], epoch=info["epoch"])
            elif action in ("done", "overruled"):
                rec = record["promotions"].pop(key)
                history.append(dict(rec, project=key, result=action, now=info["host"], now_epoch=info["epoch"], t=now))
                if action == "overruled":
                    self.log("offline-overruled", project=key, recorded=rec, etcd={"host": info["host"],
                                                                                   "epoch": info["epoch"]})
                    if rec["host"] == plan["host"] and key in datasets and datasets[key] in have:
                        self._demote([datasets[key]], state)
        if history or len(record["dead"]) < before:
            write_record(self.ha, record, history)
            if not record["promotions"] and not record["dead"]:
                os.unlink(self.ha["offline"])  # all reconciled (the history file keeps what was done)
        return failover.pending(record, state)

    def _datasets(self):
        """{dataset: {readonly, role, epoch}} of every project copy here, in one zfs list (no snapshots)."""
        p = repl.run(["zfs", "list", "-H", "-p", "-o", "name,readonly,smc:role,%s" % repl.EPOCH_PROP, "-d", "1",
                      "-t", "filesystem", self.root], check=False)
        out = {}
        for line in p.stdout.splitlines():
            name, readonly, role, epoch = line.split("\t")
            if name != self.root:
                out[name] = {"readonly": readonly == "on", "role": None if role == "-" else role,
                             "epoch": int(epoch) if epoch.isdigit() else 0}
        return out

    def _waited(self, state):
        """{pid: seconds since I first saw its primary's lease gone}; forgets elections that ended."""
        now = time.monotonic()
        self.elections = dict((pid, self.elections.get(pid, now)) for pid, cur in state["primary"].items()
                              if not failover.serving(state, pid))
        return dict((pid, now - first) for pid, first in self.elections.items())

    def _writable(self, ds, have, epoch):
        """etcd names me primary: writable, unless someone else (a switchover) made it read-only on purpose."""
        if have is None or not have["readonly"] or self.fenced:
            return
        mark = repl.props(ds, [FENCED_PROP]) or {}
        if mark.get(FENCED_PROP) == "lease":
            repl.run(["zfs", "set", "readonly=off", "%s=%d" % (repl.EPOCH_PROP, max(epoch, have["epoch"])), ds])
            repl.run(["zfs", "inherit", FENCED_PROP, ds], check=False)
            self.log("unfenced", dataset=ds, epoch=epoch)

    def _demote(self, datasets, state):
        """etcd names other hosts for copies this host served as primary (a returning old primary, fenced or
        not): replicas now, read-only first (one command for all), then unmounted (their users were stopped
        when it fenced), so the new primary's next send keeps their divergent tails aside (quarantine) and
        seeds them again; never merged. A replica someone made writable by hand is the sender's to find."""
        repl.run(["zfs", "set", "readonly=on", "smc:role=replica"] + datasets)
        repl.run(["zfs", "inherit", FENCED_PROP] + datasets, check=False)
        for ds in datasets:
            repl.run(["zfs", "unmount", ds], check=False)
        self.log("demoted", datasets=datasets,
                 primaries=sorted(set(state["primary"][d.rsplit("/", 1)[1]]["host"] for d in datasets)))

    def _send_now(self, pids):
        """A new primary replicates to the other copies at once (in the background; one sender per host)."""
        if self.sender is not None and self.sender.poll() is None:
            return
        agent = os.path.join(os.path.dirname(os.path.realpath(sys.argv[0])), "smc-zfs-agent")
        self.sender = subprocess.Popen([sys.executable, agent, "replicate"], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        self.log("sending", projects=pids)

    def watch_keys(self):
        """The watch thread: wakes the main loop on every change under the prefix. A stream that times out
        (nothing changed) resumes after the last revision it saw; one that fails wakes the loop, which reads
        the state every tick until a stream is back."""
        revision = 0
        while True:
            created = False
            try:
                for result in self.watch_client.watch(self.ha["prefix"], revision + 1 if revision else 0,
                                                      timeout=self.ha["watch_timeout"]):
                    if result.get("created"):
                        if not revision:  # watching from now: what changed before is read once more
                            revision = int((result.get("header") or {}).get("revision") or 0)
                            self.wake.set()
                        created = self.watching = True
                    for event in result.get("events") or []:
                        revision = max(revision, int((event.get("kv") or {}).get("mod_revision") or 0))
                    if result.get("events"):
                        self.wake.set()
            except (OSError, ValueError, etcd_v3.EtcdError) as exc:
                if created and isinstance(exc, TimeoutError):
                    continue  # quiet for watch_timeout seconds: watch again after the last revision seen
                if self.watching:
                    self.log("watch", error=str(exc)[:300])
                self.watching, revision = False, 0
                self.wake.set()
                time.sleep(self.ha["tick"])

    def hand_over(self, spawn=subprocess.Popen):
        """``systemctl reload`` (new code or config): start the new code beside this loop, which keeps renewing
        the lease meanwhile however long the new code takes to start; the new code renews the same lease,
        becomes the unit's main process and sends SIGUSR1, and this loop exits without fencing: nothing is
        fenced and no project fails over. Returns the successor (this loop pauses until it took over or
        ended; an ended one is logged and this loop carries on with the old code)."""
        if self.lease is not None:
            self._remember_lease(self.lease)
        env = dict(os.environ, **{SUCCEED_ENV: str(os.getpid())})
        self.successor = spawn([sys.executable] + sys.argv, env=env)
        self.log("reload", successor=self.successor.pid, lease=self.lease)
        return self.successor

    def successor_failed(self):
        """The successor of a reload ended before it took over: log it, carry on."""
        if self.successor is not None and self.successor.poll() is not None:
            self.log("error", error="reload: the new code exited (rc %s) before it took over; still running the "
                                    "old code" % self.successor.returncode)
            self.successor = None
            return True
        return False

    def period(self):
        """Seconds to the next full read when the watch reports nothing."""
        quiet = self.watching and self.doc is not None and not self.fenced and not self.elections
        return self.ha["range_every"] if quiet else self.ha["tick"]

    def run_forever(self):
        reload_asked, step_aside = threading.Event(), threading.Event()

        def on_signal(signum, _frame):
            (reload_asked if signum == signal.SIGHUP else step_aside).set()
            self.wake.set()
        signal.signal(signal.SIGHUP, on_signal)
        signal.signal(signal.SIGUSR1, on_signal)
        # (a reload's successor that cannot renew the lease ends here, before any thread: the old loop serves on)
        keeper = threading.Thread(target=self.keep_lease, args=(self.plan()["host"], self.resume_lease()),
                                  daemon=True, name="lease")
        keeper.start()
        sd_notify("READY=1")
        if self.watch_client is not None:
            threading.Thread(target=self.watch_keys, daemon=True, name="watch").start()
        while keeper.is_alive():
            if step_aside.is_set():  # the new code holds the lease and is the main process now: no fence
                self.log("handed-over", to=self.successor.pid if self.successor is not None else None)
                return
            if reload_asked.is_set() and self.successor is None:
                reload_asked.clear()
                self.hand_over()
            if self.successor is not None and not self.successor_failed():
                time.sleep(0.5)  # paused (the lease thread renews on, confirms nothing) until the new code took over
                continue
            started = time.monotonic()
            self.wake.clear()
            try:
                self.step()
            except (HaError, etcd_v3.EtcdError, repl.ReplicationError, host_plan.PlanError, OSError, ValueError) as exc:
                self.log("error", error=str(exc)[:500])
            if self.wake.wait(max(0.1, self.period() - (time.monotonic() - started))):
                # a burst of changes (a failover writes several keys) costs one pass per quarter tick at most
                time.sleep(max(0.0, self.ha["tick"] / 4 - (time.monotonic() - started)))
        raise HaError("the keepalive thread stopped")


def client_for(ha):
    return etcd_v3.Client(ha["endpoints"], timeout=ha["request_timeout"], ca_file=ha["ca_file"],
                          cert_file=ha["cert_file"], key_file=ha["key_file"])


def cmd_ha(cfg):
    ha = ha_config(cfg)
    if not ha["enabled"]:
        raise HaError("ha.enabled is false in the agent config; nothing to run")
    Loop(cfg, ha, client_for(ha), client_for(ha), watch_client=client_for(ha)).run_forever()


def cmd_ha_fence(cfg, out=sys.stdout):
    """After smc-ha.service ends (its ExecStopPost: a stop, a crash, a kill -9): nothing renews this host's
    lease or would fence it when the lease lapses, so its writable copies go read-only now, before etcd can
    let another host claim them. A restarted loop that still holds the lease is named primary again by etcd
    and makes them writable (a restart costs seconds of read-only, no failover)."""
    ha = ha_config(cfg)
    if not ha["enabled"]:
        return
    loop = Loop(cfg, ha, None, None, out=out)
    try:
        with open(ha["state"], encoding="utf-8") as f:
            doc = json.load(f)
        me = loop.plan()["host"]
        loop.primaries = dict((pid, v.get("epoch")) for pid, v in (doc.get("primary") or {}).items()
                              if isinstance(v, dict) and v.get("host") == me)
    except (OSError, ValueError, AttributeError, HaError, host_plan.PlanError):
        pass  # no state or plan: fence() makes every writable copy of the pool's projects read-only
    loop.fence("smc-ha.service stopped", processes=False)


def cmd_ha_status(cfg):
    """This host's view: its state file and etcd's primaries of its projects."""
    ha = ha_config(cfg)
    doc = read_state(ha)
    try:
        record = read_record(ha)
    except (HaError, OSError, ValueError) as exc:
        record = {"error": str(exc)[:300]}
    out = {"enabled": ha["enabled"], "fresh": doc is not None, "state": doc, "offline": record}
    if ha["enabled"]:
        try:
            kvs, rev = client_for(ha).range(ha["prefix"])
            state = failover.parse_state(kvs, ha["prefix"])
            out.update(etcd="ok", revision=rev, alive=sorted(state["alive"]), dead=sorted(state["dead"]),
                       primary=dict((p, {"host": v["host"], "epoch": v["epoch"]}) for p, v in state["primary"].items()))
        except etcd_v3.EtcdError as exc:
            out.update(etcd="unavailable", error=str(exc)[:300],
                       reason="no failover can happen from here until etcd answers (no quorum or unreachable)")
    return out


def failover_errors(dead, confirm, revive, me, check=False):
    """Why a forced failover request must not run, as sentences (empty: it may). A check needs no
    confirmation: it writes nothing."""
    errors = []
    for field, hosts in (("dead", dead), ("confirm_dead", confirm), ("revive", revive)):
        for host in hosts:
            if not isinstance(host, str) or not HOST_RE.fullmatch(host):
                errors.append("%s: %r is not a host name (letters, digits, '_', '.', '-'; starting with a letter or "
                              "digit)" % (field, host))
    missing = sorted(set(dead) - set(confirm))
    if missing and not check:
        errors.append("confirm_dead must name every host declared dead (missing %s): a declared host's writable "
                      "copies go read-only and its projects are elected elsewhere" % ", ".join(missing))
    both = sorted(set(dead) & set(revive))
    if both:
        errors.append("%s is both declared dead and revived: name it in one of them" % ", ".join(both))
    if me is not None and me in dead:
        errors.append("this host (%s) is among the hosts declared dead: run the failover from a live host" % me)
    return errors


def cmd_ha_failover(cfg, dead=(), confirm=(), revive=(), check=False, wait=0.0, out=sys.stdout):
    """playbooks/failover.yml's step, on one live storage host. Declares ``dead`` hosts dead (each also named
    in ``confirm``): in one transaction ``<prefix>window/<host>`` (under a new lease of lease_ttl seconds) and
    ``<prefix>dead/<host>``, then the host's own lease is revoked. A live declared host fences itself at its
    next renewal, and the elections of its projects wait until the window's lease ends: the time the timing
    rules give any host to fence before its lease expires. The elections are the HA loops' own (the most
    up-to-date live copy, by CAS). ``revive`` ends a declaration (the host votes and may serve again). With
    ``check`` nothing is written. ``wait`` seconds: how long to follow the elections until no project is left
    on a declared host. Returns the report."""
    ha = ha_config(cfg)
    if not ha["enabled"]:
        raise HaError("ha.enabled is false in the agent config: there is no failover to force; nothing changed")
    try:
        me = Loop(cfg, ha, None, None, out=out).plan()["host"]
    except (HaError, host_plan.PlanError, OSError, ValueError):
        me = None
    dead, confirm, revive = sorted(set(dead)), sorted(set(confirm)), sorted(set(revive))
    errors = failover_errors(dead, confirm, revive, me, check)
    if errors:
        raise HaError("; ".join(errors) + ". Nothing was changed.")
    client, k = client_for(ha), failover.keys(ha["prefix"])
    try:
        kvs, _rev = client.range(ha["prefix"])
    except etcd_v3.EtcdError as exc:
        raise HaError("etcd does not answer from here (%s): without quorum no failover can be forced or happen; "
                      "nothing was changed" % str(exc)[:200]) from exc
    state = failover.parse_state(kvs, ha["prefix"])
    known = set(state["leases"]) | set(state["dead"]) | set(v["host"] for v in state["primary"].values())
    unknown = [h for h in dead + revive if h not in known]
    if unknown:
        raise HaError("etcd knows no host %s (no lease, no primary, no declaration): check the names; nothing was "
                      "changed" % ", ".join(unknown))
    declare = [h for h in dead if h not in state["dead"]]
    report = {"check": bool(check), "moves": failover.forced_moves(state, dead), "declared": declare,
              "already_dead": [h for h in dead if h in state["dead"]],
              "revived": [h for h in revive if h in state["dead"]], "from": me}
    if check:
        return report
    try:
        declare_dead(client, ha, declare, state, me, out)
        for host in report["revived"]:
            client.delete(k["dead"] + host)
    except etcd_v3.EtcdError as exc:
        raise HaError("etcd failed while declaring %s dead (%s): run the failover again (each step repeats "
                      "safely)" % (", ".join(declare) or "no host", str(exc)[:200])) from exc
    report["moved"], report["left"] = follow_moves(client, ha, report["moves"], dead, wait, out)
    return report


def declare_dead(client, ha, hosts, state, me, out):
    """For each host: its window (a lease of lease_ttl) and its declaration in one transaction, then its own
    lease revoked (so a live one fences at its next renewal)."""
    k = failover.keys(ha["prefix"])
    for host in hosts:
        window = client.grant(ha["lease_ttl"])
        doc = json.dumps({"at": round(time.time(), 3), "by": "failover.yml", "from": me}, sort_keys=True)
        # the window first, in the same transaction: no loop may see the host dead without its window
        client.put_together([(k["window"] + host, "{}", window), (k["dead"] + host, doc, 0)])
        if state["leases"].get(host):
            client.revoke(state["leases"][host])
        print(json.dumps({"declared": host, "window": ha["lease_ttl"], "revoked": state["leases"].get(host) or None}),
              file=out, flush=True)


def follow_moves(client, ha, moves, dead, wait, out):
    """Poll etcd (every second, at most ``wait`` seconds) until no project of ``moves`` has its primary on a
    ``dead`` host. Returns ([{project, from, to, epoch, seconds}], [projects still on a dead host])."""
    started, moved, left = time.monotonic(), {}, [m["project"] for m in moves]
    while left:
        try:
            kvs, _rev = client.range(failover.keys(ha["prefix"])["primary"])
            primary = failover.parse_state(kvs, ha["prefix"])["primary"]
        except etcd_v3.EtcdError:
            primary = {}
        for move in moves:
            now = primary.get(move["project"])
            if move["project"] in left and now and now["host"] not in dead:
                moved[move["project"]] = {"project": move["project"], "from": move["host"], "to": now["host"],
                                          "epoch": now["epoch"], "seconds": round(time.monotonic() - started, 1)}
                print(json.dumps({"moved": moved[move["project"]]}), file=out, flush=True)
        left = [p for p in left if p not in moved]
        if not left or time.monotonic() - started >= wait:
            break
        time.sleep(1)
    return [moved[p] for p in sorted(moved)], left


def etcd_answers(ha):
    """(True, None) when a linearizable read succeeds from here (etcd has quorum), else (False, why)."""
    try:
        client_for(ha).range(failover.keys(ha["prefix"])["dead"])
        return True, None
    except etcd_v3.EtcdError as exc:
        return False, str(exc)[:300]


def cmd_ha_survey(cfg):
    """failover.yml without etcd's quorum, on every live host (changes nothing): whether etcd answers from
    here, and for each project copy here how far it goes (newest snapshot), its epoch and role, the plan's
    order of copies and the primary this host last heard of (its HA loop's last view, or its own copy when
    that is still marked primary)."""
    ha = ha_config(cfg)
    if not ha["enabled"]:
        raise HaError("ha.enabled is false in the agent config: there is no failover to plan; nothing changed")
    loop = Loop(cfg, ha, None, None)
    plan = loop.plan()
    me, copies, view = plan["host"], plan_copies(plan), last_view(ha)
    names = ["%s/%s" % (loop.root, pid) for pid in sorted(copies)]
    found = repl.listing(loop.root, names)
    ok, why = etcd_answers(ha)
    projects = {}
    for pid in sorted(copies):
        copy = found.get("%s/%s" % (loop.root, pid))
        if copy is None:
            continue
        newest = repl.replication_plan.newest(copy["snapshots"])
        known = view.get(pid) if isinstance(view.get(pid), dict) else None
        if copy["role"] == "primary" and (known is None or int(known.get("epoch") or 0) < copy["epoch"]):
            known = {"host": me, "epoch": copy["epoch"]}
        projects[pid] = {"newest": newest and {"name": newest["name"], "guid": newest["guid"],
                                               "creation": newest["creation"]},
                         "epoch": copy["epoch"], "role": copy["role"], "readonly": copy["readonly"],
                         "copies": copies[pid], "known": known and {"host": str(known["host"]),
                                                                    "epoch": int(known["epoch"])}}
    return {"host": me, "etcd": "ok" if ok else "unavailable", "error": why, "projects": projects,
            "record": read_record(ha)}


def promotion_errors(moves, dead, confirm, me, check=False):
    """Why an offline promotion request must not run, as sentences (empty: it may; a check needs no
    confirmation)."""
    errors = failover_errors(dead, confirm, (), me, check)
    if not dead:
        errors.append("dead: name the hosts declared dead (an offline promotion needs them)")
    if not isinstance(moves, list):
        return errors + ["moves must be a list of {project, from, to, epoch}"]
    for i, move in enumerate(moves):
        if not isinstance(move, dict):
            errors.append("moves[%d] is not a mapping" % i)
            continue
        if not isinstance(move.get("project"), str) or not repl.CHILD_RE.match(move["project"]) \
                or move["project"] in (".", ".."):
            errors.append("moves[%d].project: %r is not a project id" % (i, move.get("project")))
        for field in ("from", "to"):
            if not isinstance(move.get(field), str) or not HOST_RE.fullmatch(move[field]):
                errors.append("moves[%d].%s: %r is not a host name" % (i, field, move.get(field)))
        if move.get("to") in dead:
            errors.append("moves[%d].to: %s is declared dead" % (i, move.get("to")))
        epoch = move.get("epoch")
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1:
            errors.append("moves[%d].epoch: %r is not a whole number >= 1" % (i, epoch))
    return errors


def cmd_ha_promote_offline(cfg, moves, dead=(), confirm=(), check=False):
    """failover.yml without etcd's quorum, on every live host: record the operator's decision (``moves`` from
    failover.offline_promotions, ``dead`` hosts each also in ``confirm``) durably, then make the copies it
    names this host for writable at their new epochs. Refused while etcd answers from here (then etcd decides).
    The HA loop keeps those copies writable and holds their elections until it has written them to etcd."""
    ha = ha_config(cfg)
    if not ha["enabled"]:
        raise HaError("ha.enabled is false in the agent config: there is no failover to force; nothing changed")
    loop = Loop(cfg, ha, None, None)
    plan = loop.plan()
    me, dead, confirm = plan["host"], sorted(set(dead)), sorted(set(confirm))
    errors = promotion_errors(moves, dead, confirm, me, check)
    if errors:
        raise HaError("; ".join(errors) + ". Nothing was changed.")
    ok, _why = etcd_answers(ha)
    if ok:
        raise HaError("etcd answers from %s: it decides who is primary (run failover.yml with etcd's quorum); "
                      "no offline promotion; nothing changed" % me)
    mine = [m for m in moves if m["to"] == me]
    found = repl.listing(loop.root, ["%s/%s" % (loop.root, m["project"]) for m in mine])
    missing = [m["project"] for m in mine if "%s/%s" % (loop.root, m["project"]) not in found]
    if missing:
        raise HaError("%s holds no copy of %s: survey again; nothing changed" % (me, ", ".join(missing)))
    report = {"host": me, "check": bool(check), "recorded": len(moves), "dead": dead,
              "promoted": [{"project": m["project"], "epoch": m["epoch"], "over": m["from"]} for m in mine]}
    if check:
        return report
    write_record(ha, failover.merge_record(read_record(ha), moves, dead, round(time.time(), 3)))
    for move in mine:  # after the record: the HA loop's fence leaves these alone from now on
        repl.make_primary("%s/%s" % (loop.root, move["project"]), move["epoch"])
    if mine:
        repl.sync_limits(cfg, report)
    return report


# A planned switchover in etcd: the old primary's fence announces it in the primary key by CAS
# ({"switching": {"to", "epoch"}}); the new primary's promote is a CAS from that announcement only; a rollback
# (the promotion did not happen) withdraws it by CAS, so a promotion that arrives late fails instead of
# making a second writable copy.

def _primary_entry(cfg, pid, what):
    """(ha, this host's lease, client, key, value or None, revision) of ``pid``'s primary key; raises HaError
    (nothing changed) without a fresh lease here or an answer from etcd."""
    ha = ha_config(cfg)
    mine = read_state(ha)
    if mine is None or not mine.get("lease"):
        raise HaError("this host's HA loop holds no fresh lease (smc-ha.service down or etcd unreachable); "
                      "nothing changed")
    client = client_for(ha)
    key = failover.keys(ha["prefix"])["primary"] + pid
    try:
        kvs, _rev = client.range(key)
    except etcd_v3.EtcdError as exc:
        raise HaError("etcd did not answer (%s): %s; nothing changed" % (str(exc)[:200], what)) from exc
    value, revision, _lease = kvs.get(key, ("", 0, 0))
    return ha, mine["lease"], client, key, json.loads(value) if value else None, revision


def _named(value):
    return "nothing" if value is None else "%s at epoch %s" % (value.get("host"), value.get("epoch"))


def _swap(client, key, doc, revision, pid, what):
    try:
        swapped = client.swap(key, json.dumps(doc, sort_keys=True), revision)
    except etcd_v3.EtcdError as exc:
        raise HaError("etcd did not answer the CAS of %s's primary (%s): %s" % (pid, str(exc)[:200], what)) from exc
    if not swapped:
        raise HaError("etcd's primary of %s changed meanwhile (a failover?); nothing changed" % pid)


def announce_switchover(cfg, pid, me, to):
    """The old primary's fence: etcd must name this host primary of ``pid``; the switchover to ``to`` at the
    next epoch is written into its primary key. Repeatable (a rerun finds its own announcement)."""
    if not isinstance(to, str) or not HOST_RE.fullmatch(to) or to == me:
        raise HaError("to: %r is not another host's name (letters, digits, '_', '.', '-'; starting with a letter "
                      "or digit; not this host); nothing changed" % (to,))
    _ha, _lease, client, key, value, revision = _primary_entry(cfg, pid, "the switchover was not announced")
    if value is None or value.get("host") != me:
        raise HaError("etcd has %s as primary of %s, not this host (%s): switch over from the primary; nothing "
                      "changed" % (_named(value), pid, me))
    switching = {"to": to, "epoch": value["epoch"] + 1}
    if value.get("switching") != switching:
        _swap(client, key, dict(value, switching=switching), revision, pid, "run switchover.yml again")
    return switching


def take_over(cfg, pid, me, epoch):
    """A planned switchover's promote, with HA on: etcd's primary key of ``pid`` moves to this host at ``epoch``
    by CAS, only from the old primary's announcement of this very switchover. The local state follows at once,
    so the sender replicates as the new primary without waiting for the loop. Returns the previous holder."""
    ha, lease, client, key, before, revision = _primary_entry(cfg, pid, "run switchover.yml again")
    if before is None or before.get("switching") != {"to": me, "epoch": epoch}:
        raise HaError("etcd has %s as primary of %s with no switchover to %s at epoch %d announced (the old "
                      "primary's fence announces it, a rollback withdraws it, a failover replaces it): run "
                      "switchover.yml again; nothing changed" % (_named(before), pid, me, epoch))
    _swap(client, key, {"host": me, "epoch": epoch, "over": before.get("host"), "lease": lease}, revision, pid,
          "run switchover.yml again")
    note_primary(ha, pid, me, epoch)
    return before.get("host")


def withdraw_switchover(cfg, pid, me, epoch):
    """A switchover rolled back: this host's fenced copy (at ``epoch``, 0 when it never had one set) may turn
    writable again only while etcd names this host primary of ``pid`` at that epoch or a later one no other
    host held (an epoch this copy never saw is etcd's first, or one a failover gave back to this very host),
    and the announcement, if any, is of the next epoch (the promotion's CAS did not happen). It is withdrawn
    first, by CAS: a promotion that arrives later fails. Returns etcd's epoch (the copy's from now on)."""
    _ha, _lease, client, key, value, revision = _primary_entry(
        cfg, pid, "whether the switchover happened is unknown")
    switching = (value or {}).get("switching")
    if value is None or value.get("host") != me or not isinstance(value.get("epoch"), int) \
            or value["epoch"] < epoch or (switching and switching.get("epoch") != value["epoch"] + 1):
        raise HaError("etcd has %s as primary of %s, not this host (%s) at epoch %d or later: the switchover or a "
                      "failover happened; nothing changed" % (_named(value), pid, me, epoch))
    if switching:
        _swap(client, key, dict((k, v) for k, v in value.items() if k != "switching"), revision, pid,
              "nothing changed; run the rollback again")
    return value["epoch"]


def note_primary(ha, pid, host, epoch):
    """Update one project in the local state (confirmed now: etcd just named ``host`` by CAS)."""
    doc = read_state(ha)
    if doc is None:
        return
    doc.pop("confirmed")  # read_state's view of the file's mtime, which this write renews
    doc.setdefault("primary", {})[pid] = {"host": host, "epoch": epoch}
    write_state(ha["state"], doc)
