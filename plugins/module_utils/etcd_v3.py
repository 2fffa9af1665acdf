# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small client for etcd's v3 JSON API (the gRPC gateway), standard library only; ships to hosts.

Only what the agent needs: leases (grant, keep alive, revoke), range reads by prefix, transactions that
compare one key's revision before they write (compare-and-swap), and a watch of a prefix. Every call goes to
the first endpoint that answers within ``timeout`` seconds; an endpoint that fails is tried last next time.
A client keeps one HTTP connection per endpoint open between calls (a new TCP connection per call was most
of a call's cost on a slow host); it is not meant to be shared between threads. Keys and values are text;
the API's base64 stays inside this file.
"""

import base64
import http.client
import json
import ssl
import urllib.parse

__all__ = ["EtcdError", "Unavailable", "Client", "prefix_end"]

# gRPC metadata through the gateway (a Grpc-Metadata- header): etcd ends this watch when its member has had no
# leader for a few election timeouts (clientv3's WithRequireLeader). Without it a member cut off from its
# peers keeps the stream open and silent, as if nothing changed.
REQUIRE_LEADER = {"Grpc-Metadata-Hasleader": "true"}


class EtcdError(Exception):
    """etcd answered, but not with success (the message names the call and etcd's own error)."""


class Unavailable(EtcdError):
    """No endpoint answered: the cluster is unreachable from here or has no quorum."""


def _b64(text):
    raw = text if isinstance(text, bytes) else text.encode("utf-8")
    return base64.b64encode(raw).decode("ascii")


def _text(b64):
    return base64.b64decode(b64).decode("utf-8") if b64 else ""


def _watch_result(endpoint, line):
    """The result of one line of a watch stream ({} for a blank line); raises when the stream ended, failed
    (Unavailable: etcd's "no leader" among others) or was canceled (EtcdError)."""
    if not line:
        raise Unavailable("etcd watch at %s: the stream ended" % endpoint)
    if not line.strip():
        return {}
    try:
        answer = json.loads(line)
    except ValueError as exc:
        raise EtcdError("etcd watch at %s: not JSON: %r" % (endpoint, line[:200])) from exc
    if "error" in answer:
        error = answer["error"]
        why = error.get("message", error) if isinstance(error, dict) else error
        raise Unavailable("etcd watch at %s: %s" % (endpoint, why))
    result = answer.get("result", answer)
    if result.get("canceled") or result.get("compact_revision"):
        why = result.get("cancel_reason") or "compacted to %s" % result.get("compact_revision")
        raise EtcdError("etcd watch at %s: canceled (%s)" % (endpoint, why))
    return result


def prefix_end(prefix):
    """The range end (bytes) that selects every key starting with ``prefix``."""
    raw = bytearray(prefix.encode("utf-8"))
    while raw:
        if raw[-1] < 0xFF:
            raw[-1] += 1
            return bytes(raw)
        raw.pop()
    return b"\0"


class Client:
    def __init__(self, endpoints, timeout=2.0, ca_file=None, cert_file=None, key_file=None):
        if not endpoints:
            raise ValueError("etcd endpoints: at least one URL (https://host:2379) is needed")
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self.context = None
        self._conns = {}  # endpoint -> an open HTTP connection, reused by the next call
        if any(e.startswith("https://") for e in self.endpoints):
            self.context = ssl.create_default_context(cafile=ca_file)
            if cert_file:
                self.context.load_cert_chain(cert_file, key_file)

    def call(self, path, body):
        """POST ``body`` to /v3/``path`` on the first endpoint that answers; returns the decoded JSON."""
        data = json.dumps(body).encode("utf-8")
        errors = []
        for endpoint in list(self.endpoints):
            try:
                status, text = self._post(endpoint, "/v3/" + path, data)
            except (OSError, http.client.HTTPException) as exc:
                errors.append("%s: %s" % (endpoint, exc))
                self._demote(endpoint)
                continue
            if status >= 500 or (status >= 400 and ("no leader" in text or "timed out" in text)):
                errors.append("%s: HTTP %d %s" % (endpoint, status, text[:300]))
                self._demote(endpoint)
                continue
            try:
                answer = json.loads(text or "{}")
            except ValueError:
                errors.append("%s: not JSON: %s" % (endpoint, text[:200]))
                self._demote(endpoint)
                continue
            if status >= 400 or (isinstance(answer, dict) and "error" in answer):
                detail = answer.get("message") or answer.get("error") if isinstance(answer, dict) else text[:300]
                raise EtcdError("etcd %s at %s: HTTP %d %s" % (path, endpoint, status, detail))
            return answer.get("result", answer) if isinstance(answer, dict) else answer
        raise Unavailable("etcd %s: no endpoint answered (%s)" % (path, "; ".join(errors)))

    def _connect(self, endpoint, timeout):
        url = urllib.parse.urlsplit(endpoint)
        if url.scheme == "https":
            return url, http.client.HTTPSConnection(url.hostname, url.port or 2379, timeout=timeout,
                                                    context=self.context)
        return url, http.client.HTTPConnection(url.hostname, url.port or 2379, timeout=timeout)

    def _post(self, endpoint, path, data):
        """(status, text) of one POST on the endpoint's kept connection. A kept connection that fails before
        any answer (mostly one etcd closed while idle) is tried once more on a new one. Like the fall-over to
        the next endpoint, that can send a call etcd applied twice: the agent's writes are idempotent or
        compare-and-swaps (a repeated CAS reports False; the loop's next read shows who holds the key)."""
        for attempt in (0, 1):
            kept = self._conns.pop(endpoint, None)
            url, conn = kept if kept is not None else self._connect(endpoint, self.timeout)
            try:
                conn.request("POST", url.path.rstrip("/") + path, body=data,
                             headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                text = resp.read().decode("utf-8", "replace")
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                if kept is None or attempt:
                    raise
                continue
            except BaseException:
                conn.close()
                raise
            if resp.will_close:
                conn.close()
            else:
                self._conns[endpoint] = (url, conn)
            return resp.status, text
        raise AssertionError("unreachable")

    def close(self):
        for _url, conn in self._conns.values():
            conn.close()
        self._conns = {}

    def watch(self, prefix, start_revision=0, timeout=60.0):
        """Yield etcd's watch responses for every key under ``prefix`` (each a dict with ``header`` and, but
        for the first, ``events``), from ``start_revision`` on (0: from now). The stream goes to the first
        endpoint; it ends with an exception: OSError (a timeout when nothing came for ``timeout``
        seconds), Unavailable when etcd closed it, EtcdError when etcd refused it (e.g. a compacted
        revision). The caller reads the state again and watches anew.

        The watch requires a leader: a member that lost its peers ends the stream within a few election
        timeouts (etcd's "no leader"). An endpoint whose stream failed, or ended, is tried last next time, so
        the next watch goes to another member; a quiet timeout keeps it first."""
        request = {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix))}
        if start_revision:
            request["start_revision"] = str(int(start_revision))
        endpoint = self.endpoints[0]
        url, conn = self._connect(endpoint, timeout)
        try:
            try:
                conn.request("POST", url.path.rstrip("/") + "/v3/watch", body=json.dumps({"create_request": request}),
                             headers=dict(REQUIRE_LEADER, **{"Content-Type": "application/json"}))
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException):
                self._demote(endpoint)
                raise
            if resp.status != 200:
                self._demote(endpoint)
                raise EtcdError("etcd watch at %s: HTTP %d %s" % (endpoint, resp.status,
                                                                  resp.read(300).decode("utf-8", "replace")))
            while True:
                try:
                    result = _watch_result(endpoint, resp.readline())
                except TimeoutError:
                    raise
                except (OSError, http.client.HTTPException, EtcdError):
                    self._demote(endpoint)
                    raise
                if result:
                    yield result
        finally:
            conn.close()

    def _demote(self, endpoint):
        if endpoint in self.endpoints and len(self.endpoints) > 1:
            self.endpoints.remove(endpoint)
            self.endpoints.append(endpoint)

    # leases
    def grant(self, ttl):
        return int(self.call("lease/grant", {"TTL": int(ttl)})["ID"])

    def keepalive(self, lease):
        """Seconds the lease has left after this renewal; 0 when etcd no longer knows it (expired)."""
        return int(self.call("lease/keepalive", {"ID": str(lease)}).get("TTL") or 0)

    def revoke(self, lease):
        self.call("lease/revoke", {"ID": str(lease)})

    # keys
    def range(self, prefix):
        """{key: (value, mod_revision, lease)} of every key under ``prefix``, and the store's revision."""
        answer = self.call("kv/range", {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix))})
        out = {}
        for kv in answer.get("kvs") or []:
            out[_text(kv["key"])] = (_text(kv.get("value")), int(kv.get("mod_revision") or 0), int(kv.get("lease") or 0))
        return out, int((answer.get("header") or {}).get("revision") or 0)

    def range_many(self, prefixes=(), keys=(), batch=128):
        """Like :meth:`range`, for several prefixes and single keys at once: as few transactions as etcd
        allows (128 operations each), every one after the first read at the first one's revision, so the
        answer is one consistent view (what a host reads of a million projects' keys: only its own)."""
        ops = [{"key": _b64(p), "range_end": _b64(prefix_end(p))} for p in prefixes] + [{"key": _b64(k)} for k in keys]
        out, revision = {}, 0
        for start in range(0, len(ops), batch):
            chunk = [dict(op, revision=str(revision)) if revision else op for op in ops[start:start + batch]]
            answer = self.call("kv/txn", {"success": [{"request_range": op} for op in chunk]})
            revision = revision or int((answer.get("header") or {}).get("revision") or 0)
            for response in answer.get("responses") or []:
                for kv in (response.get("response_range") or {}).get("kvs") or []:
                    out[_text(kv["key"])] = (_text(kv.get("value")), int(kv.get("mod_revision") or 0),
                                             int(kv.get("lease") or 0))
        return out, revision

    def revision(self, key):
        """The store's revision, by a linearizable read of one key that returns no value (cheap at any size):
        equal to the revision of an earlier read, it says that no key anywhere changed since."""
        answer = self.call("kv/range", {"key": _b64(key), "count_only": True})
        return int((answer.get("header") or {}).get("revision") or 0)

    @staticmethod
    def _put_op(key, value, lease=0):
        body = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        return body

    def put(self, key, value, lease=0):
        self.call("kv/put", self._put_op(key, value, lease))

    def put_many(self, items, lease=0, batch=100):
        """Several puts in as few transactions as etcd allows (it takes 128 operations per transaction)."""
        items = list(items)
        for start in range(0, len(items), batch):
            ops = [{"request_put": self._put_op(key, value, lease)} for key, value in items[start:start + batch]]
            self.call("kv/txn", {"success": ops})

    def put_together(self, items):
        """Puts of (key, value, lease) items (lease 0: none) in one transaction: etcd applies all or none."""
        self.call("kv/txn", {"success": [{"request_put": self._put_op(k, v, lease)} for k, v, lease in items]})

    def swap(self, key, value, mod_revision, lease=0):
        """Write ``key`` only if its mod_revision is still ``mod_revision`` (0: only if it does not exist).
        True when written; False when someone else changed it first."""
        compare = {"key": _b64(key), "result": "EQUAL", "target": "MOD", "mod_revision": str(mod_revision)}
        answer = self.call("kv/txn", {"compare": [compare], "success": [{"request_put": self._put_op(key, value, lease)}]})
        return bool(answer.get("succeeded"))

    def delete(self, key):
        self.call("kv/deleterange", {"key": _b64(key)})
