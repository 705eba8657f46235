"""build_model in float64 is float64 throughout: the same weights as the float32 build of the seed, and
constants (e3nn's Wigner-3j buffers) computed in float64, so that equivariance holds to ~1e-15 whatever
torch's default dtype is."""

import torch

from nextham.models import build_model, is_derived_constant
from nextham.testing import assert_model_equivariant
from nextham.testing.equivariance import example_record


def test_float64_build_has_the_float32_weights_and_exact_constants():
    rec = example_record("gaas", spinful=True)
    torch.set_default_dtype(torch.float32)  # the default users run under (tests/conftest.py restores it)
    torch.manual_seed(0)
    single = build_model("nextham", "tiny", {"zero_init_output": False}, rec.basis, True, torch.float32)
    torch.manual_seed(0)
    double = build_model("nextham", "tiny", {"zero_init_output": False}, rec.basis, True, torch.float64).eval()
    drawn = dict(single.named_parameters())
    for name, p in double.named_parameters():
        assert p.dtype == torch.float64 and torch.equal(p, drawn[name].double())
    constants = [k for k in double.state_dict() if is_derived_constant(k)]
    assert constants and all(double.state_dict()[k].dtype == torch.float64 for k in constants)
    # the float32 constants differ from the exact ones by float32 rounding: a cast would keep those
    assert max((single.state_dict()[k].double() - double.state_dict()[k]).abs().max().item()
               for k in constants if double.state_dict()[k].numel()) > 1e-9
    errors = assert_model_equivariant(double, rec)  # default float64 tolerance, 1e-10
    assert max(errors.values()) < 1e-12
