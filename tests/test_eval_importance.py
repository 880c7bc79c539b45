"""Channel importance measured through the shared core: a toy network and a toy codec whose error follows the QP."""
from types import SimpleNamespace

import numpy as np
import pytest

from codec import make_codec
from eval.pipeline.features import FeatureRef, FeatureSet
from eval.pipeline.importance import cached_importance, channel_importance, position_rolls
from eval.tasks.classification import KLFidelity, log_softmax
from reorder.importance import ChannelImportance
from reorder.position_loss import step_squared

C, H, W = 16, 16, 16


class StepNoiseCodec:
    """Adds white noise of the size of each frame's quantiser step (VVenC's QP offsets), nothing else."""

    name, grid = "stepnoise", 8

    def __init__(self, n=C):
        self.structure = make_codec("vvenc").prediction_structure(n)
        self.encodes = 0

    def spec(self):
        return "stepnoise"

    def prediction_structure(self, n):
        return make_codec("vvenc").prediction_structure(n)

    def encode(self, frames, qp, bit_depth=8):
        self.encodes += 1
        off = np.asarray(self.prediction_structure(frames.shape[0]).qp_offset, dtype=float)
        rng = np.random.default_rng(self.encodes)
        sd = np.sqrt(step_squared(qp + off, bit_depth) / 12.0)[:, None, None]
        noisy = np.clip(np.rint(frames + sd * rng.standard_normal(frames.shape)), 0, 2 ** bit_depth - 1)
        return SimpleNamespace(bits=8, payload=noisy.astype(frames.dtype))

    def decode(self, bitstream):
        return bitstream.payload


class ToyAdapter:
    """Four 8x8 windows; logits = a fixed linear map of each window's channel means (channel weights differ)."""

    name, layer, n_channels, batch_size = "toy", "x", C, 16
    task_distribution = "each window's softmax over 10 classes"

    def __init__(self):
        import torch

        rng = np.random.default_rng(0)
        self.weight = np.exp(np.linspace(2, -2, C))  # channel 0 matters most
        self.A = torch.tensor(rng.standard_normal((10, C)) * self.weight, dtype=torch.float32)
        self.task = KLFidelity()

    def identity(self):
        return "toy|v1"

    def window_batch(self, f):
        import torch

        t = torch.from_numpy(np.ascontiguousarray(f, dtype=np.float32))
        return torch.stack([t[:, r:r + 8, c:c + 8] for r in (0, 8) for c in (0, 8)])

    def tail_tensor(self, x, grad=False):
        import torch

        with torch.inference_mode(not grad):
            return x.mean(dim=(2, 3)) @ self.A.T * 3.0

    def tail(self, f, meta=None):
        return self.tail_tensor(self.window_batch(f)).numpy()

    def task_log_probs(self, f, meta=None):
        return log_softmax(self.tail(f).astype(np.float64))


@pytest.fixture
def calib(tmp_path):
    rng = np.random.default_rng(1)
    refs = []
    for i in range(2):
        x = (rng.uniform(0.5, 3.0, (C, 1, 1)) * rng.random((C, H, W))).astype(np.float32)
        path = tmp_path / f"f{i}.npy"
        np.save(path, x)
        refs.append(FeatureRef(f"img{i}", f"key{i}", str(path), {"pixels": 4 * H * W, "shape": [C, H, W]}))
    return FeatureSet(refs)


def test_rolls_put_every_channel_once_at_the_top_offset():
    off = np.asarray(make_codec("vvenc").prediction_structure(144).qp_offset, dtype=float)
    assert position_rolls(off) == [0, 1]  # VVenC GOP 32: +9 on every odd position
    rolls = position_rolls([0, 5, 5, 1, 0, 2])
    covered = {(c + s) % 6 for s in rolls for c in range(6) if [0, 5, 5, 1, 0, 2][(c + s) % 6] == 5}
    assert len(rolls) >= 3 and covered == {1, 2}


def test_importance_ranks_the_channels_the_task_weighs(calib):
    from codec import make_quantizer

    q = make_quantizer("uniform").fit(calib)
    imp, measured = channel_importance(ToyAdapter(), calib, q, StepNoiseCodec(), qp=30, method="both", samples=64,
                                       progress=False)
    assert isinstance(imp, ChannelImportance) and imp.reference_offset == 9.0
    assert len(measured) == 2 and all(m.kl_measured.shape == (C,) for m in measured)
    truth = ToyAdapter().weight
    from scipy.stats import spearmanr

    assert spearmanr(imp.importance, truth)[0] > 0.8  # heavier channels cost the task more
    p = imp.provenance
    assert p["spearman_measured_gradient"] > 0.8  # the second-order gradient estimate agrees
    assert p["calibration_digest"] == calib.digest() and p["method"] == "both" and p["qp"] == 30
    by_off = p["code_mse_by_offset"]
    assert by_off["-3"] < by_off["+3"] < by_off["+6"] < by_off["+9"]  # the codec's error follows the QP offset
    assert imp.loss.ratio([-3], 9.0).mean() < 0.2
    with pytest.raises(ValueError, match="method"):
        channel_importance(ToyAdapter(), calib, q, StepNoiseCodec(), method="guess", progress=False)


def test_importance_is_cached_by_model_calibration_and_settings(calib, tmp_path):
    from codec import make_quantizer

    q = make_quantizer("uniform").fit(calib)
    codec = StepNoiseCodec()
    a, path = cached_importance(ToyAdapter(), calib, q, codec, tmp_path / "cache", qp=30, method="gradient",
                                samples=4, progress=False)
    n = codec.encodes
    b, again = cached_importance(ToyAdapter(), calib, q, codec, tmp_path / "cache", qp=30, method="gradient",
                                 samples=4, progress=False)
    assert again == path and codec.encodes == n and np.array_equal(a.importance, b.importance)
    _, other = cached_importance(ToyAdapter(), calib, q, codec, tmp_path / "cache", qp=34, method="gradient",
                                 samples=4, progress=False)
    assert other != path and codec.encodes > n


def test_importance_figures_draw_and_check_their_input(tmp_path):
    from eval.plots.importance import importance_figure, plot_importance, plot_position_loss
    from reorder.position_loss import PositionLoss

    rng = np.random.default_rng(0)
    imp = rng.exponential(size=C)
    off = make_codec("vvenc").prediction_structure(C).qp_offset
    fig = importance_figure(imp, imp * 1.1, {"identity": np.arange(C)}, off)
    assert len(fig.axes) == 4  # bars, the order strip, its colour bar, the scatter
    assert plot_importance(tmp_path / "imp.png", imp).stat().st_size > 0
    with pytest.raises(ValueError, match="qp_offsets"):
        importance_figure(imp, orders={"identity": np.arange(C)})
    with pytest.raises(ValueError, match="16 channels"):
        importance_figure(imp, estimate=np.ones(3))
    offs = np.tile([-3.0, 9.0], 8)
    model = PositionLoss(np.full(C, 100.0), a=0.07, qp=32)
    assert plot_position_loss(tmp_path / "loss.png", offs, np.where(offs > 0, 50.0, 5.0), np.full(16, 100.0),
                              model).stat().st_size > 0


def test_needs_importance_names_the_importance_orderers():
    from eval.pipeline.importance import needs_importance

    assert needs_importance("impcost-correlation:tradeoff=2") and needs_importance("imptsp-mse")
    assert not needs_importance("tsp-correlation") and not needs_importance("refcost-correlation")
