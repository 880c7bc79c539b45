"""A study's figures drawn from its in-memory results: BD-rate bars, channel mosaics, similarity heat maps."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from eval.plots import bd_rate_bars, mosaic_comparison, similarity_heatmap
from eval.plots._checks import check_features
from eval.plots._png import plain_text
from codec.files import safe_name
from reorder import validate_order

__all__ = ["study_figures"]

logger = logging.getLogger(__name__)


def _file_names(names: list[str]) -> dict[str, str]:
    """name -> distinct safe file stem (a ``-2``, ``-3``... suffix when two names map to the same stem)."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        stem, k = safe_name(name), 1
        while stem in used:
            k += 1
            stem = f"{safe_name(name)}-{k}"
        used.add(stem)
        out[name] = stem
    return out


def study_figures(
    out_dir: str | Path,
    *,
    bd_table: Mapping[str, Mapping[str, Any]] | None,
    features: Any,
    image_id: str | None,
    orders: Mapping[str, Any],
    distances: Mapping[str, Any] | None = None,
    anchor: str = "identity",
    bd_note: str = "",
) -> dict[str, Path]:
    """Draw a study's figures into ``out_dir/figures`` and return ``{figure name: PNG path}``.

    - ``bd_rate`` -> ``bd_rate.png``: bars of ``bd_table`` (``{order: {"feature_psnr": x, "task": y}}``,
      percentages against ``anchor``); ``bd_note`` (e.g. ``"vvenc:fast, 12 test images"``) is
      added as a second title line.
    - ``mosaics`` -> ``mosaics.png``: ``features`` (one test image's ``[C, H, W]`` array, named
      ``image_id`` in the title) in identity order and in every order of ``orders``
      (name -> permutation array; names are shown as given, e.g. ``'file:hand'``).
    - ``similarity-NAME`` -> ``similarity-SAFE_NAME.png`` for each ``distances[NAME]`` (a
      ``[C, C]`` matrix): the matrix in identity order and in ``orders[NAME]`` when present.

    Tolerant like a report should be: a missing piece (``bd_table``/``features`` None or
    empty) or one that cannot be drawn (bad shape, an order that is not a permutation of
    the channels) is logged and skipped, so a partial run still gets the figures it can have.
    """
    fig_dir = Path(out_dir) / "figures"
    made: dict[str, Path] = {}
    orders = dict(orders or {})

    if not bd_table:
        logger.warning("no BD-rate table given; bd_rate.png skipped")
    else:
        title = f"BD-rate of each channel order against '{plain_text(anchor)}'" + (f"\n{bd_note}" if bd_note else "")
        try:
            made["bd_rate"] = bd_rate_bars(bd_table, fig_dir / "bd_rate.png", anchor=anchor, title=title)
        except ValueError as exc:
            logger.warning("bd_rate.png skipped: %s", exc)

    if features is None:
        logger.info("no features given; mosaics.png skipped")
    else:
        try:
            x = check_features(features)
        except ValueError as exc:
            logger.warning("mosaics.png skipped: %s", exc)
        else:
            usable: dict[str, np.ndarray] = {}
            for name, order in orders.items():
                try:
                    usable[str(name)] = validate_order(order, x.shape[0], source=f"order {str(name)!r}")
                except ValueError as exc:
                    logger.warning("order %r left out of the mosaics: %s", name, exc)
            if not usable:
                logger.warning("no usable orders given; mosaics.png shows the identity order only")
            image = f" {plain_text(image_id)}" if image_id else ""
            title = f"Test image{image}: {x.shape[0]} channels in each order (tiles row by row; numbers = original channel)"
            try:
                made["mosaics"] = mosaic_comparison(x, usable, fig_dir / "mosaics.png", title=title)
            except ValueError as exc:
                logger.warning("mosaics.png skipped: %s", exc)

    distances = dict(distances or {})
    stems = _file_names([str(n) for n in distances])
    for name, distance in distances.items():
        name = str(name)
        try:
            c = np.shape(distance)[0] if np.ndim(distance) >= 1 else 0
            shown: dict[str, Any] = {"identity": orders.get("identity", np.arange(c))}
            if name in orders:
                shown[name] = orders[name]
            made[f"similarity-{name}"] = similarity_heatmap(
                distance, fig_dir / f"similarity-{stems[name]}.png", orders=shown,
                title=f"calibration-set channel distances of '{plain_text(name)}', in identity and in '{plain_text(name)}' order",
            )
        except ValueError as exc:
            logger.warning("similarity heat map for %r skipped: %s", name, exc)
    return made
