"""metrics_text: the text exposition (checked by a strict parser and by promtool) and the agent's builders."""
import ast
import math
import os
import re
import shutil
import stat
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.smc.backend.plugins.module_utils import metrics_text as m

NOW = 1_700_000_000
HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "..", "..", "..", "..", "plugins", "module_utils", "metrics_text.py")


# ------------------------------------------------------------------------------ a strict text-format parser
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE_RE = re.compile(r"(?P<name>%s)(?P<labels>\{.*\})? (?P<value>\S+)\Z" % _NAME)
_VALUE_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|Inf)\Z|NaN\Z")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


def _labels(text):
    """{name: value} of a '{a="x",b="y"}' label block; raises on anything the format does not allow."""
    out, i, body = {}, 0, text[1:-1]
    while i < len(body):
        mo = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)=\"").match(body, i)
        assert mo, "bad label at %r" % body[i:]
        name, i, value = mo.group(1), mo.end(), []
        while body[i] != '"':
            if body[i] == "\\":
                assert body[i + 1] in _ESCAPES, "bad escape in %r" % body
                value.append(_ESCAPES[body[i + 1]])
                i += 2
            else:
                assert body[i] != "\n"
                value.append(body[i])
                i += 1
        i += 1
        assert name not in out, "label %s twice" % name
        out[name] = "".join(value)
        if i < len(body):
            assert body[i] == ",", "expected ',' at %r" % body[i:]
            i += 1
    return out


def _unescape_help(text):
    assert not re.search(r"\\[^\\n]", text.replace("\\\\", "")), "bad escape in HELP %r" % text
    return re.sub(r"\\(.)", lambda mo: "\n" if mo.group(1) == "n" else mo.group(1), text)


def parse(text):
    """{family: {"type", "help", "samples": {frozenset(labels.items()): float}}} of an exposition."""
    assert text == "" or text.endswith("\n"), "the exposition ends with a newline"
    families, current, closed = {}, None, set()
    for line in text.split("\n")[:-1]:
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            kind, name, rest = line[2:6], line.split(" ")[2], line.split(" ", 3)[3]
            if current and current != name:
                closed.add(current)
            assert name not in closed, "family %s is split" % name
            fam = families.setdefault(name, {"type": None, "help": None, "samples": {}})
            assert not fam["samples"], "%s: %s after its samples" % (name, kind)
            if kind == "HELP":
                assert fam["help"] is None
                fam["help"] = _unescape_help(rest)
            else:
                assert fam["type"] is None and rest in ("counter", "gauge", "untyped"), line
                fam["type"] = rest
            current = name
            continue
        assert not line.startswith("#") and line.strip() == line and line, "stray line %r" % line
        mo = _SAMPLE_RE.match(line)
        assert mo, "bad sample line %r" % line
        assert mo.group("name") == current, "%s outside its family (%s)" % (mo.group("name"), current)
        assert _VALUE_RE.match(mo.group("value")), "bad value in %r" % line
        labels = frozenset(_labels(mo.group("labels") or "{}").items())
        samples = families[current]["samples"]
        assert labels not in samples, "duplicate series %r" % line
        samples[labels] = float(mo.group("value"))
    for name, fam in families.items():
        assert fam["type"] and fam["help"], "%s: HELP and TYPE" % name
        if fam["type"] == "counter":
            assert name.endswith("_total") and all(v >= 0 for v in fam["samples"].values())
    return families


def series(text, name):
    """{tuple(sorted(labels)): value} of one family."""
    return {tuple(sorted(k)): v for k, v in parse(text)[name]["samples"].items()}


def value(text, name, **labels):
    return series(text, name)[tuple(sorted(labels.items()))]


def rec(**kw):
    base = {"last_success": NOW - 300, "last_attempt": NOW - 60, "lag_seconds": 300.0, "bytes_total": 0,
            "errors_total": 0, "last_error": None, "consecutive_failures": 0}
    base.update(kw)
    return base


def everything():
    """One of every builder's families, as the agent would put them in one file."""
    records = {
        "tank/projects/p1": {"dc2-s1": rec(bytes_total=10), "dc3-s1": rec(consecutive_failures=3, last_error="x")},
        "tank/projects/p2": {"dc2-s1": rec(lag_seconds=None, last_success=None, last_attempt=None)},
    }
    return (m.replication_metrics(records, NOW, per_dataset=True)
            + m.snapshot_metrics({"tank/projects/p1": {"count": 4, "newest": NOW - 60}}, NOW, {"default": 900},
                                 per_dataset=True)
            + m.pool_metrics({"tank": {"health": "ONLINE", "size_bytes": 1000, "allocated_bytes": 250,
                                       "free_bytes": 750}})
            + m.fencing_metrics(False, True, {"p1": 4}, NOW + 30)
            + m.limits_metrics({"default": {"oom_kills": 2, "tasks_max_hits": 1}})
            + m.placement_metrics(1, 0))


# ------------------------------------------------------------------------------------------------ format
def test_the_parser_refuses_what_the_format_does_not_allow():
    for bad in ['a{x="\\t"} 1\n', "a 1", '# TYPE a gauge\na{x="1",x="2"} 1\n', "# TYPE a gauge\na one\n",
                "# HELP a h\n# TYPE a gauge\na 1\na 2\n", "# HELP b_total h\n# TYPE b_total counter\nb_total -1\n"]:
        with pytest.raises(AssertionError):
            parse(bad)


@pytest.mark.parametrize("raw, quoted", [
    ('back\\slash', 'back\\\\slash'), ('a "quote"', 'a \\"quote\\"'), ("two\nlines", "two\\nlines"),
    ("\\n", "\\\\n"), ("plain", "plain"), ("ünï", "ünï"),
])
def test_label_values_escape_backslash_quote_and_newline(raw, quoted):
    assert m.escape_label_value(raw) == quoted
    text = m.render([m.Family("smc_x", "gauge", "h").add({"v": raw}, 1)])
    assert text == '# HELP smc_x h\n# TYPE smc_x gauge\nsmc_x{v="%s"} 1\n' % quoted
    assert value(text, "smc_x", v=raw) == 1


@settings(max_examples=300, deadline=None)
@given(st.text(), st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1).filter(str.strip))
def test_any_label_value_and_help_text_round_trip(label, help_text):
    text = m.render([m.Family("smc_x", "gauge", help_text).add({"v": label}, 2.5)])
    fams = parse(text)
    assert fams["smc_x"]["help"] == help_text
    assert fams["smc_x"]["samples"] == {frozenset({("v", label)}): 2.5}


def test_help_escapes_backslash_and_newline_but_not_quotes():
    assert m.escape_help('a\\b\n"c"') == 'a\\\\b\\n"c"'


@pytest.mark.parametrize("val, text", [
    (0, "0"), (12345678901234567890, "12345678901234567890"), (0.1, "0.1"), (1e21, "1e+21"), (True, "1"),
    (False, "0"), (float("nan"), "NaN"), (float("inf"), "+Inf"), (float("-inf"), "-Inf"), (-2.5, "-2.5"),
])
def test_values(val, text):
    assert m.format_value(val) == text


@pytest.mark.parametrize("args, match", [
    (("smc-x", "gauge", "h"), "metric name"), (("1x", "gauge", "h"), "metric name"),
    (("smc_x", "summary", "h"), "type"), (("smc_x", "counter", "h"), "ends in _total"),
    (("smc_x_total", "gauge", "h"), "only counters"), (("smc_x", "gauge", " "), "help text"),
])
def test_family_refuses_bad_names_and_types(args, match):
    with pytest.raises(m.MetricsError, match=match):
        m.Family(*args)


@pytest.mark.parametrize("labels, val, match", [
    ({"__name__": "x"}, 1, "label name"), ({"a-b": "x"}, 1, "label name"), ({"a": 1}, 1, "must be a string"),
    ({}, "1", "must be a number"), ({}, None, "must be a number"),
])
def test_family_refuses_bad_samples(labels, val, match):
    with pytest.raises(m.MetricsError, match=match):
        m.Family("smc_x", "gauge", "h").add(labels, val)


def test_family_refuses_duplicate_series_and_negative_counters():
    fam = m.Family("smc_x", "gauge", "h").add({"a": "1", "b": "2"}, 1)
    with pytest.raises(m.MetricsError, match="two samples"):
        fam.add({"b": "2", "a": "1"}, 2)
    with pytest.raises(m.MetricsError, match="negative"):
        m.Family("smc_x_total", "counter", "h").add({}, -1)


def test_render_leaves_out_empty_families_and_refuses_a_name_twice():
    assert m.render([m.Family("smc_x", "gauge", "h")]) == ""
    with pytest.raises(m.MetricsError, match="twice"):
        m.render([m.Family("smc_x", "gauge", "h"), m.Family("smc_x", "gauge", "h")])


def test_the_whole_exposition_parses_and_follows_the_conventions():
    fams = parse(m.render(everything()))
    for name, fam in fams.items():
        assert name.startswith("smc_")
        assert (fam["type"] == "counter") == name.endswith("_total")
        assert not re.search(r"_(ms|milliseconds|minutes|hours|kb|mb|gb|percent)(_|$)", name), name
        assert fam["help"].endswith(".")


def test_promtool_lint_accepts_the_exposition():
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool not installed (Debian package prometheus); the strict parser above still ran")
    out = subprocess.run([promtool, "check", "metrics"], input=m.render(everything()), capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0 and not out.stdout.strip(), out.stdout + out.stderr


def test_every_family_is_listed_in_the_module_docstring():
    doc = m.__doc__
    for fam in everything():
        short = re.sub(r"^(smc_(replication|snapshot)_dataset)_.*", r"\1_*", fam.name)
        assert short in doc, fam.name


def test_the_module_imports_the_standard_library_only():
    tree = ast.parse(open(SOURCE, encoding="utf-8").read())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert names <= {"math", "os", "re", "tempfile"}


# ------------------------------------------------------------------------------------------- replication
def test_replication_is_aggregated_per_peer_without_dataset_labels():
    records = {
        "tank/projects/p1": {"dc2-s1": rec(lag_seconds=30.0, last_success=NOW - 30, bytes_total=100,
                                           errors_total=1, last_attempt=NOW - 10)},
        "tank/projects/p2": {"dc2-s1": rec(lag_seconds=900.0, last_success=NOW - 900, bytes_total=50,
                                           last_attempt=NOW - 20),
                             "dc3-s2": rec(lag_seconds=5.0, consecutive_failures=4, errors_total=7,
                                           last_error="cannot receive:\n  \"busy\"")},
    }
    text = m.render(m.replication_metrics(records, NOW))
    assert "dataset=" not in text
    assert value(text, "smc_replication_lag_seconds", peer="dc2-s1") == 900.0
    assert value(text, "smc_replication_last_success_timestamp_seconds", peer="dc2-s1") == NOW - 900
    assert value(text, "smc_replication_last_attempt_timestamp_seconds", peer="dc2-s1") == NOW - 10
    assert value(text, "smc_replication_bytes_total", peer="dc2-s1") == 150
    assert value(text, "smc_replication_errors_total", peer="dc3-s2") == 7
    assert value(text, "smc_replication_consecutive_failures", peer="dc3-s2") == 4
    assert series(text, "smc_replication_datasets") == {
        (("peer", "dc2-s1"), ("state", "failing")): 0, (("peer", "dc2-s1"), ("state", "ok")): 2,
        (("peer", "dc2-s1"), ("state", "pending")): 0, (("peer", "dc3-s2"), ("state", "failing")): 1,
        (("peer", "dc3-s2"), ("state", "ok")): 0, (("peer", "dc3-s2"), ("state", "pending")): 0}
    assert series(text, "smc_replication_last_error_info") == {
        (("error", 'cannot receive: "busy"'), ("peer", "dc3-s2")): 1}


def test_lag_falls_back_to_the_age_of_the_last_success_and_never_replicated_is_pending():
    records = {"a": {"p": rec(lag_seconds=None, last_success=NOW - 42)},
               "b": {"p": rec(lag_seconds=None, last_success=None, last_attempt=None)}}
    text = m.render(m.replication_metrics(records, NOW))
    assert value(text, "smc_replication_lag_seconds", peer="p") == 42.0
    assert value(text, "smc_replication_datasets", peer="p", state="pending") == 1
    only_new = m.render(m.replication_metrics({"b": records["b"]}, NOW))
    assert "smc_replication_lag_seconds" not in only_new
    assert "smc_replication_last_success_timestamp_seconds" not in only_new


def test_the_newest_error_of_a_failing_dataset_is_shown_truncated():
    records = {"a": {"p": rec(consecutive_failures=1, last_error="old", last_attempt=NOW - 100)},
               "b": {"p": rec(consecutive_failures=2, last_error="x" * 500, last_attempt=NOW - 5)},
               "c": {"p": rec(consecutive_failures=0, last_error="recovered", last_attempt=NOW)}}
    (labels,) = series(m.render(m.replication_metrics(records, NOW)), "smc_replication_last_error_info")
    assert dict(labels)["error"] == "x" * m.MAX_ERROR_CHARS


def test_default_cardinality_does_not_grow_with_the_datasets():
    def count(n):
        records = {"tank/projects/p%d" % i: {"dc2-s1": rec(), "dc3-s1": rec()} for i in range(n)}
        return sum(len(f["samples"]) for f in parse(m.render(m.replication_metrics(records, NOW))).values())
    assert count(1) == count(2000) == 2 * 9


def test_per_dataset_series_are_opt_in_and_under_names_of_their_own():
    records = {"tank/projects/p%d" % i: {"dc2-s1": rec(lag_seconds=float(i))} for i in range(3)}
    default = parse(m.render(m.replication_metrics(records, NOW)))
    opted = parse(m.render(m.replication_metrics(records, NOW, per_dataset=True)))
    extra = sorted(set(opted) - set(default))
    assert extra == ["smc_replication_dataset_consecutive_failures", "smc_replication_dataset_lag_seconds",
                     "smc_replication_dataset_last_success_timestamp_seconds"]
    assert {k: opted[k] for k in default} == default
    assert opted["smc_replication_dataset_lag_seconds"]["samples"][
        frozenset({("dataset", "tank/projects/p2"), ("peer", "dc2-s1")})] == 2.0


@pytest.mark.parametrize("records, match", [
    ([], "replication records must be a mapping"),
    ({"a": []}, r"replication records\['a'\] must be a mapping"),
    ({"a": {"p": rec(bytes_total=-1)}}, r"\['a'\]\['p'\].bytes_total must be"),
    ({"a": {"p": rec(bytes_total=1.5)}}, "bytes_total must be a non-negative whole number"),
    ({"a": {"p": rec(lag_seconds="1")}}, "lag_seconds must be null or a non-negative number"),
    ({"a": {"p": rec(lag_seconds=float("nan"))}}, "lag_seconds"),
    ({"a": {"p": rec(consecutive_failures=True)}}, "consecutive_failures"),
    ({"a": {"p": rec(last_error=3)}}, "last_error must be null or a string"),
    ({"a": {"p": dict(rec(), lag=3)}}, "unknown keys lag"),
    ({"a": {"": rec()}}, "non-empty string"),
])
def test_bad_records_name_the_key(records, match):
    with pytest.raises(m.MetricsError, match=match):
        m.replication_metrics(records, NOW)


# ---------------------------------------------------------------------------------- the other builders
def test_snapshots_per_class_with_the_stalest_dataset_and_the_period():
    datasets = {"a": {"count": 10, "newest": NOW - 100}, "b": {"count": 5, "newest": NOW - 4000},
                "c": {"count": 0, "newest": None, "class": "trial"}, "d": {"count": 2, "newest": NOW + 5}}
    text = m.render(m.snapshot_metrics(datasets, NOW, {"default": 900, "trial": 3600}))
    assert value(text, "smc_snapshots", **{"class": "default"}) == 17
    assert value(text, "smc_snapshot_datasets", **{"class": "default"}) == 3
    assert value(text, "smc_snapshot_newest_age_seconds", **{"class": "default"}) == 4000.0
    assert value(text, "smc_snapshot_datasets_without_snapshot", **{"class": "trial"}) == 1
    assert ("class", "trial") not in {k[0] for k in series(text, "smc_snapshot_newest_age_seconds")}
    assert value(text, "smc_snapshot_period_seconds", **{"class": "trial"}) == 3600
    assert "dataset=" not in text
    opted = m.render(m.snapshot_metrics(datasets, NOW, per_dataset=True))
    assert value(opted, "smc_snapshot_dataset_newest_age_seconds", dataset="d") == 0.0
    assert value(opted, "smc_snapshot_dataset_snapshots", dataset="c") == 0


@pytest.mark.parametrize("datasets, periods, match", [
    ({"a": {"count": -1}}, None, r"\['a'\].count"), ({"a": {"newest": "x"}}, None, r"\['a'\].newest"),
    ({"a": {"class": ""}}, None, r"\['a'\].class"), ({"a": {"age": 1}}, None, "unknown keys age"),
    ({}, {"default": -5}, r"periods\['default'\]"),
])
def test_bad_snapshot_input_names_the_key(datasets, periods, match):
    with pytest.raises(m.MetricsError, match=match):
        m.snapshot_metrics(datasets, NOW, periods)


@pytest.mark.parametrize("health, state", [("ONLINE", "online"), ("DEGRADED", "degraded"), ("FAULTED", "faulted"),
                                           ("SUSPENDED", "suspended"), ("weird", "unknown")])
def test_pool_health_is_a_state_set_with_exactly_one_state(health, state):
    text = m.render(m.pool_metrics({"tank": {"health": health, "size_bytes": 1000, "allocated_bytes": 850,
                                             "free_bytes": 150}}))
    states = {dict(k)["state"]: v for k, v in series(text, "smc_pool_health").items()}
    assert set(states) == set(m.POOL_STATES)
    assert [s for s, v in states.items() if v == 1] == [state]
    assert value(text, "smc_pool_capacity_ratio", pool="tank") == 0.85
    assert value(text, "smc_pool_free_bytes", pool="tank") == 150


def test_pool_without_a_size_has_no_ratio_and_bad_input_is_named():
    empty = {"t": {"health": "ONLINE", "size_bytes": 0, "allocated_bytes": 0}}
    assert "smc_pool_capacity_ratio" not in m.render(m.pool_metrics(empty))
    with pytest.raises(m.MetricsError, match=r"pools\['t'\].size_bytes"):
        m.pool_metrics({"t": {"size_bytes": "1G"}})
    with pytest.raises(m.MetricsError, match="unknown keys cap"):
        m.pool_metrics({"t": {"cap": 3}})


def test_fencing_lease_and_epochs():
    text = m.render(m.fencing_metrics(True, False, {"p1": 3, "p2": 9}, NOW + 10))
    assert value(text, "smc_host_fenced") == 1 and value(text, "smc_lease_held") == 0
    assert value(text, "smc_project_epoch_max") == 9
    assert value(text, "smc_lease_expiry_timestamp_seconds") == NOW + 10
    bare = parse(m.render(m.fencing_metrics(False, True)))
    assert sorted(bare) == ["smc_host_fenced", "smc_lease_held"]
    with pytest.raises(m.MetricsError, match="fenced must be true or false"):
        m.fencing_metrics(1, True)
    with pytest.raises(m.MetricsError, match=r"epochs\['p'\]"):
        m.fencing_metrics(False, True, {"p": -1})


def test_limits_are_counters_per_class():
    fams = parse(m.render(m.limits_metrics({"member": {"oom_kills": 3}, "trial": {"tasks_max_hits": 8}})))
    assert fams["smc_limits_oom_kills_total"]["type"] == "counter"
    assert fams["smc_limits_tasks_max_hits_total"]["samples"][frozenset({("class", "trial")})] == 8
    assert fams["smc_limits_oom_kills_total"]["samples"][frozenset({("class", "trial")})] == 0
    with pytest.raises(m.MetricsError, match="unknown keys oom"):
        m.limits_metrics({"member": {"oom": 1}})


def test_placement_drift():
    text = m.render(m.placement_metrics(3))
    assert value(text, "smc_placement_missing_copies") == 3 and value(text, "smc_placement_unexpected_copies") == 0
    with pytest.raises(m.MetricsError, match="missing_copies"):
        m.placement_metrics(-1)


# ---------------------------------------------------------------------------------------------- textfile
def test_textfile_is_written_whole_with_mode_0644_whatever_the_umask(tmp_path):
    path = str(tmp_path / "smc.prom")
    old = os.umask(0o077)
    try:
        m.write_textfile(path, everything())
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert parse(open(path, encoding="utf-8").read()) == parse(m.render(everything()))
    assert os.listdir(str(tmp_path)) == ["smc.prom"]


def test_textfile_is_renamed_from_the_same_directory_under_a_name_the_collector_skips(tmp_path, monkeypatch):
    path = str(tmp_path / "smc.prom")
    m.write_textfile(path, "old\n")
    seen = []
    real = os.replace

    def replace(src, dst):
        seen.append(src)
        assert open(path, encoding="utf-8").read() == "old\n"  # readers see the old file until the rename
        real(src, dst)
    monkeypatch.setattr(os, "replace", replace)
    m.write_textfile(path, "# HELP smc_x h\n# TYPE smc_x gauge\nsmc_x 1\n")
    (src,) = seen
    assert os.path.dirname(src) == str(tmp_path) and not src.endswith(".prom")
    assert open(path, encoding="utf-8").read().endswith("smc_x 1\n")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = str(tmp_path / "smc.prom")
    m.write_textfile(path, "old\n")

    def fail(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        m.write_textfile(path, "new\n")
    assert os.listdir(str(tmp_path)) == ["smc.prom"]
    assert open(path, encoding="utf-8").read() == "old\n"


@pytest.mark.parametrize("path", ["smc.prom", "/tmp/smc.txt", None])
def test_textfile_path_must_be_absolute_and_end_in_prom(path):
    with pytest.raises(m.MetricsError, match="absolute and end in .prom"):
        m.write_textfile(path, "")


def test_nan_values_render_but_counters_refuse_them():
    assert m.render([m.Family("smc_x", "gauge", "h").add({}, math.nan)]).endswith("smc_x NaN\n")
    with pytest.raises(m.MetricsError):
        m.Family("smc_x_total", "counter", "h").add({}, math.nan)
