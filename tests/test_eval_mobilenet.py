"""The embedded default model: exact head/tail split, windows, the KL fidelity task metric, registry.

Needs the weights installed (``python -m eval.install``); runs on the CPU.
"""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from eval.data.images import sample_photos
from eval.errors import FeatureError, WeightsNotFoundError
from eval.analysis.metrics import feature_psnr
from eval.models import MODELS, make_model
from eval.models.mobilenet import window_positions
from eval.tasks.classification import KLFidelity


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def model(one_torch_thread):
    # 112 px window stride (28 feature px) keeps the tests fast; the default is 64 px.
    return make_model("mobilenet_v2", window_stride=112)


@pytest.fixture(scope="module")
def photos():
    return {s.id: s.load() for s in sample_photos()[:2]}  # astronaut 512x512, chelsea 300x451


@pytest.fixture(scope="module")
def astronaut(model, photos):
    return model.head(photos["astronaut"])


def test_head_then_tail_equals_unsplit_network_exactly(model, photos):
    import torch

    x = model.preprocess(photos["astronaut"])
    with torch.inference_mode():
        full = model.model(x)
    split = model.tail_tensor(model.head_tensor(x))
    assert torch.equal(full, split)  # bitwise: same operations in the same order
    assert np.array_equal(model.classify(photos["astronaut"]), full[0].numpy())


def test_head_features_and_meta(model, photos, astronaut):
    f, meta = astronaut
    assert f.dtype == np.float32 and f.shape == (144, 128, 128) and f.flags.c_contiguous
    assert meta["pixels"] == 512 * 512 and meta["input_size"] == [512, 512] and meta["shape"] == [144, 128, 128]
    assert f.min() >= 0.0 and f.max() <= 6.0  # ReLU6 activations
    json.dumps(meta)
    g, meta2 = model.head(photos["chelsea"])  # 300 x 451, short side scaled to 512
    assert meta2["pixels"] == 300 * 451 and meta2["input_size"] == [512, 770]
    assert g.shape == (144, 128, 193)


def test_tail_windows_deterministic_and_self_fidelity_is_capped(model, astronaut):
    f, meta = astronaut
    y = model.tail(f, meta)
    assert y.shape == (len(model.windows(128, 128)), 1000) == (16, 1000) and y.dtype == np.float32
    assert np.array_equal(y, model.tail(f.copy(), meta))
    stats = model.task.image_stats(y, y)
    assert stats == {"kl_sum": 0.0, "n": 16, "top1_agree": 16, "top5_agree": 16, "kl_windows": [0.0] * 16}
    assert model.task.aggregate([stats]) == 100.0
    # different windows classify differently: the windows are distinct views, not copies
    assert len(set(y.argmax(axis=1).tolist())) > 1


def test_kl_fidelity_falls_as_quantisation_coarsens(model, astronaut):
    f, meta = astronaut
    ref = model.tail(f, meta)
    scores, psnrs = [], []
    for step in (0.02, 0.08, 0.3, 1.0):
        rec = (np.round(f / step) * step).astype(np.float32)
        stats = model.task.image_stats(model.tail(rec, meta), ref)
        scores.append(model.task.aggregate([stats]))
        psnrs.append(feature_psnr(f, rec))
    assert all(a > b for a, b in zip(scores, scores[1:])), scores
    assert all(a > b for a, b in zip(psnrs, psnrs[1:]))
    assert scores[0] < 100  # lossy, so below the cap


def test_tail_rejects_bad_features(model, astronaut):
    f, meta = astronaut
    with pytest.raises(FeatureError, match=r"must be \[144, H, W\]"):
        model.tail(f[:10], meta)
    with pytest.raises(FeatureError, match="differs from the head's"):
        model.tail(f[:, :100], meta)
    bad = f.copy()
    bad[3, 4, 5] = np.nan
    with pytest.raises(FeatureError, match="NaN/Inf"):
        model.tail(bad, meta)


def test_head_rejects_non_image(model):
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        model.head(np.zeros((10, 10), np.float32))


def test_bad_weights_files(tmp_path):
    import torch

    with pytest.raises(WeightsNotFoundError, match="eval.install"):
        make_model("mobilenet_v2", weights=str(tmp_path / "missing.pth"))
    torch.save({"not_a_layer": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not a torchvision MobileNetV2 state dict"):
        make_model("mobilenet_v2", weights=str(tmp_path / "other.pth"))


def test_identity_reflects_preprocessing(model):
    assert model.identity() == make_model("mobilenet_v2", window_stride=64).identity()  # tail-only option
    assert "b03531047ffacf1e" in model.identity()
    assert make_model("mobilenet_v2", short_side=256).identity() != model.identity()


def test_window_positions_cover_the_extent():
    assert window_positions(128, 56, 16) == [0, 16, 32, 48, 64, 72]
    assert window_positions(56, 56, 16) == [0]
    assert window_positions(40, 56, 16) == [0]
    assert window_positions(120, 56, 32) == [0, 32, 64]


def test_kl_fidelity_known_values():
    task = KLFidelity()
    ref = np.array([[0.0, 0.0], [2.0, 0.0]])
    out = np.array([[math.log(3.0), 0.0], [2.0, 0.0]])
    # KL([.5,.5] || [.75,.25]) = .5 ln(.5/.75) + .5 ln(.5/.25)
    kl = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(2.0)
    stats = task.image_stats(out, ref)
    assert stats["n"] == 2 and stats["kl_sum"] == pytest.approx(kl, rel=1e-12)
    assert stats["top1_agree"] == 2 and stats["top5_agree"] == 2  # the tie in window 0 resolves to class 0
    other = {"kl_sum": 0.0, "n": 2, "top1_agree": 0, "top5_agree": 2}
    assert task.aggregate([stats, other]) == pytest.approx(-10 * math.log10(kl / 4))
    summary = task.summary([stats, other])
    assert summary["top1_agreement"] == pytest.approx((stats["top1_agree"] + 0) / 4)
    assert summary["windows"] == 4
    with pytest.raises(ValueError, match="must be equal"):
        task.image_stats(out, ref[:1])
    with pytest.raises(ValueError, match="no per-image statistics"):
        task.aggregate([])


def test_registry_is_lazy():
    assert "mobilenet_v2" in MODELS.names() and "detectron2" in MODELS.names()
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        make_model("resnet")
    code = ("import sys, eval.models, eval.install, eval.data.images, eval.pipeline.cache, eval.analysis.bdrate, eval.analysis.metrics; "
            "heavy = [m for m in ('torch', 'torchvision', 'detectron2') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
    code = "import sys, eval.install; assert 'numpy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_network_is_torchvisions_without_importing_it(model, photos):
    """The adapter builds MobileNetV2 itself (a worker skips torchvision's import): same modules, same logits bit for bit."""
    import torch
    import torchvision

    reference = torchvision.models.mobilenet_v2(weights=None)
    reference.load_state_dict(model.model.state_dict(), strict=True)  # the same names and shapes both ways
    reference.eval()
    def leaves(net):  # the layers and their settings (torchvision wraps conv-BN-ReLU6 in a Sequential subclass)
        return [(name, repr(m)) for name, m in net.named_modules() if not list(m.children())]

    assert leaves(model.model) == leaves(reference)
    with torch.inference_mode():
        for image in list(photos.values())[:2]:
            x = model.preprocess(image)
            assert torch.equal(model.model(x), reference(x))
    code = ("import sys; from eval.models import make_model; m = make_model('mobilenet_v2'); "
            "assert 'torchvision' not in sys.modules, 'torchvision imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
