#!/usr/bin/env bash
# Install nextham and everything it needs into .venv at the repository root.
#
#   scripts/setup.sh            # idempotent: a second run only checks
#
# - a Python >= 3.11 virtual environment in .venv (PYTHON=... selects the interpreter);
# - nextham in editable mode with its test extras; torch is pinned to 2.13.0 (CPU wheel);
# - the embedded DFT engine GPAW (serial build; system libraries through apt-get), see
#   scripts/install_gpaw.sh. Set NEXTHAM_SKIP_GPAW=1 to skip it (readers, model and physics work
#   without it; generating data and predicting from a structure do not).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "setup.sh: nextham needs Python >= 3.11 ('$PYTHON' is $("$PYTHON" --version 2>&1))" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    echo "setup.sh: creating .venv with $("$PYTHON" --version)"
    "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c 'import nextham, torch, e3nn, ase, h5py, pytest' >/dev/null 2>&1 \
        || [ pyproject.toml -nt .venv/.nextham-installed ]; then
    echo "setup.sh: installing nextham and its dependencies into .venv"
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e '.[test]'
    touch .venv/.nextham-installed
fi
if [ "${NEXTHAM_SKIP_GPAW:-0}" != "1" ]; then
    bash scripts/install_gpaw.sh .venv/bin/python
fi
echo "setup.sh: ready (.venv/bin/nextham)"
