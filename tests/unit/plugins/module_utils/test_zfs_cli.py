"""zfs/zpool runner helpers: parsing, sizes, the batch script."""
import subprocess

import pytest

from ansible_collections.smc.backend.plugins.module_utils import zfs_cli as z


@pytest.mark.parametrize("text, value", [("10G", 10 * 2 ** 30), ("1.5M", 1572864), ("none", 0), ("-", 0),
                                         ("12345", 12345), ("2TiB", 2 * 2 ** 40), ("lz4", None)])
def test_to_bytes(text, value):
    assert z.to_bytes(text) == value


def test_same_value():
    assert z.same_value("quota", "10G", "10737418240")
    assert z.same_value("refquota", "none", "0")
    assert z.same_value("acltype", "posixacl", "posix")
    assert not z.same_value("compression", "lz4", "zstd")


def test_parse_import_lists_exact_names():
    out = "   pool: tank\n     id: 123\n  state: ONLINE\n action: ...\n\n   pool: tank2\n     id: 456\n  state: ONLINE\n"
    assert z.parse_import(out) == [{"name": "tank", "id": "123", "state": "ONLINE"},
                                   {"name": "tank2", "id": "456", "state": "ONLINE"}]


def _run(args, data=None):
    p = subprocess.run(args, input=data, capture_output=True, text=True, check=False)
    return p.returncode, p.stdout, p.stderr


def test_script_runs_everything_and_reports_failures_by_command():
    cli = z.ZfsCli(_run)
    failed = cli.script([["true"], ["sh", "-c", "exit 3"], ["echo", "it's $HOME `x`"], ["false"]])
    assert [(argv, rc) for argv, rc, _err in failed] == [(["sh", "-c", "exit 3"], 3), (["false"], 1)]
    assert cli.commands == 1


def test_run_raises_with_the_command():
    cli = z.ZfsCli(_run)
    with pytest.raises(z.ZfsError, match="'false' failed"):
        cli.run(["false"])


def test_list_missing_root_is_empty():
    cli = z.ZfsCli(lambda args, data=None: (1, "", "cannot open 'x/y': dataset does not exist"))
    assert cli.list("x/y", ["quota"]) == []
    cli = z.ZfsCli(lambda args, data=None: (0, "x/y\t0\tprimary\n", ""))
    assert cli.list("x/y", ["quota", "smc:role"]) == [{"name": "x/y", "quota": "0", "smc:role": "primary"}]
