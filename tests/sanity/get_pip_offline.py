"""Stand-in for the get-pip bootstrap script ansible-test downloads (its host is out of reach here).

ansible-test runs it inside a fresh virtualenv with pip-install arguments (``pip==X ...``). This installs
the pip bundled with Python (ensurepip) and then lets that pip install exactly what was asked, from the
package index this machine reaches.
"""
import ensurepip
import os
import subprocess
import sys

# ensurepip hides pip's configuration (PIP_CONFIG_FILE=/dev/null) in os.environ; keep the caller's.
env = dict(os.environ)
ensurepip.bootstrap(upgrade=True)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", "-q"] + args, env=env)
