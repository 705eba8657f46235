"""Band check on a 4-8 atom structure with a heavy element, with and without SOC.

    .venv/bin/python benchmarks/engines/heavy_structure.py [--structure bi2|pbte8|cspbbr3]

Default: PbTe in the conventional rock-salt cell (8 atoms). Prints the max deviation (meV) between
bands from the stored H(R), S(R) (H0 and H) and GPAW's own eigenvalues at off-mesh k-points, and
the timings.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def structure(name: str):
    from ase import Atoms
    from ase.build import bulk
    if name == "pbte8":
        return bulk("PbTe", "rocksalt", a=6.46, cubic=True)
    if name == "cspbbr3":
        return Atoms("CsPbBr3", cell=np.eye(3) * 5.87, pbc=True,
                     scaled_positions=[[0, 0, 0], [.5, .5, .5], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]])
    if name == "bi4":
        return bulk("Bi", "sc", a=3.3).repeat((2, 2, 1))
    raise SystemExit(f"unknown structure {name}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--structure", default="pbte8")
    ap.add_argument("--no-soc", action="store_true")
    ap.add_argument("--set", action="append", default=[], help="engine setting KEY=VALUE")
    args = ap.parse_args()
    from nextham.engines.gpaw import GPAWEngine
    from nextham.physics.bands import eigenvalues

    settings = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    atoms = structure(args.structure)
    out = {"structure": args.structure, "formula": atoms.get_chemical_formula(), "n_atoms": len(atoms)}
    for soc in ([False] if args.no_soc else [False, True]):
        t = time.perf_counter()
        rec = GPAWEngine(**settings).compute(atoms, soc=soc)
        wall = time.perf_counter() - t
        md = rec.metadata
        k = np.array(md["check_kpoints"])
        errs = {}
        for name in ("H0", "H"):
            ref = np.array(md[f"check_eigenvalues_{name}_eV"])
            e, _ = eigenvalues(rec, k, which=name)
            errs[name] = float(1000 * np.abs(e[:, :ref.shape[1]] - ref).max())
        out["soc" if soc else "no_soc"] = {"max_err_meV": errs, "timings": md["timings"], "wall_s": wall,
                                           "method": md.get("method"), "bvk_mesh": md.get("bvk_mesh"), "scf_kpts": md["scf_kpts"],
                                           "n_orbitals": rec.n_orbitals, "n_edges": rec.n_edges,
                                           "realspace_residual": md["realspace_residual"],
                                           "fermi_energy_eV": rec.fermi_energy_eV}
        print(json.dumps(out, indent=1), flush=True)


if __name__ == "__main__":
    main()
