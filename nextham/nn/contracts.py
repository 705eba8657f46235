"""Irreps contracts: every network module declares ``irreps_in``/``irreps_out``; models check them when built.

As nequip's ``_init_irreps`` does, a composite module walks its sub-modules in the order data flows
through them and checks that each one's ``irreps_in`` equals the ``irreps_out`` it receives; a mismatch
raises :class:`IrrepsMismatchError` naming the module (its attribute path, e.g. ``blocks.1``). The check
runs in ``__init__``, so a wrong layer fails when the model is built, not as a shape error (or, worse,
silently mixed irreps of equal dimension) in the first forward pass.

Conventions: ``irreps_in``/``irreps_out`` are :class:`e3nn.o3.Irreps` of the module's main input and
output (e3nn's own modules use the same names). A module with further inputs declares them under other
names (``TransformerBlock.irreps_edge``, ``irreps_sh``). Pure scalar maps (radial MLPs of distances)
are plain ``torch.nn`` modules and need no declaration.
"""

from __future__ import annotations

from typing import Iterable

from e3nn import o3
from torch import nn

Stage = tuple[str, "o3.Irreps | str", "o3.Irreps | str"]
"""``(module name, irreps_in, irreps_out)`` of one step of a chain."""


class IrrepsMismatchError(ValueError):
    """A module receives features whose irreps differ from its declared ``irreps_in``."""


def stage(name: str, module: nn.Module) -> Stage:
    """The chain step of ``module`` from its declared ``irreps_in``/``irreps_out``."""
    missing = [a for a in ("irreps_in", "irreps_out") if not hasattr(module, a)]
    if missing:
        raise IrrepsMismatchError(f"module {name!r} ({type(module).__name__}) declares no {' or '.join(missing)}")
    return name, module.irreps_in, module.irreps_out


def expect_irreps(where: str, name: str, received: o3.Irreps | str, declared: o3.Irreps | str,
                  source: str = "its input") -> None:
    """Raise unless ``received == declared`` (both as :class:`o3.Irreps`)."""
    received, declared = o3.Irreps(received), o3.Irreps(declared)
    if received != declared:
        raise IrrepsMismatchError(f"{where}: module {name!r} declares irreps_in {declared} but receives "
                                  f"{received} from {source}")


def check_chain(where: str, stages: Iterable[Stage], irreps: o3.Irreps | str, irreps_out: o3.Irreps | str | None = None,
                source: str = "the input") -> o3.Irreps:
    """Walk ``stages`` in order from features of ``irreps``; every stage's ``irreps_in`` must equal the
    previous stage's ``irreps_out``, and the last one's must equal ``irreps_out`` where given. Returns the
    irreps after the last stage. ``where`` names the stream (e.g. ``"TransformerBlock node features"``)."""
    irreps = o3.Irreps(irreps)
    name = "(empty chain)"
    for name, stage_in, stage_out in stages:
        expect_irreps(where, name, irreps, stage_in, source)
        irreps, source = o3.Irreps(stage_out), repr(name)
    if irreps_out is not None and irreps != o3.Irreps(irreps_out):
        raise IrrepsMismatchError(f"{where}: module {name!r} declares irreps_out {irreps} but the output must be "
                                  f"{o3.Irreps(irreps_out)}")
    return irreps


def check_declarations(model: nn.Module, package: str = "nextham.nn") -> None:
    """Every sub-module of ``model`` whose class is defined in ``package`` declares ``irreps_in`` and
    ``irreps_out`` (so a new layer cannot skip the contract)."""
    for name, module in model.named_modules():
        if type(module).__module__.startswith(package):
            stage(name or type(module).__name__, module)
