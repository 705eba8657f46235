"""`nextham eig`, `nextham bands`, `nextham info`: physics on one record, summaries of datasets and models.

Every RECORD argument is a record reference (:mod:`nextham.data.reference`): a record file, an
ABACUS/DeepH folder, or ``DATASET@N`` (N < 0 counts from the end).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer

from ..blocks.record import StructureRecord
from ..errors import UsageError
from .errors import clear_errors
from .options import check_output_path, parse_window

RECORD_HELP = "record: a nextham .h5 file, an ABACUS/DeepH folder, or DATASET@N (N < 0: from the end)"
MAX_DENSITY = 1000.0  # k-points per 1/Å along the path (40 is the default; 1000 gives ~5000 points)
WHICH = ("H", "H0")


def _parse_kpoints(k: list[str] | None, kpoints: Path | None) -> np.ndarray:
    if bool(k) == bool(kpoints):
        raise UsageError("give k-points either with --k \"kx ky kz\" (repeatable) or with --kpoints FILE")
    if k:
        try:
            pts = np.array([[float(x) for x in s.replace(",", " ").split()] for s in k])
        except ValueError:
            raise UsageError(f"--k values must be three numbers each, got {k}") from None
    else:
        if not kpoints.exists():
            raise UsageError(f"{kpoints}: no such k-point file")
        if kpoints.is_dir():
            raise UsageError(f"{kpoints}: is a directory, not a k-point file")
        try:
            pts = np.loadtxt(kpoints, ndmin=2, comments="#")
        except ValueError as exc:
            raise UsageError(f"{kpoints}: cannot read k-points ({exc})") from None
        pts = pts[:, :3] if pts.ndim == 2 and pts.shape[1] >= 3 else pts
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise UsageError(f"k-points must have three fractional coordinates each, got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise UsageError("k-points must be finite numbers")
    return pts


def _check_which(which: str) -> None:
    if which not in WHICH:
        raise UsageError(f"--which must be H or H0 (got {which!r}; S is the overlap, not a Hamiltonian)")


def register(app: typer.Typer) -> None:
    @app.command()
    @clear_errors
    def eig(record: str = typer.Argument(..., help=RECORD_HELP),
            k: Optional[List[str]] = typer.Option(None, "--k", help='fractional k-point "kx ky kz" (repeatable)'),
            kpoints: Optional[Path] = typer.Option(None, "--kpoints", help="file with one fractional k-point per line"),
            which: str = typer.Option("H", "--which", help="H or H0"),
            as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
        """Eigenvalues (eV, ascending) of (H(k), S(k)) at the given fractional k-points."""
        from ..data.reference import open_record
        from ..physics.bands import eigenvalues

        _check_which(which)
        pts = _parse_kpoints(k, kpoints)
        rec = open_record(record)[1]
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
    def bands(record: str = typer.Argument(..., help=RECORD_HELP),
              out: Path = typer.Option(Path("bands.png"), "--out", help="plot file (.png, .pdf or .svg) in an "
                                                                       "existing folder"),
              json_out: Optional[Path] = typer.Option(None, "--json", help="also write the bands as JSON"),
              which: str = typer.Option("H", "--which", help="H or H0"),
              compare: Optional[str] = typer.Option(None, "--compare", help="overlay H of another record of the "
                                                    "same structure (same basis and engine settings)"),
              allow_mismatch: bool = typer.Option(False, "--allow-mismatch", help="--compare records of different "
                                                  "bases or engine settings (the difference is then not a model error)"),
              with_h0: bool = typer.Option(False, "--with-h0", help="overlay H0 of the same record"),
              window: str = typer.Option("-6,6", help="energy window around E_F (eV), 'lo,hi' with lo < hi"),
              density: float = typer.Option(40.0, help=f"k-points per 1/Å along the path (0 < density <= "
                                                        f"{MAX_DENSITY:g})")) -> None:
        """Band structure along the high-symmetry path of the record's own cell, relative to the first
        record's Fermi level."""
        from ..analysis.plots import plot_bands
        from ..data.reference import open_record
        from ..physics.kpoints import high_symmetry_path

        _check_which(which)
        lo, hi = parse_window(window)
        if not 0 < density <= MAX_DENSITY:
            raise UsageError(f"--density must be in (0, {MAX_DENSITY:g}] k-points per 1/Å (got {density:g})")
        check_output_path(out, (".png", ".pdf", ".svg"), "--out")
        if json_out is not None:
            check_output_path(json_out, (".json",), "--json")
        ref, rec = open_record(record)
        if not rec.pbc.all():
            raise UsageError(f"{record}: band paths need a cell periodic in 3-D (pbc {rec.pbc.tolist()}); use "
                             f"`nextham eig` with explicit k-points")
        if which not in rec.blocks:
            raise UsageError(f"{record}: record has no matrix {which!r} (it holds {sorted(rec.blocks)})")
        other = None
        if compare is not None:
            cref, other = open_record(compare)
            _check_comparable(rec, other, record, compare, allow_mismatch)
            if "H" not in other.blocks:
                raise UsageError(f"{compare}: record has no matrix 'H' to compare")
        path = high_symmetry_path(rec.to_atoms(), density=density)
        typer.echo(f"bands: {len(path.kpts)} k-points, {rec.n_orbitals * (2 if rec.spinful else 1)} bands", err=True)
        curves = [_bands(rec, which, path, f"{which} ({ref.label})")]
        if with_h0 and "H0" in rec.blocks and which != "H0":
            curves.append(_bands(rec, "H0", path, f"H0 ({ref.label})"))
        if other is not None:
            curves.append(_bands(other, "H", path, f"H ({cref.label})"))
        plot_bands(curves, out, window=(lo, hi), title=ref.label)
        typer.echo(f"wrote {out}")
        if json_out:
            json_out.write_text(json.dumps([c.to_json() for c in curves]))
            typer.echo(f"wrote {json_out}")

    @app.command()
    @clear_errors
    def info(path: Optional[str] = typer.Argument(None, help="a record file, an ABACUS/DeepH folder, a dataset "
                                                              "(DATASET or DATASET@N) or a model (.pt)"),
             model: Optional[str] = typer.Option(None, "--model", help="a registered model (universal-v1): print "
                                                 "its measured model card"),
             as_json: bool = typer.Option(False, "--json", help="--model: the card as JSON"),
             per_structure: bool = typer.Option(False, "--per-structure", help="datasets: one row per record "
                                                "(index, key, formula, source file)"),
             check: bool = typer.Option(False, "--check", help="datasets: verify every record's checksum and "
                                        "contents; exit status 1 when any is damaged")) -> None:
        """Summarise a record (atoms, basis, edges, matrices), a dataset (counts, elements, MAE(H-H0),
        timings) or a model (config, basis, spin, engine settings of its training data, metrics)."""
        if model is not None:
            if path is not None:
                raise UsageError("give either a PATH or --model NAME")
            _print_card(model, as_json)
            return
        if path is None:
            raise UsageError("give a PATH (record, folder, dataset or model file) or --model NAME")
        if check:
            _check_dataset(Path(path))
            return
        typer.echo(json.dumps(describe(path, per_structure), indent=2, default=str))


def _print_card(name: str, as_json: bool) -> None:
    from ..analysis.model_card import format_card
    from ..models import PRETRAINED, model_card, resolve_model

    if name not in PRETRAINED:
        path = resolve_model(name)  # a model file: its checkpoint summary (no measured card)
        typer.echo(json.dumps(describe(str(path)), indent=2, default=str))
        return
    card = model_card(name)
    if card is None:
        raise UsageError(f"{name}: the package has no measured card for this model")
    typer.echo(json.dumps(card, indent=1) if as_json else format_card(card))


def _bands(rec: StructureRecord, which: str, path, label: str):
    """Bands along ``path`` in chunks, with a progress line on stderr for long paths."""
    from ..physics.bands import BandStructure, eigenvalues

    n = len(path.kpts)
    chunk = 256
    parts = []
    for start in range(0, n, chunk):
        parts.append(eigenvalues(rec, path.kpts[start:start + chunk], which=which)[0])
        if n > 4 * chunk:
            typer.echo(f"  {label}: {min(start + chunk, n)}/{n} k-points", err=True)
    return BandStructure(path, np.concatenate(parts), rec.fermi_energy_eV, label)


def _check_comparable(a: StructureRecord, b: StructureRecord, name_a: str, name_b: str, allow: bool) -> None:
    from ..data.provenance import basis_differences, differences, record_settings

    if b.n_atoms != a.n_atoms or not np.allclose(b.cell, a.cell, atol=1e-6) or \
            not np.array_equal(np.sort(a.numbers), np.sort(b.numbers)):
        raise UsageError(f"{name_b}: not the same structure as {name_a}")
    if a.spinful != b.spinful:
        raise UsageError(f"{name_b}: {'spinful' if b.spinful else 'spinless'} record, {name_a} is "
                         f"{'spinful' if a.spinful else 'spinless'}; compare records of the same spin treatment")
    problems = basis_differences(a, b)
    problems += differences(record_settings(a), record_settings(b))
    if problems:
        msg = (f"{name_a} and {name_b} differ in basis or engine settings ({'; '.join(problems)}): their band "
               f"difference is not the model's error")
        if not allow:
            raise UsageError(msg + "; regenerate with the same settings (`nextham generate --like`) or pass "
                                   "--allow-mismatch")
        typer.echo(f"WARNING: {msg}", err=True)


def _check_dataset(path: Path) -> None:
    from ..data.reference import split_reference
    from ..data.store import DatasetStore, StoreError

    path, selector = split_reference(path)
    if selector is not None:
        raise UsageError(f"--check verifies a whole dataset; give {path} without '@'")
    with DatasetStore(path) as store:
        n = len(store)
        problems = store.check()
        try:
            store.validate(records=False)
            consistency = None
        except StoreError as exc:  # inconsistent tables (counts, keys, status)
            consistency = str(exc)
        keys = {}
        for i in problems:
            try:
                keys[i] = store.key(i)
            except StoreError:  # damaged key
                keys[i] = "?"
    for i, problem in sorted(problems.items()):
        typer.echo(f"record {i} (structure {keys[i]}): {problem}")
    if consistency:
        typer.echo(consistency)
    if problems or consistency:
        typer.echo(f"error: {path}: {len(problems)} of {n} records damaged; rerun the same `nextham generate` "
                   f"command to recompute them", err=True)
        raise typer.Exit(1)
    typer.echo(f"{path}: all {n} records pass their checksum and decode into valid records")


def describe(path: str | Path, per_structure: bool = False) -> dict:
    """Summary of a record, a DFT folder, a dataset (store, HDF5 export, folder of records) or a model."""
    from ..data.reference import StoreCollection, open_collection, open_record, split_reference

    base, selector = split_reference(path)
    if not base.exists():
        raise UsageError(f"{base}: no such file or folder")
    if base.is_file() and _is_checkpoint(base):
        if selector is not None:
            raise UsageError(f"{path}: a model has no records")
        return model_card(base)
    if selector is None:
        coll = open_collection(base)
        if coll is not None:
            if isinstance(coll, StoreCollection):
                coll.close()
                from ..data import dataset_info

                return dataset_info(base, per_structure=per_structure)
            with coll:
                return _collection_summary(coll, per_structure)
    ref, rec = open_record(path)
    out = _record_summary(rec, base)
    if ref.index is not None:
        out.update(index=ref.index, key=ref.key, source=ref.source)
    return out


def _is_checkpoint(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == b"PK\x03\x04" or path.suffix == ".pt"


def _collection_summary(coll, per_structure: bool) -> dict:
    rows = []
    for i in range(len(coll)):
        ref, rec = coll.ref(i), coll.record(i)
        rows.append({"index": i, "key": ref.key, "formula": rec.to_atoms().get_chemical_formula(),
                     "source": Path(ref.source).name if ref.source else "", "n_atoms": rec.n_atoms,
                     "n_orbitals": rec.n_orbitals, "spinful": rec.spinful, "matrices": sorted(rec.blocks)})
    out = {"path": str(coll.path), "format": coll.kind, "records": len(rows),
           "formulas": sorted({r["formula"] for r in rows})}
    if per_structure:
        out["structures"] = rows
    return out


def model_card(path: Path) -> dict:
    """What a checkpoint or exported model holds: architecture, basis, spin, training data and metrics."""
    from ..data.provenance import checkpoint_settings
    from ..checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    cfg = ckpt.get("config", {}) or {}
    n_params = int(sum(int(np.prod(v.shape)) for v in (ckpt.get("model") or {}).values() if hasattr(v, "shape")))
    split = ckpt.get("split") or {}
    from ..basis.orbitals import Basis

    basis = Basis.from_json(ckpt["basis"])
    return {
        "path": str(path), "format": "nextham-checkpoint", "kind": "resumable checkpoint" if "optimizer" in ckpt
        else "exported model",
        "model": cfg.get("model"), "dtype": (cfg.get("run") or {}).get("dtype"),
        "cutoff_A": (cfg.get("data") or {}).get("cutoff"), "n_parameters": n_params,
        "basis": {e.symbol: e.spec() for e in basis.elements}, "elements": list(basis.symbols),
        "spinful": bool(ckpt.get("spinful")), "training_data": {
            "dataset": ckpt.get("dataset"), "split_sizes": {k: len(v) for k, v in split.items()},
            **checkpoint_settings(ckpt)},
        "progress": ckpt.get("progress"), "metrics": ckpt.get("metrics"), "versions": ckpt.get("versions"),
        "training": {k: v for k, v in cfg.items() if k in ("optim", "loss")},
    }


def _record_summary(rec: StructureRecord, path: Path) -> dict:
    from ..data.provenance import record_settings

    return {
        "path": str(path), "format": "nextham-record", "formula": rec.to_atoms().get_chemical_formula(),
        "n_atoms": rec.n_atoms, "cell_A": rec.cell.tolist(), "pbc": rec.pbc.tolist(),
        "basis": {e.symbol: e.spec() for e in rec.basis.elements}, "n_orbitals": rec.n_orbitals,
        "spinful": rec.spinful, "n_edges": rec.n_edges,
        "n_R": int(len(np.unique(rec.edge_R, axis=0))) if rec.n_edges else 0,
        "max_edge_length_A": float(rec.edge_lengths.max()) if rec.n_edges else None,
        "matrices": sorted(rec.blocks), "fermi_energy_eV": rec.fermi_energy_eV,
        "engine": record_settings(rec) or None, "metadata_keys": sorted(rec.metadata),
    }
