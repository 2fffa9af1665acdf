#!/usr/bin/env bash
# ansible-test sanity needs the collection at .../ansible_collections/smc/backend: copy the checkout's
# tracked and new files there (not the venv, caches or the lab's generated inventory) and run it.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=build/sanity/ansible_collections/smc/backend
rm -rf build/sanity; mkdir -p "$dest"
git ls-files -z --cached --others --exclude-standard | rsync -a --from0 --files-from=- ./ "$dest/"
cd "$dest"
# ansible-test reads files git knows; give the copy its own throwaway repository.
git init -q . && git add -A && git -c user.email=ci@invalid -c user.name=ci commit -qm sanity
py=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
ansible-test sanity --venv --python "$py" --color no "$@"
