"""roles/zfs_storage: the agent configuration the role writes (vars/main.yml) uses only keys the agent knows,
and the HA timings the role passes are the ones the HA loop reads (a key added to one side only made every
agent run on the lab stop with "unknown key")."""
import importlib.machinery
import importlib.util
import os
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
LIB = os.path.join(ROOT, "plugins", "module_utils")
FILES = os.path.join(ROOT, "roles", "zfs_storage", "files")
for _path in (FILES, LIB):
    if _path not in sys.path:
        sys.path.insert(0, _path)
import smc_ha  # noqa: E402  pylint: disable=import-error,wrong-import-position


def load_agent():
    loader = importlib.machinery.SourceFileLoader("smc_zfs_agent_keys", os.path.join(FILES, "smc-zfs-agent"))
    spec = importlib.util.spec_from_loader("smc_zfs_agent_keys", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


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
