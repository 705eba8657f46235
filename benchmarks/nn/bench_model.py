"""Speed and memory of the NextHAM network against a plain e3nn tensor-product message-passing baseline.

For each preset and structure: forward (inference, ``torch.no_grad``) and forward+backward (training
step without the optimizer) wall time, peak memory, graph edges per second, and the same numbers for a
baseline of the same hidden irreps, spherical harmonics and depth (NequIP-style: per layer one 'uvu'
tensor product of neighbour features with Y(r) weighted by a radial MLP, sum over neighbours, linear,
gate), H0 embedding and product readout included so that both produce dH. Each case runs in a fresh
process so that peak RSS (CPU) is per case; on CUDA peak memory is ``max_memory_allocated``.

Usage::

    python benchmarks/nn/bench_model.py --presets tiny small --structures si2 si64 [--spinful] [--device cuda]

Prints one JSON document (a list of cases) on stdout.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def make_record(name: str, spinful: bool, record_cutoff: float):
    import numpy as np
    from ase.build import bulk

    from nextham.basis import Basis
    from nextham.testing.equivariance import synthetic_record

    if name == "si2":
        atoms = bulk("Si", "diamond", a=5.43)
    elif name == "si64":
        atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 2, 2))
    else:
        raise ValueError(name)
    atoms.positions += np.random.default_rng(0).normal(scale=0.03, size=atoms.positions.shape)
    return synthetic_record(atoms, Basis.from_specs({"Si": "2s2p1d"}), spinful=spinful, cutoff=record_cutoff, rng=0)


def build_baseline(cfg, model):
    """Plain e3nn message passing with the same hidden irreps / sh / depth, sharing the model's codec."""
    import torch
    from e3nn import o3
    from e3nn.nn import Gate
    from torch import nn

    from nextham.nn.attention import uvu_paths
    from nextham.nn.layers import mlp
    from nextham.nn.readout import ProductReadout

    H = o3.Irreps(cfg.hidden_irreps)
    SH = o3.Irreps.spherical_harmonics(cfg.sh_lmax)
    layout = model.layout

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            mid, ins = uvu_paths(H, SH)
            self.tp = o3.TensorProduct(H, SH, mid, ins, shared_weights=False, internal_weights=False)
            self.radial = mlp([cfg.num_rbf, cfg.radial_hidden, cfg.radial_hidden, self.tp.weight_numel])
            scalars = o3.Irreps([(m, ir) for m, ir in H if ir.l == 0])
            gated = o3.Irreps([(m, ir) for m, ir in H if ir.l > 0])
            self.gate = Gate(scalars, [torch.nn.functional.silu if ir.p == 1 else torch.tanh for _, ir in scalars],
                             f"{gated.num_irreps}x0e", [torch.sigmoid], gated)
            self.lin = o3.Linear(o3.Irreps(mid), self.gate.irreps_in)
            self.self_lin = o3.Linear(H, H)

        def forward(self, x, sh, rbf, center, nbr):
            msg = self.tp(x[nbr], sh, self.radial(rbf))
            agg = torch.zeros(x.shape[0], msg.shape[1], dtype=x.dtype).index_add(0, center, msg)
            return self.self_lin(x) + self.gate(self.lin(agg))

    class Baseline(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = o3.Linear(layout.irreps_string, H, biases=True)
            self.layers = nn.ModuleList([Layer() for _ in range(cfg.num_blocks)])
            self.readout_edge = ProductReadout(H, layout.irreps_string, cfg.readout_mul)
            self.readout_node = ProductReadout(H, layout.irreps_string, cfg.readout_mul)

        def forward(self, batch):
            from nextham.basis.irreps import to_e3nn_frame

            vec = batch.graph_vec.to(torch.get_default_dtype())
            sh = o3.spherical_harmonics(SH, to_e3nn_frame(vec), True, normalization="component")
            rbf = model.rbf(vec.norm(dim=1))
            n_rec = batch.record_index.shape[1]
            x_in = model.codec.encode(batch, batch.h0, n_rec, vec.dtype)
            x = self.embed(x_in[batch.node_self])
            center, nbr = batch.graph_index
            for layer in self.layers:
                x = layer(x, sh, rbf, center, nbr)
            onsite = batch.record_onsite
            i, j = batch.record_index
            out = torch.where(onsite[:, None], self.readout_node(x[i]), self.readout_edge(x[i] + x[j]))
            return model.codec.decode(batch, out)

    return Baseline()


def run_case(preset: str, structure: str, spinful: bool, device: str, repeats: int, threads: int,
             record_cutoff: float, queue) -> None:
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(threads)
    torch.set_default_dtype(torch.float32)
    from nextham.graph import build_graph, collate
    from nextham.nn import ModelConfig, NextHAMModel
    from nextham.nn.model import _e3nn_codegen

    rec = make_record(structure, spinful, record_cutoff)
    cfg = ModelConfig.preset(preset)
    batch = collate([build_graph(rec, cfg.cutoff)]).to(device)
    model = NextHAMModel(cfg, rec.basis, spinful, device=device)
    with _e3nn_codegen():
        base = build_baseline(cfg, model).to(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    result = dict(preset=preset, structure=structure, spinful=spinful, device=device, threads=threads,
                  atoms=rec.n_atoms, record_edges=rec.n_edges, graph_edges=int(batch.graph_index.shape[1]),
                  params=model.num_parameters(), baseline_params=sum(p.numel() for p in base.parameters()))

    def timed(fn):
        fn()  # warm-up
        sync()
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            sync()
            ts.append(time.perf_counter() - t)
        return min(ts)

    def fwd(m):
        def f():
            with torch.no_grad():
                out = m(batch)
            return out
        return f

    def fwd_bwd(m):
        def f():
            out = m(batch)
            delta = out.delta if hasattr(out, "delta") else out
            loss = delta.abs().pow(2).sum()
            if hasattr(out, "trace_pred") and out.trace_pred is not None:
                loss = loss + out.trace_pred.sum()
            loss.backward()
            m.zero_grad(set_to_none=True)
        return f

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for tag, m in (("nextham", model), ("baseline", base)):
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        result[f"{tag}_forward_s"] = timed(fwd(m))
        result[f"{tag}_fwd_bwd_s"] = timed(fwd_bwd(m))
        if device.startswith("cuda"):
            result[f"{tag}_peak_mem_MiB"] = torch.cuda.max_memory_allocated() / 2 ** 20
        else:  # process peak RSS so far (baseline runs second, so its number is an upper bound)
            result[f"{tag}_peak_rss_MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result[f"{tag}_fwd_bwd_edges_per_s"] = result["graph_edges"] / result[f"{tag}_fwd_bwd_s"]
    result["rss_before_MiB"] = rss0
    result["ratio_fwd"] = result["nextham_forward_s"] / result["baseline_forward_s"]
    result["ratio_fwd_bwd"] = result["nextham_fwd_bwd_s"] / result["baseline_fwd_bwd_s"]
    queue.put(result)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["tiny", "small"])
    ap.add_argument("--structures", nargs="+", default=["si2", "si64"])
    ap.add_argument("--spinful", action="store_true")
    ap.add_argument("--device", default="cuda" if _cuda() else "cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--record-cutoff", type=float, default=7.0, help="Å, extent of the synthetic H0 support")
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    results = []
    for preset in args.presets:
        for structure in args.structures:
            q = ctx.Queue()
            p = ctx.Process(target=run_case, args=(preset, structure, args.spinful, args.device, args.repeats,
                                                   args.threads, args.record_cutoff, q))
            p.start()
            p.join()
            if p.exitcode != 0:
                results.append(dict(preset=preset, structure=structure, error=f"exit code {p.exitcode}"))
            else:
                results.append(q.get())
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(json.dumps(results, indent=1))


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
