"""Packed blocks <-> per-edge irreps (the model's input and output layers) and the product readout.

:class:`BlockCodec` moves between a batch's packed H layout (``h0``/``delta``) and the fixed-width,
zero-padded per-edge irreps vector of a :class:`nextham.basis.irreps.SlotLayout` — one gather, one small
matmul per (l1, l2) type, one scatter; no loop over edges or orbitals.

:class:`ProductReadout` maps hidden features to the output irreps. Output irreps (up to ``L = 2 l_max`` of
the basis, both parities, spin-coupled J) are generally not all present in the hidden irreps, so the
readout adds tensor-product stages ``S_{k+1} = S_k (x) S_0`` until every output type is reachable.
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn

from ..basis.irreps import SlotLayout, pair_irreps
from .contracts import check_chain, expect_irreps, stage
from .layers import IrrepsLinear
from .sparse_products import FullyConnectedTensorProduct


class BlockCodec(nn.Module):
    """Packed blocks <-> (E_r, layout.dim) irreps, for the groups of a :class:`GraphBatch`.

    ``irreps_in = irreps_out`` = the layout's irreps (what :meth:`encode` produces and :meth:`decode` reads).
    """

    def __init__(self, layout: SlotLayout):
        super().__init__()
        self.layout = layout
        self.irreps_in = self.irreps_out = o3.Irreps(layout.irreps_string)
        for l1, l2 in layout.groups:
            self.register_buffer(f"W_{l1}_{l2}", torch.as_tensor(pair_irreps(l1, l2, layout.spinful).matrix,
                                                                   dtype=torch.get_default_dtype()), persistent=False)

    def matrix(self, group: tuple[int, int]) -> torch.Tensor:
        return getattr(self, f"W_{group[0]}_{group[1]}")

    def columns(self, group, pg) -> torch.Tensor:
        """(P, pair dim) flat positions in the (E_r * dim) feature array."""
        if group not in self.layout.columns:
            raise ValueError(f"shell pair {group} is outside the model's basis layout {self.layout.groups}")
        return pg.edge[:, None] * self.layout.dim + self.layout.slot_columns(group, pg.z1, pg.z2)

    def _real(self, values: torch.Tensor, dtype) -> torch.Tensor:
        """(P, rows, cols) -> (P, n_real) in the model dtype (real, imag concatenated if complex)."""
        flat = values.reshape(values.shape[0], -1)
        if flat.is_complex():
            flat = torch.cat([flat.real, flat.imag], dim=1)
        return flat.to(dtype)

    def encode(self, batch, packed: torch.Tensor, n_edges: int, dtype: torch.dtype) -> torch.Tensor:
        """Packed H-like values (K,) -> (n_edges, dim) padded irreps (zero where a slot is absent)."""
        out = torch.zeros(n_edges * self.layout.dim, dtype=dtype, device=packed.device)
        for g, pg in batch.pairs.items():
            vals = self._real(packed[pg.index], dtype) @ self.matrix(g).to(dtype)
            out = out.index_put((self.columns(g, pg).reshape(-1),), vals.reshape(-1))
        return out.view(n_edges, self.layout.dim)

    def decode(self, batch, features: torch.Tensor) -> torch.Tensor:
        """(E_r, dim) irreps -> packed blocks (K,) in ``batch.h0``'s layout (complex if spinful)."""
        flat = features.reshape(-1)
        parts = []
        for g in sorted(batch.pairs):
            pg = batch.pairs[g]
            vals = flat[self.columns(g, pg)] @ self.matrix(g).T  # (P, n_real)
            if self.layout.spinful:
                h = vals.shape[1] // 2
                vals = torch.complex(vals[:, :h], vals[:, h:])
            parts.append(vals.reshape(-1))
        values = torch.cat(parts)
        out = values.new_zeros(len(batch.h0))  # blocks beyond the output edges: dH = 0
        return out.index_copy(0, batch.pair_flat, values)

    def pair_sums(self, batch, packed: torch.Tensor) -> torch.Tensor:
        """Per shell-pair instance ``sum |B|^2`` (all spin blocks), in sorted-group order: (T,)."""
        return torch.cat([packed[batch.pairs[g].index].abs().pow(2).reshape(len(batch.pairs[g].edge), -1).sum(1)
                          for g in sorted(batch.pairs)])

    def pair_slots(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(record edge, global slot id) of every shell-pair instance, sorted-group order."""
        edges, slots = [], []
        for g in sorted(batch.pairs):
            pg = batch.pairs[g]
            edges.append(pg.edge)
            slots.append(self.layout.slot_offset[g] + pg.z1 * self.layout.n_zeta[g[1]] + pg.z2)
        return torch.cat(edges), torch.cat(slots)


class ProductReadout(nn.Module):
    """``irreps_in`` (hidden) -> ``irreps_out``; types missing from ``hidden`` come from tensor-product stages."""

    def __init__(self, hidden: str | o3.Irreps, irreps_out: str | o3.Irreps, mul: int, max_stages: int = 4):
        super().__init__()
        H, out = o3.Irreps(hidden), o3.Irreps(irreps_out)
        self.irreps_in, self.irreps_out = H, out
        targets = {ir for _, ir in out}
        have = {ir for _, ir in H}
        lmax = max(ir.l for ir in targets)
        self.pre = None
        self.stages = nn.ModuleList()
        collected = [H]
        if not targets <= have:
            r0 = o3.Irreps([(mul, ir) for _, ir in H])
            self.pre = IrrepsLinear(H, r0)
            cur = r0
            for _ in range(max_stages):
                reach = {ir for _, a in cur for _, b in r0 for ir in a * b}
                missing = targets - have
                want = missing if missing <= reach else {ir for ir in reach if ir.l <= lmax}
                nxt = o3.Irreps([(mul, ir) for ir in sorted(want)])
                self.stages.append(FullyConnectedTensorProduct(cur, r0, nxt))
                collected.append(nxt)
                have |= want
                cur = nxt
                if targets <= have:
                    break
            if not targets <= have:
                raise ValueError(f"output irreps {sorted(targets - have)} cannot be reached from hidden irreps {H}")
        self.irreps_cat = sum(collected[1:], collected[0])
        self.post = IrrepsLinear(self.irreps_cat, out)
        self.check_irreps()

    def check_irreps(self) -> None:
        """``pre`` maps hidden to ``r0``; stage k multiplies the previous stage (``pre`` for the first) by
        ``r0``; ``post`` reads the hidden features and every stage's output, concatenated."""
        where = "ProductReadout"
        collected = [self.irreps_in]
        if self.pre is not None:
            r0 = check_chain(where, [stage("pre", self.pre)], self.irreps_in)
            cur, source = r0, "'pre'"
            for k, tp in enumerate(self.stages):
                expect_irreps(where, f"stages.{k}", cur, tp.irreps_in1, source)
                expect_irreps(where, f"stages.{k}", r0, tp.irreps_in2, "'pre' (second input)")
                cur, source = tp.irreps_out, f"'stages.{k}'"
                collected.append(cur)
        cat = sum(collected[1:], collected[0])
        check_chain(where, [stage("post", self.post)], cat, self.irreps_out,
                    source="the hidden features and the tensor-product stages")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        if self.pre is not None:
            r0 = self.pre(x)
            cur = r0
            for tp in self.stages:
                cur = tp(cur, r0)
                feats.append(cur)
        return self.post(torch.cat(feats, dim=1))


DISTANCE_CLASSES_A = (2.5, 3.5, 4.5)
"""Bounds (Å) of the off-site distance classes of :class:`OutputStatistics`: [0, 2.5), [2.5, 3.5),
[3.5, 4.5), [4.5, inf). dH falls by one to two orders of magnitude from the first neighbours to
6 Å, so one scale per species pair would give far pairs outputs many times their size."""


def encoded_groups(statistics, codec: BlockCodec, pairs, n_species: int, device):
    """For each ``(batch, dh)`` of ``pairs``: ``(group, x, structures)`` with ``x`` the padded irreps of
    ``dh`` on the output edges (float64), ``group = (class * S + i) * S + j`` of every edge
    (``statistics.pair_index``) and the batch's structure count."""
    for batch, dh in pairs:
        batch = batch.to(device)
        x = codec.encode(batch, dh.to(device), batch.record_index.shape[1], torch.float64)
        k, i, j = statistics.pair_index(batch)
        yield (k * n_species + i) * n_species + j, x, batch.num_structures


class OutputStatistics(nn.Module):
    """Statistics-based output scale and shift per (distance class, species i, species j) and per
    output irreps channel, as nequip/MACE scale and shift per-species energies.

    Distance classes: 0 on-site, then off-site edges by |r_ij| in the bins of ``distance_bins`` (Å,
    :data:`DISTANCE_CLASSES_A`). Buffers (persistent, in checkpoints), for the ``S`` species of the
    basis (sorted by atomic number): ``scale (C, S, S, dim)`` and ``shift (C, S, S, dim)`` in eV,
    C = 1 + number of off-site classes. The padded irreps of an edge become ``out * scale + shift``
    for the edge's class and species pair: ``scale`` is one number per irreps instance (the same for
    its ``2l+1`` components), ``shift`` is non-zero only on the even scalars (0e; with spin-orbit the
    J = 0 even channels, invariant under joint rotations of orbitals and spin); the class depends on
    the (invariant) distance only, so the map is exactly equivariant. Unfitted: scale 1, shift 0
    (identity). :meth:`fit` sets them from the training split (see docs/model.md).
    """

    def __init__(self, layout: SlotLayout, basis, distance_bins: tuple[float, ...] = DISTANCE_CLASSES_A):
        super().__init__()
        from ase.data import atomic_numbers

        irreps = o3.Irreps(layout.irreps_string)
        self.irreps_in = self.irreps_out = irreps
        instance, shifted, k = [], [], 0
        for mul, ir in irreps:
            for _ in range(mul):
                instance += [k] * ir.dim
                shifted += [ir == o3.Irrep("0e")] * ir.dim
                k += 1
        self.n_instances = k
        self.register_buffer("instance", torch.tensor(instance, dtype=torch.long), persistent=False)
        self.register_buffer("shifted", torch.tensor(shifted, dtype=torch.bool), persistent=False)
        self.register_buffer("distance_bins", torch.tensor(sorted(distance_bins), dtype=torch.float64),
                             persistent=False)
        self.n_classes = 2 + len(distance_bins)
        numbers = sorted(atomic_numbers[e.symbol] for e in basis.elements)
        species_of = torch.full((119,), -1, dtype=torch.long)
        species_of[numbers] = torch.arange(len(numbers))
        self.register_buffer("species_of", species_of, persistent=False)
        S, dim = len(numbers), irreps.dim
        self.register_buffer("scale", torch.ones(self.n_classes, S, S, dim))
        self.register_buffer("shift", torch.zeros(self.n_classes, S, S, dim))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before the statistics existed load as the identity; those with one
        # off-site class (index 0 off-site, 1 on-site) give every off-site class their off-site values
        for name in ("scale", "shift"):
            key = prefix + name
            old = state_dict.get(key)
            if old is None:
                state_dict[key] = torch.ones_like(self.scale) if name == "scale" else torch.zeros_like(self.shift)
            elif old.shape[0] == 2 and self.n_classes != 2:
                state_dict[key] = torch.cat([old[1:2], old[0:1].expand(self.n_classes - 1, *old.shape[1:])])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def pair_index(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(distance class, species of i, species of j) of every output edge, as indices into the buffers."""
        z = self.species_of[batch.numbers]
        length = batch.record_length.to(self.distance_bins.dtype)
        cls = torch.where(batch.record_onsite, 0, 1 + torch.bucketize(length, self.distance_bins, right=True))
        return cls, z[batch.record_index[0]], z[batch.record_index[1]]

    def forward(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (scale, shift) of every output edge, each (E_r, dim)."""
        k, i, j = self.pair_index(batch)
        return self.scale[k, i, j], self.shift[k, i, j]

    @torch.no_grad()
    def fit(self, codec: BlockCodec, pairs) -> dict:
        """Fit on ``pairs``: an iterable of ``(batch, dh)``, a :class:`~nextham.graph.GraphBatch` and its
        target correction packed like ``batch.h0`` (the trainer passes the gauge-aligned
        ``H + mu S - H0``), summed in float64: ``shift`` = the mean of each 0e channel, ``scale`` = the
        root mean square of ``dh - shift`` over the instance's components; instances without data (or
        with no spread beyond rounding, below 1e-8 of the largest) get the mean of the fitted scales.
        Returns a summary (structures, edges, mean scale and largest shift in eV)."""
        C, S, dim = self.n_classes, self.scale.shape[1], self.scale.shape[3]
        dev = self.scale.device
        n = torch.zeros(C * S * S, dtype=torch.float64, device=dev)
        s1 = torch.zeros(C * S * S, dim, dtype=torch.float64, device=dev)
        s2 = torch.zeros(C * S * S, dim, dtype=torch.float64, device=dev)
        n_structures = 0
        for g, x, m in encoded_groups(self, codec, pairs, S, dev):
            n_structures += m
            n.index_add_(0, g, torch.ones_like(g, dtype=torch.float64))
            s1.index_add_(0, g, x)
            s2.index_add_(0, g, x * x)
        cnt = n.clamp_min(1.0)[:, None]
        mean = s1 / cnt
        shift = torch.where(self.shifted[None, :], mean, torch.zeros_like(mean))
        second = s2 / cnt - 2 * shift * mean + shift * shift  # mean of (x - shift)^2 per component
        inst_sum = torch.zeros(C * S * S, self.n_instances, dtype=torch.float64, device=dev)
        inst_sum.index_add_(1, self.instance, second.clamp_min(0.0))
        per = torch.bincount(self.instance, minlength=self.n_instances).to(torch.float64)
        std = (inst_sum / per).sqrt()
        # rounding noise of channels that are zero in exact arithmetic is not a scale
        ok = (std > 1e-8 * std.max()) & (n[:, None] > 0)
        fallback = std[ok].mean() if bool(ok.any()) else torch.tensor(1.0, dtype=torch.float64, device=dev)
        std = torch.where(ok, std, fallback)
        self.scale.copy_(std[:, self.instance].reshape(C, S, S, dim).to(self.scale.dtype))
        self.shift.copy_(shift.reshape(C, S, S, dim).to(self.shift.dtype))
        return {"structures": n_structures, "edges": int(n.sum()), "mean_scale_eV": float(fallback),
                "max_abs_shift_eV": float(shift.abs().max())}


class FactorizedOutputStatistics(nn.Module):
    """Output scale for bases of many elements, where :class:`OutputStatistics`' tables of
    ``(C, S, S, dim)`` would not fit (67 elements with spin-orbit: 5 x 67 x 67 x 3528 floats, 317 MB each).

    ``scale[k, i, j, c] = channel_scale[k, instance(c)] * pair_scale[k, i, j]``: the root mean square of
    each irreps instance over all species pairs of distance class ``k`` (edges where it is non-zero),
    times one number per class and species pair (the pair's mean square relative to those). Species
    index ``S`` is the fallback of elements outside the model's basis; species pairs never seen in
    training get the median pair scale of their class, so a prediction for an unseen element starts at
    the typical size of dH, not at an arbitrary species' statistics. Exactly equivariant (one factor
    per irreps instance).

    No shift: an untrained model is exactly H0. Per-species on-site shifts (the means of the
    gauge-aligned ``H + mu S - H0``) were measured to hurt across the periodic table: fitted on 60
    structures of the universal-v1 recipe they gave a held-out gauge MAE of 0.596 meV before any
    training, against H0's 0.566 (the per-structure gauge ``mu`` and the charge transfer that depends on
    the partners do not average to a per-element constant).
    """

    def __init__(self, layout: SlotLayout, basis, distance_bins: tuple[float, ...] = DISTANCE_CLASSES_A):
        super().__init__()
        from ase.data import atomic_numbers

        irreps = o3.Irreps(layout.irreps_string)
        self.irreps_in = self.irreps_out = irreps
        instance, k = [], 0
        for mul, ir in irreps:
            for _ in range(mul):
                instance += [k] * ir.dim
                k += 1
        self.n_instances = k
        self.register_buffer("instance", torch.tensor(instance, dtype=torch.long), persistent=False)
        self.register_buffer("distance_bins", torch.tensor(sorted(distance_bins), dtype=torch.float64),
                             persistent=False)
        self.n_classes = 2 + len(distance_bins)
        numbers = sorted(atomic_numbers[e.symbol] for e in basis.elements)
        S = len(numbers)
        species_of = torch.full((119,), S, dtype=torch.long)  # unknown elements -> fallback row S
        species_of[numbers] = torch.arange(S)
        self.register_buffer("species_of", species_of, persistent=False)
        self.register_buffer("channel_scale", torch.ones(self.n_classes, k))
        self.register_buffer("pair_scale", torch.ones(self.n_classes, S + 1, S + 1))

    pair_index = OutputStatistics.pair_index

    def forward(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (scale (E_r, dim), shift 0 (E_r, dim)) of every output edge."""
        k, i, j = self.pair_index(batch)
        scale = self.channel_scale[k][:, self.instance] * self.pair_scale[k, i, j][:, None]
        return scale, torch.zeros_like(scale)

    @torch.no_grad()
    def fit(self, codec: BlockCodec, pairs) -> dict:
        """Fit on an iterable of ``(batch, dh)`` as :meth:`OutputStatistics.fit`, in one pass, summing in
        float64 per (class, species pair) only each instance's sum of squares and non-zero count."""
        C, S1, n_inst = self.n_classes, self.pair_scale.shape[1], self.n_instances
        dev = self.pair_scale.device
        G = C * S1 * S1
        n = torch.zeros(G, dtype=torch.float64, device=dev)
        s2 = torch.zeros(G, n_inst, dtype=torch.float64, device=dev)  # sum of x^2 over each instance
        nz = torch.zeros(G, n_inst, dtype=torch.float64, device=dev)  # edges where the instance is non-zero
        n_structures = 0
        for g, x, m in encoded_groups(self, codec, pairs, S1, dev):
            n_structures += m
            n.index_add_(0, g, torch.ones_like(g, dtype=torch.float64))
            sq = torch.zeros(len(x), n_inst, dtype=torch.float64, device=dev).index_add_(1, self.instance, x * x)
            s2.index_add_(0, g, sq)
            nz.index_add_(0, g, (sq > 0).to(torch.float64))
        # channel scale per class: over the edges where the instance is non-zero
        s2k, nzk = s2.view(C, S1 * S1, n_inst).sum(1), nz.view(C, S1 * S1, n_inst).sum(1)
        per = torch.bincount(self.instance, minlength=n_inst).to(torch.float64)
        chan = (s2k / (nzk.clamp_min(1.0) * per)).sqrt()
        ok = (chan > 1e-8 * chan.max()) & (nzk > 0)
        fallback = chan[ok].mean() if bool(ok.any()) else torch.tensor(1.0, dtype=torch.float64, device=dev)
        chan = torch.where(ok, chan, fallback)
        # pair scale: the group's mean square relative to the channel scales
        ref = (chan ** 2 * per).repeat_interleave(S1 * S1, 0)  # (G, n_inst)
        num, den = s2.sum(1), (nz * ref).sum(1)
        seen = (n > 0) & (den > 0) & (num > 0)
        pair = torch.where(seen, (num / den.clamp_min(1e-300)).sqrt(), torch.zeros_like(num)).view(C, S1 * S1)
        seen = seen.view(C, S1 * S1)
        for c in range(C):  # unseen pairs (and the fallback species): the class median
            med = pair[c][seen[c]].median() if bool(seen[c].any()) else torch.tensor(1.0, dtype=pair.dtype)
            pair[c] = torch.where(seen[c], pair[c], med)
        self.channel_scale.copy_(chan.to(self.channel_scale.dtype))
        self.pair_scale.copy_(pair.view(C, S1, S1).to(self.pair_scale.dtype))
        return {"structures": n_structures, "edges": int(n.sum()), "mean_scale_eV": float(fallback),
                "max_abs_shift_eV": 0.0, "species_pairs_seen": int(seen.any(0).sum())}
