"""smc-zfs-agent: hostile configs fail naming the key before any zfs command; prune --dry-run takes no lock."""
import contextlib
import io
import json
import subprocess
from unittest import mock

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.smc.backend.plugins.module_utils import zfs_names
from test_smc_zfs_agent import load_agent, run_agent  # pylint: disable=import-error

AGENT = load_agent()
HOSTILE = st.one_of(st.sampled_from(["tank/projects", "-f", "", "a\nb", "/", "..", "tank/../x", "tank/-x"]),
                    st.integers(-10 ** 12, 10 ** 12), st.booleans(), st.none(), st.floats(allow_nan=True),
                    st.lists(st.sampled_from(["tank/p", "-r", "a\n", 5]), max_size=3),
                    st.dictionaries(st.sampled_from(["a", "-x"]), st.integers(), max_size=2))


@settings(max_examples=150, deadline=None)
@given(key=st.sampled_from(["roots", "batch", "prefix", "default_class", "class_property", "datasets", "needed_dir",
                            "lock_dir", "sync_before_snapshot", "classes", "destroy_method", "surprise"]),
       value=HOSTILE)
def test_hostile_config_fails_naming_the_key_and_runs_nothing(tmp_path_factory, key, value):
    cfg = dict(AGENT.DEFAULTS, **{key: value})
    if key not in ("classes", "destroy_method") and not AGENT.config_errors(cfg):
        return  # a usable value (e.g. a valid roots list, a batch in range)
    err = io.StringIO()
    with mock.patch.object(subprocess, "run", side_effect=AssertionError("zfs ran")) as run, \
            contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = run_agent(AGENT, tmp_path_factory.mktemp("c"), ["prune"], {key: value})
    if rc == 0:
        assert key in ("classes", "destroy_method") and run.call_count == 0
        return
    assert rc == 2 and run.call_count == 0 and "Traceback" not in err.getvalue(), err.getvalue()
    assert key in err.getvalue() or "class" in err.getvalue(), err.getvalue()


def test_roots_as_a_string_is_refused(tmp_path, capsys):
    with mock.patch.object(subprocess, "run", side_effect=AssertionError("zfs ran")):
        assert run_agent(AGENT, tmp_path, ["snapshot"], {"roots": "tank/projects"}) == 2
    assert "roots must be a non-empty list" in capsys.readouterr().err


def test_prune_dry_run_takes_no_lock(tmp_path, capsys):
    def fake(argv, **kwargs):
        out = ""
        if argv[:2] == ["zfs", "list"] and "filesystem" in argv:
            out = "tank/projects\t0\t-\t-\t-\ntank/projects/a\t0\tdefault\tprimary\t-\n"
        elif argv[:2] == ["zfs", "program"] and "check" in argv:
            names = argv[argv.index("check") + 1:]
            out = json.dumps({"return": {"destroyed": len(names), "failed": {}, "held": {}, "needed": {}}})
        elif argv[:2] == ["zfs", "program"]:
            days = [(m, d) for m in (1, 2, 3) for d in range(1, 29)]  # more than the policy keeps
            snaps = {str(i + 1): "tank/projects/a@smc_2024-%02d-%02dT00:00:00Z" % md for i, md in enumerate(days)}
            out = json.dumps({"return": {"names": snaps, "resume": 3}})
        return subprocess.CompletedProcess(argv, 0, out, "")
    with mock.patch.object(subprocess, "run", side_effect=fake), \
            mock.patch.object(AGENT.Locks, "take", side_effect=AssertionError("a dry run took a lock")):
        rc = run_agent(AGENT, tmp_path, ["prune", "--dry-run"], {})
    out, err = capsys.readouterr()
    assert rc == 0, err
    report = json.loads(out.splitlines()[-1])
    assert report["would_destroy"] > 0 and report["busy"] == [], report
    assert not (tmp_path / "locks").exists()


DOT_NAMES = ["tank/..", "tank/.", "tank/./x", "tank/../x", "tank/x/..", "tank/x/.", "tank//x", "tank/", "tank/-x",
             "tank/x\n", "tank/x ", "-tank/x", "tank/" + "x" * 251]


@pytest.mark.parametrize("key", ["roots", "quarantine_parent", "datasets"])
@pytest.mark.parametrize("name", DOT_NAMES)
def test_dot_components_are_refused_before_any_zfs_command(tmp_path, capsys, key, name):
    value = {"roots": [name], "quarantine_parent": name, "datasets": {name: "default"}}[key]
    with mock.patch.object(subprocess, "run", side_effect=AssertionError("zfs ran")) as run:
        assert run_agent(AGENT, tmp_path, ["prune"], {key: value}) == 2
    err = capsys.readouterr().err
    assert run.call_count == 0 and key in err and "Traceback" not in err, err


@pytest.mark.parametrize("name", ["tank", "tank/projects", "tank/..x", "tank/.x/y", "tank/x..", "tank/a:b/c-d_e.f"])
def test_ordinary_names_with_dots_are_accepted(name):
    cfg = dict(AGENT.DEFAULTS, roots=[name], quarantine_parent=name)
    assert AGENT.config_errors(cfg) == []


@settings(max_examples=300, deadline=None)
@given(name=st.text(st.sampled_from("ab./-_:\n"), max_size=12).map(lambda t: "tank" + t))
def test_agent_accepts_only_what_zfs_names_accepts(name):
    """Under a plain pool, the agent's own check (zfs_names is not shipped to hosts) is never looser than
    dataset_name_error."""
    if AGENT.is_dataset(name):
        assert zfs_names.dataset_name_error(name) is None, name


@pytest.mark.parametrize("value", [-1, "10M", True, 1.5, None, 10 ** 13])
def test_a_bandwidth_limit_that_is_not_bytes_per_second_is_refused(value):
    cfg = dict(AGENT.DEFAULTS, replication=dict(AGENT.REPLICATION_DEFAULTS, bwlimit=value))
    assert any("replication.bwlimit must be a whole number from 0 to" in e for e in AGENT.config_errors(cfg))


def test_a_bandwidth_limit_in_bytes_per_second_is_accepted():
    for value in (0, 1, 50 * 10 ** 6):
        assert AGENT.config_errors(dict(AGENT.DEFAULTS, replication=dict(AGENT.REPLICATION_DEFAULTS, bwlimit=value))) == []


@pytest.mark.parametrize("value", [-1, "60s", True, 0.5, None, 3601])
def test_a_persist_time_that_is_not_whole_seconds_up_to_an_hour_is_refused(value):
    cfg = dict(AGENT.DEFAULTS, replication=dict(AGENT.REPLICATION_DEFAULTS, persist=value))
    assert any("replication.persist must be a whole number from 0 to 3600" in e for e in AGENT.config_errors(cfg))


@pytest.mark.parametrize("value", ["run/ssh", "/run/ssh\n-oProxyCommand=x", "", None])
def test_a_control_directory_that_is_not_an_absolute_path_is_refused(value):
    cfg = dict(AGENT.DEFAULTS, replication=dict(AGENT.REPLICATION_DEFAULTS, control_dir=value))
    assert any("replication.control_dir must be an absolute path" in e for e in AGENT.config_errors(cfg))
