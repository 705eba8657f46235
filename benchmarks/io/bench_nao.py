"""Parse speed of the ABACUS >= 3.9 ``*_nao.csr`` layout (values wrapped 6 to a line, indices 16) against the
legacy one-line-per-array layout, on the same matrix.

Input: the Si2 H(R) of the shared fixture (deepmodeling/abacus-develop tests/integrate/207_NO_KP_OH2, commit
729059f; 26 orbitals, 177 R blocks), tiled ``--copies`` times along Rz (distinct R, same blocks) to get a
larger file, then written in both layouts by nextham's writers (full-precision values).

Run: ``.venv/bin/python benchmarks/io/bench_nao.py [--copies 8] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from nextham.io.abacus_csr import read_csr, write_csr_legacy, write_csr_nao
from nextham.testing.fixtures import shared_fixtures_dir


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    root = shared_fixtures_dir()
    if root is None:
        raise SystemExit("../shared/fixtures is absent")
    f = read_csr(root / "abacus/Si2_nspin1/data-HR-sparse_SPIN0.csr")
    nnz = np.diff(f.block_start)
    R = np.concatenate([f.R + [0, 0, 1000 * c] for c in range(args.copies)])
    block_start = np.concatenate([[0], np.cumsum(np.tile(nnz, args.copies))])
    rows, cols, vals = (np.tile(a, args.copies) for a in (f.rows, f.cols, f.values))
    with tempfile.TemporaryDirectory() as tmp:
        legacy = write_csr_legacy(Path(tmp) / "legacy.csr", "H", f.dim, R, block_start, rows, cols, vals)
        nao = write_csr_nao(Path(tmp) / "hrs1_nao.csr", "H", f.dim, R, block_start, rows, cols, vals,
                            cell=np.eye(3), labels=["Si"], counts=[2], frac=np.zeros((2, 3)))
        times = {}
        for name, path in (("legacy", legacy), ("nao", nao)):
            ts = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                out = read_csr(path)
                ts.append(time.perf_counter() - t0)
            assert np.array_equal(out.values, vals)
            times[name] = statistics.median(ts)
            print(f"{name:7s} {path.stat().st_size / 1e6:6.2f} MB, {len(R)} R blocks, "
                  f"{sum(1 for _ in open(path))} lines: parse {times[name] * 1e3:7.1f} ms (median of {args.repeat})")
        print(f"nao / legacy parse time: {times['nao'] / times['legacy']:.2f}")


if __name__ == "__main__":
    main()
