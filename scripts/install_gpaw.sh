#!/usr/bin/env bash
# Install GPAW (serial build, no MPI/ScaLAPACK) into the nextham virtual environment.
#
# Usage: scripts/install_gpaw.sh [PYTHON]   (default: .venv/bin/python of the repository)
#
# Idempotent: does nothing when `import gpaw` already works with the pinned version and the
# PAW setups are found. Needs root (or sudo) for apt-get on a fresh Debian/Ubuntu machine.
#
# Why a siteconfig: without one, GPAW's setup.py turns MPI on whenever `mpic++` is on PATH and the
# link can fail. We build a serial GPAW (dask runs one GPAW process per structure instead).
# The PAW setups and dzp basis sets come with the `gpaw-data` package that pip pulls in
# (67 of the 68 elements H-Ba, Hf-Bi: Tc is missing); GPAW finds them through
# gpaw_data.get_path() (see docs/engine.md). GPAW_SETUP_PATH overrides.
set -euo pipefail

GPAW_VERSION="26.7.0"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${1:-$REPO/.venv/bin/python}"

if [ ! -x "$PY" ]; then
    echo "install_gpaw.sh: Python interpreter '$PY' not found; create the venv first" >&2
    echo "  (python3 -m venv .venv && .venv/bin/pip install -e '.[test]')" >&2
    exit 1
fi

check() {
    "$PY" - <<PYEOF
import sys
import gpaw
if gpaw.__version__ != "$GPAW_VERSION":
    sys.exit(f"gpaw {gpaw.__version__} installed, nextham needs $GPAW_VERSION")
from gpaw.setup_data import search_for_file
search_for_file("Si.PBE")      # raises when no PAW setups are found
search_for_file("Si.dzp.basis")
PYEOF
}

if check >/dev/null 2>&1; then
    echo "install_gpaw.sh: gpaw $GPAW_VERSION with setups already available in $PY; nothing to do"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if command -v apt-get >/dev/null 2>&1; then
    echo "install_gpaw.sh: installing libxc, OpenBLAS and FFTW (apt-get)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        build-essential libxc-dev libopenblas-dev libfftw3-dev >/dev/null
else
    echo "install_gpaw.sh: no apt-get; make sure libxc, OpenBLAS and FFTW3 (with headers) are installed" >&2
fi

SITECONFIG="$(mktemp -d)/siteconfig.py"
cat > "$SITECONFIG" <<'CFG'
# Serial GPAW build for nextham (one process per structure; parallelism comes from dask).
mpi = False
compiler = 'gcc'
fftw = True
scalapack = False
libraries = ['xc', 'openblas', 'fftw3']
CFG

echo "install_gpaw.sh: building gpaw==$GPAW_VERSION (serial, siteconfig $SITECONFIG); takes ~2 min"
GPAW_CONFIG="$SITECONFIG" "$PY" -m pip install --no-build-isolation --no-binary gpaw "gpaw==$GPAW_VERSION" \
    || GPAW_CONFIG="$SITECONFIG" "$PY" -m pip install "gpaw==$GPAW_VERSION"

# gpaw-data carries the PAW setups and basis sets; pip installs it as a dependency of gpaw.
"$PY" -m pip install gpaw-data >/dev/null 2>&1 || true

if ! check; then
    echo "install_gpaw.sh: gpaw installed but the check failed (see above)" >&2
    exit 1
fi
"$PY" - <<'PYEOF'
import gpaw, numpy
from gpaw.setup_data import search_for_file
print(f"install_gpaw.sh: gpaw {gpaw.__version__} OK (numpy {numpy.__version__}); "
      f"setups: {search_for_file('Si.PBE')[0].rsplit('/', 1)[0]}")
PYEOF
