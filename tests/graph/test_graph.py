"""Records -> graph tensors and batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nextham.blocks.record import RecordError, conjugate_transpose_blocks
from nextham.graph import GraphBatch, build_graph, collate
from nextham.testing.equivariance import example_record


@pytest.mark.parametrize("spinful", [False, True])
def test_build_graph_edges(spinful):
    rec = example_record("gaas", spinful, cutoff=4.0)
    g = build_graph(rec, cutoff=6.0)
    E_r = rec.n_edges
    assert g.record_index.shape == (2, E_r)
    # graph edges: all off-site record edges first, then neighbours up to 6 Å
    off = np.flatnonzero(~rec.onsite_mask)
    assert np.array_equal(g.graph_record.numpy()[: len(off)], off)
    assert np.all(g.graph_record.numpy()[len(off):] == -1)
    lengths = g.graph_vec.norm(dim=1).numpy()
    assert lengths.max() <= 6.0 + 1e-9 and lengths.min() > 0.5
    assert np.sum(lengths <= 4.0 + 1e-9) == len(off)  # record edges are exactly those within 4 Å
    rg = g.record_graph.numpy()
    assert np.all(rg[rec.onsite_mask] == -1)
    np.testing.assert_allclose(g.graph_vec.numpy()[rg[off]], rec.edge_vectors[off])
    assert np.array_equal(g.node_self.numpy(), np.flatnonzero(rec.onsite_mask)[np.argsort(rec.edge_index[rec.onsite_mask, 0])])
    # shell pairs cover every packed element once
    idx = np.concatenate([p.index.numpy().ravel() for p in g.pairs.values()])
    assert np.array_equal(np.sort(idx), np.arange(len(g.h0)))
    # Hermitian partner index agrees with the record's operation
    h0 = rec.blocks["H0"]
    np.testing.assert_array_equal(np.conj(h0[g.conj_index.numpy()]) if spinful else h0[g.conj_index.numpy()],
                                  conjugate_transpose_blocks(rec, "H0"))


def test_output_edges_stop_at_the_output_radius():
    """Record edges beyond the radius carry no features and no shell pairs; the packed arrays stay whole."""
    rec = example_record("si", cutoff=6.0)
    g = build_graph(rec, cutoff=3.0)
    inside = np.flatnonzero(rec.edge_lengths <= 3.0 + 1e-9)
    assert np.array_equal(g.output_edge.numpy(), inside) and len(inside) < rec.n_edges
    assert g.record_index.shape == (2, len(inside))
    assert g.graph_vec.norm(dim=1).max() <= 3.0 + 1e-9
    assert len(g.h0) == rec.blocks["H0"].size
    covered = np.concatenate([p.index.numpy().ravel() for p in g.pairs.values()])
    expected = np.flatnonzero(np.repeat(rec.edge_lengths <= 3.0 + 1e-9, np.diff(rec.block_offsets("H0"))))
    assert np.array_equal(np.sort(covered), expected)
    g5 = build_graph(rec, cutoff=3.0, output_radius=5.0)  # more outputs than message edges
    assert len(g5.output_edge) > len(inside) and g5.graph_vec.norm(dim=1).max() <= 5.0 + 1e-9


def test_collate_offsets():
    recs = [example_record("si", seed=1), example_record("gaas", seed=2), example_record("si", seed=3, repeat=2)]
    graphs = [build_graph(r, 5.0) for r in recs]
    b = collate(graphs)
    assert isinstance(b, GraphBatch) and b.num_structures == 3
    for k, (r, g) in enumerate(zip(recs, graphs)):
        assert torch.equal(b.segment(b.h0, k), torch.from_numpy(r.blocks["H0"]))
        assert torch.equal(b.h_target[b.packed_ptr[k]:b.packed_ptr[k + 1]], torch.from_numpy(r.blocks["H"]))
        assert torch.equal(b.overlap[b.overlap_ptr[k]:b.overlap_ptr[k + 1]], torch.from_numpy(r.blocks["S"]))
        assert torch.all(b.structure_of_element[b.packed_ptr[k]:b.packed_ptr[k + 1]] == k)
        sl = slice(int(b.record_ptr[k]), int(b.record_ptr[k + 1]))
        assert torch.equal(b.record_index[:, sl] - b.node_ptr[k], g.record_index)
        assert b.records[k] is r
    # global conj index still pairs Hermitian partners
    assert torch.equal(b.h0, b.h0[b.conj_index])
    # the groups' concatenation covers every packed value once (all edges within 5 Å here)
    assert torch.equal(torch.sort(b.pair_flat).values, torch.arange(len(b.h0)))
    for k, g in enumerate(graphs):
        sl = slice(int(b.record_ptr[k]), int(b.record_ptr[k + 1]))
        assert torch.equal(b.output_edge[sl] - sum(r.n_edges for r in recs[:k]), g.output_edge)
    assert b.to("cpu").h0 is not None


def test_collate_rejects_mixed_spin():
    with pytest.raises(ValueError):
        collate([build_graph(example_record("si", False)), build_graph(example_record("si", True))])


def test_missing_partner_is_an_error():
    rec = example_record("si")
    keep = np.ones(rec.n_edges, bool)
    e = int(np.flatnonzero(~rec.onsite_mask)[0])
    keep[e] = False
    sizes = np.diff(rec.block_offsets("H0"))
    mask = np.repeat(keep, sizes)
    smask = np.repeat(keep, np.diff(rec.block_offsets("S")))
    bad = rec.replace(edge_index=rec.edge_index[keep], edge_R=rec.edge_R[keep],
                      blocks={"H0": rec.blocks["H0"][mask], "S": rec.blocks["S"][smask]})
    with pytest.raises(RecordError, match="Hermitian partner"):
        build_graph(bad)


@pytest.mark.parametrize("spinful", [False, True])
def test_model_on_graphs_with_record_edges_beyond_the_cutoff_is_equivariant(spinful):
    """The graph (neighbour list, periodic images, record edges kept past the message-passing cutoff)
    keeps the model exactly equivariant."""
    from nextham.nn import ModelConfig, NextHAMModel
    from nextham.testing.equivariance import assert_model_equivariant

    torch.manual_seed(0)
    rec = example_record("si", spinful, cutoff=6.0)
    cfg = ModelConfig.preset("tiny", cutoff=3.0, zero_init_output=False, num_blocks=1)
    assert_model_equivariant(NextHAMModel(cfg, rec.basis, spinful, device="cpu"), rec, rotations=1)
