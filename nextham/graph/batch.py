"""Records -> tensors: message-passing graph, shell-pair index arrays and packed matrices.

Three edge lists:

* **record edges**: the record's whole ``(i, j, R)`` list. ``h0``, ``h_target``, ``overlap`` and the
  model's dH are packed over all of them (the record's own layout), so the Bloch sums see every block.
* **output edges** (``E_r``, fields ``record_*``): the record edges within ``output_radius`` (Å, the
  model's cutoff by default), self-loops included, closed under ``(i, j, R) -> (j, i, -R)``. Only these
  carry features and receive dH; every block beyond stays exactly H0 (dH = 0) and costs nothing.
  ``output_edge[e]`` is the record edge of output edge ``e``.
* **graph edges** (``E_g``): off-site ``(i, j, R)`` for message passing and edge features: the off-site
  output edges and all neighbours within ``cutoff``. ``graph_record[g]`` is the output edge of a graph
  edge (-1 where the record holds no block there); ``record_graph[e]`` the reverse (-1 for self-loops,
  whose features are the node features).

Shell pairs: every output-edge block splits into (l1, l2) sub-blocks, one per (shell a of atom i, shell
b of atom j). They are grouped by ``(l1, l2)``; a group holds, per instance, the output edge, the
shells' ``zeta`` (index among the element's shells of equal l, see
:class:`nextham.basis.irreps.SlotLayout`) and the packed positions of its elements in the record's
layout (``(P, rows, cols)``, spin-major for spinful). Together the groups cover every packed element of
the output edges exactly once (``pair_flat`` lists their concatenation).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch
from ase.data import chemical_symbols

from ..basis.irreps import shell_zetas
from ..blocks.layout import unique_edges
from ..blocks.record import RecordError, StructureRecord

DEFAULT_CUTOFF = 8.0
"""Å, message-passing cutoff."""


@dataclass
class PairGroup:
    """All (l1, l2) shell-pair sub-blocks of a structure or batch.

    edge : (P,) int64 record edge.   z1, z2 : (P,) int64 shell zetas.
    index : (P, rows, cols) int64 packed positions in ``h0``'s layout (rows/cols doubled, spin-major, if spinful).
    """

    edge: torch.Tensor
    z1: torch.Tensor
    z2: torch.Tensor
    index: torch.Tensor

    def to(self, device) -> "PairGroup":
        return PairGroup(*(getattr(self, f.name).to(device) for f in fields(self)))


@dataclass
class GraphData:
    """One structure as tensors (cpu). Shapes: N atoms, E_g graph edges, E_r output edges, K packed values.

    numbers (N,) int64; graph_index (2, E_g) int64 rows (i, j) — features of edge (i, j, R) are
    aggregated into atom i; graph_vec (E_g, 3) Å ``pos_j + R @ cell - pos_i`` (nextham frame);
    graph_record (E_g,) int64 output edge of each graph edge or -1; output_edge (E_r,) int64 record edge
    of each output edge; record_index (2, E_r) int64; record_graph (E_r,) int64;
    record_length (E_r,) Å; record_onsite (E_r,) bool; node_self (N,) output edge of the self-loop or -1;
    pairs {(l1, l2): PairGroup}; h0, h_target (K,) float64 / complex128 (h_target may be None);
    overlap (K_S,) float64 packed S (spinless); conj_index (K,) int64: packed position of the element of
    the Hermitian partner, ``H[k] == conj(H[conj_index[k]])`` for a Hermitian matrix.
    """

    record: StructureRecord
    cutoff: float
    numbers: torch.Tensor
    graph_index: torch.Tensor
    graph_vec: torch.Tensor
    graph_record: torch.Tensor
    output_edge: torch.Tensor
    record_index: torch.Tensor
    record_graph: torch.Tensor
    record_length: torch.Tensor
    record_onsite: torch.Tensor
    node_self: torch.Tensor
    pairs: dict[tuple[int, int], PairGroup]
    h0: torch.Tensor
    h_target: torch.Tensor | None
    overlap: torch.Tensor | None
    conj_index: torch.Tensor

    @property
    def spinful(self) -> bool:
        return self.record.spinful

    @property
    def n_atoms(self) -> int:
        return len(self.numbers)


def _neighbours(record: StructureRecord, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from ase.neighborlist import primitive_neighbor_list

    i, j, S = primitive_neighbor_list("ijS", record.pbc, record.cell, record.positions, cutoff,
                                      self_interaction=False)
    return i.astype(np.int64), j.astype(np.int64), S.astype(np.int64)


def _pair_groups(record: StructureRecord, output_edge: np.ndarray) -> dict[tuple[int, int], dict[str, np.ndarray]]:
    """Shell-pair index arrays of the record edges ``output_edge``, vectorized over edges (loops over
    element pairs and shell pairs only); ``edge`` holds positions in ``output_edge``."""
    f = 2 if record.spinful else 1
    off = record.block_offsets("H0" if "H0" in record.blocks else "H")
    Z = record.numbers
    ei, ej = record.edge_index[output_edge].T
    groups: dict[tuple[int, int], dict[str, list]] = {}
    species = np.unique(Z)
    for zi in species:
        bi = record.basis[chemical_symbols[zi]]
        for zj in species:
            bj = record.basis[chemical_symbols[zj]]
            edges = np.flatnonzero((Z[ei] == zi) & (Z[ej] == zj))
            if len(edges) == 0:
                continue
            ni, nj = bi.norb, bj.norb
            base = off[output_edge[edges]]
            for la, za, oa in zip(bi.ls, shell_zetas(bi.ls), bi.shell_offsets):
                for lb, zb, ob in zip(bj.ls, shell_zetas(bj.ls), bj.shell_offsets):
                    d1, d2 = 2 * la + 1, 2 * lb + 1
                    s = np.arange(f)
                    rows = (s[:, None] * ni + oa + np.arange(d1)[None]).reshape(-1)  # (f d1,) spin-major
                    cols = (s[:, None] * nj + ob + np.arange(d2)[None]).reshape(-1)
                    local = rows[:, None] * (f * nj) + cols[None, :]
                    g = groups.setdefault((la, lb), {"edge": [], "z1": [], "z2": [], "index": []})
                    g["edge"].append(edges)
                    g["z1"].append(np.full(len(edges), za))
                    g["z2"].append(np.full(len(edges), zb))
                    g["index"].append(base[:, None, None] + local[None])
    out = {}
    for key in sorted(groups):
        g = groups[key]
        out[key] = {k: np.concatenate(v).astype(np.int64) for k, v in g.items()}
    return out


def build_graph(record: StructureRecord, cutoff: float = DEFAULT_CUTOFF,
                output_radius: float | None = None) -> GraphData:
    """Tensors of one record (needs ``H0``): graph within ``cutoff`` (Å), output edges within
    ``output_radius`` (Å; default ``cutoff``). See the module docstring."""
    if "H0" not in record.blocks:
        raise RecordError("build_graph needs the record's H0 blocks (the model's input)")
    radius = cutoff if output_radius is None else output_radius
    n = record.n_atoms
    lengths = record.edge_lengths
    output_edge = np.flatnonzero(lengths <= radius + 1e-9)  # partners have equal lengths: closed
    out_i, out_j = record.edge_index[output_edge].T
    out_R = record.edge_R[output_edge]
    onsite = record.onsite_mask[output_edge]
    # graph edges: union of off-site output edges and cutoff neighbours
    ni, nj, nS = _neighbours(record, cutoff)
    off_e = np.flatnonzero(~onsite)
    gi = np.concatenate([out_i[off_e], ni])
    gj = np.concatenate([out_j[off_e], nj])
    gR = np.concatenate([out_R[off_e], nS])
    first = np.sort(unique_edges(gi, gj, gR)[0])  # output edges first, then the extra neighbours
    gi, gj, gR = gi[first], gj[first], gR[first]
    graph_record = np.full(len(gi), -1, np.int64)
    graph_record[: len(off_e)] = off_e  # the first len(off_e) entries are the (unique) output edges
    record_graph = np.full(len(output_edge), -1, np.int64)
    record_graph[off_e] = np.arange(len(off_e))
    vec = record.positions[gj] + gR @ record.cell - record.positions[gi]
    if len(vec) and np.min(np.linalg.norm(vec, axis=1)) < 1e-8:
        raise RecordError("two atoms coincide (an off-site edge has zero length)")
    node_self = np.full(n, -1, np.int64)
    node_self[out_i[onsite]] = np.flatnonzero(onsite)

    groups = _pair_groups(record, output_edge)
    cover = np.concatenate([g["index"].reshape(-1) for g in groups.values()]) if groups else np.zeros(0, np.int64)
    n_out = int(np.diff(record.block_offsets("H0"))[output_edge].sum())
    if len(cover) != n_out or len(np.unique(cover)) != n_out:
        raise RecordError("internal error: shell pairs do not cover the output blocks exactly once")

    t = torch.from_numpy
    return GraphData(
        record=record,
        cutoff=float(cutoff),
        numbers=t(record.numbers.copy()),
        graph_index=t(np.stack([gi, gj]).astype(np.int64)),
        graph_vec=t(vec.astype(np.float64)),
        graph_record=t(graph_record),
        output_edge=t(output_edge.astype(np.int64)),
        record_index=t(np.stack([out_i, out_j]).astype(np.int64)),
        record_graph=t(record_graph),
        record_length=t(lengths[output_edge].astype(np.float64)),
        record_onsite=t(onsite.copy()),
        node_self=t(node_self),
        pairs={k: PairGroup(t(v["edge"]), t(v["z1"]), t(v["z2"]), t(v["index"])) for k, v in groups.items()},
        h0=t(np.ascontiguousarray(record.blocks["H0"])),
        h_target=t(np.ascontiguousarray(record.blocks["H"])) if "H" in record.blocks else None,
        overlap=t(np.ascontiguousarray(record.blocks["S"])) if "S" in record.blocks else None,
        conj_index=t(record.partner_index("H0")),
    )


@dataclass
class GraphBatch:
    """Several structures concatenated (fields as in :class:`GraphData`, indices offset).

    Extra fields: ``record_batch`` (E_r,) structure of each record edge; ``node_ptr``, ``record_ptr``
    (B+1,) boundaries;
    ``packed_ptr`` (B+1,) segments of ``h0``/``h_target``/``delta``; ``overlap_ptr`` (B+1,) segments of
    ``overlap``; ``structure_of_element`` (K,) structure of each packed value; ``pair_flat`` (K_out,)
    packed position of every value of the concatenation of the groups (sorted ``(l1, l2)``, each
    ``(P, rows, cols)`` row-major): scattering them there (zeros elsewhere) gives the packed layout;
    ``output_edge`` the record edge of each output edge, offset by the batch's record-edge count;
    ``records`` the source records.
    """

    records: list[StructureRecord]
    spinful: bool
    cutoff: float
    numbers: torch.Tensor
    graph_index: torch.Tensor
    graph_vec: torch.Tensor
    graph_record: torch.Tensor
    output_edge: torch.Tensor
    record_index: torch.Tensor
    record_graph: torch.Tensor
    record_length: torch.Tensor
    record_onsite: torch.Tensor
    record_batch: torch.Tensor
    node_self: torch.Tensor
    pairs: dict[tuple[int, int], PairGroup]
    pair_flat: torch.Tensor
    h0: torch.Tensor
    h_target: torch.Tensor | None
    overlap: torch.Tensor | None
    conj_index: torch.Tensor
    node_ptr: torch.Tensor
    record_ptr: torch.Tensor
    packed_ptr: torch.Tensor
    overlap_ptr: torch.Tensor | None
    structure_of_element: torch.Tensor

    @property
    def num_structures(self) -> int:
        return len(self.records)

    @property
    def device(self) -> torch.device:
        return self.h0.device

    def to(self, device) -> "GraphBatch":
        """A copy with every tensor on ``device`` (records stay numpy)."""
        changes: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                changes[f.name] = v.to(device)
            elif f.name == "pairs":
                changes[f.name] = {k: g.to(device) for k, g in v.items()}
        return replace(self, **changes)

    def segment(self, values: torch.Tensor, b: int) -> torch.Tensor:
        """Structure ``b``'s part of a packed array laid out like ``h0`` (e.g. ``delta``)."""
        return values[int(self.packed_ptr[b]): int(self.packed_ptr[b + 1])]


def _ptr(sizes: list[int]) -> torch.Tensor:
    return torch.tensor(np.concatenate([[0], np.cumsum(sizes)]), dtype=torch.int64)


def _shift(x: torch.Tensor, by: int) -> torch.Tensor:
    """Add ``by`` to the non-negative entries (keeps -1 markers)."""
    return torch.where(x >= 0, x + by, x)


def collate(items: list[GraphData]) -> GraphBatch:
    """Concatenate graphs of several structures (all spinless or all spinful) into one batch."""
    if not items:
        raise ValueError("collate needs at least one graph")
    spinful = {g.spinful for g in items}
    if len(spinful) != 1:
        raise ValueError("cannot batch spinless and spinful structures together")
    node_ptr = _ptr([g.n_atoms for g in items])
    graph_ptr = _ptr([g.graph_index.shape[1] for g in items])
    record_ptr = _ptr([g.record_index.shape[1] for g in items])
    packed_ptr = _ptr([len(g.h0) for g in items])
    has_s = all(g.overlap is not None for g in items)
    has_h = all(g.h_target is not None for g in items)
    overlap_ptr = _ptr([len(g.overlap) for g in items]) if has_s else None

    cat = torch.cat
    keys = sorted({k for g in items for k in g.pairs})
    pairs = {}
    for k in keys:
        parts = [(b, g.pairs[k]) for b, g in enumerate(items) if k in g.pairs]
        pairs[k] = PairGroup(
            edge=cat([p.edge + record_ptr[b] for b, p in parts]),
            z1=cat([p.z1 for _, p in parts]),
            z2=cat([p.z2 for _, p in parts]),
            index=cat([p.index + packed_ptr[b] for b, p in parts]),
        )
    pair_flat = cat([pairs[k].index.reshape(-1) for k in keys])
    edge_ptr = _ptr([g.record.n_edges for g in items])
    B = len(items)
    rep = torch.repeat_interleave
    return GraphBatch(
        records=[g.record for g in items],
        spinful=spinful.pop(),
        cutoff=min(g.cutoff for g in items),
        numbers=cat([g.numbers for g in items]),
        graph_index=cat([g.graph_index + node_ptr[b] for b, g in enumerate(items)], dim=1),
        graph_vec=cat([g.graph_vec for g in items]),
        graph_record=cat([_shift(g.graph_record, int(record_ptr[b])) for b, g in enumerate(items)]),
        output_edge=cat([g.output_edge + edge_ptr[b] for b, g in enumerate(items)]),
        record_index=cat([g.record_index + node_ptr[b] for b, g in enumerate(items)], dim=1),
        record_graph=cat([_shift(g.record_graph, int(graph_ptr[b])) for b, g in enumerate(items)]),
        record_length=cat([g.record_length for g in items]),
        record_onsite=cat([g.record_onsite for g in items]),
        record_batch=rep(torch.arange(B), record_ptr.diff()),
        node_self=cat([_shift(g.node_self, int(record_ptr[b])) for b, g in enumerate(items)]),
        pairs=pairs,
        pair_flat=pair_flat,
        h0=cat([g.h0 for g in items]),
        h_target=cat([g.h_target for g in items]) if has_h else None,
        overlap=cat([g.overlap for g in items]) if has_s else None,
        conj_index=cat([g.conj_index + packed_ptr[b] for b, g in enumerate(items)]),
        node_ptr=node_ptr,
        record_ptr=record_ptr,
        packed_ptr=packed_ptr,
        overlap_ptr=overlap_ptr,
        structure_of_element=rep(torch.arange(B), packed_ptr.diff()),
    )


def batch_records(records: list[StructureRecord], cutoff: float = DEFAULT_CUTOFF,
                  output_radius: float | None = None) -> GraphBatch:
    """``collate([build_graph(r, cutoff, output_radius) for r in records])``."""
    return collate([build_graph(r, cutoff, output_radius) for r in records])
