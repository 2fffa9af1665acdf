#!/usr/bin/env bash
# ansible-test sanity needs the collection at .../ansible_collections/smc/backend: copy the checkout's
# tracked and new files there (not the venv, caches or the lab's generated inventory) and run it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# ansible-test's --venv mode downloads its own pip bootstrap, which this network does not reach; use a
# separate virtualenv (sanity pins its own linters, which must not disturb ansible-lint's) instead.
sv=.cache/sanity-venv
stamp="$sv/.installed-$(sha256sum tests/requirements.txt | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    rm -rf "$sv"; "$root/.venv/bin/python" -m venv "$sv"
    "$sv/bin/pip" install -q --upgrade pip
    "$sv/bin/pip" install -q "$(grep '^ansible-core==' tests/requirements.txt)"
    touch "$stamp"
fi
export PATH="$root/$sv/bin:$PATH"
# The pip version ansible-test bootstraps into its per-test virtualenvs.
pip_ver=$(grep -rhoP "pip='\K[0-9.]+(?=')" "$sv"/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py | head -n1)
if [ -n "$pip_ver" ]; then
    mkdir -p ~/.ansible/test/cache
    cp tests/sanity/get_pip_offline.py ~/.ansible/test/cache/get_pip_${pip_ver//./_}.py
fi
dest=build/sanity/ansible_collections/smc/backend
rm -rf build/sanity; mkdir -p "$dest"
git ls-files -z --cached --others --exclude-standard | rsync -a --from0 --files-from=- ./ "$dest/"
cd "$dest"
# ansible-test reads files git knows; give the copy its own throwaway repository.
git init -q . && git add -A && git -c user.email=ci@invalid -c user.name=ci commit -qm sanity
py=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
ansible-test sanity --requirements --python "$py" --color no "$@"
