"""`nextham convert`: DFT data between ABACUS, DeepH (both formats), DeePTB, sisl and nextham records."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..errors import InputFileError, UsageError
from .errors import clear_errors

FROM_CHOICES = ("auto", "abacus", "deeph", "deeph-legacy", "deeptb", "nextham")
TO_CHOICES = ("nextham", "deeph", "deeph-legacy", "deeptb", "abacus", "tshs")


def register(app: typer.Typer) -> None:
    @app.command()
    @clear_errors
    def convert(
        src: str = typer.Argument(..., help="a structure (ABACUS, DeepH or DeePTB folder, nextham .h5), a folder of "
                                            "many, or dataset records DATASET@N / DATASET@A:B (DATASET alone: all)"),
        dst: Path = typer.Argument(..., help="output file (--to nextham or tshs, one structure) or folder"),
        from_: str = typer.Option("auto", "--from", help=f"input format: {', '.join(FROM_CHOICES)}"),
        to: str = typer.Option("nextham", "--to", help=f"output format: {', '.join(TO_CHOICES)}"),
        h0: Optional[Path] = typer.Option(None, "--h0", help="ABACUS get_hs folder (or, for a folder of many, the "
                                                             "root of a tree with the same layout) giving H0"),
        orbital_dir: List[Path] = typer.Option([], "--orbital-dir", help="where to find ABACUS .orb files (repeatable)"),
        overlap: Optional[Path] = typer.Option(None, "--overlap", help="ABACUS S file (srs1_nao.csr, ...) of the same "
                                                                       "structure, for a folder that holds H only"),
        abacus_format: str = typer.Option("legacy", "--abacus-format",
                                          help="--to abacus: 'legacy' (data-HR-sparse_SPIN*.csr, ABACUS <= 3.8) or "
                                               "'nao' (hrs1_nao.csr, srs1_nao.csr as ABACUS >= 3.9 writes them)"),
        jobs: int = typer.Option(0, "--jobs", "-j", help="parallel processes for a folder of many (0: one per CPU)"),
        force: bool = typer.Option(False, "--force", help="overwrite existing outputs"),
    ) -> None:
        """Convert DFT Hamiltonians between formats (eV, Å, nextham orbital order inside).

        A folder of many structures converts in parallel with a progress bar; structures that fail are
        skipped and listed with the reason (exit status 1 when any failed). Dataset records go into the
        folder DST as NNNNN-FORMULA(.h5); one record may go to a file. Existing outputs are kept unless
        --force; invalid records (NaN blocks, wrongly sized matrices) are never written.
        """
        from tqdm.auto import tqdm

        from ..io.batch import convert_many, find_structures, target_for
        from ..io.errors import FormatError
        from ..io.registry import FORMATS, detect_format

        from ..data.reference import is_reference

        if from_ not in FROM_CHOICES:
            raise FormatError(src, f"unknown --from {from_!r} (choose from {', '.join(FROM_CHOICES)})")
        if to not in TO_CHOICES:
            raise FormatError(dst, f"unknown --to {to!r} (choose from {', '.join(TO_CHOICES)})")
        if jobs < 0:
            raise UsageError(f"--jobs must be >= 0 (got {jobs})")
        if not dst.parent.exists():
            raise UsageError(f"{dst}: folder {dst.parent} does not exist (create it first)")
        if from_ in ("auto", "nextham") and is_reference(src):
            if h0 is not None:
                raise UsageError("--h0 applies to ABACUS/DeepH inputs, not to dataset records (they hold H0)")
            _convert_records(src, dst, to, force)
            return
        src = Path(src)
        if not src.exists():
            raise FormatError(src, "no such file or folder")
        from ..io.abacus import CSR_FORMATS

        if abacus_format not in CSR_FORMATS:
            raise FormatError(dst, f"unknown --abacus-format {abacus_format!r} (choose from {', '.join(CSR_FORMATS)})")
        options = {"orbital_dirs": [str(p) for p in orbital_dir]} if orbital_dir else {}
        if overlap is not None:
            options["overlap"] = str(overlap)
        write_options = {"csr_format": abacus_format} if to == "abacus" else {}
        single = FORMATS[from_].detect(src) if from_ != "auto" else _detects_any(src)
        if single:
            fmt = detect_format(src) if from_ == "auto" else from_
            _refuse_overwrite([dst], force)
            if fmt == "nextham":  # a damaged record is named as the input, before anything is written
                from ..data.reference import open_record

                open_record(src)
            from ..io.batch import convert_one
            out = convert_one(str(src), str(dst), fmt, to, str(h0) if h0 else None, options, write_options)
            if not out.ok:
                raise _Plain(out.message)
            typer.echo(f"{src} -> {dst} ({to}): {out.message} in {out.seconds:.2f} s")
            return
        if not src.is_dir():
            raise FormatError(src, "not a known format")
        found, unknown = find_structures(src, from_)
        if not found:
            raise FormatError(src, "no structures found (no ABACUS/DeepH folders or nextham records below it)")
        items = []
        for p in found:
            h0_p = None
            if h0 is not None:
                h0_p = str(h0 / p.relative_to(src))
            items.append((str(p), str(target_for(p, src, dst, to)), h0_p))
        _refuse_overwrite([Path(t) for _, t, _ in items], force)
        failures, n_ok = [], 0
        with tqdm(total=len(items), desc="converting", unit="structure", dynamic_ncols=True) as bar:
            for out in convert_many(items, from_, to, options, jobs=jobs, write_options=write_options):
                bar.update(1)
                if out.ok:
                    n_ok += 1
                else:
                    failures.append((out.source, out.message))
        failures += [(str(p), "skipped: holds files but no known format") for p in unknown]
        typer.echo(f"converted {n_ok} of {len(items)} structures into {dst} ({to})", err=True)
        if failures:
            typer.echo(f"{len(failures)} skipped:", err=True)
            for s, reason in sorted(failures):
                typer.echo(f"  {s}: {reason}", err=True)
            raise typer.Exit(1)


def _refuse_overwrite(targets: list[Path], force: bool) -> None:
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise UsageError(f"{existing[0]}: already exists{more}; pass --force to overwrite")


def _convert_records(src: str, dst: Path, to: str, force: bool) -> None:
    """Dataset records (DATASET@N, DATASET@A:B, DATASET) -> one file/folder each."""
    from ..data.reference import count_selected, resolve, validated
    from ..io.registry import write

    n = count_selected(src)
    single_file = n == 1 and to == "nextham" and dst.suffix in (".h5", ".hdf5")
    if not single_file:
        if dst.exists() and not dst.is_dir():
            raise UsageError(f"{dst}: exists and is not a folder ({n} records go into a folder)")
        if dst.suffix in (".h5", ".hdf5") and not dst.exists():
            raise UsageError(f"{dst}: {n} records go into a folder, not one .h5 file; give a folder name or "
                             f"select one record with {src}@N")
    written = 0
    for ref, rec in resolve(src, allow_slice=True):
        rec = validated(ref, rec)  # before anything is written
        if single_file:
            target = dst
        else:
            stem = f"{ref.index if ref.index is not None else 0:05d}-{rec.to_atoms().get_chemical_formula()}"
            target = dst / (stem + ".h5" if to == "nextham" else stem)
        _refuse_overwrite([target], force)
        if not single_file:
            dst.mkdir(exist_ok=True)
        write(rec, target, to)
        written += 1
        typer.echo(f"{ref.label} -> {target} ({to})", err=True)
    typer.echo(f"converted {written} records into {dst} ({to})")


def _detects_any(path: Path) -> bool:
    from ..io.registry import FORMATS

    return any(f.detect(path) for f in FORMATS.values())


class _Plain(InputFileError):
    """A message that already names its file."""
