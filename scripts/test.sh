#!/usr/bin/env bash
# Run the default test suite (installs first when .venv is missing or stale).
#
#   scripts/test.sh             # default suite (fast; slow tests excluded)
#   scripts/test.sh -m slow     # the slow tests (engine SCF runs, long training)
#
# Extra arguments go to pytest.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
