"""The built-in example used by `nextham demo --builtin`: bands and DOS of an analytic Si model."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def run_builtin_example(out_dir: Path) -> dict:
    """Build the sp3s* Si record (with and without SOC), write it, plot bands and DOS; return numbers."""
    from ..analysis.plots import plot_bands, plot_dos
    from ..blocks.h5io import write_record
    from ..physics.bands import band_structure, eigenvalues
    from ..physics.dos import fermi_level, gaussian_dos
    from ..physics.kpoints import high_symmetry_path, monkhorst_pack
    from ..tightbinding import silicon_vogl

    out_dir.mkdir(parents=True, exist_ok=True)
    rec, rec_soc = silicon_vogl(), silicon_vogl(spinful=True)
    grid = monkhorst_pack((12, 12, 12), shift=True)
    eps, _ = eigenvalues(rec, grid)
    ef = fermi_level(eps, rec.metadata["n_electrons"], sigma=0.01)
    rec = rec.replace(fermi_energy_eV=ef)
    rec_soc = rec_soc.replace(fermi_energy_eV=ef)
    write_record(out_dir / "si_sp3s.h5", rec)
    write_record(out_dir / "si_sp3s_soc.h5", rec_soc)
    path = high_symmetry_path(rec.to_atoms())
    b = band_structure(rec, path=path, label="sp3s* Si")
    b_soc = band_structure(rec_soc, path=path, label="sp3s* Si + SOC")
    plot_bands([b, b_soc], out_dir / "bands.png", title="Si, sp3s* (Vogl et al. 1983)")
    energies = np.linspace(eps.min() - 1, eps.max() + 1, 600)
    plot_dos(energies, {"sp3s* Si": gaussian_dos(eps, energies, sigma=0.15)}, out_dir / "dos.png", fermi=ef)
    vbm = np.nanmax(np.where(eps <= ef, eps, -np.inf))
    cbm = np.nanmin(np.where(eps > ef, eps, np.inf))
    return {"fermi_energy_eV": ef, "band_gap_eV_on_12x12x12": float(cbm - vbm),
            "files": [str(out_dir / n) for n in ("si_sp3s.h5", "si_sp3s_soc.h5", "bands.png", "dos.png")]}
