"""The NextHAM network: H0 irreps -> equivariant Transformer with TraceGrad -> dH blocks.

``model(batch)`` returns dH on exactly the batch's record edges, packed like ``batch.h0``, exactly
Hermitian (``dH_ji(-R) = dH_ij(R)^dagger``), equivariant under E(3) (with SU(2) on the spin index), atom
permutations and the choice of periodic images. See ``docs/model.md``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass

import torch
from e3nn import o3
from torch import nn

from ..basis.irreps import SlotLayout, to_e3nn_frame
from ..basis.orbitals import Basis
from ..blocks.record import StructureRecord
from ..graph import GraphBatch, build_graph, collate
from .attention import TransformerBlock
from .config import ModelConfig
from .contracts import IrrepsMismatchError, check_chain, check_declarations, expect_irreps, stage
from .layers import GaussianBasis, IrrepsLinear, fan_in_init, mlp
from .readout import BlockCodec, FactorizedOutputStatistics, OutputStatistics, ProductReadout
from .tracegrad import TraceGrad

log = logging.getLogger(__name__)


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class ModelOutput:
    """Result of a forward pass (packed arrays laid out like ``batch.h0``).

    delta : (K,) dH, real (spinless) or complex (spinful), exactly Hermitian.
    hamiltonian : (K,) ``batch.h0 + delta``.
    trace_pred : (T,) predicted ``tr(dH dH^dagger)`` per shell-pair sub-block (eV^2), or None.
    trace_target : (T,) the same from ``batch.h_target - batch.h0``, or None without a target.
    trace_edge : (T,) record edge (batch-global) of each shell-pair instance; ``trace_slot`` its slot id.
    variable_index : (K_out,) packed positions of the output edges' elements: ``delta`` is exactly 0,
        whatever the parameters, everywhere else (the loss prepares those elements once per structure).
    """

    delta: torch.Tensor
    hamiltonian: torch.Tensor
    trace_pred: torch.Tensor | None
    trace_target: torch.Tensor | None
    trace_edge: torch.Tensor
    trace_slot: torch.Tensor
    variable_index: torch.Tensor | None = None


@contextlib.contextmanager
def _e3nn_codegen():
    """Build e3nn modules as plain torch.fx code (no TorchScript): TorchScript's profiling executor
    re-optimises during the first calls and costs seconds per module on CPU. ``NEXTHAM_E3NN_JIT=1``
    keeps e3nn's default (scripted) code. Einsum contraction paths are optimised (about 1.4x faster
    training steps of the small preset on CPU, about twice the build time); ``NEXTHAM_E3NN_OPT=0`` skips
    that (fast builds, tests)."""
    import e3nn

    if os.environ.get("NEXTHAM_E3NN_JIT") == "1":
        yield
        return
    old = e3nn.get_optimization_defaults()
    e3nn.set_optimization_defaults(jit_script_fx=False, optimize_einsums=os.environ.get("NEXTHAM_E3NN_OPT", "1") != "0")
    try:
        yield
    finally:
        e3nn.set_optimization_defaults(**old)


class _Geometry:
    """Per-batch tensors shared by the sub-models."""

    def __init__(self, batch: GraphBatch, sh_irreps: o3.Irreps, rbf: GaussianBasis, cutoff: float, dtype):
        vec = batch.graph_vec.to(dtype)
        self.length = vec.norm(dim=1)
        self.sh = o3.spherical_harmonics(sh_irreps, to_e3nn_frame(vec), normalize=True, normalization="component")
        self.rbf = rbf(self.length)
        self.center, self.neighbour = batch.graph_index[0], batch.graph_index[1]
        self.mask = self.length <= cutoff
        onsite = batch.record_onsite
        self.off_edges = torch.nonzero(~onsite).reshape(-1)  # record edges that are graph edges
        self.on_edges = torch.nonzero(onsite).reshape(-1)
        self.off_graph = batch.record_graph[self.off_edges]
        self.on_atoms = batch.record_index[0, self.on_edges]
        order = torch.cat([self.off_edges, self.on_edges])
        self.unsort = torch.empty_like(order)
        self.unsort[order] = torch.arange(len(order), device=order.device)
        self.record_length = batch.record_length.to(dtype)


class NextHAMCore(nn.Module):
    """One network: embedding, ``num_blocks`` Transformer blocks with TraceGrad, readouts, trace heads.

    ``irreps_in = irreps_out`` = the layout's irreps (H0 in, dH out); ``hidden`` = node and edge features.
    """

    def __init__(self, cfg: ModelConfig, layout: SlotLayout):
        super().__init__()
        self.cfg = cfg
        H = o3.Irreps(cfg.hidden_irreps)
        self.hidden = H
        self.irreps_in = self.irreps_out = o3.Irreps(layout.irreps_string)
        sh = o3.Irreps.spherical_harmonics(cfg.sh_lmax)
        self.irreps_sh = sh
        n_scalar = sum(mul for mul, ir in H if ir == o3.Irrep("0e"))
        self.use_h0 = "h0" in cfg.input
        self.use_element = "element" in cfg.input
        if self.use_h0:
            self.embed_node = IrrepsLinear(layout.irreps_string, H, biases=True)
            self.embed_edge = IrrepsLinear(layout.irreps_string, H, biases=True)
        # every graph edge gets its distance (edges outside the H0 support would otherwise start at zero)
        self.edge_distance_mlp = mlp([cfg.num_rbf, cfg.radial_hidden, n_scalar])
        self.edge_distance = IrrepsLinear(f"{n_scalar}x0e", H)
        if self.use_element:
            self.element = nn.Embedding(119, cfg.element_dim)
            self.element_node = IrrepsLinear(f"{cfg.element_dim}x0e", H, biases=True)
            self.element_edge_mlp = mlp([2 * cfg.element_dim + cfg.num_rbf, cfg.radial_hidden, n_scalar])
            self.element_edge = IrrepsLinear(f"{n_scalar}x0e", H, biases=True)
        self.blocks = nn.ModuleList([
            TransformerBlock(H, sh, cfg.num_rbf, cfg.radial_hidden, cfg.num_heads, cfg.attn_hidden,
                             cfg.ffn_scalar_mult, cfg.edge_updates) for _ in range(cfg.num_blocks)])
        self.with_z = cfg.tracegrad or cfg.trace_head
        if self.with_z:
            def tg():
                return TraceGrad(H, cfg.tracegrad_z_dim, cfg.tracegrad_hidden, cfg.tracegrad_alpha,
                                 cfg.tracegrad_learn_alpha, update=cfg.tracegrad)
            self.tg_node = nn.ModuleList([tg() for _ in range(cfg.num_blocks)])
            self.tg_edge = nn.ModuleList([tg() for _ in range(cfg.num_blocks)])
        if cfg.trace_head:
            zin = cfg.num_blocks * cfg.tracegrad_z_dim
            self.trace_node = fan_in_init(mlp([zin, cfg.trace_hidden, cfg.trace_hidden, layout.n_slots]))
            self.trace_edge = fan_in_init(mlp([zin, cfg.trace_hidden, cfg.trace_hidden, layout.n_slots]))
        self.edge_from_center = IrrepsLinear(H, H)
        self.edge_from_neighbour = IrrepsLinear(H, H)
        self.readout_edge = ProductReadout(H, layout.irreps_string, cfg.readout_mul)
        self.readout_node = ProductReadout(H, layout.irreps_string, cfg.readout_mul)
        if cfg.zero_init_output:
            with torch.no_grad():
                for readout in (self.readout_edge, self.readout_node):
                    for w in readout.post.weights:
                        w.zero_()
        self.check_irreps()

    def check_irreps(self) -> None:
        """Walk the node and the edge features through the sub-modules in the order of :meth:`forward`;
        raise :class:`~nextham.nn.contracts.IrrepsMismatchError` naming the first module whose ``irreps_in``
        differs from what it receives."""
        where = "NextHAMCore"
        node, edge = f"{where} node features", f"{where} edge features"
        H = self.hidden
        scalars = lambda seq: f"{seq[-1].out_features}x0e"  # noqa: E731 (output of a radial/element MLP)
        # initial features: sums of embeddings, each must produce the hidden irreps
        check_chain(edge, [stage("edge_distance", self.edge_distance)], scalars(self.edge_distance_mlp), H,
                    "'edge_distance_mlp'")
        if self.use_h0:
            check_chain(node, [stage("embed_node", self.embed_node)], self.irreps_in, H, "the H0 irreps")
            check_chain(edge, [stage("embed_edge", self.embed_edge)], self.irreps_in, H, "the H0 irreps")
        if self.use_element:
            check_chain(node, [stage("element_node", self.element_node)], f"{self.element.embedding_dim}x0e", H,
                        "'element'")
            check_chain(edge, [stage("element_edge", self.element_edge)], scalars(self.element_edge_mlp), H,
                        "'element_edge_mlp'")
        x_stages, e_stages = [], []
        for k, block in enumerate(self.blocks):
            name = f"blocks.{k}"
            block.check_irreps()
            expect_irreps(where, name, self.irreps_sh, block.irreps_sh, "the spherical harmonics")
            x_stages.append(stage(name, block))
            e_stages.append((name, block.irreps_edge, block.irreps_edge))
            if self.with_z:
                x_stages.append(stage(f"tg_node.{k}", self.tg_node[k]))
                e_stages.append(stage(f"tg_edge.{k}", self.tg_edge[k]))
        x = check_chain(node, x_stages, H)
        e = check_chain(edge, e_stages, H)
        for name in ("edge_from_center", "edge_from_neighbour"):
            check_chain(node, [stage(name, getattr(self, name))], x, e)  # added to the edge features
        for readout in (self.readout_edge, self.readout_node):
            readout.check_irreps()
        check_chain(edge, [stage("readout_edge", self.readout_edge)], e, self.irreps_out)
        check_chain(node, [stage("readout_node", self.readout_node)], x, self.irreps_out)

    def forward(self, batch: GraphBatch, geo: _Geometry, x_in: torch.Tensor | None):
        """-> (out (E_r, layout.dim) irreps of dH / output_scale, trace (E_r, n_slots) or None)."""
        cfg = self.cfg
        n_nodes = len(batch.numbers)
        x = geo.rbf.new_zeros(n_nodes, self.hidden.dim)
        e = self.edge_distance(self.edge_distance_mlp(geo.rbf))
        if self.use_h0:
            pad = torch.cat([x_in, x_in.new_zeros(1, x_in.shape[1])])
            last = x_in.shape[0]
            x = x + self.embed_node(pad[torch.where(batch.node_self >= 0, batch.node_self, last)])
            e = e + self.embed_edge(pad[torch.where(batch.graph_record >= 0, batch.graph_record, last)])
        if self.use_element:
            emb = self.element(batch.numbers)
            x = x + self.element_node(emb)
            s = self.element_edge_mlp(torch.cat([emb[geo.center], emb[geo.neighbour], geo.rbf], dim=1))
            e = e + self.element_edge(s)
        z_nodes, z_edges = [], []
        for k, block in enumerate(self.blocks):
            x, e = block(x, e, geo.sh, geo.rbf, geo.center, geo.neighbour, geo.mask)
            if self.with_z:
                x, zx = self.tg_node[k](x)
                e, ze = self.tg_edge[k](e)
                z_nodes.append(zx)
                z_edges.append(ze)
        # readout on record edges only
        ge = geo.off_graph
        i, j = geo.center[ge], geo.neighbour[ge]
        f_edge = e[ge] + self.edge_from_center(x)[i] + self.edge_from_neighbour(x)[j]
        out = torch.cat([self.readout_edge(f_edge), self.readout_node(x[geo.on_atoms])])[geo.unsort]
        if cfg.envelope_gamma is not None:
            out = out * torch.exp(-cfg.envelope_gamma * geo.record_length)[:, None]
        trace = None
        if cfg.trace_head:
            zn, ze = torch.cat(z_nodes, dim=1), torch.cat(z_edges, dim=1)
            trace = torch.cat([self.trace_edge(ze[ge]), self.trace_node(zn[geo.on_atoms])])[geo.unsort]
        return out, trace


class NextHAMModel(nn.Module):
    """dH predictor for one orbital basis (every element of the data) and spin setting.

    Parameters
    ----------
    config : :class:`ModelConfig`.
    basis : the orbital basis of all elements the model may see; records must agree with it.
    spinful : whether H0/H are spinful (complex, spin-major).
    device : where the parameters live; default CUDA if available, else CPU. Batches are moved there.
    """

    def __init__(self, config: ModelConfig, basis: Basis, spinful: bool, device: str | torch.device | None = None):
        super().__init__()
        self.config = config
        self.basis = basis
        self.spinful = bool(spinful)
        self.layout = SlotLayout.from_basis(basis, self.spinful)
        self.codec = BlockCodec(self.layout)
        stats = FactorizedOutputStatistics if config.statistics == "factorized" else OutputStatistics
        self.statistics = stats(self.layout, basis)
        self.sh_irreps = o3.Irreps.spherical_harmonics(config.sh_lmax)
        self.rbf = GaussianBasis(config.num_rbf, config.rbf_max)
        windows = config.distance_windows or [None]
        self.windows = windows
        with _e3nn_codegen():
            self.cores = nn.ModuleList([NextHAMCore(config, self.layout) for _ in windows])
        self.irreps_in = self.irreps_out = self.codec.irreps_out
        self.check_irreps()
        self.to(default_device() if device is None else torch.device(device))
        log.info("NextHAM model: %s parameters (%d sub-model(s)), output irreps dim %d per edge",
                 f"{self.num_parameters():,}", len(self.cores), self.layout.dim)

    def check_irreps(self) -> None:
        """Check the irreps contracts of every sub-module (run when the model is built): each module of
        ``nextham.nn`` declares ``irreps_in``/``irreps_out``, the codec's H0 irreps feed every sub-model
        and every sub-model's output decodes with the codec. Raises
        :class:`~nextham.nn.contracts.IrrepsMismatchError` naming the module."""
        check_declarations(self)
        for k, core in enumerate(self.cores):
            try:
                core.check_irreps()
                check_chain("NextHAMModel", [stage(f"cores.{k}", core), stage("codec", self.codec)],
                            self.codec.irreps_out, self.irreps_out, "'codec'")
            except IrrepsMismatchError as err:
                raise IrrepsMismatchError(f"cores.{k}: {err}") from err

    # ------------------------------------------------------------------ info
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def summary(self) -> str:
        H = o3.Irreps(self.config.hidden_irreps)
        return (f"NextHAMModel: {self.num_parameters():,} parameters; hidden {H} (dim {H.dim}); "
                f"{self.config.num_blocks} blocks x {len(self.cores)} sub-model(s); "
                f"H0/dH irreps per edge: dim {self.layout.dim} ({len(self.layout.groups)} shell-pair types, "
                f"{self.layout.n_slots} slots, spinful={self.spinful})")

    def metadata(self) -> dict:
        """JSON-serialisable description to rebuild the model (config, basis, spin); store it beside the
        state dict in checkpoints."""
        return {"config": self.config.model_dump(mode="json"), "basis": self.basis.to_json(), "spinful": self.spinful}

    @classmethod
    def from_metadata(cls, meta: dict, device: str | torch.device | None = None) -> "NextHAMModel":
        """Inverse of :meth:`metadata` (fresh weights; load the state dict afterwards)."""
        return cls(ModelConfig.model_validate(meta["config"]), Basis.from_json(meta["basis"]), bool(meta["spinful"]),
                   device=device)

    @property
    def device(self) -> torch.device:
        return self.rbf.centers.device

    @property
    def dtype(self) -> torch.dtype:
        return self.rbf.centers.dtype

    @property
    def output_radius(self) -> float:
        """Å: the longest bond that receives dH (the end of the last distance window, else the cutoff);
        graphs hold output edges only up to it and every block beyond stays H0."""
        windows = self.config.distance_windows
        return float(max(hi for _, hi in windows)) if windows else float(self.config.cutoff)

    # ------------------------------------------------------------------ forward
    def check_batch(self, batch: GraphBatch) -> None:
        if batch.spinful != self.spinful:
            raise ValueError(f"batch spinful={batch.spinful}, model spinful={self.spinful}")
        for rec in batch.records:
            self.layout.check_basis(rec.basis)
            for e in rec.basis.elements:
                if e.symbol not in self.basis and self.config.statistics == "species_pair":
                    raise ValueError(f"element {e.symbol} is outside the model's basis ({', '.join(self.basis.symbols)}); "
                                     "only models with statistics='factorized' predict for unseen elements")
                if e.symbol in self.basis and self.basis[e.symbol].ls != e.ls:
                    raise ValueError(f"element {e.symbol}: record basis {e.spec()} differs from the model's "
                                     f"{self.basis[e.symbol].spec()}")

    def forward(self, batch: GraphBatch) -> ModelOutput:
        self.check_batch(batch)
        if batch.device != self.device:
            batch = batch.to(self.device)
        cfg = self.config
        dtype = self.dtype
        geo = _Geometry(batch, self.sh_irreps, self.rbf, cfg.cutoff, dtype)
        n_rec = batch.record_index.shape[1]
        x_in = None
        if "h0" in cfg.input:
            x_in = self.codec.encode(batch, batch.h0 * cfg.input_scale, n_rec, dtype)
        out, trace, inside = None, None, None
        for window, core in zip(self.windows, self.cores):
            o, t = core(batch, geo, x_in)
            if window is not None:
                w = ((geo.record_length >= window[0]) & (geo.record_length < window[1])).to(dtype)[:, None]
                o = o * w
                t = t * w if t is not None else None
                inside = w if inside is None else torch.maximum(inside, w)
            out = o if out is None else out + o
            trace = t if trace is None else (trace + t if t is not None else None)
        # statistics (eV): irreps of dH = output_scale * scale * out + shift, the shift within the windows
        scale, shift = self.statistics(batch)
        shift = shift if inside is None else shift * inside
        raw = self.codec.decode(batch, out * scale * cfg.output_scale + shift)
        delta = 0.5 * (raw + raw[batch.conj_index].conj())
        trace_edge, trace_slot = self.codec.pair_slots(batch)
        trace_pred = None if trace is None else trace[trace_edge, trace_slot] * cfg.output_scale ** 2
        trace_target = None
        if batch.h_target is not None:
            trace_target = self.codec.pair_sums(batch, batch.h_target - batch.h0)
        return ModelOutput(delta=delta, hamiltonian=batch.h0 + delta, trace_pred=trace_pred,
                           trace_target=trace_target, trace_edge=trace_edge, trace_slot=trace_slot,
                           variable_index=batch.pair_flat)

    @torch.no_grad()
    def fit_output_statistics(self, pairs) -> dict:
        """Fit :attr:`statistics` (output scale and shift per species pair, shell pair and irreps channel)
        on an iterable of ``(training batch, target dH packed like batch.h0)``; see
        :class:`~nextham.nn.readout.OutputStatistics`."""
        return self.statistics.fit(self.codec, pairs)

    def shell_pair_traces(self, batch: GraphBatch, packed: torch.Tensor) -> torch.Tensor:
        """``tr(B B^dagger)`` of every shell-pair sub-block of a packed array laid out like ``batch.h0``
        (e.g. a gauge-aligned ``H + mu S - H0``), in the order of ``ModelOutput.trace_pred``."""
        return self.codec.pair_sums(batch, packed)

    def extra_repr(self) -> str:
        return f"spinful={self.spinful}, basis={self.basis.to_json()}"


@torch.no_grad()
def predict_record(model: NextHAMModel, record: StructureRecord, cutoff: float | None = None) -> StructureRecord:
    """A copy of ``record`` whose ``H`` is ``H0 + dH`` predicted by ``model`` (numpy, record dtype)."""
    was_training = model.training
    model.eval()
    try:
        batch = collate([build_graph(record, model.config.cutoff if cutoff is None else cutoff,
                                     output_radius=model.output_radius)])
        out = model(batch)
    finally:
        model.train(was_training)
    H = out.hamiltonian.detach().cpu().numpy().astype(record.blocks["H0"].dtype, copy=False)
    return record.with_blocks(H=H)
