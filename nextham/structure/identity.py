"""Identity of a structure: a content hash that equal structures share whatever file they came from."""

from __future__ import annotations

import hashlib

import numpy as np
from ase import Atoms


def structure_key(atoms: Atoms) -> str:
    """Content hash of a structure (numbers, cell and positions rounded to 1e-5 Å): equal structures
    get equal keys, whatever file or set they came from."""
    h = hashlib.sha1()
    h.update(np.asarray(atoms.numbers, np.int64).tobytes())
    h.update(np.round(np.asarray(atoms.cell.array, float), 5).tobytes())
    h.update(np.round(np.asarray(atoms.positions, float), 5).tobytes())
    h.update(np.asarray(atoms.pbc, bool).tobytes())
    return h.hexdigest()[:20]
