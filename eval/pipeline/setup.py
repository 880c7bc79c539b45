"""Everything a study needs before coding: the model, both splits' features, the fitted quantizer, the checked codec."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from eval.pipeline.cell_process import use_adapter
from eval.pipeline.features import FeatureSet, prepare_features

__all__ = ["Setup", "prepare_setup", "fit_quantizer"]


@dataclass
class Setup:
    """Everything a study needs before coding: model, features of both splits, fitted quantizer, codec."""

    adapter: object
    model_spec: dict
    calib: FeatureSet
    test: FeatureSet
    quantizer: object
    quantizer_dict: dict
    codec_spec: str


def prepare_setup(
    model_spec: dict,
    calib_samples,
    test_samples,
    quantizer: str = "log",
    codec: str = "vvenc",
    cache_dir: str | Path = ".cache/features",
    progress: bool = True,
    check_codec: bool = True,
) -> Setup:
    """Load the model, cache features of both splits, fit the quantizer on calibration features.

    ``check_codec`` codes two tiny frames first, so a missing or broken codec binary is
    reported before any model work starts.
    """
    from codec import make_codec
    from eval.models import make_model
    from eval.pipeline.cache import FeatureCache

    codec_obj = make_codec(codec)
    if check_codec:
        codec_obj.smoke_test()
    adapter = make_model(model_spec["name"], **model_spec.get("kwargs", {}))
    use_adapter(model_spec, adapter)  # inline cells reuse this model instead of loading it again
    cache = FeatureCache(cache_dir)
    calib = prepare_features(adapter, calib_samples, cache, progress, desc="calibration features")
    test = prepare_features(adapter, test_samples, cache, progress, desc="test features")
    q = fit_quantizer(quantizer, calib)
    return Setup(adapter, model_spec, calib, test, q, q.to_dict(), codec_obj.spec())


def load_saved_quantizer(path):
    """The quantizer saved in the JSON file ``path`` (a tuning study's best_quantizer.json), fitted or not.

    Raises FileNotFoundError or ValueError with a message that names the file and what to give instead.
    """
    from codec import quantizer_from_dict

    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: file not found; give the best_quantizer.json a tuning study wrote")
    try:
        return quantizer_from_dict(json.loads(Path(path).read_text()))
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a saved quantizer ({exc}); give the best_quantizer.json a tuning "
                         "study wrote, or a spec such as log:bits=10") from None


def fit_quantizer(spec, calib):
    """A quantizer from a spec string (fitted on ``calib``), a saved dict, or the JSON file a tuning study wrote.

    A saved quantizer that has a range is kept as saved; one without is fitted on ``calib``.
    """
    from codec import make_quantizer, quantizer_from_dict

    if isinstance(spec, str) and spec.endswith(".json"):
        q = load_saved_quantizer(spec)
        return q if q.is_fitted else q.fit(calib)
    if isinstance(spec, dict):
        q = quantizer_from_dict(spec)
        return q if q.is_fitted else q.fit(calib)
    return make_quantizer(spec).fit(calib)
