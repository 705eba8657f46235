"""Time the conversion of a ~1.6 MB ABACUS HR file (plus its SR file and STRU) into a nextham record.

The input is generated from the shared Si2 fixture (deepmodeling/abacus-develop tests/integrate/
207_NO_KP_OH2, commit 729059f): its H(R)/S(R) are unfolded onto a 2x1x1 supercell (Si4, 52 orbitals)
and written in ABACUS's own legacy text layout (``STEP:`` header, 8-digit ``%.8e`` values), keeping
whole R blocks in order of increasing |R| until the HR file reaches the target size.

Run: ``.venv/bin/python benchmarks/io/bench_convert.py [--size-mb 1.6] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from nextham.blocks.h5io import write_record
from nextham.io import read
from nextham.io.abacus_csr import read_csr
from nextham.io.abacus_stru import read_stru, write_stru
from nextham.testing.fixtures import shared_fixtures_dir


def _supercell_csr(f, n: int):
    """Unfold a primitive CSR file (2 atoms) onto the 2x1x1 supercell: {R': (rows, cols, vals)}."""
    R = f.R[f.R_index]
    out: dict[tuple, list] = {}
    for t in (0, 1):
        nx = R[:, 0] + t
        Rs = np.stack([np.floor_divide(nx, 2), R[:, 1], R[:, 2]], 1)
        tp = np.mod(nx, 2)
        rows, cols = t * n + f.rows, tp * n + f.cols
        keys = [tuple(r) for r in Rs.tolist()]
        for k, r, c, v in zip(keys, rows, cols, f.values):
            out.setdefault(k, []).append((r, c, v))
    return out


def _write_abacus_style(path: Path, label: str, dim: int, blocks: dict, order: list, limit: int | None) -> list:
    """ABACUS layout with %.8e values; stop (whole blocks) when the text exceeds ``limit`` bytes."""
    parts, kept, size = [], [], 0
    for R in order:
        el = sorted(blocks.get(R, []))
        if not el:
            continue
        r = np.array([e[0] for e in el])
        c = np.array([e[1] for e in el])
        v = np.array([e[2] for e in el])
        ptr = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=dim))])
        text = (f"{R[0]} {R[1]} {R[2]} {len(v)}\n " + " ".join(f"{x:.8e}" for x in v) + "\n "
                + " ".join(map(str, c)) + "\n " + " ".join(map(str, ptr)) + "\n")
        if limit is not None and size + len(text) > limit:
            break
        parts.append(text)
        kept.append(R)
        size += len(text)
    head = f"STEP: 0\nMatrix Dimension of {label}(R): {dim}\nMatrix number of {label}(R): {len(kept)}\n"
    path.write_text(head + "".join(parts))
    return kept


def make_input(folder: Path, size_mb: float) -> Path:
    fx = shared_fixtures_dir()
    if fx is None:
        raise SystemExit("needs ../shared/fixtures (set NEXTHAM_FIXTURES)")
    si2 = fx / "abacus" / "Si2_nspin1"
    folder.mkdir(parents=True, exist_ok=True)
    g = read_stru(si2 / "STRU")
    cell = g.cell.copy()
    cell[0] *= 2
    pos = np.concatenate([g.positions, g.positions + g.cell[0]])
    write_stru(folder / "STRU", cell, pos, ["Si"], [4], ["Si_gga_8au_60Ry_2s2p1d.orb"])
    for f in (fx / "abacus" / "orbitals").iterdir():
        shutil.copy(f, folder / f.name)
    h, s = read_csr(si2 / "data-HR-sparse_SPIN0.csr"), read_csr(si2 / "data-SR-sparse_SPIN0.csr")
    hb, sb = _supercell_csr(h, h.dim), _supercell_csr(s, s.dim)
    order = sorted(set(hb) | set(sb), key=lambda R: (np.linalg.norm(np.array(R) @ cell), R))
    kept = _write_abacus_style(folder / "data-HR-sparse_SPIN0.csr", "H", 2 * h.dim, hb, order, int(size_mb * 1e6))
    _write_abacus_style(folder / "data-SR-sparse_SPIN0.csr", "S", 2 * s.dim, sb, kept, None)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=float, default=1.6)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_input(Path(tmp) / "Si4", args.size_mb)
        hr = folder / "data-HR-sparse_SPIN0.csr"
        sr = folder / "data-SR-sparse_SPIN0.csr"
        t_parse, t_read, t_conv = [], [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            read_csr(hr)
            t1 = time.perf_counter()
            rec = read(folder)
            t2 = time.perf_counter()
            write_record(Path(tmp) / "si4.h5", rec)
            t3 = time.perf_counter()
            t_parse.append(t1 - t0)
            t_read.append(t2 - t1)
            t_conv.append(t3 - t1)
        print(f"HR file: {hr.stat().st_size / 1e6:.2f} MB, SR file: {sr.stat().st_size / 1e6:.2f} MB, "
              f"{rec.n_atoms} atoms, {rec.n_orbitals} orbitals, {rec.n_edges} blocks, "
              f"{len(np.unique(rec.edge_R, axis=0))} R vectors")
        print(f"parse HR text only          : median {statistics.median(t_parse) * 1e3:7.1f} ms")
        print(f"read folder -> record (H+S) : median {statistics.median(t_read) * 1e3:7.1f} ms")
        print(f"convert to .h5 record (all) : median {statistics.median(t_conv) * 1e3:7.1f} ms  (of {args.repeat} runs)")


if __name__ == "__main__":
    main()
