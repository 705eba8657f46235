"""The block record: construction, validation errors, pure operations, HDF5 round trip."""

import numpy as np
import pytest

from nextham.blocks import RecordError, StructureRecord
from nextham.blocks.h5io import read_record, write_record
from nextham.blocks.gauge import gauge_mae, gauge_shift
from nextham.blocks.ops import add_correction, element_mask, hermitian_symmetrize
from nextham.blocks.record import conjugate_transpose_blocks, hermitian_error
from nextham.testing.models import random_crystal, random_two_centre_model


@pytest.fixture(params=[False, True], ids=["spinless", "spinful"])
def record(request):
    model = random_two_centre_model(0)
    rec = model.record(random_crystal(0, n_atoms=3), spinful=request.param)
    return rec.with_blocks(H0=rec.blocks["H"] * 0.9)


def test_valid_record_is_hermitian(record):
    record.validate(hermitian_tol=1e-12)
    assert hermitian_error(record, "H") < 1e-12
    assert record.blocks["H"].dtype == (np.complex128 if record.spinful else np.float64)
    shapes = record.block_shapes("H")
    assert np.all(shapes == record.block_shapes("S") * record.spin_factor("H"))


def test_dense_round_trip(record):
    dense = {name: record.to_dense(name) for name in record.blocks}
    again = StructureRecord.from_dense(record.to_atoms(), record.basis, dense, spinful=record.spinful)
    # from_dense orders edges by (R, i, j); compare through the edge lookup
    e = again.find_edges(record.edge_index[:, 0], record.edge_index[:, 1], record.edge_R)
    assert np.all(e >= 0) and again.n_edges == record.n_edges
    for name in record.blocks:
        for k in range(record.n_edges):
            assert np.array_equal(again.block(name, e[k]), record.block(name, k))


def test_h5_round_trip(record, tmp_path):
    path = write_record(tmp_path / "r.h5", record.replace(fermi_energy_eV=1.25, metadata={"a": [1, 2]}))
    back = read_record(path)
    for name in record.blocks:
        assert np.array_equal(back.blocks[name], record.blocks[name])
    assert np.array_equal(back.edge_index, record.edge_index) and np.array_equal(back.edge_R, record.edge_R)
    assert back.basis == record.basis and back.spinful == record.spinful
    assert back.fermi_energy_eV == 1.25 and back.metadata == {"a": [1, 2]}
    assert np.array_equal(back.cell, record.cell) and np.array_equal(back.positions, record.positions)


def test_hermitian_symmetrize_and_partner(record):
    rng = np.random.default_rng(1)
    noisy = record.blocks["H"] + rng.normal(size=record.blocks["H"].shape)
    sym = hermitian_symmetrize(record.with_blocks(H=noisy), "H")
    assert hermitian_error(sym, "H") < 1e-14
    assert np.array_equal(conjugate_transpose_blocks(record, "S", conjugate_transpose_blocks(record, "S")),
                          record.blocks["S"])


def test_gauge_mae_recovers_shift(record):
    S = record.overlap_like_h()
    shifted = record.blocks["H"] + 0.37 * S
    g, plain, mu = gauge_mae(shifted, record.blocks["H"], S)
    assert abs(mu - 0.37) < 1e-12 and g < 1e-12 and plain > 1e-3
    assert abs(gauge_shift(record.blocks["H"], record.blocks["H"], S)) < 1e-15
    assert abs(gauge_shift(shifted, record.blocks["H"], S, mode="median") - 0.37) < 1e-12
    onsite = element_mask(record, "H", record.onsite_mask)
    g_on, _, mu_on = gauge_mae(shifted, record.blocks["H"], S, mask=onsite)
    assert abs(mu_on - 0.37) < 1e-12 and g_on < 1e-12
    H = add_correction(record, record.blocks["H"] - record.blocks["H0"]).blocks["H"]
    assert np.allclose(H, record.blocks["H"])


def test_missing_partner_is_reported(record):
    keep = np.ones(record.n_edges, bool)
    e = int(np.flatnonzero(~record.onsite_mask)[0])
    keep[e] = False
    off = {n: record.block_offsets(n) for n in record.blocks}
    blocks = {n: np.concatenate([record.blocks[n][off[n][k]:off[n][k + 1]] for k in np.flatnonzero(keep)])
              for n in record.blocks}
    bad = record.replace(edge_index=record.edge_index[keep], edge_R=record.edge_R[keep], blocks=blocks)
    with pytest.raises(RecordError, match="lack their Hermitian partner"):
        bad.validate()


def test_wrong_shape_nan_and_unknown_element_are_reported(record):
    with pytest.raises(RecordError, match=r"matrix H: .* packed values but the basis"):
        record.with_blocks(H=record.blocks["H"][:-1]).validate()
    H = record.blocks["H"].copy()
    H[5] = np.nan
    with pytest.raises(RecordError, match="matrix H: 1 non-finite values"):
        record.with_blocks(H=H).validate()
    with pytest.raises(RecordError, match="element Si has no orbital basis"):
        record.replace(numbers=np.array([14, 31, 33]))
    with pytest.raises(RecordError, match="not Hermitian"):
        H = record.blocks["H"].copy()
        H[np.flatnonzero(~element_mask(record, "H", record.onsite_mask))[0]] += 1.0
        record.with_blocks(H=H).validate()


def test_spinful_overlap_is_identity_in_spin(record):
    S2 = record.overlap_like_h()
    assert S2.shape == record.blocks["H"].shape
    if record.spinful:
        off = record.block_offsets("H")
        for e in range(record.n_edges):
            expected = np.kron(np.eye(2), record.block("S", e))
            assert np.array_equal(S2[off[e]:off[e + 1]].reshape(expected.shape), expected)
