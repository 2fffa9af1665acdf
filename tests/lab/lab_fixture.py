"""The scenario tests' ``lab`` fixture: the lab's six storage hosts over direct SSH (lab_ssh.py). A scenario's
conftest imports it (with tests/lab on sys.path) and pytest finds it there."""
import pytest

import lab_ssh  # pylint: disable=import-error


@pytest.fixture(scope="session", name="lab")
def fixture_lab(tmp_path_factory):
    hosts, _common = lab_ssh.lab_hosts(tmp_path_factory.mktemp("cp"))
    assert len(hosts) == 6, sorted(hosts)
    return hosts
