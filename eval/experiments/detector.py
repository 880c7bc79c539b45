"""The order search on a real detector: SSDLite-MobileNetV2's person detections on OpenCV's pedestrian video.

The same experiment as :func:`eval.experiments.search.search_orders`, with this model's
defaults: the ``ssdlite-person`` adapter (split at ``expanded_conv_3/expand``, 144 channels at
stride 4), ``vtest.avi`` split in time (32 calibration frames every 8th from the start, 64 test
frames every 8th from 4 s after them), person AP@0.5 against the uncoded detector's own
detections with score >= 0.5 (the accepted pseudo ground truth when no labels exist), intervals
from a moving-block bootstrap over runs of 8 consecutive test frames (6.4 s of video), the
paper's quantizer for every order, and a quantizer tuned for this model on its calibration
frames (:data:`eval.models.ssdlite.TUNED_QUANTIZER`) for identity and the learned order.
``figures/detections.png`` draws one test frame's detections, uncoded and coded.
"""

from __future__ import annotations

from dataclasses import dataclass

from eval.experiments.config import CodingConfig, DataConfig, RunConfig, option
from eval.experiments.search import SearchConfig, SearchResult, search_orders

__all__ = ["DetectorSearchConfig", "search_detector"]


def _tuned() -> list[str]:
    from eval.models.ssdlite import TUNED_QUANTIZER

    return [f"tuned={TUNED_QUANTIZER}"]


@dataclass
class DetectorSearchConfig(SearchConfig):
    """:class:`~eval.experiments.search.SearchConfig` with the detector study's defaults."""

    compare_quantizers: list[str] = option(factory=_tuned, metavar="[NAME=]SPEC",
                                           help="further quantizers coded with identity and --compare-orders at matched QPs "
                                           "(default: the quantizer tuned for this detector on its calibration frames); "
                                           "'none' = only --quantizer")
    bootstrap_block: int = option(8, minimum=1, metavar="N",
                                  help="resample runs of N consecutive test frames together (neighbouring frames are not "
                                  "independent); 1 = single frames")
    data: DataConfig = option(factory=lambda: DataConfig(model="ssdlite-person", video="vtest"), help="model and data")
    coding: CodingConfig = option(factory=CodingConfig, help="coding")
    run: RunConfig = option(factory=lambda: RunConfig(out="results/search_detector"), help="running")


def search_detector(config: DetectorSearchConfig, *, command: str | None = None, source: str | None = None) -> SearchResult:
    """:func:`~eval.experiments.search.search_orders` under the detector study's name (its config.toml says so)."""
    return search_orders(config, command=command, source=source, experiment="search_detector")
