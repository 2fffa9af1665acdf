# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent's replication: the sending side (``replicate``) and the receiving side (``receive``).

Installed next to smc-zfs-agent with the pure parts it uses (replication_plan, replication_wire, host_plan:
the collection's module_utils, byte for byte). Standard library only.

Sender (root, on each primary): reads the host plan, lists its primary datasets' snapshots and bookmarks in one
``zfs list``, and skips every (dataset, target) whose last confirmed GUID is the dataset's newest snapshot
(idle: no send and no SSH). The rest is grouped by target; one SSH connection per target carries all of them
(at most ``parallel`` targets at a time). Over it: the target's state of those datasets, then per dataset one
decision (replication_plan.decide) and its streams. After a confirmed receive the per-target hold and bookmark
move to the new base on the source; the receiver does the same with its own hold.

Receiver (user smc-recv, forced command of its SSH key; ``zfs allow`` covers only the project subtree): checks
every dataset name is a child of its roots, refuses a stream whose epoch is lower than the dataset's, takes a
per-dataset lock (a second receive into the same dataset is refused), receives with ``zfs recv -s -u``
(never ``-F``), and quarantines (renames) a forked copy only when asked at an epoch not lower than its own.
"""

import fcntl
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

import host_plan
import replication_plan
import replication_wire as wire

EPOCH_PROP = "smc:epoch"
LIMITS_CONFIG = "/etc/smc/project-limits.json"  # role project_limits: the project slices this host may run
HOLD_PREFIX = "smc-repl-"
PROTOCOL = 1
CONCURRENT_RECEIVES = 8  # per session; more wait for the oldest to end
CHILD_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}\Z")


class ReplicationError(Exception):
    pass


def run(args, check=True):
    p = subprocess.run(args, capture_output=True, text=True, check=False)
    if check and p.returncode != 0:
        raise ReplicationError("%s failed (rc=%d): %s" % (" ".join(args[:5]), p.returncode, p.stderr.strip()[:1000]))
    return p


def listing(root, names=None):
    """{dataset: {snapshots, bookmarks, epoch, written, resume_token, readonly, role}} of the root's children, or of
    just ``names`` (children of root; absent ones are left out): one ``zfs list`` for the datasets, one for
    their snapshots and bookmarks."""
    few = names is not None and len(names) <= 64
    if names is not None and not names:
        return {}
    where = (["-d", "0"] + sorted(names)) if few else ["-d", "1", root]
    p = run(["zfs", "list", "-H", "-p", "-t", "filesystem", "-o",
             "name,written,%s,receive_resume_token,readonly,smc:role" % EPOCH_PROP] + where, check=False)
    if p.returncode != 0 and not few:
        if "does not exist" in p.stderr:
            return {}
        raise ReplicationError("zfs list %s: %s" % (root, p.stderr.strip()))
    if p.returncode != 0 and any("does not exist" not in line for line in p.stderr.splitlines() if line.strip()):
        raise ReplicationError("zfs list: %s" % p.stderr.strip()[:500])
    wanted = set(names) if names is not None else None
    out = {}
    for line in p.stdout.splitlines():
        name, written, epoch, token, readonly, role = line.split("\t")
        if name == root or (wanted is not None and name not in wanted):
            continue
        out[name] = {"snapshots": [], "bookmarks": [], "epoch": int(epoch) if epoch.isdigit() else 0,
                     "written": int(written) if written.isdigit() else 0,
                     "resume_token": token if token not in ("-", "") else None, "readonly": readonly == "on",
                     "role": role if role != "-" else None}
    if out:
        where = (["-d", "1"] + sorted(out)) if few else ["-d", "2", root]
        p = run(["zfs", "list", "-H", "-p", "-t", "snapshot,bookmark", "-o", "name,guid,createtxg,creation"] + where,
                check=False)
        for line in p.stdout.splitlines():
            name, guid, txg, creation = line.split("\t")
            sep = "@" if "@" in name else "#"
            ds, short = name.split(sep, 1)
            if ds in out:
                out[ds]["snapshots" if sep == "@" else "bookmarks"].append(
                    {"name": short, "guid": int(guid), "txg": int(txg),
                     "creation": int(creation) if creation.isdigit() else 0})
    return out


def props(ds, names):
    """{property: value} of one dataset (one ``zfs get``), or None when it does not exist."""
    p = run(["zfs", "get", "-H", "-p", "-o", "property,value", ",".join(names), ds], check=False)
    if p.returncode != 0:
        if "does not exist" in p.stderr:
            return None
        raise ReplicationError("zfs get %s: %s" % (ds, p.stderr.strip()[:500]))
    return dict(line.split("\t", 1) for line in p.stdout.splitlines())


def move_holds(tag, moves):
    """Hold ``tag`` on each dataset's last new base of ``moves`` ([(new, old or None)], in order) and release
    it from every other snapshot named there: one command each (one per snapshot only when the batch fails,
    e.g. a hold that exists already)."""
    last = {}
    for new_snap, _old in moves:
        last[new_snap.split("@", 1)[0]] = new_snap
    keep = set(last.values())
    named = set(n for pair in moves for n in pair if n)
    for cmd, names in (("hold", sorted(keep)), ("release", sorted(named - keep))):
        if names and run(["zfs", cmd, tag] + names, check=False).returncode != 0:
            for name in names:
                run(["zfs", cmd, tag, name], check=False)
    return sorted(keep)


LUA_BOOKMARKS = """
args = ...
argv = args["argv"]
made = 0
for i = 1, #argv, 2 do
  if zfs.sync.bookmark(argv[i], argv[i + 1]) == 0 then made = made + 1 end
end
return made
"""


def bookmarks(snapshots):
    """A bookmark ``ds#<snapshot name>`` of each confirmed base (kept when its snapshot is pruned, so an
    incremental can still start there): one channel program per pool; existing bookmarks are left as they are."""
    by_pool = {}
    for snap in snapshots:
        ds, name = snap.split("@", 1)
        by_pool.setdefault(ds.split("/")[0], []).extend([snap, "%s#%s" % (ds, name)])
    if not by_pool:
        return
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA_BOOKMARKS)
    try:
        for pool, argv in sorted(by_pool.items()):
            run(["zfs", "program", "-t", "10000000", pool, f.name] + argv, check=False)
    finally:
        os.unlink(f.name)


# ---------------------------------------------------------------------------------------------- receiver

def receive_lock_path(lock_dir, ds):
    """The file a receive into ds holds its flock on (the agent's snapshot takes it too)."""
    return os.path.join(lock_dir, ds.replace("/", "%2F") + ".recv")


class Receiver:
    def __init__(self, cfg, inp, out, peer="?"):
        self.cfg, self.inp, self.out, self.peer = cfg, inp, out, peer
        self.roots = cfg["roots"]
        self.lock_dir = cfg["receive_lock_dir"]
        self.holds = []
        self.pending = []  # this session's receives, answered at sync
        os.makedirs(self.lock_dir, exist_ok=True)

    def reply(self, **message):
        wire.write_message(self.out, message)

    def dataset(self, name):
        """The dataset name if it is a direct child of one of our roots, else ReplicationError."""
        if isinstance(name, str):
            for root in self.roots:
                if name.startswith(root + "/") and CHILD_RE.match(name[len(root) + 1:]) \
                        and name[len(root) + 1:] not in (".", ".."):
                    return name
        raise ReplicationError("dataset %r is not a project dataset under %s" % (name, ", ".join(self.roots)))

    def serve(self):
        handlers = {"hello": self.hello, "state": self.state, "recv": self.recv, "sync": self.sync,
                    "abort": self.abort, "quarantine": self.quarantine, "epoch": self.epoch}
        try:
            return self._serve(handlers)
        finally:
            for entry in self.pending:  # the sender went away: let the receives end (cut-off ones keep a token)
                if "result" not in entry:
                    self._finish(entry)
            self.flush_holds()

    def _serve(self, handlers):
        while True:
            message = wire.read_message(self.inp)
            if message is None or message.get("op") == "bye":
                return 0
            handler = handlers.get(message.get("op"))
            try:
                if handler is None:
                    raise ReplicationError("unknown op %r" % message.get("op"))
                handler(message)
            except (ReplicationError, OSError, ValueError) as exc:
                self.reply(ok=False, error=str(exc))

    def hello(self, message):
        self.peer = str(message.get("source") or "?")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", self.peer):
            raise ReplicationError("source %r is not a host name" % self.peer)
        self.reply(ok=True, protocol=PROTOCOL, host=os.uname().nodename)

    def state(self, message):
        names = [self.dataset(n) for n in message.get("datasets") or []]
        found = {}
        for root in self.roots:
            found.update(listing(root, [n for n in names if n.startswith(root + "/")]))
        self.reply(ok=True, state=dict((n, found.get(n)) for n in names))

    def _lock(self, ds):
        fd = os.open(receive_lock_path(self.lock_dir, ds), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def _drain(self):
        wire.read_frames(self.inp, lambda data: None)

    def recv(self, message):
        """Start one receive; its answer waits for ``sync``, so the streams of a session are received
        concurrently (they share transaction groups) while the connection carries the next one."""
        try:
            entry = self._start(message)
        except ReplicationError as exc:
            entry = {"result": {"ok": False, "error": str(exc)}}
        self.pending.append(entry)
        running = [e for e in self.pending if "result" not in e]
        if len(running) > CONCURRENT_RECEIVES:
            self._finish(running[0])

    def sync(self, message):
        """One answer per receive of the session, in order."""
        for entry in self.pending:
            if "result" not in entry:
                self._finish(entry)
            self.reply(**entry["result"])
        self.pending = []

    def _start(self, message):
        try:
            ds = self.dataset(message.get("dataset"))
            epoch = message.get("epoch")
            if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1:
                raise ReplicationError("epoch %r is not a whole number >= 1" % epoch)
        except ReplicationError:
            self._drain()
            raise
        fd = self._lock(ds)
        if fd is None:
            self._drain()
            raise ReplicationError("busy: another receive into %s is running; refused" % ds)
        try:
            return self._start_locked(ds, epoch, message, fd)
        except BaseException:
            os.close(fd)
            raise

    def _start_locked(self, ds, epoch, message, fd):
        have = props(ds, ["written", EPOCH_PROP])
        have_epoch = int(have[EPOCH_PROP]) if have and have[EPOCH_PROP].isdigit() else 0
        if have is not None and have_epoch > epoch:
            self._drain()
            raise ReplicationError("refused: %s is at epoch %d, the stream carries epoch %d (an older primary)"
                                   % (ds, have_epoch, epoch))
        kind = message.get("kind")
        args = ["zfs", "receive", "-s", "-u"]
        if kind == "full":
            if have is not None:
                self._drain()
                raise ReplicationError("refused: a full stream into %s, which exists (never receive -F over it)" % ds)
            args += ["-o", "readonly=on", "-o", "smc:role=replica"]
            for key, value in sorted((message.get("props") or {}).items()):
                if re.fullmatch(r"(quota|refquota|smc:[a-z0-9_.-]+)", key) and key not in ("smc:role", EPOCH_PROP) \
                        and re.fullmatch(r"[A-Za-z0-9_.:-]{1,200}", str(value)):
                    args += ["-o", "%s=%s" % (key, value)]
        elif kind not in ("incremental", "resume"):
            self._drain()
            raise ReplicationError("kind %r is not full, incremental or resume" % kind)
        elif have is None:
            self._drain()
            raise ReplicationError("refused: an incremental stream into %s, which does not exist" % ds)
        if kind != "resume" and epoch > have_epoch:
            args += ["-o", "%s=%d" % (EPOCH_PROP, epoch)]
        proc = subprocess.Popen(args + [ds], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        broken = []

        def sink(data):
            if broken:
                return
            try:
                proc.stdin.write(data)
            except (BrokenPipeError, OSError):
                broken.append(True)
        entry = {"proc": proc, "fd": fd, "ds": ds, "message": message, "epoch": epoch, "have_epoch": have_epoch}
        try:
            entry["size"] = wire.read_frames(self.inp, sink)
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass
        return entry

    def _finish(self, entry):
        """Wait for one receive, release its lock, and keep its answer."""
        proc, ds, message = entry["proc"], entry["ds"], entry["message"]
        try:
            err = proc.stderr.read().decode("utf-8", "replace")
            if proc.wait() != 0:
                entry["result"] = {"ok": False, "error": "zfs receive %s failed: %s" % (ds, err.strip()[-800:])}
                return
            to, guid = message.get("to"), message.get("to_guid")
            if message.get("kind") == "resume" or not to:
                listed = (listing(ds.rsplit("/", 1)[0], [ds]).get(ds) or {}).get("snapshots") or []
                latest = replication_plan.newest(listed)
                to, guid = latest["name"], latest["guid"]
                if entry["epoch"] > entry["have_epoch"]:
                    run(["zfs", "set", "%s=%d" % (EPOCH_PROP, entry["epoch"]), ds])
            base = message.get("base")
            self.holds.append(("%s@%s" % (ds, to), "%s@%s" % (ds, base) if base else None))
            entry["result"] = {"ok": True, "bytes": entry["size"], "snapshot": to, "guid": guid}
        except ReplicationError as exc:
            entry["result"] = {"ok": False, "error": str(exc)}
        finally:
            os.close(entry["fd"])

    def flush_holds(self):
        """This session's holds in two commands: the new bases held for the sender, the old ones released."""
        move_holds(HOLD_PREFIX + self.peer, self.holds)
        self.holds = []

    def epoch(self, message):
        """Raise a caught-up copy's epoch to the new primary's (after a switchover with nothing new to send)."""
        ds = self.dataset(message.get("dataset"))
        epoch = message.get("epoch")
        have = props(ds, [EPOCH_PROP])
        if have is None or not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1:
            raise ReplicationError("epoch: %s does not exist or %r is not an epoch" % (ds, epoch))
        if (int(have[EPOCH_PROP]) if have[EPOCH_PROP].isdigit() else 0) < epoch:
            run(["zfs", "set", "%s=%d" % (EPOCH_PROP, epoch), ds])
        self.reply(ok=True, epoch=epoch)

    def abort(self, message):
        ds = self.dataset(message.get("dataset"))
        run(["zfs", "receive", "-A", ds])
        self.reply(ok=True)

    def quarantine(self, message):
        ds = self.dataset(message.get("dataset"))
        epoch = message.get("epoch")
        fd = self._lock(ds)
        if fd is None:
            raise ReplicationError("busy: a receive into %s is running; not quarantined" % ds)
        try:
            have = listing(ds.rsplit("/", 1)[0], [ds]).get(ds)
            if have is None:
                raise ReplicationError("%s does not exist" % ds)
            if not isinstance(epoch, int) or have["epoch"] > epoch:
                raise ReplicationError("refused: %s is at epoch %d, the request carries %r" % (ds, have["epoch"], epoch))
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            qparent = self.cfg["quarantine_parent"]
            new = "%s/%s-%s" % (qparent, ds.rsplit("/", 1)[1], stamp)
            run(["zfs", "rename", "-u", ds, new])
            run(["zfs", "set", "smc:role=quarantined", "smc:quarantined=%s" % stamp, "smc:origin=%s" % ds,
                 "smc:reason=%s" % re.sub(r"[^A-Za-z0-9_.:-]", "_", str(message.get("reason") or ""))[:200], new],
                check=False)
        finally:
            os.close(fd)
        self.reply(ok=True, renamed=new)


# ------------------------------------------------------------------------------------------------ sender

class Records:
    """Per (dataset, target): last confirmed snapshot and GUID, last success/attempt, bytes, errors."""

    def __init__(self, path):
        self.path = path
        self.data = {}
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                self.data = json.load(f)
        self.lock = threading.Lock()

    def get(self, ds, target):
        return self.data.get(ds, {}).get(target) or {}

    def update(self, ds, target, **values):
        with self.lock:
            fresh = {"bytes_total": 0, "errors_total": 0, "consecutive_failures": 0}
            rec = self.data.setdefault(ds, {}).setdefault(target, fresh)
            rec.update(values)
            return rec

    def save(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.data, f, sort_keys=True, indent=1)
        os.replace(tmp, self.path)


def ssh_command(repl, address):
    """The ssh command line of a session with ``address``'s receiver. With ``persist`` seconds (> 0) the first
    session to a target starts a master connection (in ``control_dir``, root's only) that later sessions share
    for that long after the last one ends: a key exchange per target and interval, not per command (on a slow
    host the exchange costs more than an idle send). A master whose peer stopped answering ends after three
    unanswered keepalives (45 s), as a new connection would time out."""
    args = ["ssh", "-i", repl["ssh_key"], "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-o", "UserKnownHostsFile=%s" % repl["known_hosts"], "-o", "StrictHostKeyChecking=yes",
            "-o", "ConnectTimeout=%d" % repl["connect_timeout"], "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=3", "-o", "Compression=no"]
    if repl.get("persist"):
        os.makedirs(repl["control_dir"], mode=0o700, exist_ok=True)
        os.chmod(repl["control_dir"], 0o700)
        args += ["-o", "ControlMaster=auto", "-o", "ControlPath=%s/%%C" % repl["control_dir"],
                 "-o", "ControlPersist=%d" % repl["persist"]]
    return args + ["-l", repl["user"], address, "receive"]


class Peer:
    """One SSH session with a target's receiver."""

    def __init__(self, cfg, me, target, address):
        self.target = target
        cmd = cfg["replication"].get("command") or ssh_command(cfg["replication"], address)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        rate = cfg["replication"].get("bwlimit") or 0  # bytes per second on this connection; 0: no limit
        self.inp, self.out = self.proc.stdout, wire.RateLimit(self.proc.stdin, rate) if rate else self.proc.stdin
        self.call(op="hello", source=me, protocol=PROTOCOL)

    def call(self, **message):
        """A message and its answer (streams go with send, their answers come after sync)."""
        wire.write_message(self.out, message)
        answer = wire.read_message(self.inp)
        if answer is None:
            try:
                self.proc.wait(timeout=10)
                err = self.proc.stderr.read().decode("utf-8", "replace").strip()
            except subprocess.TimeoutExpired:
                err = ""
            raise ReplicationError("connection to %s ended: %s" % (self.target, err[-500:] or "no answer"))
        if not answer.get("ok"):
            raise ReplicationError(answer.get("error") or "refused")
        return answer

    def send(self, stream, **message):
        """A message and its stream, without waiting for the answer (see sync and reply)."""
        wire.write_message(self.out, message)
        return wire.write_frames(self.out, stream)

    def sync(self):
        wire.write_message(self.out, {"op": "sync"})

    def reply(self):
        answer = wire.read_message(self.inp)
        if answer is None:
            raise ReplicationError("connection to %s ended before every receive was answered" % self.target)
        return answer

    def close(self):
        try:
            wire.write_message(self.out, {"op": "bye"})
            self.out.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def send_args(ds, action, compress):
    flags = ["-c"] if compress else []
    if action.kind == "resume":
        return ["zfs", "send", "-t", action.token]
    if action.kind == "full":
        return ["zfs", "send"] + flags + ["%s@%s" % (ds, action.base["name"])]
    if action.base.get("bookmark"):
        return ["zfs", "send"] + flags + ["-i", "%s#%s" % (ds, action.base["name"]), "%s@%s" % (ds, action.to["name"])]
    return ["zfs", "send"] + flags + ["-I", "%s@%s" % (ds, action.base["name"]), "%s@%s" % (ds, action.to["name"])]


class Sender:
    def __init__(self, cfg, plan, records, report, dry_run=False, verify=False, only=None):
        self.cfg, self.plan, self.records, self.report, self.dry_run = cfg, plan, records, report, dry_run
        self.only = only  # a project id: replicate just that one
        self.moved = {}  # target -> [(new base, old base)] confirmed this cycle
        self.verify = verify  # ask every target, also for datasets whose last confirmed snapshot is the newest
        self.me = plan["host"]
        self.root = cfg["roots"][0]
        self.compress = cfg["replication"]["compressed"]
        self.newest = {}  # dataset -> (guid of its newest snapshot or None, its targets): what the metrics compare

    def work(self):
        """{target: [(dataset, epoch, source listing)]} of what may need a send, and the idle count."""
        mine = {}
        for pid in sorted(self.plan["projects"]):
            if self.only is not None and pid != self.only:
                continue
            role, _primary, targets = host_plan.targets(self.plan, pid)
            if role == "primary":
                mine["%s/%s" % (self.root, pid)] = (self.plan["projects"][pid]["epoch"], targets)
        local = listing(self.root, list(mine))
        todo, idle, missing = {}, 0, []
        down = set(self.plan.get("ha_down") or [])  # no lease in etcd: not worth a connect timeout
        for ds, (epoch, targets) in sorted(mine.items()):
            src = local.get(ds)
            if src is None:
                missing.append(ds)
                continue
            if src["epoch"] > epoch:
                self.report["errors"].append("%s: local epoch %d is newer than the plan's %d; not sending"
                                             % (ds, src["epoch"], epoch))
                continue
            latest = replication_plan.newest(src["snapshots"])
            self.newest[ds] = (latest["guid"] if latest else None, set(targets))
            for target in targets:
                if target in down:
                    self.report.setdefault("skipped_down", {}).setdefault(target, 0)
                    self.report["skipped_down"][target] += 1
                    continue
                rec = self.records.get(ds, target)
                if latest is None or (not self.verify and rec.get("guid") == latest["guid"]
                                      and not rec.get("last_error")):
                    idle += 1
                    continue
                todo.setdefault(target, []).append((ds, epoch, src))
        return todo, idle, missing

    def replicate(self):
        todo, idle, missing = self.work()
        self.report.update(idle=idle, missing_primaries=missing, peers={})
        if self.dry_run:
            for target, items in sorted(todo.items()):
                self.report["peers"][target] = {"datasets": [ds for ds, _e, _s in items]}
            return
        addresses = dict(zip(self.plan["hosts"], self.plan["addresses"]))
        limit = threading.Semaphore(self.cfg["replication"]["parallel"])
        threads = []
        for target, items in sorted(todo.items()):
            t = threading.Thread(target=self._peer, args=(limit, target, addresses[target], items))
            t.start()
            threads.append(t)
        for t in threads:
            t.join()

    def _peer(self, limit, target, address, items):
        """One session: the target's state of every dataset, a decision each (quarantines and aborts at once),
        then every stream back to back (the target receives them concurrently, sharing transaction groups),
        then one reply per stream, in order."""
        summary = {"datasets": len(items), "sent": 0, "skipped": 0, "bytes": 0, "errors": [], "kinds": {}}
        self.report["peers"][target] = summary
        done = set()
        with limit:
            peer = None
            try:
                peer = Peer(self.cfg, self.me, target, address)
                state = peer.call(op="state", datasets=[ds for ds, _e, _s in items])["state"]
                sends = []
                for ds, epoch, src in items:
                    try:
                        action = self._decide(peer, ds, epoch, src, state.get(ds), summary)
                    except ReplicationError as exc:
                        self._failed(ds, target, str(exc), summary)
                        done.add(ds)
                        continue
                    if action is None:
                        done.add(ds)
                    else:
                        sends.append((ds, epoch, src, action))
                while sends:  # a seed's history follows its full stream in a second round
                    sends = self._round(peer, sends, summary, done)
            except (ReplicationError, OSError, wire.WireError) as exc:
                for ds, _epoch, _src in items:
                    if ds not in done:
                        self._failed(ds, target, "session: %s" % exc, summary)
            finally:
                if peer is not None:
                    peer.close()
                self.flush(target)

    def _failed(self, ds, target, error, summary):
        rec = self.records.get(ds, target)
        self.records.update(ds, target, last_error=error[:500], last_attempt=time.time(),
                            errors_total=rec.get("errors_total", 0) + 1,
                            consecutive_failures=rec.get("consecutive_failures", 0) + 1)
        summary["errors"].append("%s: %s" % (ds, error[:300]))

    def _round(self, peer, sends, summary, done):
        """Every stream of ``sends`` back to back, then their answers; returns the next round's sends."""
        target = peer.target
        for ds, epoch, src, action in sends:
            self._stream(peer, ds, epoch, action, summary)
        peer.sync()
        follow = []
        for ds, epoch, src, action in sends:
            answer = peer.reply()
            done.add(ds)
            if not answer.get("ok"):
                self._failed(ds, target, answer.get("error") or "refused", summary)
                continue
            got = [x for x in src["snapshots"] if x["guid"] == answer.get("guid")]
            if not got:
                self._failed(ds, target, "the target reports snapshot guid %s, not one of ours"
                             % answer.get("guid"), summary)
                continue
            self._confirmed(ds, target, got[0], answer.get("bytes") or 0)
            latest = replication_plan.newest(src["snapshots"])
            if action.kind == "full" and latest["guid"] != got[0]["guid"]:
                follow.append((ds, epoch, src, replication_plan.Action("incremental", base=got[0], to=latest)))
            else:
                summary["sent"] += 1
        return follow

    def _decide(self, peer, ds, epoch, src, have, summary):
        """The send for one dataset (an Action), or None when there is nothing to send; quarantines and aborts
        happen here, before any stream of the session."""
        target = peer.target
        for _round in range(3):  # abort or quarantine, then plan again
            action = replication_plan.decide(src, have, epoch)
            if action.kind == "refuse":
                raise ReplicationError(action.reason)
            if action.kind == "skip":
                summary["skipped"] += 1
                if have is not None and have.get("epoch", 0) < epoch:  # caught up, but from an older primary
                    peer.call(op="epoch", dataset=ds, epoch=epoch)
                self._confirmed(ds, target, action.to, 0)
                return None
            if action.kind == "abort":
                peer.call(op="abort", dataset=ds)
                have = peer.call(op="state", datasets=[ds])["state"].get(ds)
                continue
            if action.kind == "quarantine":
                renamed = peer.call(op="quarantine", dataset=ds, epoch=epoch, reason=action.reason)["renamed"]
                self.report["quarantined"].append({"target": target, "dataset": ds, "renamed": renamed,
                                                   "reason": action.reason})
                have = None
                continue
            summary["kinds"][action.kind] = summary["kinds"].get(action.kind, 0) + 1
            if action.kind == "full":  # a seed: the oldest snapshot whole, then (next round) the rest with -I
                oldest = replication_plan.by_txg(src["snapshots"])[0]
                return replication_plan.Action("full", base=oldest, to=oldest)
            return action
        raise ReplicationError("no plan converged for %s" % ds)

    def _props(self, ds):
        p = run(["zfs", "get", "-H", "-p", "-s", "local", "-o", "property,value", "quota,refquota,smc:class", ds],
                check=False)
        return dict(line.split("\t", 1) for line in p.stdout.splitlines() if "\t" in line)

    def _stream(self, peer, ds, epoch, step, summary):
        """Send one stream (no reply is read here). A ``zfs send`` that fails still ends the stream; the
        target then reports the receive as failed."""
        args = send_args(ds, step, self.compress)
        props = self._props(ds) if step.kind == "full" else {}
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            summary["bytes"] += peer.send(proc.stdout, op="recv", dataset=ds, epoch=epoch, kind=step.kind,
                                          props=props, to=step.to and step.to["name"],
                                          to_guid=step.to and step.to["guid"],
                                          base=step.base["name"] if step.kind == "incremental" else None)
        finally:
            err = proc.stderr.read().decode("utf-8", "replace")
            if proc.wait() != 0:
                summary["errors"].append("%s: %s failed: %s" % (ds, " ".join(args[:3]), err.strip()[-300:]))

    def _confirmed(self, ds, target, snap, size):
        """The target holds ``snap``: record it; the hold and bookmark move in this peer's flush."""
        rec = self.records.get(ds, target)
        if rec.get("snapshot") != snap["name"]:
            self.moved.setdefault(target, []).append(("%s@%s" % (ds, snap["name"]),
                                                      "%s@%s" % (ds, rec["snapshot"]) if rec.get("snapshot") else None))
        now = time.time()
        self.records.update(ds, target, snapshot=snap["name"], guid=snap["guid"], last_success=now,
                            last_attempt=now, last_error=None, consecutive_failures=0,
                            bytes_total=rec.get("bytes_total", 0) + size)

    def flush(self, target):
        """Move this target's holds to the confirmed bases and bookmark them: three commands for all datasets."""
        bookmarks(move_holds(HOLD_PREFIX + target, self.moved.pop(target, [])))


def load_plan(cfg, authority=True, wait=0.0, peers_wait=0.0):
    """The host plan; with HA on (and ``authority``), its primaries and epochs are etcd's, as the HA loop
    last confirmed them: without a fresh confirmation this host is primary of nothing and sends nothing."""
    path = cfg["replication"]["plan"]
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        plan = host_plan.parse_plan(f.read(), path)
    if authority and (cfg.get("ha") or {}).get("enabled"):
        import smc_ha  # noqa: E402 (next to this file; imports this module)
        plan = smc_ha.overlay(plan, smc_ha.ha_config(cfg), wait, peers_wait)
    return plan


def one_sender(lock_dir, wait=600):
    """One sender per host: wait (up to ``wait`` s) for a replicate already running (e.g. the timer's)."""
    os.makedirs(lock_dir, exist_ok=True)
    fd = os.open(os.path.join(lock_dir, "replicate.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise ReplicationError("another replicate has run for over %d s on this host" % wait)
            time.sleep(0.5)


def cmd_replicate(cfg, args, report):
    plan = load_plan(cfg, wait=30.0, peers_wait=getattr(args, "wait_for_peers", 0) or 0)
    report.update(quarantined=[], errors=[])
    if plan is None:
        report["errors"].append("no plan at %s: nothing to replicate" % cfg["replication"]["plan"])
        return
    if plan.get("ha_offline"):
        report["ha_offline"] = plan["ha_offline"]  # promoted here by an operator while etcd has no quorum
    elif plan.get("ha_fresh") is False:
        report["errors"].append("HA: etcd has not confirmed this host's primaries lately (smc-ha.service down, "
                                "etcd unreachable or fenced): sending nothing; see smc-zfs-agent ha-status")
    if args.dry_run:
        Sender(cfg, plan, Records(cfg["replication"]["records"]), report, dry_run=True).replicate()
        return
    fd = one_sender(cfg["lock_dir"])
    try:
        records = Records(cfg["replication"]["records"])
        only = getattr(args, "project_only", None)
        sender = Sender(cfg, plan, records, report, verify=args.verify, only=only)
        sender.replicate()
        records.save()
        write_metrics(cfg, records.data, report, newest=None if only else sender.newest)
    finally:
        os.close(fd)
    report["failed"] = sum(len(p.get("errors") or []) for p in report["peers"].values()) + len(report["errors"])


METRIC_KEYS = ("last_success", "last_attempt", "bytes_total", "errors_total", "last_error", "consecutive_failures")


def write_metrics(cfg, records, report, newest=None):
    """Replication per peer into node-exporter's textfile directory (when it exists). ``newest``: {dataset:
    (guid of the source's newest snapshot, its targets)} of this run: then only this host's primaries and
    their current targets are exported, and a pair whose target lacks the newest snapshot (a failing send, or
    a target skipped for having no lease) lags by the time since its last success; an up-to-date pair has no
    lag. Without it (a one-project run) every record is exported and only failing pairs lag."""
    path = cfg["replication"].get("metrics_textfile")
    if not path or not os.path.isdir(os.path.dirname(path)):
        return
    try:
        import metrics_text  # noqa: E402 (installed next to the agent)
    except ImportError as exc:
        report["errors"].append("metrics: %s" % exc)
        return
    now = time.time()
    shaped = {}
    for ds, targets in records.items():
        if newest is not None and ds not in newest:
            continue  # not a primary here (any more): not this host's to send
        guid, current = newest[ds] if newest is not None else (None, None)
        for target, rec in targets.items():
            if current is not None and target not in current:
                continue  # no longer a target of the dataset
            out = dict((k, rec.get(k)) for k in METRIC_KEYS if rec.get(k) is not None)
            behind = rec.get("consecutive_failures", 0) > 0 or (guid is not None and rec.get("guid") != guid)
            out["lag_seconds"] = (now - rec["last_success"] if rec.get("last_success") else None) if behind else 0.0
            shaped.setdefault(ds, {})[target] = out
    try:
        metrics_text.write_textfile(path, metrics_text.replication_metrics(shaped, now))
    except (metrics_text.MetricsError, OSError) as exc:
        report["errors"].append("metrics: %s" % exc)


def cmd_receive(cfg):
    return Receiver(cfg, sys.stdin.buffer, sys.stdout.buffer).serve()


def cmd_status(cfg):
    path = cfg["replication"]["records"]
    data = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    now = time.time()
    for targets in data.values():
        for rec in targets.values():
            if rec.get("last_success"):
                rec["age_seconds"] = round(now - rec["last_success"], 1)
    return {"host": os.uname().nodename, "records": data}


# -------------------------------------------------------------------------------------- planned switchover

def project_dataset(cfg, pid):
    if not isinstance(pid, str) or not CHILD_RE.match(pid) or pid in (".", ".."):
        raise ReplicationError("project %r is not a project id" % pid)
    return "%s/%s" % (cfg["roots"][0], pid)


def cmd_fence(cfg, args, report):
    """Old primary, first half of a switchover: read-only (writes stop), a last snapshot of what was written,
    sent to every copy. Repeatable: a fenced copy with nothing new is just sent again (a no-op when caught up)."""
    ds = project_dataset(cfg, args.project)
    have = listing(cfg["roots"][0], [ds]).get(ds)
    if have is None:
        raise ReplicationError("%s does not exist on this host" % ds)
    if (cfg.get("ha") or {}).get("enabled"):
        import smc_ha  # noqa: E402 (next to this file)
        if not getattr(args, "to", None):
            raise ReplicationError("with HA on, fence needs --to HOST (the new primary): etcd is told of the "
                                   "switchover before any write stops; nothing changed")
        report["switching"] = smc_ha.announce_switchover(cfg, args.project, plan_host(load_plan(cfg, authority=False)),
                                                         args.to)
    run(["zfs", "set", "readonly=on", "smc:fenced=switchover", ds])  # (not the HA loop's to undo)
    run(["zpool", "sync", ds.split("/")[0]], check=False)
    written = int(run(["zfs", "get", "-H", "-p", "-o", "value", "written", ds]).stdout.strip() or 0)
    if written > 0 or not have["snapshots"]:
        name = args.snapshot_name
        run(["zfs", "snapshot", "%s@%s" % (ds, name)])
        report["snapshot"] = name
    args.project_only = args.project
    sub = {}
    args.verify = True
    cmd_replicate(cfg, args, sub)
    report["replication"] = sub
    latest = replication_plan.newest(listing(cfg["roots"][0], [ds])[ds]["snapshots"])
    report.update(dataset=ds, guid=latest["guid"], snapshot=latest["name"], failed=sub.get("failed", 0))
    sync_limits(cfg, report)  # read-only now: its processes stop


def cmd_promote(cfg, args, report):
    """New primary, second half: only when this copy holds the fenced primary's last snapshot (by GUID) and
    no newer epoch: raise the epoch, make it writable, mount it."""
    ds = project_dataset(cfg, args.project)
    have = listing(cfg["roots"][0], [ds]).get(ds)
    if have is None:
        raise ReplicationError("%s does not exist on this host: seed it before switching over" % ds)
    latest = replication_plan.newest(have["snapshots"])
    if latest is None or latest["guid"] != args.expect_guid:
        raise ReplicationError("%s is not caught up: its newest snapshot is %s, the old primary's last is guid %d; "
                               "nothing changed" % (ds, latest and "%s (guid %d)" % (latest["name"], latest["guid"]),
                                                    args.expect_guid))
    if have["epoch"] > args.epoch:
        raise ReplicationError("%s is at epoch %d already, newer than %d; nothing changed"
                               % (ds, have["epoch"], args.epoch))
    if have["written"] > 0:
        raise ReplicationError("%s was written to after its newest snapshot; nothing changed" % ds)
    if (cfg.get("ha") or {}).get("enabled"):
        import smc_ha  # noqa: E402 (next to this file)
        report["etcd_before"] = smc_ha.take_over(cfg, args.project, plan_host(load_plan(cfg, authority=False)),
                                                 args.epoch)
    make_primary(ds, args.epoch)
    report.update(dataset=ds, epoch=args.epoch, guid=latest["guid"], promoted=True)
    sync_limits(cfg, report)


def cmd_unfence(cfg, args, report):
    """Old primary, a switchover whose promotion did not happen (the new primary died or refused): writable
    again at its own epoch, only while it is still the project's primary (etcd's, under this host's fresh
    lease, with HA on; the plan's otherwise) and read-only because of that switchover's fence."""
    ds = project_dataset(cfg, args.project)
    have = listing(cfg["roots"][0], [ds]).get(ds)
    if have is None:
        raise ReplicationError("%s does not exist on this host; nothing changed" % ds)
    mark = (props(ds, ["smc:fenced"]) or {}).get("smc:fenced")
    if mark != "switchover":
        raise ReplicationError("%s is not fenced by a switchover (smc:fenced is %s); nothing changed"
                               % (ds, "unset" if mark in (None, "-") else mark))
    plan = load_plan(cfg, authority=False)
    if (cfg.get("ha") or {}).get("enabled"):
        import smc_ha  # noqa: E402 (next to this file)
        epoch = smc_ha.withdraw_switchover(cfg, args.project, plan_host(plan), have["epoch"])
    else:
        if getattr(args, "unanswered", False):
            raise ReplicationError("the new primary did not answer: without HA nothing tells whether it was "
                                   "promoted; look at it, then run switchover.yml again (or unfence once you know "
                                   "it was not); nothing changed")
        entry = (plan or {}).get("projects", {}).get(args.project)
        role, primary, _targets = host_plan.targets(plan, args.project) if entry else (None, None, None)
        if role != "primary" or entry["epoch"] < have["epoch"]:
            raise ReplicationError("the plan does not name this host primary of %s at epoch %d or later (%s): the "
                                   "switchover may have happened; nothing changed"
                                   % (args.project, have["epoch"], "not in the plan" if entry is None else
                                      "%s at epoch %d" % (primary, entry["epoch"])))
        epoch = entry["epoch"]
    make_primary(ds, epoch)
    report.update(dataset=ds, epoch=epoch, unfenced=True)
    sync_limits(cfg, report)


def plan_host(plan):
    """This host's name: the plan's (``load_plan``'s result, None without a plan), else the node name."""
    return (plan or {}).get("host") or os.uname().nodename


def make_primary(ds, epoch):
    """This copy is the project's writable primary at ``epoch`` (a switchover's promote, an HA claim)."""
    run(["zfs", "set", "%s=%d" % (EPOCH_PROP, epoch), "smc:role=primary", "readonly=off", ds])
    run(["zfs", "inherit", "smc:fenced", ds], check=False)
    if run(["zfs", "get", "-H", "-o", "value", "mounted", ds]).stdout.strip() == "no":
        run(["zfs", "mount", ds], check=False)


def cmd_demote(cfg, args, report):
    """Old primary, last step: it is a replica at the new epoch (read-only, receives from the new primary)."""
    ds = project_dataset(cfg, args.project)
    run(["zfs", "set", "readonly=on", "smc:role=replica", "%s=%d" % (EPOCH_PROP, args.epoch), ds])
    run(["zfs", "inherit", "smc:fenced", ds], check=False)
    report.update(dataset=ds, epoch=args.epoch, demoted=True)
    sync_limits(cfg, report)


def sync_limits(cfg, report=None):
    """The project slices follow the writable copies (role project_limits, ``smc-project sync``): after a
    promotion, demotion or fence here. Absent tool or configuration: nothing to do. Never fatal (the data
    step is done); the outcome goes to ``report['limits']``."""
    tool = (cfg.get("ha") or {}).get("stop_project_command") or "/usr/local/sbin/smc-project"
    if not os.path.exists(tool) or not os.path.exists(LIMITS_CONFIG):
        return None
    p = run([tool, "sync"], check=False)
    try:
        out = json.loads(p.stdout) if p.returncode == 0 else {"error": (p.stderr or p.stdout).strip()[-500:]}
    except ValueError:
        out = {"error": "smc-project sync printed no JSON: %s" % p.stdout.strip()[-300:]}
    if report is not None:
        report["limits"] = out
    return out
