"""VVenC's random-access prediction structure as data: which POCs each frame references.

VVenC builds its GOP internally (``source/Lib/EncoderLib/GOPCfg.cpp`` in VVenC 1.x); there is
no cfg to read. The table below was **established empirically from the encoder's own log**:
libvvenc 1.15.0-dev as built into imageio-ffmpeg's ffmpeg 9.0.2 prints one line per picture
with ``Verbosity=6`` (``POC 16 TId: 1 ( RASL, B-SLICE, QP 34) ... [L0 0 32 ] [L1 32 0 ]``);
:meth:`codec.backends.vvenc.VVenCCodec.logged_prediction_structure` encodes flat frames that way
and :func:`codec.backends.vvenc_gop_log.build_table` turned the logs into the tables of
:mod:`codec.backends.vvenc_gop_table`. Checked then:

* identical for the presets faster, fast, medium, slow and slower (144 frames, GOP 32);
* the *candidate* lists (two entries each) are what VVenC uses on flat content (the frames
  :func:`~codec.backends.vvenc_gop_log.build_table` encodes). On textured content VVenC activates only the **first entry of
  each list**: on white noise the logged lists equal the first entries for 100, 144 and 256
  frames (every picture); on MobileNetV2 feature channels (144 frames, identity and random
  orders, presets faster and slow) all but a few pictures (3 of 144 in the image checked in
  detail) do so, the rest use both entries. The coding order and temporal ids do not change.
  Which pictures get two is decided inside the encoder from the content, so it cannot be
  read in advance; :func:`vvenc_structure` gives ``lists="used"`` (first entries, the default)
  or ``lists="candidates"``;
* every segment after an intra frame depends only on how many frames follow it, so whole
  sequences of any length are assembled from one full-period pattern and the tail patterns
  (``tests/test_codec_structure.py`` compares assembled and logged structures).

Facts it shows (GOP 32, intra period 32, poc0idr): intra at 0, 32, 64, ...; the 31 frames between
two intra frames are RASL pictures of the later CRA with up to two candidate references in each
list, all inside ``[base, base + 32]``; with first entries only, a full period is exactly the
dyadic hierarchy (each frame predicted from the two ends of its dyadic interval); temporal ids 1..5 with QP offsets +2, +3, +6, +8, +9 and -3 for intra; a
last, shorter segment uses its own smaller hierarchy (e.g. 15 frames: an 8-frame one).

Format: for each (gop, intra_period), segment length ``r`` -> entries in coding order, each
``"offset tid qp_offset L0 L1"`` with references as offsets from the segment's intra frame
(comma separated, ``-`` for none). ``r == intra_period`` is a full segment whose closing intra frame
(offset ``intra_period``, no references) is listed where it is coded; smaller ``r`` is the
sequence's last segment of ``r`` frames.
"""
from __future__ import annotations

from ..structure import FrameLists, PredictionStructure
from .vvenc_gop_table import INTRA_QP_OFFSET, TABLE_SOURCE, TABLES as _TABLE

__all__ = ["vvenc_structure", "TABLE_SOURCE"]


def _decode(text: str) -> list[tuple[int, int, int, tuple[int, ...], tuple[int, ...]]]:
    out = []
    for item in text.split(";"):
        off, tid, qpo, a, b = item.split()
        refs = [tuple(int(v) for v in x.split(",")) if x != "-" else () for x in (a, b)]
        out.append((int(off), int(tid), int(qpo), refs[0], refs[1]))
    return out


def vvenc_structure(n_frames: int, gop: int = 32, intra_period: int = 32, lists: str = "used") -> PredictionStructure:
    """VVenC's structure for ``n_frames`` frames (random access, poc0idr, no extra parameters).

    ``lists="candidates"``: the reference lists as the table holds them (up to two entries each,
    what VVenC uses on flat content); ``"used"`` (default): only the first entry of each list,
    what VVenC uses on textured content such as feature channels (see the module docstring).
    """
    if lists not in ("used", "candidates"):
        raise ValueError(f"lists={lists!r}: use 'used' or 'candidates'")
    key = (int(gop), int(intra_period))
    if key not in _TABLE:
        raise ValueError(f"no VVenC GOP table for gop={gop}, intra_period={intra_period} (tables: "
                         f"{', '.join(f'{g}/{p}' for g, p in sorted(_TABLE))}); use logged_prediction_structure(n)")
    period, table = key[1], _TABLE[key]
    frames = FrameLists(n_frames, INTRA_QP_OFFSET)
    n, intra, l0, l1, tid, qpo, order = frames.n, frames.intra, frames.l0, frames.l1, frames.tid, frames.qpo, frames.order
    for base in range(0, n, period):
        r = min(period, n - 1 - base)
        if r <= 0:
            break
        for off, t, q, a, b in _decode(table[r]):
            p = base + off
            if lists == "used":
                a, b = a[:1], b[:1]
            l0[p], l1[p] = tuple(base + v for v in a), tuple(base + v for v in b)
            intra[p], tid[p], qpo[p] = not (a or b), t, q  # the closing intra frame: an entry without references
            order.append(p)
    return frames.structure(f"VVenC GOP {gop}, intra period {intra_period}, {lists} lists: {TABLE_SOURCE}")
