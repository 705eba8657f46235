"""The demo workflow end to end on the toy engine (seconds): dataset -> training -> held-out report,
and a rerun that reuses every finished stage."""

import json

from nextham.workflows.demo import DemoSettings, run_demo


def test_demo_runs_and_a_rerun_reuses_finished_work(tmp_path):
    s = DemoSettings(per_material=2, epochs=1, engine="toy", engine_settings={}, soc=False, workers=0,
                     k_mesh=(2, 2, 2))
    lines = []
    summary = run_demo(tmp_path, s, log=lines.append, device="cpu")
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["n_structures"] == 1 and report["split"] == "test"
    assert summary["ratio"] == report["ratio_model_over_h0"]["gauge"]
    assert (tmp_path / "bands_DFT_H0_predicted.png").stat().st_size > 1000
    lines.clear()
    run_demo(tmp_path, s, log=lines.append, device="cpu")
    text = "\n".join(lines)
    assert "computed 0, reused 6" in text and "training already finished" in text and "report up to date" in text
