"""Real DFT data in and out: ABACUS (legacy and ``*_nao.csr``), DeepH (both formats), DeePTB, and sisl / TBtrans
``.TSHS`` (optional extra), with auto-detection (see ``docs/formats.md``).

>>> from nextham.io import read, write
>>> record = read("si_scf/", orbital_dirs=["orbitals/"])     # doctest: +SKIP
>>> write(record, "si_deeph/", "deeph")                        # doctest: +SKIP
"""

from .errors import FormatError
from .registry import FORMATS, detect_format, read, write

__all__ = ["FORMATS", "FormatError", "detect_format", "read", "write"]
