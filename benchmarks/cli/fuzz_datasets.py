"""Fuzz the commands that read datasets and records with seeded mutations, each in its own process.

Mutations of a dataset store (LMDB), of an HDF5 export of it and of a record file: truncation at a
random length, random bit flips (anywhere, or inside one record's stored bytes), a zeroed page,
appended garbage, NaN/inf written into a matrix, matrices and edge lists of the wrong shape or type,
missing datasets. Each mutated input is read by ``nextham info``, ``info --check`` (datasets),
``eig REF --k "0 0 0"`` and ``convert REF out.h5`` in a forked child process (the parent imports
nextham once), so a crash by signal (SIGBUS, SIGSEGV) is seen and counted, as is any exception that
is not a user error (the CLI's contract: exit status 0, 1 for ``--check`` findings, or 2 with one
``error:`` line).

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 .venv/bin/python benchmarks/cli/fuzz_datasets.py --cases 1000

Prints the counts as JSON; exit status 1 when any case crashed or raised an internal error.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np

KINDS_STORE = ("truncate", "flip_any", "flip_record", "zero_page", "append", "flip_many")
KINDS_H5 = ("truncate", "flip_any", "flip_many", "nan", "inf", "shape_S", "shape_H", "edges", "complex_S",
            "drop", "basis_attr", "positions_nan")


def build_inputs(root: Path) -> dict[str, Path]:
    """A three-record toy dataset, its HDF5 export and one record file."""
    from ase.build import bulk

    from nextham.blocks.h5io import write_record
    from nextham.data.generate import generate
    from nextham.data.store import DatasetStore
    from nextham.data.structures import StructureInput, structure_key

    inputs = []
    for i, (sym, a) in enumerate((("Si", 5.43), ("Si", 5.5), ("C", 3.57))):
        at = bulk(sym, "diamond", a=a)
        inputs.append(StructureInput(structure_key(at), f"s{i}", at, source=f"s{i}.cif"))
    ds = root / "base.lmdb"
    generate(inputs, ds, engine_name="toy", workers=0, progress=False, echo=lambda m: None)
    with DatasetStore(ds) as st:
        st.export_hdf5(root / "base_export.h5")
        write_record(root / "base_record.h5", st[0])
    return {"store": ds, "export": root / "base_export.h5", "record": root / "base_record.h5"}


def mutate_bytes(data: bytes, kind: str, rng: np.random.Generator, record_spans: list[tuple[int, int]]) -> bytes:
    b = bytearray(data)
    if kind == "truncate":
        return bytes(b[: int(rng.integers(0, len(b)))])
    if kind == "append":
        return bytes(b) + rng.bytes(int(rng.integers(1, 9000)))
    if kind == "zero_page":
        p = int(rng.integers(0, len(b) // 4096)) * 4096
        b[p:p + 4096] = bytes(min(4096, len(b) - p))
        return bytes(b)
    n = int(rng.integers(2, 64)) if kind == "flip_many" else 1
    for _ in range(n):
        if kind == "flip_record" and record_spans:
            start, stop = record_spans[int(rng.integers(len(record_spans)))]
            pos = int(rng.integers(start, stop))
        else:
            pos = int(rng.integers(0, len(b)))
        b[pos] ^= 1 << int(rng.integers(8))
    return bytes(b)


def mutate_h5(src: Path, dst: Path, kind: str, rng: np.random.Generator) -> None:
    """Structural mutations of a record file (valid HDF5, invalid record) or byte mutations."""
    import h5py

    if kind in ("truncate", "flip_any", "flip_many"):
        dst.write_bytes(mutate_bytes(src.read_bytes(), kind, rng, []))
        return
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        g = f["records"][sorted(f["records"])[int(rng.integers(len(f["records"])))]] if "records" in f else f

        def replace(name, value):
            del g[name]
            g[name] = value

        if kind in ("nan", "inf"):
            name = f"blocks/{rng.choice(sorted(g['blocks']))}"
            v = g[name][()]
            v[int(rng.integers(v.size))] = np.nan if kind == "nan" else np.inf
            replace(name, v)
        elif kind == "shape_S":
            v = g["blocks/S"][()]
            replace("blocks/S", v[: int(rng.integers(0, v.size))] if rng.random() < 0.7 else v.reshape(-1, 1))
        elif kind == "shape_H":
            v = g["blocks/H"][()]
            replace("blocks/H", np.concatenate([v, v[:int(rng.integers(1, 10))]]))
        elif kind == "edges":
            v = g["edge_index"][()]
            choice = rng.integers(4)
            if choice == 0:
                v[int(rng.integers(len(v))), int(rng.integers(2))] = int(rng.integers(-5, 50))
                replace("edge_index", v)
            elif choice == 1:
                replace("edge_index", v[:-1])
            elif choice == 2:
                replace("edge_R", g["edge_R"][()][:, :2])
            else:
                replace("edge_index", v.astype(np.float64) + 0.5)
        elif kind == "complex_S":
            replace("blocks/S", g["blocks/S"][()].astype(np.complex128) * 1j)
        elif kind == "drop":
            del g[str(rng.choice(["cell", "positions", "numbers", "edge_index", "blocks/S", "blocks"]))]
        elif kind == "basis_attr":
            g.attrs["basis"] = str(rng.choice(['{"Si": [[9, "s"]]}', "not json", '{"Xx": []}', "[]"]))
        elif kind == "positions_nan":
            v = g["positions"][()]
            v[0, 0] = np.nan
            replace("positions", v)


def commands(path: Path, kind: str, work: Path) -> list[list[str]]:
    out = str(work / "out.h5")
    if kind == "store" or kind == "export":
        ref = f"{path}@{0 if kind == 'export' else 1}"
        cmds = [["info", str(path)], ["eig", ref, "--k", "0 0 0"], ["convert", ref, out]]
        if kind == "store":
            cmds.append(["info", str(path), "--check"])
        return cmds
    return [["info", str(path)], ["eig", str(path), "--k", "0 0 0"], ["convert", str(path), out]]


def run_child(cmds: list[list[str]], work: Path) -> int:
    """In the forked child: run each command; 0 ok, 3 when any raised an internal error."""
    from typer.testing import CliRunner

    from nextham.cli.main import app

    runner = CliRunner()
    for args in cmds:
        out = work / "out.h5"
        if out.exists():
            out.unlink()
        res = runner.invoke(app, args)
        if res.exit_code not in (0, 1, 2) or (res.exception is not None and not isinstance(res.exception, SystemExit)):
            (work / "bug.txt").write_text(f"{args}\nexit {res.exit_code}\n{res.output}\n" + "".join(
                traceback.format_exception(res.exception)) if res.exception else res.output)
            return 3
        if res.exit_code == 2:
            lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
            if len(lines) != 1 or "Traceback" in res.output:
                (work / "bug.txt").write_text(f"{args}\nnot one error line:\n{res.output}")
                return 3
    return 0


def run_case(cmds: list[list[str]], work: Path, timeout: float) -> str:
    """'ok', 'internal-error', 'signal-<NAME>' or 'timeout'."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # child
        try:
            code = run_child(cmds, work)
        except BaseException:  # noqa: BLE001 - anything escaping the runner is an internal error
            (work / "bug.txt").write_text(traceback.format_exc())
            code = 3
        os._exit(code)
    t0 = time.time()
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.time() - t0 > timeout:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout"
        time.sleep(0.005)
    if os.WIFSIGNALED(status):
        return f"signal-{signal.Signals(os.WTERMSIG(status)).name}"
    return "ok" if os.WEXITSTATUS(status) == 0 else "internal-error"


def record_spans(store: Path) -> list[tuple[int, int]]:
    from nextham.data.store import DatasetStore

    raw = store.read_bytes()
    spans = []
    with DatasetStore(store) as st:
        for i in range(len(st)):
            blob = st.raw(i)
            p = raw.find(blob)
            if p >= 0:
                spans.append((p, p + len(blob)))
    return spans


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=1000, help="mutated inputs (all three kinds together)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per case")
    ap.add_argument("--keep", type=Path, default=None, help="copy inputs of failing cases here")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import nextham.cli.main  # noqa: F401 - import once in the parent, forked children reuse it

    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="nextham-fuzz-") as tmp:
        root = Path(tmp)
        base = build_inputs(root)
        spans = record_spans(base["store"])
        outcomes: Counter[str] = Counter()
        by_kind: Counter[str] = Counter()
        failures = []
        t0 = time.time()
        for case in range(args.cases):
            work = root / f"case{case}"
            work.mkdir()
            target = ("store", "export", "record")[case % 3]
            if target == "store":
                kind = str(rng.choice(KINDS_STORE))
                path = work / "data.lmdb"
                path.write_bytes(mutate_bytes(base["store"].read_bytes(), kind, rng, spans))
            else:
                kind = str(rng.choice(KINDS_H5))
                path = work / ("export.h5" if target == "export" else "record.h5")
                try:
                    mutate_h5(base[target], path, kind, rng)
                except (KeyError, ValueError, TypeError, OSError):  # mutation not applicable: plain bit flip
                    kind = "flip_any"
                    path.write_bytes(mutate_bytes(base[target].read_bytes(), kind, rng, []))
            by_kind[f"{target}:{kind}"] += 1
            result = run_case(commands(path, target, work), work, args.timeout)
            outcomes[result] += 1
            if result != "ok":
                bug = (work / "bug.txt").read_text()[-2000:] if (work / "bug.txt").exists() else ""
                failures.append({"case": case, "target": target, "kind": kind, "result": result, "detail": bug})
                if args.keep:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    shutil.copytree(work, args.keep / work.name, dirs_exist_ok=True)
            shutil.rmtree(work, ignore_errors=True)
        report = {"cases": args.cases, "seed": args.seed, "wall_s": round(time.time() - t0, 1),
                  "outcomes": dict(outcomes), "mutations": dict(sorted(by_kind.items())),
                  "uncaught_exceptions": outcomes["internal-error"],
                  "signals": sum(v for k, v in outcomes.items() if k.startswith("signal")),
                  "timeouts": outcomes["timeout"], "failures": failures[:20]}
    print(json.dumps(report, indent=1))
    return 0 if outcomes["ok"] == args.cases else 1


if __name__ == "__main__":
    sys.exit(main())
