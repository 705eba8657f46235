"""Fuzz the CSR readers with seeded mutations of real fixture files: nothing but FormatError comes out.

Inputs: ABACUS C nspin 4 (tests/integrate/207_NO_KP_OHS_SPIN4) and a 12-block excerpt of Si2 nspin 1
(207_NO_KP_OH2), deepmodeling/abacus-develop commit 729059f.
"""

from __future__ import annotations

import numpy as np

from nextham.io import FormatError, read
from nextham.io.abacus_csr import read_csr

ALPHABET = list("0123456789.-+eE(),# x\n\t") + ["nan", "inf", "1e999", "99999999999999999999", "STEP: 3", "(1,2)"]


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    text = data.decode()
    lines = text.split("\n")
    kind = int(rng.integers(9))
    if kind == 0:  # cut the file anywhere
        return data[: int(rng.integers(len(data)))]
    if kind == 1 and len(lines) > 1:  # drop a line
        del lines[int(rng.integers(len(lines)))]
    elif kind == 2:  # duplicate a line
        k = int(rng.integers(len(lines)))
        lines.insert(k, lines[k])
    elif kind == 3:  # swap two lines
        a, b = rng.integers(len(lines), size=2)
        lines[a], lines[b] = lines[b], lines[a]
    elif kind in (4, 5):  # overwrite characters
        chars = list(text)
        for _ in range(int(rng.integers(1, 4))):
            chars[int(rng.integers(len(chars)))] = str(rng.choice(ALPHABET))
        return "".join(chars).encode()
    elif kind == 6:  # replace a token by a token seen elsewhere or a nasty one
        toks = text.split(" ")
        k = int(rng.integers(len(toks)))
        toks[k] = str(rng.choice(ALPHABET)) if rng.random() < 0.5 else toks[int(rng.integers(len(toks)))]
        return " ".join(toks).encode()
    elif kind == 7:  # drop a token
        toks = text.split(" ")
        del toks[int(rng.integers(len(toks)))]
        return " ".join(toks).encode()
    else:  # random bytes
        k = int(rng.integers(len(data)))
        return data[:k] + rng.integers(0, 256, size=int(rng.integers(1, 6)), dtype=np.uint8).tobytes() + data[k:]
    return "\n".join(lines).encode()


def _si2_excerpt(path) -> bytes:
    lines = path.read_text().splitlines()
    k, blocks = 3, 0
    while blocks < 12:
        k += 1 + 3 * (int(lines[k].split()[3]) > 0)
        blocks += 1
    lines[2] = "Matrix number of H(R): 12"
    return ("\n".join(lines[:k]) + "\n").encode()


def test_fuzz_csr_parser(si2_dir, c_soc_dir, tmp_path):
    rng = np.random.default_rng(20250919)
    seeds = [(c_soc_dir / "data-HR-sparse_SPIN0.csr").read_bytes(), (c_soc_dir / "data-SR-sparse_SPIN0.csr").read_bytes(),
             _si2_excerpt(si2_dir / "data-HR-sparse_SPIN0.csr")]
    f = tmp_path / "m.csr"
    outcomes = {"ok": 0, "FormatError": 0}
    for trial in range(300):
        f.write_bytes(mutate(seeds[trial % len(seeds)], rng))
        try:
            read_csr(f)
            outcomes["ok"] += 1
        except FormatError as exc:
            assert str(exc).startswith(str(f)), exc
            outcomes["FormatError"] += 1
    assert outcomes["FormatError"] > 100  # the mutations do break things


def test_fuzz_full_reader(c_soc_copy):
    """Mutations of H, S or STRU through the whole ABACUS reader (geometry, basis, spin, Hermiticity)."""
    rng = np.random.default_rng(4)
    names = ["data-HR-sparse_SPIN0.csr", "data-SR-sparse_SPIN0.csr", "STRU"]
    originals = {n: (c_soc_copy / n).read_bytes() for n in names}
    errors = 0
    for trial in range(150):
        name = names[trial % 3]
        (c_soc_copy / name).write_bytes(mutate(originals[name], rng))
        try:
            read(c_soc_copy, fmt="abacus")
        except FormatError:
            errors += 1
        finally:
            (c_soc_copy / name).write_bytes(originals[name])
    assert errors > 50
