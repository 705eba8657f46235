"""A small sample of benchmarks/cli/fuzz_datasets.py (the full run has >= 1000 cases): mutated
datasets, exports and records read by info/eig/convert in forked processes give no signal and no
internal error."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "cli" / "fuzz_datasets.py"


def test_fuzz_sample(capsys):
    spec = importlib.util.spec_from_file_location("fuzz_datasets", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    code = mod.main(["--cases", "18", "--seed", "7", "--timeout", "120"])
    report = json.loads(capsys.readouterr().out)
    assert report["signals"] == 0 and report["uncaught_exceptions"] == 0 and report["timeouts"] == 0, report
    assert code == 0 and report["outcomes"] == {"ok": 18}
