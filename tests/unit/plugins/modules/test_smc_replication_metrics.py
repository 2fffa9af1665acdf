"""smc_replication.write_metrics (roles/zfs_storage/files): which pairs lag. A target that lacks the source's
newest snapshot lags by the time since its last success whether its send failed or it was skipped (no lease
in etcd); datasets this host no longer sends, and targets no longer in a ring, are not exported."""
import os
import sys
import time

from test_smc_zfs_agent import LIB, ROOT  # pylint: disable=import-error

FILES = os.path.join(ROOT, "roles", "zfs_storage", "files")
for _path in (FILES, LIB):
    if _path not in sys.path:
        sys.path.insert(0, _path)
import smc_replication  # noqa: E402  pylint: disable=import-error,wrong-import-position

DS, OLD = "tank/projects/p1", "tank/projects/p-old"


def records(now):
    return {
        DS: {"up": {"guid": 7, "last_success": now - 50, "consecutive_failures": 0},
             "skipped": {"guid": 6, "last_success": now - 900, "consecutive_failures": 0},
             "failing": {"guid": 6, "last_success": now - 300, "consecutive_failures": 2, "last_error": "x"},
             "gone": {"guid": 1, "last_success": now - 9000, "consecutive_failures": 0}},
        OLD: {"up": {"guid": 3, "last_success": now - 5000, "consecutive_failures": 1}},
    }


def lags(tmp_path, newest):
    path = tmp_path / "smc-replication.prom"
    report = {"errors": []}
    now = time.time()
    smc_replication.write_metrics({"replication": {"metrics_textfile": str(path)}}, records(now), report,
                                  newest=newest)
    assert report["errors"] == []
    found = {}
    for line in path.read_text().splitlines():
        if line.startswith("smc_replication_lag_seconds{"):
            peer = line.split('peer="', 1)[1].split('"', 1)[0]
            found[peer] = float(line.rsplit(" ", 1)[1])
    return found


def test_a_skipped_target_lags_like_a_failing_one_and_stale_pairs_are_gone(tmp_path):
    found = lags(tmp_path, {DS: (7, {"up", "skipped", "failing"})})
    assert sorted(found) == ["failing", "skipped", "up"]  # "gone" left the ring, p-old is not sent from here
    assert found["up"] == 0.0
    assert 899 <= found["skipped"] <= 960
    assert 299 <= found["failing"] <= 360


def test_a_one_project_run_exports_every_record_and_only_failing_pairs_lag(tmp_path):
    found = lags(tmp_path, None)
    assert found["skipped"] == 0.0 and found["gone"] == 0.0
    assert 299 <= found["failing"] <= 360 and found["up"] >= 4999  # max over p1 and p-old for peer "up"
