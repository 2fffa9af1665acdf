#!/usr/bin/env bash
# Print the path of a Python >= 3.12 (ansible-core 2.21 needs it): $PYTHON, then python3.13/3.12 on PATH,
# then pyenv's versions, then python3. Exit 1 with the fix when there is none.
for c in ${PYTHON:-} python3.12 python3.13 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3 \
         "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[3-9]*/bin/python3 python3; do
    command -v "$c" >/dev/null 2>&1 || continue
    if "$c" -c 'import sys, venv; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then command -v "$c"; exit 0; fi
done
echo "deps: ERROR: no Python >= 3.12 found (ansible-core 2.21 needs it). Fix: 'pyenv install 3.12' or set PYTHON=/path/to/python3.12" >&2
exit 1
