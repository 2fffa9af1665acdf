# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An etcd member's configuration file, from the coordination group's member list (pure; no Ansible).

``members_error`` checks the list before anything reaches a host; ``member_config`` returns the mapping etcd
reads with ``--config-file`` (YAML; JSON is YAML too): TLS for peers and clients with client certificates
required on both, raft timings for slow links and disks, and the initial cluster for a bootstrap (every
member, state ``new``) or a join (the running members and this one, state ``existing``).
``join_plan`` says, from which members already hold data, whether this is a bootstrap, a join or nothing.
The role ``coordination`` and the lab's own members (tests/lab/etcd_lab.py) write the same file from here.
"""

import ipaddress
import re

__all__ = ["MEMBER_NAME_RE", "members_error", "timings_error", "member_config", "join_plan", "client_urls",
           "peer_url", "DEFAULT_TIMINGS"]

MEMBER_NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
DC_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}\Z")
# Raft timings for members a WAN apart on slow disks (etcd's tuning guide: the heartbeat near the round trip
# between members, the election timeout at least ten heartbeats and at most 50 s).
DEFAULT_TIMINGS = {"heartbeat_ms": 250, "election_ms": 2500, "snapshot_count": 10000,
                   "quota_backend_bytes": 2 * 1024 ** 3, "compaction_hours": 1}


def _address_error(value, where):
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return ("%s: %r is not an IP address: give the member's address on the private network "
                "(etcd listens on it; a name could resolve elsewhere)" % (where, value))
    return None


def members_error(members, where="coordination_members"):
    """Why the member list is unusable (one sentence naming the field and the fix), or None."""
    if not isinstance(members, list) or not members:
        return "%s: give a list of members ({name, address, dc}), one per DC; got %r" % (where, members)
    seen_names, seen_addresses = set(), set()
    for i, m in enumerate(members):
        at = "%s[%d]" % (where, i)
        if not isinstance(m, dict):
            return "%s: each member is a mapping {name, address, dc}; got %r" % (at, m)
        unknown = sorted(set(m) - {"name", "address", "dc"})
        if unknown:
            return "%s: unknown keys %s: a member has only name, address and dc" % (at, ", ".join(unknown))
        name, address, dc = m.get("name"), m.get("address"), m.get("dc")
        if not isinstance(name, str) or not MEMBER_NAME_RE.match(name):
            return ("%s.name: %r is not a member name: lower-case letters, digits and '-', not at either end, "
                    "at most 63 characters (for example etcd-dc1)" % (at, name))
        if not isinstance(dc, str) or not DC_RE.match(dc):
            return "%s.dc: %r is not a DC name: letters, digits, '_' and '-', starting with a letter or digit" % (
                at, dc)
        error = _address_error(address if isinstance(address, str) else repr(address), at + ".address")
        if error:
            return error
        if name in seen_names:
            return "%s.name: %r appears twice: every member needs a name of its own" % (at, name)
        if address in seen_addresses:
            return "%s.address: %s appears twice: every member needs an address of its own" % (at, address)
        seen_names.add(name)
        seen_addresses.add(address)
    if len(members) % 2 == 0:
        return ("%s: %d members: give an odd number (3 or 5, one per DC): an even count adds a member quorum "
                "needs without surviving one more failure" % (where, len(members)))
    return None


def timings_error(timings, where="coordination"):
    t = dict(DEFAULT_TIMINGS, **(timings or {}))
    for key in DEFAULT_TIMINGS:
        if not isinstance(t[key], int) or isinstance(t[key], bool) or t[key] <= 0:
            return "%s_%s: %r is not a positive whole number" % (where, key, t[key])
    if t["election_ms"] < 5 * t["heartbeat_ms"]:
        return ("%s_election_ms: %d is less than five heartbeats (%s_heartbeat_ms %d): raise it to at least "
                "%d (etcd recommends ten)" % (where, t["election_ms"], where, t["heartbeat_ms"],
                                              5 * t["heartbeat_ms"]))
    if t["election_ms"] > 50000:
        return "%s_election_ms: %d is above etcd's limit of 50000" % (where, t["election_ms"])
    return None


def _host(address):
    return "[%s]" % address if ":" in address else address


def peer_url(m, port=2380):
    return "https://%s:%d" % (_host(m["address"]), port)


def client_urls(members, port=2379):
    """The client URLs of every member (what agents put in smc_etcd_endpoints)."""
    return ["https://%s:%d" % (_host(m["address"]), port) for m in members]


def join_plan(members, with_data):
    """What the next start does, from the names of members whose data directory already exists:
    {"mode": "bootstrap"|"join"|"running", "joining": [names]}. A join is one member at a time (quorum
    grows by one member only after that member has caught up); more raises ValueError naming them."""
    names = [m["name"] for m in members]
    have = [n for n in names if n in set(with_data)]
    missing = [n for n in names if n not in set(with_data)]
    if not have:
        return {"mode": "bootstrap", "joining": []}
    if not missing:
        return {"mode": "running", "joining": []}
    if len(missing) > 1:
        raise ValueError("coordination_members: %s have no data yet while %s run: add members one at a time "
                         "(list one new member, run the playbook, then the next)"
                         % (", ".join(missing), ", ".join(have)))
    return {"mode": "join", "joining": missing}


def member_config(me, members, tls, data_dir, state="new", cluster_token="smc", timings=None,
                  client_port=2379, peer_port=2380, local_client=True, initial=None, metrics_port=2381):
    """The config-file mapping for member ``me`` (a name in ``members``).

    ``tls``: paths {"ca", "cert", "key"} of the CA certificate and this member's certificate and key (one
    certificate for both roles: it carries serverAuth and clientAuth). ``initial``: the names in the initial
    cluster (default: every member; a joining member lists the running ones and itself). ``local_client``
    also listens on 127.0.0.1 (etcdctl on the member itself). ``metrics_port``: /metrics and /health over plain
    HTTP on the member's address, for Prometheus without a client certificate (0: none)."""
    by_name = {m["name"]: m for m in members}
    if me not in by_name:
        raise ValueError("member %r is not in the member list (%s)" % (me, ", ".join(sorted(by_name))))
    if state not in ("new", "existing"):
        raise ValueError("state: %r is neither 'new' nor 'existing'" % (state,))
    t = dict(DEFAULT_TIMINGS, **(timings or {}))
    m = by_name[me]
    client = "https://%s:%d" % (_host(m["address"]), client_port)
    listen_client = [client] + (["https://127.0.0.1:%d" % client_port] if local_client else [])
    names = initial if initial is not None else [x["name"] for x in members]
    security = {"cert-file": tls["cert"], "key-file": tls["key"], "trusted-ca-file": tls["ca"],
                "client-cert-auth": True}
    config = {
        "name": me,
        "data-dir": data_dir,
        "listen-peer-urls": peer_url(m, peer_port),
        "initial-advertise-peer-urls": peer_url(m, peer_port),
        "listen-client-urls": ",".join(listen_client),
        "advertise-client-urls": client,
        "initial-cluster": ",".join("%s=%s" % (n, peer_url(by_name[n], peer_port)) for n in names),
        "initial-cluster-state": state,
        "initial-cluster-token": cluster_token,
        # The agents speak the v3 JSON API (the gRPC gateway): the flag's default is on, a config file's off.
        "enable-grpc-gateway": True,
        "heartbeat-interval": t["heartbeat_ms"],
        "election-timeout": t["election_ms"],
        # A member cut off from the others campaigns in vain, and without a pre-vote each try raises its term:
        # when its link heals, that term deposes the leader and the cluster has none until it elects again
        # (9 s on the lab: every agent missed its renewals, fenced itself and lost its lease). With a pre-vote
        # the member asks first and raises nothing while it cannot win (etcd 3.5's default; 3.4's is off).
        "pre-vote": True,
        "snapshot-count": t["snapshot_count"],
        "quota-backend-bytes": t["quota_backend_bytes"],
        "auto-compaction-mode": "periodic",
        "auto-compaction-retention": "%dh" % t["compaction_hours"],
        "client-transport-security": dict(security),
        "peer-transport-security": dict(security),
        # A member whose disk or peers are slow logs it rather than failing silently.
        "logger": "zap",
        "log-outputs": ["stderr"],
    }
    if metrics_port:
        config["listen-metrics-urls"] = "http://%s:%d" % (_host(m["address"]), metrics_port)
    return config
