#!/usr/bin/env bash
# Install what the controller needs, once: Debian packages for the lab (qemu, libvirt, debootstrap)
# and a Python >= 3.12 virtualenv with the pinned toolchain. Safe to re-run; skips what is done.
set -euo pipefail
cd "$(dirname "$0")/../.."
say() { printf '[deps] %s\n' "$*" >&2; }
die() { printf 'deps: ERROR: %s\n' "$*" >&2; exit 1; }

# prometheus: its promtool checks and unit-tests the alert rules (tests/unit/monitoring).
# etcd-server, etcd-client: the lab's coordination members (tests/lab/etcd_lab.py, one per DC in a namespace);
# openssl: the CA that signs their certificates and the agents' (role tls_certificate runs it on the controller).
APT_PKGS="qemu-system-x86 qemu-utils debootstrap libvirt-daemon-system libvirt-clients iproute2 e2fsprogs openssh-client rsync git make prometheus etcd-server etcd-client openssl"
# dpkg-query exits 1 when any package is unknown to dpkg (a fresh machine): that is an answer, not an error.
missing=$( (dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' $APT_PKGS 2>/dev/null || true) | awk '$1 != "ii" {print $2}')
for p in $APT_PKGS; do dpkg-query -W "$p" >/dev/null 2>&1 || missing="$missing $p"; done
missing=$(echo $missing | tr ' ' '\n' | sort -u | tr '\n' ' ')
if [ -n "${missing// /}" ]; then
    [ "$(id -u)" = 0 ] || die "Debian packages missing ($missing); run as root or install them with apt-get"
    say "installing Debian packages: $missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

stamp=".venv/.installed-$(sha256sum tests/requirements.txt | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    py=$(tests/lab/find-python.sh) || exit 1
    say "virtualenv .venv with $($py --version) and tests/requirements.txt"
    [ -x .venv/bin/python ] && .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 12))' || rm -rf .venv
    "$py" -m venv .venv
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -r tests/requirements.txt
    rm -f .venv/.installed-*; touch "$stamp"
fi
# Mitogen's strategy plugins at a fixed path (the Makefile points ANSIBLE_STRATEGY_PLUGINS there).
mitogen=$(.venv/bin/python -c 'import ansible_mitogen, os; print(os.path.dirname(ansible_mitogen.__file__))')
[ "$(readlink .venv/mitogen-plugins 2>/dev/null)" = "$mitogen/plugins" ] || ln -sfn "$mitogen/plugins" .venv/mitogen-plugins
# The checkout is the collection smc.backend: link it where ansible looks for collections.
mkdir -p .collections/ansible_collections/smc
[ -L .collections/ansible_collections/smc/backend ] || ln -sfn ../../.. .collections/ansible_collections/smc/backend
version=$(.venv/bin/ansible --version)
say "ready: ${version%%$'\n'*}"
