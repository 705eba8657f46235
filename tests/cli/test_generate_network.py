"""`nextham generate` with Dask workers listens on loopback only and serves no dashboard by default."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
from ase.build import bulk
from ase.io import write


def test_no_socket_beyond_loopback(tmp_path):
    write(tmp_path / "si.cif", bulk("Si", "diamond", a=5.43))
    write(tmp_path / "si2.cif", bulk("Si", "diamond", a=5.5))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "nextham.cli.main", "generate", str(tmp_path / "si.cif"),
                             str(tmp_path / "si2.cif"), "--out", str(tmp_path / "d.lmdb"), "--engine", "toy",
                             "--set", "sleep=3", "--workers", "1", "--no-progress"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    listening = set()
    root = psutil.Process(proc.pid)
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline:
        try:
            for p in [root] + root.children(recursive=True):
                for con in p.net_connections(kind="inet"):
                    if con.status == psutil.CONN_LISTEN:
                        listening.add((con.laddr.ip, con.laddr.port))
        except psutil.Error:
            pass
        time.sleep(0.2)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert listening, "the Dask scheduler was never seen listening (did the run use Dask?)"
    assert all(ip in ("127.0.0.1", "::1") for ip, _ in listening), listening
    assert b"dashboard" not in err.lower()
