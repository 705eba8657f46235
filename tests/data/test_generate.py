"""Generation: failures recorded with reasons, resume, kill -9 safety, nothing computed twice."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ase.build import bulk
from ase.io import write

from nextham.data import DatasetStore, dataset_info
from nextham.data.generate import generate
from nextham.data.structures import gather_inputs, prototype_set

SCRIPT = """
import sys
from nextham.data.generate import generate
from nextham.data.structures import prototype_set
if __name__ == "__main__":
    out, log, workers, sleep = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    generate(prototype_set(8, seed=11), out, engine_name="toy",
             engine_settings={"sleep": sleep, "log_file": log}, workers=workers, progress=False)
"""


def _bad_inputs(tmp_path: Path) -> list[str]:
    d = tmp_path / "in"
    d.mkdir()
    (d / "empty.cif").write_text("")
    (d / "junk.xyz").write_text("garbage\n")
    si = bulk("Si", "diamond", a=5.43)
    si.positions[1] = si.positions[0] + [0.1, 0, 0]
    write(d / "overlap.cif", si)
    write(d / "tc.cif", bulk("Tc", "hcp", a=2.74, c=4.4))
    write(d / "good.cif", bulk("Si", "diamond", a=5.43))
    return [str(d)]


def test_bad_inputs_recorded_and_run_continues(tmp_path, capsys):
    out = tmp_path / "ds.lmdb"
    msgs = []
    s = generate(gather_inputs(_bad_inputs(tmp_path)), out, engine_name="toy", workers=0, progress=False,
                 echo=msgs.append)
    assert s.computed == 1 and s.failed == 4
    text = "\n".join(msgs)
    for needle in ("empty file", "cannot read structure", "overlapping atoms", "Tc"):
        assert needle in text
    with DatasetStore(out) as st:
        reasons = " ".join(v["reason"] for v in st.failures().values())
        for needle in ("empty file", "cannot read structure", "overlapping atoms", "Tc"):
            assert needle in reasons
        assert len(st) == 1
    info = dataset_info(out)
    assert info["records"] == 1 and info["failed"] == 4 and info["mae_H_H0_meV"] > 0


def test_rerun_resumes_and_refuses_other_settings(tmp_path):
    out = tmp_path / "ds.lmdb"
    log = tmp_path / "log"
    inputs = prototype_set(5, seed=2)
    generate(inputs[:3], out, engine_name="toy", engine_settings={"log_file": str(log)}, workers=0, progress=False)
    s = generate(inputs, out, engine_name="toy", engine_settings={"log_file": str(log)}, workers=0, progress=False)
    assert s.skipped_done == 3 and s.computed == 2
    starts = [l.split()[1] for l in log.read_text().splitlines() if l.startswith("start")]
    assert len(starts) == len(set(starts)) == 5
    with pytest.raises(Exception, match="generated with"):
        generate(inputs, out, engine_name="toy", engine_settings={"log_file": str(log)}, h0_only=True,
                 workers=0, progress=False)


def _kill_and_resume(tmp_path, workers, sleep):
    out, log = tmp_path / "ds.lmdb", tmp_path / "compute.log"
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    args = [sys.executable, str(script), str(out), str(log), str(workers), str(sleep)]
    p = subprocess.Popen(args, start_new_session=True)
    t0 = time.time()
    while time.time() - t0 < 120:
        if out.exists():
            try:
                with DatasetStore(out) as st:
                    if len(st) >= 3:
                        break
            except Exception:
                pass
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)  # the driver and its workers, mid-run
    p.wait()
    with DatasetStore(out) as st:
        n_before = len(st)
        done_before = {st.key(i) for i in range(n_before)}
        st.validate()
    assert 3 <= n_before < 8
    lines_before = len(log.read_text().splitlines())
    subprocess.run(args, check=True, timeout=300)
    with DatasetStore(out) as st:
        assert st.validate()["records"] == 8
        keys = [st.key(i) for i in range(len(st))]
    assert len(set(keys)) == 8
    second = [l.split()[1] for l in log.read_text().splitlines()[lines_before:] if l.startswith("start")]
    assert not set(second) & done_before  # nothing committed is computed again
    assert len(second) == 8 - n_before


def test_kill9_then_rerun_serial(tmp_path):
    _kill_and_resume(tmp_path, workers=0, sleep=0.3)


@pytest.mark.slow
def test_kill9_then_rerun_dask(tmp_path):
    _kill_and_resume(tmp_path, workers=2, sleep=0.5)


@pytest.mark.slow
def test_kill9_with_gpaw_h0_only(tmp_path):
    pytest.importorskip("gpaw")
    out = tmp_path / "ds.lmdb"
    script = tmp_path / "run.py"
    script.write_text("""
import sys
from ase.build import bulk
from nextham.data.generate import generate
from nextham.data.structures import StructureInput
from nextham.structure.identity import structure_key
if __name__ == "__main__":
    items = []
    for i, a in enumerate([5.40, 5.43, 5.46, 5.49, 5.52]):
        at = bulk("Si", "diamond", a=a)
        items.append(StructureInput(structure_key(at), f"si{i}", at))
    generate(items, sys.argv[1], engine_name="gpaw", engine_settings={"h": 0.3, "check_kpoints": 1},
             h0_only=True, workers=0, progress=False)
""")
    args = [sys.executable, str(script), str(out)]
    p = subprocess.Popen(args, start_new_session=True)
    t0 = time.time()
    while time.time() - t0 < 300:
        if out.exists():
            try:
                with DatasetStore(out) as st:
                    if len(st) >= 2:
                        break
            except Exception:
                pass
        time.sleep(0.1)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    with DatasetStore(out) as st:
        st.validate()
    subprocess.run(args, check=True, timeout=600)
    with DatasetStore(out) as st:
        assert st.validate()["records"] == 5
        assert len({st.key(i) for i in range(5)}) == 5
