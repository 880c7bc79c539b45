"""A codec's prediction structure: which frames are intra and which frames each one predicts from.

A channel order is coded as a video, and a random-access codec predicts each frame from its
*reference pictures* (hierarchical B), not from the previous frame. :class:`PredictionStructure`
holds, for ``n_frames`` frames in display order (POC = frame index = position in the channel
order): whether the frame is intra, its temporal layer and QP offset where known, its
reference POCs (L0 and L1, each list in its own order) and the coding order. Backends build
it without encoding (``Codec.prediction_structure(n)``); :mod:`reorder.structure_cost` scores a
channel order under it.

Three ways to build one:

* :func:`from_vtm_cfg` parses the ``FrameN:`` lines, ``GOPSize`` and ``IntraPeriod`` of a VTM
  encoder cfg (VTM-9.0 column layout, older 11-column layouts too) and applies the GOP the
  way VTM's encoder does (see its docstring);
* :func:`from_encoder_log` reads the per-picture lines that VTM's EncoderApp and VVenC
  (``Verbosity>=4``) print: ``POC 16 TId: 1 ( ..., B-SLICE, QP 34) ... [L0 0 32 ] [L1 32 0 ]``;
* :func:`dyadic` is the naive model: intra every ``intra_period`` frames, every other frame
  predicted from the two ends of its dyadic interval (two references, no codec behind it).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

__all__ = ["PredictionStructure", "FrameLists", "GopEntry", "parse_vtm_cfg", "from_vtm_cfg", "from_gop", "from_encoder_log",
           "dyadic", "all_intra"]


@dataclass(frozen=True)
class PredictionStructure:
    """Intra flags, references and coding order of ``n_frames`` frames (index = POC = display order).

    ``l0[p]`` / ``l1[p]``: reference POCs of frame ``p`` in list order (empty for intra frames);
    ``temporal_id[p]`` and ``qp_offset[p]`` (QP of the frame minus the base QP) are None where
    the source does not say; ``coding_order`` lists the POCs in the order they are coded.
    ``source`` says where the structure came from (cfg file, encoder, version, options).
    """

    n_frames: int
    intra: tuple[bool, ...]
    l0: tuple[tuple[int, ...], ...]
    l1: tuple[tuple[int, ...], ...]
    coding_order: tuple[int, ...]
    temporal_id: tuple[int | None, ...] = ()
    qp_offset: tuple[float | None, ...] = ()
    source: str = ""
    _refs: tuple = field(default=(), repr=False, compare=False)

    def __post_init__(self):
        n = int(self.n_frames)
        for name in ("intra", "l0", "l1"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"prediction structure: {name} has {len(getattr(self, name))} entries for {n} frames")
        if not self.temporal_id:
            object.__setattr__(self, "temporal_id", (None,) * n)
        if not self.qp_offset:
            object.__setattr__(self, "qp_offset", (None,) * n)
        if sorted(self.coding_order) != list(range(n)):
            raise ValueError("prediction structure: coding_order must list every frame exactly once")
        refs = tuple(tuple(dict.fromkeys((*a, *b))) for a, b in zip(self.l0, self.l1))
        object.__setattr__(self, "_refs", refs)
        self.check()

    # ------------------------------------------------------------------ views
    @property
    def refs(self) -> tuple[tuple[int, ...], ...]:
        """Distinct reference POCs of each frame (L0 then L1, duplicates dropped)."""
        return self._refs

    @property
    def intra_positions(self) -> np.ndarray:
        return np.flatnonzero(np.asarray(self.intra, dtype=bool))

    @property
    def max_refs(self) -> int:
        return max((len(r) for r in self.refs), default=0)

    def ref_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """``(R, mask)``: [n, max_refs] reference POCs padded with 0, and a bool mask of the real entries."""
        n, k = self.n_frames, max(1, self.max_refs)
        R = np.zeros((n, k), dtype=np.int64)
        M = np.zeros((n, k), dtype=bool)
        for p, r in enumerate(self.refs):
            R[p, :len(r)] = r
            M[p, :len(r)] = True
        return R, M

    def to_dict(self) -> dict[str, Any]:
        """The structure as plain data (one record per frame in display order, plus the coding order)."""
        frames = [{"poc": p, "intra": bool(self.intra[p]), "temporal_id": self.temporal_id[p],
                   "qp_offset": self.qp_offset[p], "l0": list(self.l0[p]), "l1": list(self.l1[p]),
                   "refs": list(self.refs[p])} for p in range(self.n_frames)]
        return {"n_frames": self.n_frames, "source": self.source, "coding_order": list(self.coding_order),
                "frames": frames}

    # ------------------------------------------------------------------ checks
    def check(self) -> None:
        """Every frame is intra or has a reference; references exist, are other frames and are coded earlier."""
        rank = np.empty(self.n_frames, dtype=np.int64)
        rank[np.asarray(self.coding_order, dtype=np.int64)] = np.arange(self.n_frames)
        for p in range(self.n_frames):
            r = self.refs[p]
            if self.intra[p] and r:
                raise ValueError(f"prediction structure: intra frame {p} has references {list(r)}")
            if not self.intra[p] and not r:
                raise ValueError(f"prediction structure: inter frame {p} has no reference")
            for q in r:
                if not 0 <= q < self.n_frames or q == p:
                    raise ValueError(f"prediction structure: frame {p} references {q}, outside 0..{self.n_frames - 1}")
                if rank[q] >= rank[p]:
                    raise ValueError(f"prediction structure: frame {p} references {q}, which is coded after it")


# ---------------------------------------------------------------------- GOP tables (VTM cfg style)
@dataclass(frozen=True)
class GopEntry:
    """One ``FrameN:`` line: POC offset in the GOP, QP offset, temporal id and the *active* reference deltas
    (reference POC = POC - delta) of L0 and L1."""

    poc: int
    qp_offset: float
    temporal_id: int
    l0: tuple[int, ...]
    l1: tuple[int, ...]


def _split_refs(tokens: list[str]) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """``nActiveL0 nL0 d.. nActiveL1 nL1 d..`` -> active deltas, or None when the tokens do not fit exactly."""
    try:
        vals = [int(t) for t in tokens]
    except ValueError:
        return None
    out = []
    i = 0
    for _ in range(2):
        if i + 2 > len(vals):
            return None
        active, total = vals[i], vals[i + 1]
        if not 0 <= active <= total or i + 2 + total > len(vals):
            return None
        out.append(tuple(vals[i + 2:i + 2 + active]))
        i += 2 + total
    return (out[0], out[1]) if i == len(vals) else None


#: tokens before the reference lists: VTM-9.0 (Type POC QPoffset QPOffsetModelOff QPOffsetModelScale CbQPoffset
#: CrQPoffset QPfactor tcOffsetDiv2 betaOffsetDiv2 CbTcOffsetDiv2 CbBetaOffsetDiv2 CrTcOffsetDiv2 CrBetaOffsetDiv2
#: temporal_id) and the older layout without the four chroma deblocking offsets
_VTM_LAYOUTS = (15, 11)


def parse_vtm_cfg(text: str) -> tuple[int, int, list[GopEntry]]:
    """``(intra_period, gop_size, entries)`` of a VTM encoder cfg's text.

    Each ``FrameN:`` line is ``Type POC QPoffset ... temporal_id #ref_pics_active_L0 #ref_pics_L0
    deltas... #ref_pics_active_L1 #ref_pics_L1 deltas...``; the number of columns before the
    lists differs between VTM versions (15 tokens in VTM-9.0, 11 before the chroma deblocking
    offsets were added), so the layout is the one under which every line's lists add up exactly.
    """
    settings: dict[str, str] = {}
    lines: list[tuple[int, list[str]]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or ":" not in line:
            continue
        key, _, value = line.partition(":")
        key = key.strip()
        m = re.fullmatch(r"Frame(\d+)", key)
        if m:
            lines.append((int(m.group(1)), value.split()))
        else:
            settings[key] = value.strip()
    if not lines:
        raise ValueError("VTM cfg has no FrameN: lines (a GOP structure)")
    try:
        gop = int(settings.get("GOPSize", len(lines)))
        intra_period = int(settings.get("IntraPeriod", -1))
    except ValueError as exc:
        raise ValueError(f"VTM cfg: GOPSize/IntraPeriod are not integers ({exc})") from None
    lines.sort()
    if [k for k, _ in lines] != list(range(1, len(lines) + 1)) or len(lines) != gop:
        raise ValueError(f"VTM cfg: expected Frame1..Frame{gop} (GOPSize {gop}), found {[k for k, _ in lines]}")
    for width in _VTM_LAYOUTS:
        entries = []
        for _, tok in lines:
            refs = _split_refs(tok[width:]) if len(tok) > width else None
            if refs is None or tok[0] not in ("B", "P", "I"):
                break
            entries.append(GopEntry(int(tok[1]), float(tok[2]), int(tok[width - 1]), *refs))
        else:
            return intra_period, gop, entries
    raise ValueError("VTM cfg: FrameN: lines do not match a known column layout (Type POC QPoffset ... temporal_id "
                     "#active_L0 #L0 deltas #active_L1 #L1 deltas)")


class FrameLists:
    """Per-frame lists filled while a GOP table is walked in coding order: frame 0 intra (temporal id 0,
    ``intra_qp_offset``) and coded first, every other frame not yet set. Shared by :func:`from_gop` and
    the VVenC table (:func:`codec.backends.vvenc_gop.vvenc_structure`)."""

    def __init__(self, n_frames: int, intra_qp_offset: float = 0.0):
        self.n = int(n_frames)
        if self.n < 1:
            raise ValueError("n_frames must be >= 1")
        self.intra = [False] * self.n
        self.l0: list[tuple[int, ...]] = [()] * self.n
        self.l1: list[tuple[int, ...]] = [()] * self.n
        self.tid: list[int | None] = [None] * self.n
        self.qpo: list[float | None] = [None] * self.n
        self.order = [0]
        self.intra[0], self.tid[0], self.qpo[0] = True, 0, intra_qp_offset

    def structure(self, source: str = "") -> PredictionStructure:
        return PredictionStructure(self.n, tuple(self.intra), tuple(self.l0), tuple(self.l1), tuple(self.order),
                                   tuple(self.tid), tuple(self.qpo), source)


def from_gop(n_frames: int, entries: Sequence[GopEntry], gop: int, intra_period: int, intra_qp_offset: float = 0.0,
             source: str = "") -> PredictionStructure:
    """Apply a VTM-style GOP table to ``n_frames`` frames the way VTM's encoder does.

    POC 0 is intra and coded first; then GOP after GOP (base ``b`` = 0, gop, 2*gop, ...) the
    entries are coded in their order at POC ``b + entry.poc``, skipping POCs past the end. A POC
    that is a multiple of ``intra_period`` (> 0) is intra (a CRA). Reference POCs are
    ``POC - delta`` for the active deltas of L0 and L1, kept only when the picture exists and is
    already coded; a picture after the latest CRA in display order (a trailing picture) keeps
    only references at or after that CRA, while leading pictures (coded after a CRA, shown before
    it) may still reference older pictures, as VVC allows for RASL pictures.
    """
    frames = FrameLists(n_frames, intra_qp_offset)
    n, intra, l0, l1, tid, qpo, order = frames.n, frames.intra, frames.l0, frames.l1, frames.tid, frames.qpo, frames.order
    coded = {0}
    last_cra = 0
    base = 0
    while len(order) < n:
        for e in entries:
            poc = base + e.poc
            if poc >= n or poc in coded or poc <= 0:
                continue
            if intra_period > 0 and poc % intra_period == 0:
                intra[poc], tid[poc], qpo[poc] = True, 0, intra_qp_offset
                last_cra = max(last_cra, poc)
            else:
                floor = last_cra if poc > last_cra else 0

                def keep(deltas):
                    refs = [poc - d for d in deltas]
                    return tuple(r for r in dict.fromkeys(refs) if r in coded and r >= floor)

                l0[poc], l1[poc] = keep(e.l0), keep(e.l1)
                tid[poc], qpo[poc] = e.temporal_id, e.qp_offset
                if not l0[poc] and not l1[poc]:  # nothing usable is left: the nearest coded picture before it
                    l0[poc] = (max(r for r in coded if r < poc),)
            order.append(poc)
            coded.add(poc)
        base += gop
        if base > 2 * n + 2 * gop:  # pragma: no cover - a GOP table that never reaches some POC
            raise ValueError("GOP table does not cover every POC")
    return frames.structure(source)


def from_vtm_cfg(text: str, n_frames: int, source: str = "VTM cfg") -> PredictionStructure:
    """The prediction structure a VTM cfg (its text) gives ``n_frames`` frames (see :func:`from_gop`)."""
    intra_period, gop, entries = parse_vtm_cfg(text)
    m = re.search(r"^\s*IntraQPOffset\s*:\s*(-?[\d.]+)", text, re.M)
    return from_gop(n_frames, entries, gop, intra_period, float(m.group(1)) if m else 0.0,
                    source=f"{source} (GOPSize {gop}, IntraPeriod {intra_period})")


# ---------------------------------------------------------------------- encoder logs
_POC_LINE = re.compile(r"POC\s+(\d+)\b(.*?)\[L0([^\]]*)\]\s*\[L1([^\]]*)\]")


def from_encoder_log(log: str, n_frames: int | None = None, base_qp: int | None = None,
                     source: str = "encoder log") -> PredictionStructure:
    """The structure an encoder actually used, from its per-picture log lines (coding order = line order).

    Reads VVenC's (``Verbosity>=4``) and VTM EncoderApp's lines ``POC p TId: t ( ..., X-SLICE, QP q) ...
    [L0 a b ] [L1 c d ]``; ``base_qp`` turns QPs into offsets. Run the encoder single-threaded so
    lines are not interleaved.
    """
    seen: dict[int, tuple] = {}
    order = []
    for m in _POC_LINE.finditer(log):
        poc, mid = int(m.group(1)), m.group(2)
        if poc in seen:
            continue
        t = re.search(r"TId:\s*(\d+)", mid)
        s = re.search(r"\b([IPB])-SLICE", mid)
        q = re.search(r"\bQP\s+(-?\d+)", mid)
        refs0 = tuple(int(v) for v in m.group(3).split())
        refs1 = tuple(int(v) for v in m.group(4).split())
        is_intra = (s.group(1) == "I") if s else not (refs0 or refs1)
        seen[poc] = (is_intra, refs0, refs1, int(t.group(1)) if t else None,
                     (int(q.group(1)) - base_qp) if (q and base_qp is not None) else None)
        order.append(poc)
    n = len(order) if n_frames is None else int(n_frames)
    if sorted(order) != list(range(n)):
        raise ValueError(f"encoder log lists POCs {sorted(order)[:8]}... but {n} frames were expected "
                         "(run the encoder single-threaded with per-picture output)")
    rows = [seen[p] for p in range(n)]
    return PredictionStructure(n, tuple(r[0] for r in rows), tuple(r[1] for r in rows), tuple(r[2] for r in rows),
                               tuple(order), tuple(r[3] for r in rows), tuple(r[4] for r in rows), source)


# ---------------------------------------------------------------------- naive models
def dyadic(n_frames: int, intra_period: int = 32) -> PredictionStructure:
    """Naive hierarchical-B model: intra at multiples of ``intra_period``; in each interval ``[a, b]``
    between intra frames the middle frame is predicted from ``a`` and ``b``, recursively (two
    references per frame). A last interval without a closing intra frame closes at the last
    frame, which is predicted from ``a`` alone. Not any encoder's real structure: the baseline
    the real ones are compared with."""
    n = int(n_frames)
    if n < 1:
        raise ValueError("n_frames must be >= 1")
    p = max(1, int(intra_period))
    intra = [i % p == 0 for i in range(n)]
    l0: list[tuple[int, ...]] = [()] * n
    l1: list[tuple[int, ...]] = [()] * n
    tid: list[int | None] = [0 if x else None for x in intra]
    for a in range(0, n, p):
        b = min(a + p, n - 1)
        if b <= a:
            continue
        if not intra[b]:  # the last interval has no closing intra frame: its last frame is predicted from a
            l0[b], tid[b] = (a,), 0
        stack = [(a, b, 1)]
        while stack:
            lo, hi, depth = stack.pop()
            if hi - lo < 2:
                continue
            mid = (lo + hi) // 2
            l0[mid], l1[mid], tid[mid] = (lo,), (hi,), depth
            stack += [(lo, mid, depth + 1), (mid, hi, depth + 1)]
    return PredictionStructure(n, tuple(intra), tuple(l0), tuple(l1), tuple(_dyadic_order(n, p)), tuple(tid), (),
                               f"naive dyadic (intra period {p}, two references)")


def _dyadic_order(n: int, p: int) -> list[int]:
    order = [0]
    for a in range(0, n, p):
        b = min(a + p, n - 1)
        if b <= a:
            continue
        order.append(b)
        stack = [(a, b)]
        while stack:
            lo, hi = stack.pop(0)
            if hi - lo < 2:
                continue
            mid = (lo + hi) // 2
            order.append(mid)
            stack += [(lo, mid), (mid, hi)]
    return list(dict.fromkeys(order))


def all_intra(n_frames: int, source: str = "all intra") -> PredictionStructure:
    """Every frame intra (intra period 1): no order changes the bits."""
    n = int(n_frames)
    return PredictionStructure(n, (True,) * n, ((),) * n, ((),) * n, tuple(range(n)), (0,) * n, (), source)

