"""roles/zfs_storage: the agent configuration the role writes (vars/main.yml) uses only keys the agent knows,
and the HA timings the role passes are the ones the HA loop reads (a key added to one side only made every
agent run on the lab stop with "unknown key")."""
import os
import sys

import yaml

from test_smc_zfs_agent import LIB, ROOT, load_agent  # pylint: disable=import-error

FILES = os.path.join(ROOT, "roles", "zfs_storage", "files")
for _path in (FILES, LIB):
    if _path not in sys.path:
        sys.path.insert(0, _path)
import smc_ha  # noqa: E402  pylint: disable=import-error,wrong-import-position


def written_config():
    with open(os.path.join(ROOT, "roles", "zfs_storage", "vars", "main.yml"), encoding="utf-8") as f:
        return yaml.safe_load(f)["__zfs_storage_agent_config"]


def test_every_key_the_role_writes_is_one_the_agent_accepts():
    agent, cfg = load_agent(), written_config()
    assert set(cfg) - set(agent.DEFAULTS) == set()
    assert set(cfg["replication"]) - set(agent.REPLICATION_DEFAULTS) == set()
    assert set(cfg["ha"]) - set(agent.HA_KEYS) == set()


def test_the_agent_knows_every_key_of_the_ha_loop():
    assert set(smc_ha.HA_DEFAULTS) - set(load_agent().HA_KEYS) == set()
