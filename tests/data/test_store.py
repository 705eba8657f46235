"""Dataset store: round trips, atomic appends, random access speed, refusal of duplicates."""

import time

import numpy as np
import pytest
from ase.build import bulk

from nextham.data.store import DatasetStore, StoreError, record_from_bytes, record_to_bytes
from nextham.engines.toy import ToyEngine


@pytest.fixture
def records():
    eng = ToyEngine()
    return [eng.compute(bulk("Si", "diamond", a=5.43 + 0.01 * i)) for i in range(3)]


def test_roundtrip_bytes(records):
    rec = records[0]
    back = record_from_bytes(record_to_bytes(rec))
    for k in rec.blocks:
        np.testing.assert_array_equal(rec.blocks[k], back.blocks[k])
    np.testing.assert_array_equal(rec.edge_R, back.edge_R)
    assert back.basis == rec.basis and back.metadata == rec.metadata
    f32 = record_from_bytes(record_to_bytes(rec, dtype="float32"))
    np.testing.assert_allclose(f32.blocks["H"], rec.blocks["H"], rtol=1e-6, atol=1e-6)


def test_append_random_access_and_reopen(tmp_path, records):
    path = tmp_path / "ds.lmdb"
    with DatasetStore(path, mode="a") as st:
        for i, r in enumerate(records):
            assert st.append(r, f"k{i}", {"name": f"s{i}"}) == i
        st.record_failure("bad", "bad input: overlapping atoms")
        with pytest.raises(StoreError, match="already"):
            st.append(records[0], "k0")
    with DatasetStore(path) as st:
        assert len(st) == 3
        np.testing.assert_array_equal(st[2].blocks["S"], records[2].blocks["S"])
        np.testing.assert_array_equal(st[-1].blocks["S"], records[2].blocks["S"])
        assert st.key(1) == "k1"
        assert st.failures()["bad"]["reason"].startswith("bad input")
        assert st.validate() == {"records": 3, "failed": 1}
        with pytest.raises(IndexError):
            st[3]
        with pytest.raises(StoreError, match="read-only"):
            st.append(records[0], "x")


def test_read_two_atom_record_under_10ms(tmp_path, records):
    path = tmp_path / "ds.lmdb"
    with DatasetStore(path, mode="a") as st:
        for i, r in enumerate(records):
            st.append(r, f"k{i}")
    with DatasetStore(path) as st:
        st[0]
        t = time.perf_counter()
        for _ in range(20):
            st[1]
        assert (time.perf_counter() - t) / 20 < 0.010


def test_clear_errors(tmp_path):
    with pytest.raises(StoreError, match="no such dataset"):
        DatasetStore(tmp_path / "missing.lmdb")
    junk = tmp_path / "junk.lmdb"
    junk.write_bytes(b"not a database" * 100)
    with pytest.raises(StoreError, match="junk.lmdb"):
        DatasetStore(junk)


def test_export_hdf5(tmp_path, records):
    import h5py

    from nextham.blocks.h5io import read_record_group
    path = tmp_path / "ds.lmdb"
    with DatasetStore(path, mode="a") as st:
        st.append(records[0], "k0")
        out = st.export_hdf5(tmp_path / "ds.h5")
    with h5py.File(out) as f:
        rec = read_record_group(f["records/0000000000"])
    np.testing.assert_array_equal(rec.blocks["H"], records[0].blocks["H"])


@pytest.mark.parametrize("spinful", [False, True])
def test_info_reports_a_gauge_aligned_mae(tmp_path, spinful):
    """``nextham info``'s gauge MAE of H0 is invariant under H0 -> H0 + mu S (S (x) I2 with spin-orbit)."""
    from nextham.data.info import dataset_info
    from nextham.testing.toy import random_record

    rec = random_record(2, spinful=spinful)
    shifted = rec.with_blocks(H0=rec.blocks["H0"] + 0.7 * rec.overlap_like_h())
    out = {}
    for name, r in (("plain", rec), ("shifted", shifted)):
        with DatasetStore(tmp_path / f"{name}.lmdb", mode="a") as st:
            st.append(r, key=name)
        out[name] = dataset_info(tmp_path / f"{name}.lmdb")
    g, g_shift = out["plain"]["gauge_mae_H_H0_meV"], out["shifted"]["gauge_mae_H_H0_meV"]
    assert g > 1.0 and abs(g - g_shift) < 1e-9 * g
    assert out["shifted"]["mae_H_H0_meV"] > out["plain"]["mae_H_H0_meV"] + 1.0
    row = out["shifted"]["structures"][0]
    assert abs(row["gauge_shift_eV"] - out["plain"]["structures"][0]["gauge_shift_eV"] - 0.7) < 1e-12


def test_manifest_holds_basis_and_spin_and_old_datasets_get_them_once(tmp_path, records, monkeypatch):
    import json

    import nextham.data.store as store_mod
    from nextham.data.access import DatasetError, open_dataset
    from nextham.testing.toy import random_record

    path = tmp_path / "ds.lmdb"
    with DatasetStore(path, mode="a") as st:
        st.append(records[0], "k0")
        gaas = random_record(1)  # Ga, As with another basis than the toy engine's Si
        st.append(gaas, "k1")
        man = st.manifest
    assert man["spinful"] == [False] and man["basis"] == records[0].basis.merged(gaas.basis).to_json()

    decoded = []
    real = store_mod.record_from_bytes
    monkeypatch.setattr(store_mod, "record_from_bytes", lambda *a, **k: decoded.append(1) or real(*a, **k))
    basis, spinful = open_dataset(path).content()
    assert decoded == [] and spinful is False and basis.symbols == ("Si", "Ga", "As")

    # a dataset written before the manifest had them: read once by a reader, stored by the next writer
    with DatasetStore(path, mode="a") as st:
        man = st.manifest
        del man["basis"], man["spinful"]
        with st.env.begin(write=True) as txn:
            txn.put(b"meta/manifest", json.dumps(man).encode())
    src = open_dataset(path)
    assert src.content() == (basis, False) and len(decoded) == 2
    src.content()
    assert len(decoded) == 2  # cached
    with DatasetStore(path, mode="a") as st:
        assert st.manifest["basis"] == basis.to_json() and st.manifest["spinful"] == [False]
        st.append(random_record(2, spinful=True), "k2")
    with pytest.raises(DatasetError, match="mixes spinful and spinless"):
        open_dataset(path).content()
