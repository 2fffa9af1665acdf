"""roles/tinc's peer-state script (installed as host-up and host-down, run by tincd): the per-peer state
files and the textfile it writes for node exporter, rendered from the role's template and run with dash."""
import importlib.util
import os
import re
import subprocess

import jinja2
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
TEMPLATE = os.path.join(ROOT, "roles", "tinc", "templates", "peer-state.sh.j2")


def _strict_parser():
    """The strict text-format parser of metrics_text's own tests."""
    path = os.path.join(ROOT, "tests", "unit", "plugins", "module_utils", "test_metrics_text.py")
    spec = importlib.util.spec_from_file_location("metrics_text_parser", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.parse


@pytest.fixture(name="net")
def fixture_net(tmp_path):
    """A network directory with this node (dc1_s1) and three peers' host files, and the script as host-up
    and host-down; returns a runner."""
    conf = tmp_path / "etc"
    (conf / "smc" / "hosts").mkdir(parents=True)
    (conf / "smc" / "tinc.conf").write_text("Name = dc1_s1\nMode = router\n")
    for name in ("dc1_s1", "dc1_s2", "dc2_s1", "dc3_s2"):
        (conf / "smc" / "hosts" / name).write_text("Subnet = 10.88.0.1/32\n")
    text = jinja2.Template(open(TEMPLATE, encoding="utf-8").read()).render(tinc_metrics_textfile_dir="/nonexistent")
    for script in ("host-up", "host-down"):
        path = conf / "smc" / script
        path.write_text(text)
        path.chmod(0o755)
    textfile = tmp_path / "textfile"
    textfile.mkdir()
    env = dict(os.environ, NETNAME="smc", SMC_TINC_STATE_DIR=str(tmp_path / "run"),
               SMC_TINC_TEXTFILE_DIR=str(textfile), SMC_TINC_CONF_DIR=str(conf))

    def run(script, *args, **extra):
        p = subprocess.run(["dash", str(conf / "smc" / script)] + list(args), env=dict(env, **extra),
                           capture_output=True, text=True, check=False)
        prom = textfile / "smc-vpn-smc.prom"
        return p, (prom.read_text() if prom.exists() else None)
    run.textfile = textfile
    return run


def series(prom):
    return dict(re.findall(r"^(smc_\S+) (\d+)$", prom, re.M))


def test_reset_marks_every_peer_but_this_node_unreachable(net):
    p, prom = net("host-down", "reset")
    assert p.returncode == 0, p.stderr
    assert series(prom) == {
        'smc_vpn_peer_reachable{network="smc",peer="dc1_s2"}': "0",
        'smc_vpn_peer_reachable{network="smc",peer="dc2_s1"}': "0",
        'smc_vpn_peer_reachable{network="smc",peer="dc3_s2"}': "0",
        'smc_vpn_peers{network="smc",state="reachable"}': "0",
        'smc_vpn_peers{network="smc",state="unreachable"}': "3"}
    families = _strict_parser()(prom)  # valid exposition format, HELP and TYPE for each family
    assert families["smc_vpn_peer_reachable"]["type"] == "gauge" and families["smc_vpn_peers"]["type"] == "gauge"


def test_host_up_and_down_follow_the_peer(net):
    net("host-down", "reset")
    net("host-up", NODE="dc2_s1")
    _p, prom = net("host-up", NODE="dc3_s2")
    s = series(prom)
    assert s['smc_vpn_peer_reachable{network="smc",peer="dc2_s1"}'] == "1"
    assert s['smc_vpn_peers{network="smc",state="reachable"}'] == "2"
    _p, prom = net("host-down", NODE="dc2_s1")
    s = series(prom)
    assert s['smc_vpn_peer_reachable{network="smc",peer="dc2_s1"}'] == "0"
    assert s['smc_vpn_peers{network="smc",state="unreachable"}'] == "2"
    assert not [f for f in os.listdir(net.textfile) if f.startswith(".")]  # no temporary file left behind


@pytest.mark.parametrize("node", ["../x", "a/b", "-x", "a b", "", "x\ny"])
def test_a_hostile_node_name_is_refused_and_nothing_is_written(net, node):
    p, prom = net("host-up", NODE=node)
    assert p.returncode != 0 and "NODE" in p.stderr
    assert prom is None


def test_run_under_another_name_it_refuses(net, tmp_path):
    other = tmp_path / "etc" / "smc" / "subnet-up"
    other.write_text((tmp_path / "etc" / "smc" / "host-up").read_text())
    env = dict(os.environ, NETNAME="smc", NODE="dc2_s1", SMC_TINC_STATE_DIR=str(tmp_path / "run"),
               SMC_TINC_TEXTFILE_DIR=str(net.textfile))
    p = subprocess.run(["dash", str(other)], env=env, capture_output=True, text=True, check=False)
    assert p.returncode != 0 and "host-up or host-down" in p.stderr


def test_the_metrics_the_alert_rules_use_are_the_ones_written(net):
    rules = open(os.path.join(ROOT, "roles", "monitoring", "files", "smc-alerts.yml"), encoding="utf-8").read()
    _p, prom = net("host-down", "reset")
    written = set(re.findall(r"^(smc_vpn_\w+)\{", prom, re.M))
    used = set(re.findall(r"\b(smc_vpn_\w+)\b", rules))
    assert used and used <= written, (used, written)
