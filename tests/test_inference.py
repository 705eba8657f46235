"""Inference: predictions under no_grad equal those with autograd on, and no autograd graph is built."""

import numpy as np
import pytest
import torch

from nextham.inference import TrainedModel, predict_records
from nextham.models import batch_functions, build_model, model_hamiltonian
from nextham.testing.toy import two_centre_record
from nextham.testing.torch_fixtures import float64_single_thread  # noqa: F401


@pytest.mark.parametrize("spinful", [False, True])
def test_no_grad_prediction_equals_autograd_and_builds_no_graph(spinful, tmp_path):
    rec = two_centre_record(3, spinful=spinful)
    torch.manual_seed(0)
    model = build_model("nextham", "tiny", {"cutoff": 4.2, "output_scale": 0.1}, rec.basis, spinful, torch.float64)
    with torch.no_grad():  # the readout starts at zero: perturb every weight so the correction is not trivial
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.eval()
    build, collate = batch_functions("nextham", 4.2, torch.float64)
    trained = TrainedModel(model, {}, build, collate, torch.device("cpu"), tmp_path / "none.pt")

    seen = []
    hook = model.register_forward_hook(lambda mod, args, out: seen.append(out.hamiltonian))
    pred = predict_records(trained, [rec])[0]
    hook.remove()
    assert len(seen) == 1 and seen[0].grad_fn is None and not seen[0].requires_grad

    batch = collate([build(rec.replace(blocks={k: v for k, v in rec.blocks.items() if k != "H"}))])
    with torch.enable_grad():
        ref = model_hamiltonian(model(batch), batch)
    assert ref.grad_fn is not None  # with autograd on the same forward pass builds a graph
    ref = ref.detach().numpy()
    assert np.abs(ref - rec.blocks["H0"]).max() > 1e-4  # the model changes H0
    np.testing.assert_allclose(pred.blocks["H"], ref, rtol=0, atol=1e-12)
    assert pred.blocks["H"].dtype == (np.complex128 if spinful else np.float64)
