"""Protein structures: the C-alpha trace of one chain, ``(N, 3)`` in angstrom; rate in bits
per residue; distortion RMSD in angstrom without superposition.

RECOMBINER's protocol (He et al., ICLR 2024, appendix C): the C-alpha atoms of a chain
(the first 96 residues for its comparison), centred on their mean and divided by 25
angstrom; the INR maps a residue's position along the chain to its three coordinates.
The centre and scale travel in the file (16 bytes), and so do the chain id and the
residues' names and numbers (:func:`pack_residues`, about 5 bits per residue), whose bits
are reported apart from the coordinates'. The decoder writes a PDB file of C-alpha atoms;
coordinates are rounded to the PDB format's 0.001 angstrom, so the written file reads back
to exactly the decoded array.

Reading uses ``biotite`` (PDB and mmCIF / PDBx). Baselines: the coordinates quantised on a
fixed grid (step ``q`` angstrom), delta-coded along the chain and compressed with xz
(LZMA) or zstd, at a matched rate; Foldcomp's published point (8 bytes per residue, whole
backbone) for reference.
"""

from __future__ import annotations

import io
import lzma
import math
import os
import struct

import numpy as np

from jrec_inr import data
from jrec_inr.data import SignalError
from jrec_inr.modalities import Modality, Signal, best_at_most, register, require

__all__ = ["Protein", "PROTEIN", "pack_residues", "unpack_residues", "quantised_baseline", "SCALE"]

#: The protocol's scale: coordinates are divided by 25 angstrom.
SCALE = 25.0
MAX_RESIDUES = 1 << 20
_PARAMS = struct.Struct("<4f")  # centre x, y, z and scale
#: Residue names coded in 5 bits (index in this tuple); others are escaped (31 + 3 bytes).
AMINO = ("ALA", "ARG", "ASN", "ASP", "CYS", "GLN", "GLU", "GLY", "HIS", "ILE", "LEU", "LYS", "MET",
         "PHE", "PRO", "SER", "THR", "TRP", "TYR", "VAL", "MSE", "SEC", "PYL", "UNK")
_ESCAPE = 31


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise SignalError("truncated residue table in the file")
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, pos


def _zigzag(n: int) -> int:
    return 2 * n if n >= 0 else -2 * n - 1


def _unzigzag(n: int) -> int:
    return n // 2 if n % 2 == 0 else -(n + 1) // 2


def pack_residues(chain: str, names, ids, ins_codes) -> bytes:
    """The chain id, residue names (5 bits each, escapes for non-standard ones), numbers
    (the first one, then zigzag deltas unless they are all +1) and insertion codes (only
    when any is set), as compact bytes."""
    names, ids, ins = list(names), [int(i) for i in ids], list(ins_codes)
    chain_b = chain.encode("ascii", "replace")[:255]
    out = bytearray([len(chain_b)]) + chain_b
    codes, escapes = [], bytearray()
    for nm in names:
        if nm in AMINO:
            codes.append(AMINO.index(nm))
        else:
            codes.append(_ESCAPE)
            escapes += nm.encode("ascii", "replace")[:3].ljust(3)
    bits = np.unpackbits(np.asarray(codes, np.uint8)[:, None], axis=1)[:, 3:].ravel()
    out += np.packbits(bits).tobytes() + bytes(escapes)
    consecutive = all(b - a == 1 for a, b in zip(ids, ids[1:], strict=False))
    any_ins = any(c.strip() for c in ins)
    out.append(int(not consecutive) | (int(any_ins) << 1))
    out += _varint(_zigzag(ids[0]))
    if not consecutive:
        for a, b in zip(ids, ids[1:], strict=False):
            out += _varint(_zigzag(b - a))
    if any_ins:
        out += "".join((c or " ")[:1] for c in ins).encode("ascii", "replace")
    return bytes(out)


def unpack_residues(buf: bytes, n: int) -> tuple[str, list, np.ndarray, list, int]:
    """Inverse of :func:`pack_residues` for ``n`` residues: ``(chain, names, ids, ins, end)``."""
    try:
        pos = 0
        lc = buf[pos]
        chain = buf[pos + 1: pos + 1 + lc].decode("ascii")
        pos += 1 + lc
        nbytes = -(-5 * n // 8)
        bits = np.unpackbits(np.frombuffer(buf[pos: pos + nbytes], np.uint8))[: 5 * n]
        if bits.size != 5 * n:
            raise SignalError("truncated residue table in the file")
        codes = np.packbits(np.concatenate([np.zeros((n, 3), np.uint8), bits.reshape(n, 5)], axis=1),
                            axis=1).ravel()
        pos += nbytes
        names = []
        for c in codes:
            if c == _ESCAPE:
                names.append(buf[pos: pos + 3].decode("ascii").strip())
                pos += 3
            elif c < len(AMINO):
                names.append(AMINO[c])
            else:
                raise SignalError(f"invalid residue code {c} in the file")
        flags = buf[pos]
        pos += 1
        first, pos = _read_varint(buf, pos)
        ids = [_unzigzag(first)]
        for _ in range(n - 1):
            if flags & 1:
                d, pos = _read_varint(buf, pos)
                ids.append(ids[-1] + _unzigzag(d))
            else:
                ids.append(ids[-1] + 1)
        if flags & 2:
            raw = buf[pos: pos + n].decode("ascii")
            if len(raw) != n:
                raise SignalError("truncated residue table in the file")
            ins = [c.strip() for c in raw]
            pos += n
        else:
            ins = [""] * n
    except (IndexError, UnicodeDecodeError) as e:
        raise SignalError(f"corrupt residue table in the file ({e})") from e
    return chain, names, np.asarray(ids, np.int64), ins, pos


class Protein(Modality):
    """C-alpha traces of protein chains from PDB or mmCIF files."""

    name = "protein"
    id = 2
    rank = 1
    unit = "bits/residue"
    metric = "rmsd"
    higher_is_better = False
    extensions = ("pdb", "ent", "cif", "mmcif", "pdbx")
    offset = 0.0
    clip = None
    # one 96-residue patch fits fast: 10,000 steps and 30 fine-tuning steps a block gave
    # 0.159 instead of 0.182 A at 35 bits per residue (jrec_inr/models/README.md)
    codec_defaults = {"fit_steps": 10000, "finetune_steps": 30}

    def read(self, path, *, chain: str | None = None, residues: int | None = None, model: int = 1,
             **options) -> Signal:
        """The C-alpha trace of ``chain`` (default: the first chain with amino-acid C-alpha
        atoms) of model ``model``, its first ``residues`` residues (default: all).

        Raises:
          SignalError: missing or unreadable file, no protein chain or C-alpha atoms, a
            chain that does not exist, NaN coordinates, fewer residues than asked for.
        """
        struc = require("biotite.structure", "protein")
        path = os.fspath(path)
        if not os.path.exists(path):
            raise SignalError(f"{path}: no such file")
        suffix = path.lower().rsplit(".", 1)[-1]
        try:
            if suffix in ("cif", "mmcif", "pdbx"):
                from biotite.structure.io import pdbx

                atoms = pdbx.get_structure(pdbx.CIFFile.read(path), model=model)
            else:
                from biotite.structure.io import pdb

                atoms = pdb.PDBFile.read(path).get_structure(model=model)
        except Exception as e:  # biotite raises many kinds on malformed input
            raise SignalError(f"{path}: not a readable structure file ({type(e).__name__}: {e})") from e
        if atoms.array_length() == 0:
            raise SignalError(f"{path}: no atoms")
        ca = atoms[struc.filter_amino_acids(atoms) & (atoms.atom_name == "CA")]
        if ca.array_length() == 0:
            raise SignalError(f"{path}: no protein chain with C-alpha atoms")
        chains = list(dict.fromkeys(ca.chain_id.tolist()))
        if chain is None:
            chain = chains[0]
        elif chain not in chains:
            raise SignalError(f"{path}: no protein chain {chain!r} (chains with C-alpha atoms: "
                              f"{', '.join(chains)})")
        ca = ca[ca.chain_id == chain]
        if residues is not None:
            if residues < 1 or ca.array_length() < residues:
                raise SignalError(f"{path}: chain {chain} has {ca.array_length()} residues, "
                                  f"{residues} asked for")
            ca = ca[:residues]
        xyz = np.asarray(ca.coord, np.float32)
        if not np.all(np.isfinite(xyz)):
            raise SignalError(f"{path}: NaN or infinite C-alpha coordinates")
        if xyz.shape[0] > MAX_RESIDUES:
            raise SignalError(f"{path}: {xyz.shape[0]} residues is more than {MAX_RESIDUES}")
        return Signal(xyz, {"chain": str(chain), "res_names": [str(r) for r in ca.res_name],
                            "res_ids": np.asarray(ca.res_id, np.int64),
                            "ins_codes": [str(c) for c in ca.ins_code]})

    def write(self, path, signal: Signal, **options) -> None:
        """A PDB file of the C-alpha atoms (biotite)."""
        struc = require("biotite.structure", "protein")
        pdb = require("biotite.structure.io.pdb", "protein")
        xyz = np.asarray(signal.values, np.float32)
        n = xyz.shape[0]
        atoms = struc.AtomArray(n)
        atoms.coord = xyz
        atoms.chain_id = np.full(n, signal.info.get("chain", "A") or "A")
        atoms.res_id = np.asarray(signal.info.get("res_ids", np.arange(1, n + 1)))
        atoms.ins_code = np.asarray(signal.info.get("ins_codes", [""] * n))
        atoms.res_name = np.asarray(signal.info.get("res_names", ["UNK"] * n))
        atoms.atom_name = np.full(n, "CA")
        atoms.element = np.full(n, "C")
        atoms.hetero = np.zeros(n, bool)
        f = pdb.PDBFile()
        f.set_structure(atoms)
        buf = io.StringIO()
        f.write(buf)
        data.atomic_write(path, buf.getvalue().encode())

    def normalise(self, signal: Signal) -> tuple[np.ndarray, bytes]:
        v = self.check_values(signal.values, "backbone").astype(np.float32)
        if v.shape[-1] != 3:
            raise SignalError(f"a C-alpha trace is (N, 3), got {v.shape}")
        n = v.shape[0]
        centre = v.astype(np.float64).mean(axis=0).astype(np.float32)
        info = signal.info
        table = pack_residues(info.get("chain", "A"), info.get("res_names", ["UNK"] * n),
                              info.get("res_ids", range(1, n + 1)), info.get("ins_codes", [""] * n))
        x = ((v - centre) / np.float32(SCALE)).astype(np.float32)
        return x, _PARAMS.pack(*centre.tolist(), SCALE) + table

    def restore(self, x: np.ndarray, params: bytes) -> Signal:
        if len(params) < _PARAMS.size:
            raise SignalError("protein parameters of the wrong size in the file")
        cx, cy, cz, scale = _PARAMS.unpack(params[: _PARAMS.size])
        if not (math.isfinite(scale) and scale > 0 and all(map(math.isfinite, (cx, cy, cz)))):
            raise SignalError("invalid centre or scale in the file")
        n = x.shape[0]
        chain, names, ids, ins, end = unpack_residues(params[_PARAMS.size:], n)
        if _PARAMS.size + end != len(params):
            raise SignalError("trailing bytes after the residue table in the file")
        xyz = np.asarray(x, np.float32) * np.float32(scale) + np.asarray([cx, cy, cz], np.float32)
        xyz = (np.round(xyz.astype(np.float64) * 1000.0) / 1000.0).astype(np.float32)  # PDB's precision
        return Signal(xyz, {"chain": chain, "res_names": names, "res_ids": ids, "ins_codes": ins})

    def training_grids(self, signal: Signal, arch) -> list[np.ndarray]:
        """Windows of one patch length (``arch.patch_shape[0]`` residues) every eighth of a
        patch along the chain, each centred on its own mean as the encoder centres a
        structure (a chain shorter than a patch gives none)."""
        n = signal.values.shape[0]
        w = int(arch.patch_shape[0])
        stride = max(1, w // 8)
        out = []
        for start in range(0, n - w + 1, stride):
            window = Signal(signal.values[start: start + w], {})
            out.append(self.normalise(window)[0])
        return out

    def residue_bytes(self, signal: Signal) -> int:
        """Bytes of the residue table (chain, names, numbers) in the file's parameters."""
        n = signal.values.shape[0]
        info = signal.info
        return len(pack_residues(info.get("chain", "A"), info.get("res_names", ["UNK"] * n),
                                 info.get("res_ids", range(1, n + 1)), info.get("ins_codes", [""] * n)))

    def rate(self, num_bytes: int, signal: Signal) -> float:
        return 8.0 * num_bytes / signal.values.shape[0]

    def metrics(self, ref: Signal, recon: Signal) -> dict:
        a = np.asarray(ref.values, np.float64)
        b = np.asarray(recon.values, np.float64)
        if a.shape != b.shape:
            raise SignalError(f"shapes differ: {a.shape} vs {b.shape}")
        dev = np.sqrt(np.sum(np.square(a - b), axis=-1))
        return {"rmsd": float(np.sqrt(np.mean(np.square(dev)))), "max_deviation": float(dev.max())}

    def baselines(self, ref: Signal, rate: float) -> list[dict]:
        return [match_rate(ref, c, rate) for c in ("xz", "zstd")]

    def describe(self, signal: Signal) -> str:
        return f"chain {signal.info.get('chain', '?')}, {signal.values.shape[0]} residues"


def quantised_baseline(ref: Signal, step: float, compressor: str = "xz") -> dict:
    """Coordinates rounded to a grid of ``step`` angstrom, delta-coded along the chain
    (int32), compressed with xz (LZMA, preset 9e, raw format) or zstd (level 22). The
    rate counts the compressed coordinates only (no residue table, as the INR's
    coordinate rate)."""
    xyz = np.asarray(ref.values, np.float64)
    q = np.round(xyz / step).astype(np.int64)
    deltas = np.diff(q, axis=0, prepend=0).astype("<i4")
    raw = deltas.tobytes()
    if compressor == "xz":
        blob = lzma.compress(raw, format=lzma.FORMAT_RAW,
                             filters=[{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}])
    elif compressor == "zstd":
        zstandard = require("zstandard", "baselines")
        blob = zstandard.ZstdCompressor(level=22).compress(raw)
    else:
        raise ValueError(f"unknown compressor {compressor!r} (xz, zstd)")
    recon = (np.cumsum(deltas.astype(np.int64), axis=0) * step).astype(np.float32)
    m = PROTEIN.metrics(ref, Signal(recon, ref.info))
    return {"codec": f"quantise+{compressor}", "bits/residue": 8.0 * len(blob) / xyz.shape[0],
            "step": step, "bytes": len(blob), **m}


def match_rate(ref: Signal, compressor: str, target: float) -> dict:
    """The quantisation step whose compressed coordinates take the most bits per residue
    up to ``target`` (bisection on the log of the step, 0.001-20 angstrom, 16 encodings)."""
    best, points = best_at_most(lambda step: quantised_baseline(ref, step, compressor),
                                lambda p: p["bits/residue"], target, 20.0, 0.001, iters=15, log_scale=True)
    return {**best, "target": float(target), "above_target": best["bits/residue"] > target,
            "evaluations": len(points)}


PROTEIN = register(Protein())
