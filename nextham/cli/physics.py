"""`nextham eig`, `nextham bands`, `nextham info`: physics on one record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer

from ..blocks.h5io import read_record
from ..blocks.record import StructureRecord
from .errors import clear_errors


def load_record(path: Path) -> StructureRecord:
    """Read a nextham record file, or any folder `nextham convert` understands (ABACUS, DeepH)."""
    if path.is_dir():
        from ..io import read

        return read(path).validate(hermitian_tol=None)
    return read_record(path).validate(hermitian_tol=None)


def _parse_kpoints(k: list[str] | None, kpoints: Path | None) -> np.ndarray:
    if bool(k) == bool(kpoints):
        raise ValueError("give k-points either with --k \"kx ky kz\" (repeatable) or with --kpoints FILE")
    if k:
        try:
            pts = np.array([[float(x) for x in s.replace(",", " ").split()] for s in k])
        except ValueError:
            raise ValueError(f"--k values must be three numbers each, got {k}") from None
    else:
        if not kpoints.exists():
            raise FileNotFoundError(f"{kpoints}: no such k-point file")
        try:
            pts = np.loadtxt(kpoints, ndmin=2, comments="#")
        except ValueError as exc:
            raise ValueError(f"{kpoints}: cannot read k-points ({exc})") from None
        pts = pts[:, :3] if pts.ndim == 2 and pts.shape[1] >= 3 else pts
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"k-points must have three fractional coordinates each, got shape {pts.shape}")
    return pts


def register(app: typer.Typer) -> None:
    @app.command()
    @clear_errors
    def eig(record: Path = typer.Argument(..., help="nextham record file (.h5) or an ABACUS/DeepH folder"),
            k: Optional[List[str]] = typer.Option(None, "--k", help='fractional k-point "kx ky kz" (repeatable)'),
            kpoints: Optional[Path] = typer.Option(None, "--kpoints", help="file with one fractional k-point per line"),
            which: str = typer.Option("H", "--which", help="H or H0"),
            as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
        """Eigenvalues (eV, ascending) of (H(k), S(k)) at the given fractional k-points."""
        from ..physics.bands import eigenvalues

        rec = load_record(record)
        pts = _parse_kpoints(k, kpoints)
        eps, dropped = eigenvalues(rec, pts, which=which)
        if as_json:
            typer.echo(json.dumps({"kpoints": pts.tolist(),
                                   "eigenvalues_eV": [[float(x) for x in row if not np.isnan(x)] for row in eps]}))
        else:
            for kp, row, nd in zip(pts, eps, dropped):
                extra = f"  ({nd} S directions dropped)" if nd else ""
                typer.echo(f"k = ({kp[0]:.6f}, {kp[1]:.6f}, {kp[2]:.6f}){extra}")
                typer.echo("  " + " ".join(f"{x:.6f}" for x in row if not np.isnan(x)))

    @app.command()
    @clear_errors
    def bands(record: Path = typer.Argument(..., help="nextham record file (.h5) or an ABACUS/DeepH folder"),
              out: Path = typer.Option(Path("bands.png"), "--out", help="plot file (.png or .pdf)"),
              json_out: Optional[Path] = typer.Option(None, "--json", help="also write the bands as JSON"),
              which: str = typer.Option("H", "--which", help="H or H0"),
              compare: Optional[Path] = typer.Option(None, "--compare", help="overlay H of another record of the same structure"),
              with_h0: bool = typer.Option(False, "--with-h0", help="overlay H0 of the same record"),
              window: str = typer.Option("-6,6", help="energy window around E_F (eV), 'lo,hi'"),
              density: float = typer.Option(40.0, help="k-points per 1/Å along the path")) -> None:
        """Band structure along the high-symmetry path of the record's own cell."""
        from ..analysis.plots import plot_bands
        from ..physics.bands import band_structure
        from ..physics.kpoints import high_symmetry_path

        rec = load_record(record)
        path = high_symmetry_path(rec.to_atoms(), density=density)
        curves = [band_structure(rec, which, path, label=f"{which} ({record.name})")]
        if with_h0 and "H0" in rec.blocks:
            curves.append(band_structure(rec, "H0", path, label=f"H0 ({record.name})"))
        if compare is not None:
            other = load_record(compare)
            if other.n_atoms != rec.n_atoms or not np.allclose(other.cell, rec.cell, atol=1e-6):
                raise ValueError(f"{compare}: not the same structure as {record}")
            curves.append(band_structure(other, "H", path, label=f"H ({compare.name})"))
        lo, hi = (float(x) for x in window.split(","))
        plot_bands(curves, out, window=(lo, hi), title=record.stem)
        typer.echo(f"wrote {out}")
        if json_out:
            json_out.write_text(json.dumps([c.to_json() for c in curves]))
            typer.echo(f"wrote {json_out}")

    @app.command()
    @clear_errors
    def info(path: Path = typer.Argument(..., help="a record file, an ABACUS/DeepH folder or a dataset"),
             per_structure: bool = typer.Option(False, "--per-structure", help="datasets: one line per structure")) -> None:
        """Summarise a record (atoms, basis, edges, matrices) or a dataset (counts, elements, MAE(H-H0), timings)."""
        typer.echo(json.dumps(describe(path, per_structure), indent=2, default=str))


def describe(path: Path, per_structure: bool = False) -> dict:
    """Summary of a record file, a DFT folder (ABACUS/DeepH) or a dataset, as a JSON-able dict."""
    import h5py

    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        return _record_summary(load_record(path), path)
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            kind = f.attrs.get("format")
        if kind != "nextham-record":
            raise ValueError(f"{path}: HDF5 file but not a nextham record (format attribute {kind!r})")
        return _record_summary(read_record(path), path)
    from ..data import dataset_info

    return dataset_info(path, per_structure=per_structure)


def _record_summary(rec: StructureRecord, path: Path) -> dict:
    return {
        "path": str(path), "format": "nextham-record", "formula": rec.to_atoms().get_chemical_formula(),
        "n_atoms": rec.n_atoms, "cell_A": rec.cell.tolist(), "pbc": rec.pbc.tolist(),
        "basis": {e.symbol: e.spec() for e in rec.basis.elements}, "n_orbitals": rec.n_orbitals,
        "spinful": rec.spinful, "n_edges": rec.n_edges, "n_R": int(len(np.unique(rec.edge_R, axis=0))),
        "max_edge_length_A": float(rec.edge_lengths.max()), "matrices": sorted(rec.blocks),
        "fermi_energy_eV": rec.fermi_energy_eV, "metadata_keys": sorted(rec.metadata),
    }
