"""etcd_v3.Client against a real etcd on 127.0.0.1: kept connections (and the retry when etcd closed one),
and the watch of a prefix (events, resuming from a revision, the quiet timeout, a compacted revision, and a
member that lost its peers ending the stream, on a three-member cluster)."""
import threading
import time

import pytest

from etcd_local import LocalEtcd, local_cluster, start_all  # pylint: disable=import-error
from ansible_collections.smc.backend.plugins.module_utils import etcd_v3


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    server = LocalEtcd(tmp_path_factory.mktemp("etcd") / "data").start()
    yield server
    server.stop()


def test_calls_share_one_kept_connection(etcd):
    client = etcd_v3.Client([etcd.url])
    client.put("/conn/a", "1")
    _url, first = client._conns[etcd.url]  # pylint: disable=protected-access
    for _call in range(3):
        kvs, _rev = client.range("/conn/")
    assert kvs["/conn/a"][0] == "1"
    assert client._conns[etcd.url][1] is first  # pylint: disable=protected-access
    client.close()
    assert not client._conns  # pylint: disable=protected-access


def test_a_connection_etcd_closed_is_replaced_once(etcd):
    client = etcd_v3.Client([etcd.url])
    client.put("/restart/a", "before")
    _url, first = client._conns[etcd.url]  # pylint: disable=protected-access
    etcd.restart()  # the kept connection's other end is gone
    kvs, _rev = client.range("/restart/")
    assert kvs["/restart/a"][0] == "before"
    assert client._conns[etcd.url][1] is not first  # pylint: disable=protected-access


def test_an_unreachable_endpoint_is_unavailable_not_retried_forever():
    client = etcd_v3.Client(["http://127.0.0.1:9"], timeout=1)
    with pytest.raises(etcd_v3.Unavailable, match="no endpoint answered"):
        client.range("/x/")


def collect(client, prefix, start, timeout, out):
    try:
        for result in client.watch(prefix, start, timeout=timeout):
            out.append(result)
    except Exception as exc:  # pylint: disable=broad-except
        out.append(exc)


def test_watch_reports_changes_under_its_prefix_only_and_times_out_when_quiet(etcd):
    writer = etcd_v3.Client([etcd.url])
    got = []
    t = threading.Thread(target=collect, args=(etcd_v3.Client([etcd.url]), "/w1/", 0, 2.0, got))
    t.start()
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    writer.put("/w1/a", "1")
    writer.put("/w1x", "not under the prefix /w1/")
    writer.put("/w1/b", "2")
    t.join(15)
    assert got[0].get("created") is True
    keys = [etcd_v3._text(e["kv"]["key"]) for r in got[1:-1] for e in r["events"]]  # pylint: disable=protected-access
    assert keys == ["/w1/a", "/w1/b"]
    assert isinstance(got[-1], TimeoutError)


def test_watch_from_a_revision_replays_what_happened_since(etcd):
    client = etcd_v3.Client([etcd.url])
    client.put("/w2/a", "1")
    _kvs, rev = client.range("/w2/")
    client.put("/w2/b", "2")
    client.put("/w2/c", "3")
    got = []
    collect(etcd_v3.Client([etcd.url]), "/w2/", rev + 1, 1.5, got)
    keys = [etcd_v3._text(e["kv"]["key"]) for r in got[1:-1] for e in r["events"]]  # pylint: disable=protected-access
    assert keys == ["/w2/b", "/w2/c"]


def test_watch_from_a_compacted_revision_is_an_error(etcd):
    client = etcd_v3.Client([etcd.url])
    client.put("/w3/a", "1")
    client.put("/w3/a", "2")
    _kvs, rev = client.range("/w3/")
    client.call("kv/compaction", {"revision": str(rev), "physical": True})
    got = []
    collect(etcd_v3.Client([etcd.url]), "/w3/", rev - 1, 5, got)
    assert isinstance(got[-1], etcd_v3.EtcdError) and "compacted" in str(got[-1])


def test_a_watch_on_a_member_cut_off_from_its_peers_ends_and_moves_to_another_member(tmp_path):
    members = start_all(local_cluster(tmp_path, 3))
    try:
        client = etcd_v3.Client([m.url for m in members])
        got = []
        t = threading.Thread(target=collect, args=(client, "/cut/", 0, 60.0, got))
        t.start()
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        assert got and got[0].get("created") is True
        stopped = time.monotonic()
        members[1].stop()
        members[2].stop()  # members[0] is alone: no quorum, no leader
        t.join(30)
        assert not t.is_alive(), "the watch stayed open on a member without a leader"
        assert time.monotonic() - stopped < 20
        assert isinstance(got[-1], etcd_v3.Unavailable) and not isinstance(got[-1], TimeoutError)
        assert "no leader" in str(got[-1])
        assert client.endpoints[0] != members[0].url  # the next watch goes to another member
    finally:
        for m in members:
            m.stop()


def test_range_many_reads_exactly_the_prefixes_and_keys_asked_in_one_view(etcd):
    client = etcd_v3.Client([etcd.url])
    client.put_many([("/many/primary/p%03d" % i, "v%d" % i) for i in range(300)])
    client.put_many([("/many/hosts/h%d" % i, "up") for i in range(3)] + [("/many/candidates/p007/2/h1", "c")])
    wanted = ["/many/primary/p%03d" % i for i in range(0, 300, 2)]  # 150 keys: two transactions with the prefixes
    kvs, revision = client.range_many(prefixes=["/many/hosts/", "/many/candidates/p007/"], keys=wanted + ["/many/none"])
    assert sorted(kvs) == sorted(wanted + ["/many/hosts/h%d" % i for i in range(3)] + ["/many/candidates/p007/2/h1"])
    assert kvs["/many/primary/p010"][0] == "v10" and revision == client.revision("/many/x")
    # Every transaction after the first reads at the first one's revision: a later write is not in the view.
    calls, other = [], etcd_v3.Client([etcd.url])
    real = client.call

    def call_then_write(path, body):
        answer = real(path, body)
        if not calls:
            other.put("/many/primary/p298", "changed")
        calls.append(path)
        return answer
    client.call = call_then_write
    kvs = client.range_many(keys=["/many/primary/p%03d" % i for i in range(300)], batch=100)[0]
    assert len(calls) == 3 and kvs["/many/primary/p298"][0] == "v298"
