"""Prediction structures: the VTM cfg parser, VVenC's table against its own log, the naive dyadic model."""
import numpy as np
import pytest

from codec import make_codec
from codec.backends.vvenc_gop import vvenc_structure
from codec.structure import PredictionStructure, dyadic, from_encoder_log, from_vtm_cfg, parse_vtm_cfg

# VTM-9.0 cfg/encoder_randomaccess_vtm.cfg, its coding-structure lines restated (15 columns up to temporal_id,
# then #active_L0 #L0 deltas #active_L1 #L1 deltas); the other settings of the file are left out.
VTM9_RA = """
IntraPeriod                   : 32          # Period of I-Frame ( -1 = only first)
DecodingRefreshType           : 1
GOPSize                       : 16          # GOP Size (number of B slice = GOPSize-1)
IntraQPOffset                 : -3
#        Type POC QPoffset QPOffsetModelOff QPOffsetModelScale CbQPoffset CrQPoffset QPfactor tcOffsetDiv2 betaOffsetDiv2 CbTcOffsetDiv2 CbBetaOffsetDiv2 CrTcOffsetDiv2 CrBetaOffsetDiv2 temporal_id #ref_pics_active_L0 #ref_pics_L0   reference_pictures_L0 #ref_pics_active_L1 #ref_pics_L1   reference_pictures_L1
Frame1:   B   16   1   0.0      0.0     0  0  1.0  0  0  0  0  0  0  0   2  3  16 32 24     2  2  16 32
Frame2:   B    8   1  -4.8848   0.2061  0  0  1.0  0  0  0  0  0  0  1   2  2  8 16         2  2  -8 8
Frame3:   B    4   4  -5.7476   0.2286  0  0  1.0  0  0  0  0  0  0  2   2  2  4 12         2  2  -4 -12
Frame4:   B    2   5  -5.90     0.2333  0  0  1.0  0  0  0  0  0  0  3   2  2  2 10         2  3  -2 -6 -14
Frame5:   B    1   6  -7.1444   0.3     0  0  1.0  0  0  0  0  0  0  4   2  2  1 -1         2  4  -1 -3 -7 -15
Frame6:   B    3   6  -7.1444   0.3     0  0  1.0  0  0  0  0  0  0  4   2  2  1 3          2  3  -1 -5 -13
Frame7:   B    6   5  -5.90     0.2333  0  0  1.0  0  0  0  0  0  0  3   2  2  2 6          2  2  -2 -10
Frame8:   B    5   6  -7.1444   0.3     0  0  1.0  0  0  0  0  0  0  4   2  2  1 5          2  3  -1 -3 -11
Frame9:   B    7   6  -7.1444   0.3     0  0  1.0  0  0  0  0  0  0  4   2  3  1 3 7        2  2  -1 -9
Frame10:  B   12   4  -5.7476   0.2286  0  0  1.0  0  0  0  0  0  0  2   2  2  4 12         2  2  -4 4
Frame11:  B   10   5  -5.90     0.2333  0  0  1.0  0  0  0  0  0  0  3   2  2  2 10         2  2  -2 -6
Frame12:  B    9   6  -7.1444   0.3     0  0  1.0  0  0  0  0  0  0  4   2  2  1 9          2  3  -1 -3 -7
Frame13:  B   11   6  -7.1444   0.3     0  0  1.0  0  0  0  0  0  0  4   2  3  1 3 11       2  2  -1 -5
Frame14:  B   14   5  -5.90     0.2333  0  0  1.0  0  0  0  0  0  0  3   2  3  2 6 14       2  2  -2 2
Frame15:  B   13   6  -7.1444   0.3     0  0  1.0  0  0  0  0  0  0  4   2  3  1 5 13       2  2  -1 -3
Frame16:  B   15   6  -7.1444   0.3     0  0  1.0  0  0  0  0  0  0  4   2  4  1 3 7 15     2  2  -1 1
"""


def older_layout(text):
    """The same lines in the 11-column layout of VTM versions before the chroma deblocking offsets."""
    out = []
    for line in text.splitlines():
        if line.startswith("Frame"):
            key, _, rest = line.partition(":")
            tok = rest.split()
            line = f"{key}: " + " ".join(tok[:10] + tok[14:])
        out.append(line)
    return "\n".join(out)


def test_vtm_cfg_parser_reads_the_vtm9_column_layout():
    intra_period, gop, entries = parse_vtm_cfg(VTM9_RA)
    assert (intra_period, gop, len(entries)) == (32, 16, 16)
    first, fifth, last = entries[0], entries[4], entries[15]
    assert (first.poc, first.qp_offset, first.temporal_id, first.l0, first.l1) == (16, 1.0, 0, (16, 32), (16, 32))
    # only the active entries of each list predict: Frame5 keeps 2 of 4 in L1
    assert (fifth.poc, fifth.temporal_id, fifth.l0, fifth.l1) == (1, 4, (1, -1), (-1, -3))
    assert (last.poc, last.l0, last.l1) == (15, (1, 3), (-1, 1))
    assert parse_vtm_cfg(older_layout(VTM9_RA))[2] == entries


def test_vtm_cfg_structure_follows_the_gop():
    s = from_vtm_cfg(VTM9_RA, 64)
    assert s.intra_positions.tolist() == [0, 32]
    assert s.coding_order[:3] == (0, 16, 8) and s.coding_order[17] == 32
    assert s.refs[16] == (0,)  # 16 - 32 does not exist in the first GOP
    assert set(s.refs[8]) == {0, 16} and s.temporal_id[8] == 1 and s.qp_offset[8] == 1.0
    assert set(s.refs[24]) == {16, 8, 32}  # a leading picture of CRA 32 may use pictures before it
    assert set(s.refs[48]) == {32}  # a trailing picture may not: 48 - 32 = 16 is dropped
    assert s.qp_offset[0] == -3.0


def test_vtm_cfg_rejects_lists_that_do_not_add_up():
    bad = VTM9_RA.replace("2  3  16 32 24", "2  4  16 32 24")
    with pytest.raises(ValueError, match="column layout"):
        parse_vtm_cfg(bad)
    with pytest.raises(ValueError, match="FrameN"):
        parse_vtm_cfg("GOPSize : 16\n")


def test_vtm_backend_reads_its_cfg_without_encoding(tmp_path, monkeypatch):
    cfg = tmp_path / "ra.cfg"
    cfg.write_text(VTM9_RA)
    monkeypatch.delenv("FCM_VTM_CFG", raising=False)
    s = make_codec(f"vtm:cfg={cfg}").prediction_structure(48)
    assert s.source.startswith("VTM cfg ra.cfg") and s == from_vtm_cfg(VTM9_RA, 48, source="VTM cfg ra.cfg")
    monkeypatch.setenv("FCM_VTM_CFG", str(cfg))
    assert make_codec("vtm").prediction_structure(20).n_frames == 20


@pytest.mark.parametrize("n", [1, 2, 31, 33, 144, 256])
def test_vvenc_table_structure_is_valid(n):
    s = make_codec("vvenc").prediction_structure(n)
    assert s.intra_positions.tolist() == list(range(0, n, 32))
    for p in range(n):
        if s.intra[p]:
            continue
        base = p // 32 * 32
        # references are already coded (checked by the class) and lie in the same intra period [base, base + 32]
        assert all(base <= q <= base + 32 for q in s.refs[p])
        assert len(s.l0[p]) == 1 and len(s.l1[p]) == 1  # first entries: what VVenC uses on textured content
    full = [p for p in range(min(n, 32)) if n > 32 and not s.intra[p]]
    for p in full:  # the full GOP-32 hierarchy: temporal id from the lowest set bit, QP offset by layer
        assert s.temporal_id[p] == 5 - (p & -p).bit_length() + 1
        assert s.qp_offset[p] == {1: 2, 2: 3, 3: 6, 4: 8, 5: 9}[s.temporal_id[p]]


@pytest.mark.parametrize("spec,n", [("vvenc", 40), ("vvenc", 144), ("vvenc", 97), ("vvenc:gop=16,intra_period=32", 70),
                                    ("vvenc:preset=medium", 48)])
def test_vvenc_table_matches_the_encoders_own_log(spec, n):
    codec = make_codec(spec)
    logged = codec.logged_prediction_structure(n)  # flat frames: VVenC uses every candidate
    table = codec.prediction_structure(n, lists="candidates")
    assert table.intra == logged.intra and table.coding_order == logged.coding_order
    assert table.l0 == logged.l0 and table.l1 == logged.l1 and table.temporal_id == logged.temporal_id


@pytest.mark.parametrize("n", [100, 144])
def test_vvenc_uses_the_first_list_entries_on_textured_content(n):
    codec = make_codec("vvenc")
    noise = np.random.default_rng(n).integers(0, 256, size=(n, 32, 32)).astype(np.uint8)
    logged = codec.logged_prediction_structure(n, frames=noise)
    used = codec.prediction_structure(n)
    assert logged.l0 == used.l0 and logged.l1 == used.l1 and logged.intra == used.intra
    full = dyadic(n, 32)  # whole intra periods are the dyadic hierarchy; only the last, shorter one differs
    last = (n - 1) // 32 * 32
    assert all(set(used.refs[p]) == set(full.refs[p]) for p in range(last))
    assert any(set(used.refs[p]) != set(full.refs[p]) for p in range(last, n))


def test_encoder_log_parser_and_checks():
    log = ("POC     0 TId: 0 (  IDR_N_LP, I-SLICE, QP 29)   10 bits [Y 1 dB] [L0 ] [L1 ]\n"
           "noise POC     2 TId: 1 (      RASL, B-SLICE, QP 34)   5 bits [L0 0 ] [L1 0 ]\n"
           "POC     1 TId: 2 (      RASL, B-SLICE, QP 35)   5 bits [L0 0 2 ] [L1 2 0 ]\n")
    s = from_encoder_log(log, 3, base_qp=32)
    assert s.coding_order == (0, 2, 1) and s.intra == (True, False, False)
    assert s.refs[1] == (0, 2) and s.qp_offset == (-3, 3, 2)
    with pytest.raises(ValueError, match="coded after"):
        PredictionStructure(3, (True, False, False), ((), (2,), (0,)), ((), (), ()), (0, 1, 2))
    with pytest.raises(ValueError, match="no reference"):
        PredictionStructure(2, (True, False), ((), ()), ((), ()), (0, 1))


def test_dyadic_is_two_references_and_intra_every_period():
    s = dyadic(70, 32)
    assert s.intra_positions.tolist() == [0, 32, 64]
    assert s.refs[16] == (0, 32) and s.refs[8] == (0, 16) and s.refs[48] == (32, 64)
    assert s.refs[69] == (64,) and s.refs[66] == (64, 69)
    assert max(len(r) for r in s.refs) == 2
    R, M = s.ref_matrix()
    assert R.shape == (70, 2) and M.sum() == sum(len(r) for r in s.refs)
    d = s.to_dict()
    assert d["n_frames"] == 70 and d["frames"][16]["refs"] == [0, 32]


def test_vvenc_all_intra_and_unknown_tables():
    assert make_codec("vvenc:intra_period=1").prediction_structure(5).intra == (True,) * 5
    with pytest.raises(ValueError, match="logged_prediction_structure"):
        make_codec("vvenc:vvenc_params=MaxParallelFrames=1").prediction_structure(5)
    with pytest.raises(ValueError, match="no VVenC GOP table"):
        vvenc_structure(10, 32, 64)
    assert np.array_equal(vvenc_structure(10).intra_positions, [0])
