"""ABACUS sparse real-space matrices (H(R), S(R)) in CSR form: parse and write.

Three on-disk variants are read (units untouched: H in Ry, S dimensionless, ABACUS orbital order):

* **legacy text** (``data-HR-sparse_SPIN0.csr``, ``data-SR-sparse_SPIN0.csr``)::

      STEP: 0                       <- optional (ABACUS >= 3.0 writes it)
      Matrix Dimension of H(R): 26
      Matrix number of H(R): 177
      -3 -1 1 43                    <- Rx Ry Rz nnz, then (only when nnz > 0) three lines:
       v1 v2 ... v43                <- values; complex ones as (re,im)
       c1 c2 ... c43                <- column indices (0-based)
       p0 p1 ... p26                <- row pointer (dim + 1 entries)

* **HContainer text** (``hrs1_nao.csr``, ``srs1_nao.csr``, ``sr_nao.csr``; ABACUS >= 3.9): a
  commented header ``--- Ionic Step N ---``, ``<n> # number of spin directions``,
  ``<i> # spin index``, ``<n> # number of localized basis``, ``<n> # number of Bravais lattice
  vector R``, a unit-cell block (lattice name, lattice constant in Å, three lattice vectors in units
  of it, species labels, counts, ``Direct``, fractional positions), a comment box, then the same
  R blocks as above (``#`` comment lines may separate the three data lines). Blocks with nnz = 0
  may be present or absent.
* **legacy binary** (``out_mat_hs2`` with binary output): int32 step, dim, number of R; per R int32
  Rx, Ry, Rz, nnz, then nnz values (float64, or complex128 for nspin 4), nnz int32 column indices and
  dim + 1 row pointers (int32 in ABACUS <= 3.8, int64 later; both are recognised).

A file may hold several ionic steps (MD with ``out_app_flag``); the last one is read unless ``step``
says otherwise.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import FormatError

_LEGACY_DIM = re.compile(r"^Matrix Dimension of\s+(\S+?)\(R\)\s*:\s*(\S+)\s*$")
_LEGACY_NUM = re.compile(r"^Matrix number of\s+(\S+?)\(R\)\s*:\s*(\S+)\s*$")
_NAO_STEP = re.compile(r"^-+\s*Ionic Step\s+(\d+)\s*-+$")
_STEP_WORDS = ("STEP:", "IONIC_STEP:")  # IONIC_STEP: the MD overlap file syns_nao.csr (ABACUS >= 3.9)
_E_FERMI = re.compile(r"^E_Fermi\s*=\s*(\S+)\s*eV$")
_NAO_KEYS = {
    "number of spin directions": "nspin",
    "spin index": "spin_index",
    "number of localized basis": "dim",
    "number of Bravais lattice vector R": "n_R",
}


@dataclass
class CSRFile:
    """All R blocks of one ABACUS CSR file (one ionic step), in ABACUS units and orbital order.

    Attributes
    ----------
    path : the file.
    dim : matrix dimension (orbitals, times 2 for nspin 4).
    R : (nR, 3) int64 lattice translations, in file order.
    block_start : (nR + 1,) offsets of each R block into ``rows``/``cols``/``values``.
    rows, cols : (nnz,) int64 row and column of every stored element.
    values : (nnz,) float64 or complex128.
    line_of_R : (nR,) 1-based line number of each ``Rx Ry Rz nnz`` line (0 for binary files).
    kind : "legacy", "nao" or "binary".
    header : extra header data: ``step``, ``label`` (legacy), ``nspin``/``spin_index``/``ucell`` (nao).
    """

    path: str
    dim: int
    R: np.ndarray
    block_start: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray
    line_of_R: np.ndarray
    kind: str
    header: dict = field(default_factory=dict)

    @property
    def is_complex(self) -> bool:
        return np.iscomplexobj(self.values)

    @property
    def R_index(self) -> np.ndarray:
        """(nnz,) index into ``R`` of every stored element."""
        return np.repeat(np.arange(len(self.R)), np.diff(self.block_start))


# ---------------------------------------------------------------------------------------- reading
def read_csr(path: str | os.PathLike, step: int | None = None, label: str | None = None) -> CSRFile:
    """Parse an ABACUS CSR file (any of the three variants, detected from its content).

    ``step``: which ionic step to read when the file holds several (default: the last one).
    ``label``: expected matrix label of a legacy header (``"H"``, ``"S"``), checked when given.
    Raises :class:`FormatError` naming the file and line for anything malformed.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FormatError(path, f"cannot read: {exc.strerror or exc}") from None
    if not raw.strip():
        raise FormatError(path, "file is empty")
    if b"\0" in raw[:4096]:
        return _read_binary(path, raw, step)
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise FormatError(path, f"non-ASCII byte at offset {exc.start}; not an ABACUS CSR text file",
                          line=raw.count(b"\n", 0, exc.start) + 1) from None
    return _TextParser(path, text.split("\n"), label).parse(step)


def read_csr_steps(path: str | os.PathLike, label: str | None = None) -> list[CSRFile]:
    """Every ionic step of a text CSR file (e.g. the two steps of an MD ``syns_nao.csr``), in file order."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("ascii")
    except OSError as exc:
        raise FormatError(path, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise FormatError(path, f"non-ASCII byte at offset {exc.start}; not an ABACUS CSR text file") from None
    if not text.strip():
        raise FormatError(path, "file is empty")
    return _TextParser(path, text.split("\n"), label).parse("all")


class _TextParser:
    def __init__(self, path: Path, lines: list[str], label: str | None):
        self.path, self.lines, self.label = path, lines, label
        self.pos = 0  # index of the next line to read

    # -- line helpers -------------------------------------------------------------------------
    def err(self, msg: str, line: int | None = None) -> FormatError:
        return FormatError(self.path, msg, line=line)

    def next_content(self, what: str, allow_eof: bool = False) -> tuple[int, str] | None:
        """Next non-blank, non-comment line as (1-based number, stripped text)."""
        while self.pos < len(self.lines):
            s = self.lines[self.pos].strip()
            self.pos += 1
            if s and not s.startswith("#"):
                return self.pos, s
        if allow_eof:
            return None
        raise self.err(f"file ends early: expected {what}", line=len(self.lines))

    def peek_content(self) -> str | None:
        pos = self.pos
        out = self.next_content("", allow_eof=True)
        self.pos = pos
        return None if out is None else out[1]

    def next_is_comment(self, text: str) -> bool:
        """Whether the next non-blank line is the comment ``text`` (consumed when it is)."""
        k = self.pos
        while k < len(self.lines) and not self.lines[k].strip():
            k += 1
        if k < len(self.lines) and self.lines[k].strip() == text:
            self.pos = k + 1
            return True
        return False

    def gather(self, n: int, what: str, end: int) -> tuple[int, str]:
        """Join the next data lines until they hold ``n`` blank-separated tokens (ABACUS >= 3.9 wraps
        values 6 and indices 16 to a line; older files put each array on one line). Blank and ``#``
        comment lines are skipped; returns (1-based number of the first line, the joined text). A line that
        overshoots ``n`` is kept: the caller's parser names the wrong count."""
        first, parts, count = None, [], 0
        while count < n:
            if self.pos >= end:
                raise self.err(f"file ends early: expected {what} ({count} of {n} found)",
                               line=min(self.pos, len(self.lines)))
            s = self.lines[self.pos].strip()
            self.pos += 1
            if not s or s.startswith("#"):
                if parts and s.startswith("#"):  # the next section's marker: this one is short
                    raise self.err(f"expected {what}, found only {count}", line=first)
                continue
            if first is None:
                first = self.pos
            parts.append(s)
            count += len(s.split())
        if n == 0:
            return self.pos, ""
        return first, " ".join(parts)

    # -- sections -----------------------------------------------------------------------------
    def section_starts(self) -> list[int]:
        """0-based line index where each ionic-step section starts."""
        starts, prev = [], ""
        for k, raw in enumerate(self.lines):
            s = raw.strip()
            if not s:
                continue
            if s.startswith(_STEP_WORDS) or _NAO_STEP.match(s):
                starts.append(k)
            elif s.startswith("Matrix Dimension of") and not prev.startswith(_STEP_WORDS):
                starts.append(k)  # a legacy header without its STEP line
            prev = s
        return starts

    def parse(self, step: int | None) -> CSRFile:
        try:
            return self._parse(step)
        except FormatError as exc:
            last = len(self.lines)  # a file cut mid-line has no trailing newline: its last line is partial
            if exc.line == last and self.lines[-1].strip() and "truncated" not in exc.reason:
                raise FormatError(self.path, exc.reason + " (the file ends on this line: truncated?)", line=exc.line) from None
            raise

    def _parse(self, step: int | None) -> CSRFile:
        starts = self.section_starts()
        if not starts:
            first = self.next_content("a header")
            raise self.err(f"unknown header {first[1][:60]!r}: expected 'STEP: n', 'IONIC_STEP: n', 'Matrix Dimension of X(R): n' "
                           "or '--- Ionic Step n ---' (is this an ABACUS CSR file?)", line=first[0])
        first_content = self.next_content("a header")
        if first_content[0] - 1 != starts[0]:
            raise self.err(f"unknown header {first_content[1][:60]!r}: expected 'STEP: n', 'IONIC_STEP: n', 'Matrix Dimension of X(R): n'"
                           " or '--- Ionic Step n ---'", line=first_content[0])
        sections = []
        for k, s in enumerate(starts):
            self.pos = s
            sections.append(self.parse_section(end=starts[k + 1] if k + 1 < len(starts) else len(self.lines)))
        if step == "all":
            return sections
        if step is None:
            return sections[-1]
        for sec in sections:
            if sec.header.get("step") == step:
                return sec
        raise self.err(f"no ionic step {step} in file (steps: {[s.header.get('step') for s in sections]})")

    def parse_section(self, end: int) -> CSRFile:
        lineno, s = self.next_content("a header")
        if _NAO_STEP.match(s):
            header, dim, n_R, kind = self.nao_header(int(_NAO_STEP.match(s).group(1)), lineno)
        else:
            header, dim, n_R, kind = self.legacy_header(lineno, s)
        R, counts, rows, cols, vals, line_of_R = [], [], [], [], [], []
        is_complex = None
        while True:
            if self.pos >= end:
                break
            nxt = self.next_content("", allow_eof=True)
            if nxt is None or nxt[0] - 1 >= end:
                break
            lineno, s = nxt
            parts = s.split()
            if len(parts) != 4:
                raise self.err(f"expected 'Rx Ry Rz nnz' (4 integers), found {s[:60]!r}", line=lineno)
            r4 = _ints(parts, 4, self.path, lineno, "'Rx Ry Rz nnz'")
            if np.any(np.abs(r4[:3]) >= 10000):
                raise self.err(f"lattice translation {tuple(r4[:3].tolist())} is implausibly large", line=lineno)
            nnz = int(r4[3])
            if nnz < 0 or nnz > dim * dim:
                raise self.err(f"nnz = {nnz} outside 0..dim^2 = {dim * dim}", line=lineno)
            R.append(r4[:3])
            line_of_R.append(lineno)
            counts.append(nnz)
            sections = self.next_is_comment("# CSR values")
            if nnz == 0:
                if sections:  # ABACUS >= 3.9 writes empty blocks as empty sections + dim + 1 zero pointers
                    self.gather(0, "values", end)
                    self.gather(0, "column indices", end)
                    pl, ps = self.gather(dim + 1, "row pointers", end)
                    if np.any(_int_line(ps, dim + 1, self.path, pl, "row pointers")):
                        raise self.err("row pointers of an empty block (nnz = 0) must all be 0", line=pl)
                continue
            vl, vs = self.gather(nnz, f"{nnz} values of the R = {tuple(r4[:3].tolist())} block", end)
            v = _values(vs, nnz, self.path, vl)
            if is_complex is None:
                is_complex = np.iscomplexobj(v)
            elif is_complex != np.iscomplexobj(v):
                raise self.err("mixes real and complex (re,im) values between R blocks", line=vl)
            cl, cs = self.gather(nnz, f"{nnz} column indices", end)
            c = _int_line(cs, nnz, self.path, cl, "column indices")
            pl, ps = self.gather(dim + 1, f"{dim + 1} row pointers", end)
            p = _int_line(ps, dim + 1, self.path, pl, "row pointers")
            _check_csr(p, c, nnz, dim, self.path, pl, cl)
            rows.append(np.repeat(np.arange(dim, dtype=np.int64), np.diff(p)))
            cols.append(c)
            vals.append(v)
        if kind == "legacy" and len(R) != n_R:
            raise self.err(f"header announces {n_R} R blocks but the file holds {len(R)} "
                           "(truncated or wrong count)", line=min(self.pos, len(self.lines)))
        if kind == "nao" and len(R) > n_R:
            raise self.err(f"header announces {n_R} R blocks but the file holds {len(R)}", line=line_of_R[n_R])
        return _assemble(self.path, dim, R, counts, rows, cols, vals, line_of_R, kind, header, is_complex)

    def legacy_header(self, lineno: int, s: str):
        header: dict = {}
        if s.startswith(_STEP_WORDS):
            try:
                header["step"] = int(s.split(":", 1)[1])
            except ValueError:
                raise self.err(f"bad STEP line {s[:60]!r}", line=lineno) from None
            lineno, s = self.next_content("'Matrix Dimension of X(R): n'")
        m = _LEGACY_DIM.match(s)
        if not m:
            raise self.err(f"unknown header {s[:60]!r}: expected 'Matrix Dimension of X(R): n'", line=lineno)
        header["label"] = m.group(1)
        header["dim_line"] = lineno
        if self.label is not None and m.group(1) != self.label:
            raise self.err(f"holds {m.group(1)}(R), expected {self.label}(R)", line=lineno)
        dim = _positive_int(m.group(2), self.path, lineno, "matrix dimension")
        lineno, s = self.next_content("'Matrix number of X(R): n'")
        m = _LEGACY_NUM.match(s)
        if not m:
            raise self.err(f"unknown header {s[:60]!r}: expected 'Matrix number of X(R): n'", line=lineno)
        n_R = _positive_int(m.group(2), self.path, lineno, "number of R", allow_zero=True)
        return header, dim, n_R, "legacy"

    def nao_header(self, step: int, lineno: int):
        header: dict = {"step": step}
        # the description comment, e.g. "# print H matrix in real space H(R)", is skipped by next_content
        desc = [ln.strip() for ln in self.lines[lineno:lineno + 2] if ln.strip().startswith("#")]
        header["description"] = desc[0].lstrip("# ").strip() if desc else ""
        values = {}
        for key in _NAO_KEYS.values():
            ln, s = self.next_content(f"'<n> # {key}'")
            if "#" not in s:
                raise self.err(f"unknown header line {s[:60]!r}: expected '<n> # <description>'", line=ln)
            num, text = s.split("#", 1)
            text, _, extra = text.partition(",")  # "2 # spin index, E_Fermi = 10.3798 eV" (ABACUS >= 3.10)
            name = _NAO_KEYS.get(text.strip())
            if extra.strip():
                m = _E_FERMI.match(extra.strip())
                if name != "spin_index" or m is None:
                    raise self.err(f"unknown header line {s[:60]!r}", line=ln)
                try:
                    ef = float(m.group(1))
                except ValueError:
                    raise self.err(f"E_Fermi {m.group(1)[:30]!r} is not a number", line=ln) from None
                if not np.isfinite(ef):
                    raise self.err(f"E_Fermi = {m.group(1)} is not finite", line=ln)
                header["fermi_energy_eV"] = ef
            if name != key:
                raise self.err(f"unknown header line {s[:60]!r}: expected '<n> # "
                               f"{[k for k, v in _NAO_KEYS.items() if v == key][0]}'", line=ln)
            values[key] = _positive_int(num.strip(), self.path, ln, text.strip(), allow_zero=key == "n_R")
            if key == "dim":
                header["dim_line"] = ln
        header["nspin"], header["spin_index"] = values["nspin"], values["spin_index"]
        header["ucell"] = self.nao_ucell()
        return header, values["dim"], values["n_R"], "nao"

    def nao_ucell(self) -> dict | None:
        """The unit-cell block between the header and the CSR comment box (None where absent)."""
        first = self.peek_content()
        if first is None or len(first.split()) == 4 and all(_is_int(t) for t in first.split()):
            return None
        ln0, name = self.next_content("lattice name")
        try:
            lat0 = float(self.next_content("lattice constant")[1])
            vecs = []
            for _ in range(3):
                ln, s = self.next_content("lattice vector")
                vecs.append([float(x) for x in s.split()[:3]])
            ln, labels_line = self.next_content("species labels")
            labels = labels_line.split()
            ln, counts_line = self.next_content("atom counts")
            counts = [int(x) for x in counts_line.split()]
            ln, mode = self.next_content("coordinate type")
            pos = []
            for _ in range(sum(counts)):
                ln, s = self.next_content("atom position")
                pos.append([float(x) for x in s.split()[:3]])
        except (ValueError, IndexError):
            raise self.err("malformed unit-cell block in the header", line=self.pos) from None
        if len(labels) != len(counts) or mode.lower() != "direct" or np.array(vecs).shape != (3, 3) \
                or np.array(pos).reshape(-1, 3).shape[0] != sum(counts):
            raise self.err("malformed unit-cell block in the header", line=ln0)
        return {"latname": name, "lat0_angstrom": lat0, "latvec": np.array(vecs), "labels": labels,
                "counts": counts, "frac": np.array(pos).reshape(-1, 3)}


def _assemble(path, dim, R, counts, rows, cols, vals, line_of_R, kind, header, is_complex) -> CSRFile:
    R_arr = np.array(R, dtype=np.int64).reshape(-1, 3)
    if len(R_arr):
        uniq = np.unique(R_arr, axis=0)
        if len(uniq) != len(R_arr):
            _, inv, cnt = np.unique(R_arr, axis=0, return_inverse=True, return_counts=True)
            dup = int(np.flatnonzero(cnt[inv.ravel()] > 1)[1])
            raise FormatError(path, f"R = {tuple(R_arr[dup].tolist())} appears twice", line=int(line_of_R[dup]) or None)
    dtype = np.complex128 if is_complex else np.float64
    return CSRFile(
        path=str(path), dim=dim, R=R_arr,
        block_start=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        rows=np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, np.int64),
        cols=np.concatenate(cols).astype(np.int64) if cols else np.zeros(0, np.int64),
        values=np.concatenate(vals).astype(dtype) if vals else np.zeros(0, dtype),
        line_of_R=np.array(line_of_R, dtype=np.int64), kind=kind, header=header)


def _is_int(tok: str) -> bool:
    return tok.lstrip("+-").isdigit()


def _positive_int(tok: str, path, line, what, allow_zero=False) -> int:
    try:
        v = int(tok)
    except ValueError:
        raise FormatError(path, f"{what}: {tok[:30]!r} is not an integer", line=line) from None
    if v < 0 or (v == 0 and not allow_zero):
        raise FormatError(path, f"{what} = {v} must be positive", line=line)
    return v


def _fast(s: str, dtype, n: int) -> np.ndarray | None:
    """C-speed parse of ``n`` numbers separated by blanks; None if anything is off (the caller then
    re-parses token by token to name the problem)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            out = np.fromstring(s, dtype=dtype, sep=" ")
        except (ValueError, DeprecationWarning, OverflowError):
            return None
    return out if out.size == n else None


def _ints(tokens: list[str], n: int, path, line, what) -> np.ndarray:
    if len(tokens) != n:
        raise FormatError(path, f"expected {n} {what}, found {len(tokens)}", line=line)
    try:
        return np.array(tokens, dtype=np.int64)
    except (ValueError, OverflowError):
        bad = next((t for t in tokens if not _is_int(t)), tokens[0])
        raise FormatError(path, f"{what}: {bad[:30]!r} is not an integer", line=line) from None


def _int_line(s: str, n: int, path, line, what) -> np.ndarray:
    if "." not in s and "e" not in s and "E" not in s:
        out = _fast(s, np.int64, n)
        if out is not None:
            return out
    return _ints(s.split(), n, path, line, what)


def _values(s: str, nnz: int, path, line) -> np.ndarray:
    """Parse ``nnz`` real values or ``(re,im)`` pairs from one line."""
    if "(" in s:
        if not (s.count("(") == s.count(")") == s.count(",") == nnz):
            raise FormatError(path, f"expected {nnz} complex values '(re,im)', found a different count or a "
                                    "malformed pair", line=line)
        flat = s.replace("(", " ").replace(")", " ").replace(",", " ")
        arr = _fast(flat, np.float64, 2 * nnz) if len(s.split()) == nnz else None
        if arr is None:
            toks = flat.split()
            if len(toks) != 2 * nnz or len(s.split()) != nnz:
                raise FormatError(path, f"expected {nnz} complex values '(re,im)', found malformed pairs", line=line)
            arr = _floats(toks, path, line)
        out = arr[0::2] + 1j * arr[1::2]
    else:
        out = _fast(s, np.float64, nnz)
        if out is None:
            toks = s.split()
            if len(toks) != nnz:
                raise FormatError(path, f"expected {nnz} values (the block's nnz), found {len(toks)}", line=line)
            out = _floats(toks, path, line)
    if not np.all(np.isfinite(out)):
        raise FormatError(path, "non-finite value (nan/inf)", line=line)
    return out


def _floats(toks: list[str], path, line) -> np.ndarray:
    try:
        return np.array(toks, dtype=np.float64)
    except ValueError:
        bad = next(t for t in toks if not is_float(t))
        raise FormatError(path, f"{bad[:30]!r} is not a number", line=line) from None


def is_float(t: str) -> bool:
    """Whether a token parses as a float."""
    try:
        float(t)
        return True
    except ValueError:
        return False


def _check_csr(p: np.ndarray, c: np.ndarray, nnz: int, dim: int, path, pl, cl) -> None:
    if p[0] != 0 or p[-1] != nnz:
        raise FormatError(path, f"row pointer must start at 0 and end at nnz = {nnz} (found {p[0]} .. {p[-1]})",
                          line=pl)
    if np.any(np.diff(p) < 0):
        raise FormatError(path, "row pointer decreases", line=pl)
    if nnz and (c.min() < 0 or c.max() >= dim):
        raise FormatError(path, f"column index outside 0..{dim - 1}", line=cl)
    rows = np.repeat(np.arange(dim, dtype=np.int64), np.diff(p))
    key = rows * dim + c
    if np.any(np.diff(key) <= 0) and len(np.unique(key)) != nnz:  # fast path: ABACUS sorts columns
        raise FormatError(path, "an element (row, column) is stored twice", line=cl)


# ---------------------------------------------------------------------------------------- binary
def _read_binary(path: Path, raw: bytes, step: int | None) -> CSRFile:
    sections = []
    off = 0
    while off < len(raw):
        sec, off = _binary_section(path, raw, off)
        sections.append(sec)
    if step is None:
        return sections[-1]
    for sec in sections:
        if sec.header["step"] == step:
            return sec
    raise FormatError(path, f"no ionic step {step} in file (steps: {[s.header['step'] for s in sections]})")


def _binary_section(path: Path, raw: bytes, off: int) -> tuple[CSRFile, int]:
    def take(n: int, dtype, what: str) -> np.ndarray:
        nonlocal off
        size = np.dtype(dtype).itemsize * n
        if off + size > len(raw):
            raise FormatError(path, f"binary file ends early at byte {len(raw)} while reading {what}")
        out = np.frombuffer(raw, dtype=dtype, count=n, offset=off)
        off += size
        return out

    step, dim, n_R = (int(x) for x in take(3, "<i4", "the header (step, dim, number of R)"))
    if dim <= 0 or n_R < 0 or dim > 10**6:
        raise FormatError(path, f"binary header (step={step}, dim={dim}, nR={n_R}) is not plausible")
    layout = None  # (value dtype, row-pointer dtype), fixed by the first non-empty block
    R, counts, rows, cols, vals = [], [], [], [], []
    for _ in range(n_R):
        r4 = take(4, "<i4", "an R record").astype(np.int64)
        if np.any(np.abs(r4[:3]) >= 10000):
            raise FormatError(path, f"binary R record {tuple(r4[:3].tolist())} is implausibly large (not an ABACUS binary CSR?)")
        nnz = int(r4[3])
        if nnz < 0 or nnz > dim * dim:
            raise FormatError(path, f"binary R record {tuple(r4[:3].tolist())}: nnz = {nnz} outside 0..dim^2")
        R.append(r4[:3])
        counts.append(nnz)
        if nnz == 0:
            continue
        candidates = [layout] if layout else [(v, p) for v in ("<f8", "<c16") for p in ("<i4", "<i8")]
        start = off
        for vd, pd in candidates:
            off = start
            try:
                v = take(nnz, vd, "values")
                c = take(nnz, "<i4", "column indices").astype(np.int64)
                p = take(dim + 1, pd, "row pointers").astype(np.int64)
                _check_csr(p, c, nnz, dim, path, None, None)
            except FormatError:
                continue
            layout = (vd, pd)
            break
        else:
            raise FormatError(path, f"binary block R = {tuple(r4[:3].tolist())} (nnz={nnz}) is not a valid CSR block "
                                    "in any known layout (float64/complex128 values, int32/int64 row pointers)")
        if not np.all(np.isfinite(v)):
            raise FormatError(path, f"binary block R = {tuple(r4[:3].tolist())}: non-finite value")
        rows.append(np.repeat(np.arange(dim, dtype=np.int64), np.diff(p)))
        cols.append(c)
        vals.append(v.astype(np.complex128 if vd == "<c16" else np.float64))
    is_complex = layout is not None and layout[0] == "<c16"
    sec = _assemble(path, dim, R, counts, rows, cols, vals, [0] * len(R), "binary", {"step": step}, is_complex)
    return sec, off


# ---------------------------------------------------------------------------------------- writing
def format_values(v: np.ndarray) -> str:
    """Shortest round-trip text of values; complex as ``(re,im)``."""
    if np.iscomplexobj(v):
        return " ".join(f"({a!r},{b!r})" for a, b in zip(v.real.tolist(), v.imag.tolist()))
    return " ".join(map(repr, v.tolist()))


def write_csr_legacy(path: str | os.PathLike, label: str, dim: int, R: np.ndarray, block_start: np.ndarray,
                     rows: np.ndarray, cols: np.ndarray, values: np.ndarray, step: int = 0) -> Path:
    """Write a legacy ``STEP:`` CSR text file. Elements of one R block must be sorted by (row, col).

    Values are written with full (round-trip) precision; explicit zeros are kept so that the block
    support survives a round trip.
    """
    path = Path(path)
    out = [f"STEP: {step}", f"Matrix Dimension of {label}(R): {dim}", f"Matrix number of {label}(R): {len(R)}"]
    for r in range(len(R)):
        a, b = int(block_start[r]), int(block_start[r + 1])
        out.append(f"{R[r][0]} {R[r][1]} {R[r][2]} {b - a}")
        if b == a:
            continue
        ptr = np.concatenate([[0], np.cumsum(np.bincount(rows[a:b], minlength=dim))])
        out.append(" " + format_values(values[a:b]))
        out.append(" " + " ".join(map(str, cols[a:b].tolist())))
        out.append(" " + " ".join(map(str, ptr.tolist())))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out) + "\n")
    return path


def write_csr_binary(path: str | os.PathLike, dim: int, R: np.ndarray, block_start: np.ndarray,
                     rows: np.ndarray, cols: np.ndarray, values: np.ndarray, step: int = 0,
                     pointer_dtype: str = "<i4") -> Path:
    """Write the legacy binary layout (see module docstring); used for tests and for ABACUS users."""
    path = Path(path)
    parts = [np.array([step, dim, len(R)], "<i4").tobytes()]
    vdt = "<c16" if np.iscomplexobj(values) else "<f8"
    for r in range(len(R)):
        a, b = int(block_start[r]), int(block_start[r + 1])
        parts.append(np.array([*R[r], b - a], "<i4").tobytes())
        if b == a:
            continue
        ptr = np.concatenate([[0], np.cumsum(np.bincount(rows[a:b], minlength=dim))])
        parts += [values[a:b].astype(vdt).tobytes(), cols[a:b].astype("<i4").tobytes(),
                  ptr.astype(pointer_dtype).tobytes()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(parts))
    return path


_CSR_BOX = [" #" + "-" * 70 + "#",
            " #" + "CSR Format".center(70) + "#",
            " # The outer loop corresponds to the number of Bravais lattice vectors. #",
            " # The first line contains the index of the Bravais lattice vector      #",
            " # (Rx, Ry, Rz), followed by the number of non-zero elements.           #",
            " # The subsequent lines consist of three blocks of data, which are      #",
            " # values, column indices, row pointers.                                #",
            " #" + "-" * 70 + "#"]


def _wrapped(tokens: list[str], per_line: int) -> list[str]:
    return [" " + " ".join(tokens[k:k + per_line]) for k in range(0, len(tokens), per_line)]


def write_csr_nao(path: str | os.PathLike, matrix: str, dim: int, R: np.ndarray, block_start: np.ndarray,
                  rows: np.ndarray, cols: np.ndarray, values: np.ndarray, *, cell: np.ndarray,
                  labels: list[str], counts: list[int], frac: np.ndarray, nspin: int = 1, spin_index: int = 1,
                  fermi_energy_eV: float | None = None, step: int = 1) -> Path:
    """Write the ABACUS >= 3.9 ``*_nao.csr`` text layout (``hrs1_nao.csr``, ``srs1_nao.csr``) as ABACUS
    writes it: header with the unit cell (lattice constant 1 Å, ``cell`` rows in Å, fractional positions),
    values 6 to a line, indices and row pointers 16 to a line, empty R blocks written out.

    ``matrix``: "H" or "S" (the description line). Values are written with round-trip precision (ABACUS
    prints 8 digits), so reading the file back gives the same floats. ``nspin`` is the number printed as
    "number of spin directions" (1 for nspin 1 and 4, 2 for nspin 2). Elements of each R block must be
    sorted by (row, col).
    """
    path = Path(path)
    spin_line = f" {spin_index} # spin index"
    if fermi_energy_eV is not None:
        spin_line += f", E_Fermi = {float(fermi_energy_eV)!r} eV"
    out = [f" --- Ionic Step {step} ---", f" # print {matrix} matrix in real space {matrix}(R)",
           f" {nspin} # number of spin directions", spin_line, f" {dim} # number of localized basis",
           f" {len(R)} # number of Bravais lattice vector R", "", " user_defined_lattice", " 1.0"]
    out += [" " + " ".join(repr(float(x)) for x in row) for row in np.asarray(cell)]
    out += [" " + " ".join(labels), " " + " ".join(map(str, counts)), " Direct"]
    out += [" " + " ".join(repr(float(x)) for x in p) for p in np.asarray(frac).reshape(-1, 3)]
    out += [""] + _CSR_BOX + [""]
    if np.iscomplexobj(values):
        text = [f"({a!r},{b!r})" for a, b in zip(values.real.tolist(), values.imag.tolist())]
    else:
        text = list(map(repr, values.tolist()))
    cols_text = list(map(str, np.asarray(cols).tolist()))
    for r in range(len(R)):
        a, b = int(block_start[r]), int(block_start[r + 1])
        ptr = np.concatenate([[0], np.cumsum(np.bincount(rows[a:b], minlength=dim))])
        out.append(f" {R[r][0]} {R[r][1]} {R[r][2]} {b - a}")
        out += [" # CSR values"] + (_wrapped(text[a:b], 6) or [""])
        out += [" # CSR column indices"] + (_wrapped(cols_text[a:b], 16) or [""])
        out += [" # CSR row pointers"] + _wrapped(list(map(str, ptr.tolist())), 16)
        if b > a:
            out.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out) + "\n")
    return path
