"""The lab's hosts over direct SSH (tests/lab/lab_ssh.py)."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, "tests", "lab"))
import lab_ssh  # noqa: E402 (the lab's helper, beside the lab's other tools)


@pytest.fixture(scope="session", name="lab")
def fixture_lab(tmp_path_factory):
    hosts, _common = lab_ssh.lab_hosts(tmp_path_factory.mktemp("cp"))
    assert len(hosts) == 6, sorted(hosts)
    return hosts
