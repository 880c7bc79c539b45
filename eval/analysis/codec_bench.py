"""Codec benchmark analysis: bits, quality and CPU cost of each codec setup, and the ordering gain it measures.

A *configuration* is a codec registry spec plus a channel packing, written ``SPEC[@PACKING]``
(``vvenc:preset=faster``, ``vvenc:preset=faster@tiled``, ``x265:preset=fast@temporal``).
Every configuration codes the same test images with the identity order and the learned
orders through the shared core; this module turns the stored rows into one table row per
configuration:

* the BD-rate of its identity-order curve against a *reference* configuration (how many
  more bits the codec needs than the reference for the same feature PSNR / task score);
  QPs are not compared point by point, so codecs with another QP scale (AV1's 0..63
  quantizer index) are compared over their overlapping quality range;
* the *ordering gain*: BD-rate of each learned order against identity coded with the same
  configuration (the number :mod:`studies.search_order` reports for one codec), and how
  far it is from the gain the reference configuration measures;
* CPU seconds of the codec's processes per coded image and QP point (``encode_cpu_seconds``
  in the rows; wall seconds too, though those are inflated on a shared machine);
* the status: ``ok``, ``failed: <reason>`` when no cell finished (missing binary, bad
  spec), or ``partial: ...`` when some cells failed.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from eval.analysis.curves import Curve, bd_between, build_curves
from eval.analysis.tables import fmt, text_table

__all__ = [
    "AV1_CODECS",
    "DEFAULT_CONFIGS",
    "DEFAULT_AV1_QPS",
    "CodecConfig",
    "parse_config",
    "parse_configs",
    "default_configs",
    "qps_for",
    "choose_reference",
    "codec_benchmark_table",
    "agreement_lines",
    "format_benchmark_table",
    "format_points_table",
    "flat_table",
    "codec_rd_curves",
]

#: codecs whose ``qp`` is AV1's 0..63 quantizer index, not the H.26x/VVC QP scale
AV1_CODECS = ("svtav1", "aom")

#: AV1 quantizer indices whose feature-PSNR range matches VVC QP 22..37 on MobileNetV2
#: features (measured: svtav1 / aom at 27 and 58 give about the PSNR of VVenC at 22 and 37)
DEFAULT_AV1_QPS = [27, 37, 47, 57]

DEFAULT_CONFIGS = [
    "vvenc:preset=faster",
    "vvenc:preset=fast",
    "vvenc:preset=medium",
    "vvenc:preset=faster@tiled",
    "x265",
    "svtav1",
    "aom",
]

_VTM_ENV = ("FCM_VTM_ENCODER", "FCM_VTM_DECODER", "FCM_VTM_CFG")


@dataclass(frozen=True)
class CodecConfig:
    """One benchmarked setup: ``codec`` and ``packing`` are canonical specs (what result rows record)."""

    label: str  # as written by the user
    codec: str  # canonical codec spec, or the text as given when it does not parse
    packing: str  # canonical packing spec
    family: str  # codec registry name (vvenc, x265, svtav1, ...)
    error: str = ""  # why the spec itself is unusable ("" when it parses)

    @property
    def key(self) -> tuple[str, str]:
        return self.codec, self.packing


def parse_config(text: str, default_packing: str = "temporal") -> CodecConfig:
    """``"SPEC[@PACKING]"`` -> :class:`CodecConfig`.

    A packing that does not parse raises ValueError (it is a typo on the command line). A
    codec spec that does not parse (unknown codec or option) is kept with ``error`` set:
    its cells then fail in the core like those of a missing codec and the benchmark reports
    it as failed without stopping the other configurations.
    """
    from codec import make_codec, make_packing

    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"codec configuration {text!r} is empty; write SPEC[@PACKING], e.g. vvenc:preset=fast@tiled")
    spec, at, packing = text.strip().partition("@")
    if at and not packing.strip():
        raise ValueError(f"codec configuration {text!r} ends with '@'; name a packing after it (temporal or tiled)")
    try:
        packing_spec = make_packing(packing.strip() or default_packing).spec()
    except (ValueError, TypeError) as exc:
        raise ValueError(f"codec configuration {text!r}: {exc}") from None
    family = spec.strip().partition(":")[0].strip().lower()
    try:
        return CodecConfig(text.strip(), make_codec(spec).spec(), packing_spec, family)
    except (ValueError, TypeError) as exc:
        return CodecConfig(text.strip(), spec.strip(), packing_spec, family, error=f"{type(exc).__name__}: {exc}")


def parse_configs(texts: Iterable[str], default_packing: str = "temporal") -> list[CodecConfig]:
    """Parse several configurations; two that mean the same codec and packing raise ValueError."""
    configs: list[CodecConfig] = []
    seen: dict[tuple[str, str], str] = {}
    for text in texts:
        cfg = parse_config(text, default_packing)
        if cfg.key in seen:
            raise ValueError(
                f"codec configurations {seen[cfg.key]!r} and {cfg.label!r} are the same setup "
                f"({cfg.codec} with {cfg.packing} packing); list it once"
            )
        seen[cfg.key] = cfg.label
        configs.append(cfg)
    if not configs:
        raise ValueError("no codec configurations given; list at least one, e.g. codecs = [\"vvenc\", \"x265\"]")
    return configs


def default_configs(environ: Mapping[str, str] | None = None) -> list[str]:
    """:data:`DEFAULT_CONFIGS`, plus ``vtm`` when all three VTM environment variables are set."""
    env = os.environ if environ is None else environ
    extra = ["vtm"] if all(env.get(k) for k in _VTM_ENV) else []
    return list(DEFAULT_CONFIGS) + extra


def qps_for(config: CodecConfig, qps: Sequence[int], qps_av1: Sequence[int]) -> list[int]:
    """The QP set of a configuration: ``qps_av1`` for AV1 codecs (another QP scale), else ``qps``."""
    return [int(q) for q in (qps_av1 if config.family in AV1_CODECS else qps)]


# --------------------------------------------------------------------------- analysis


def _mean(values: Iterable) -> float | None:
    vals = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _status(ok: list[dict], errors: list[dict], expected: int, config: CodecConfig) -> str:
    if config.error and not ok:
        return f"failed: {_short(config.error)}"
    if not errors and len(ok) >= expected:
        return "ok"
    reason = Counter(_short(r.get("error", "") or "unknown error") for r in errors).most_common(1)
    reason_text = reason[0][0] if reason else "cells not run yet"
    if not ok:
        return f"failed: {reason_text}"
    missing = expected - len(ok)
    return f"partial: {missing} of {expected} cells failed: {reason_text}"


def choose_reference(table: Sequence[dict], requested: str | None = None, preferred: str = "vvenc:preset=medium") -> str | None:
    """Label of the reference configuration among ``table``'s usable rows.

    ``requested`` (a label or canonical ``codec@packing``) when given, else ``preferred``
    when it is configured and has an identity curve, else the usable configuration with the
    most encoder CPU seconds per cell (the slowest, normally the strongest). Raises
    ValueError when ``requested`` names no configuration.
    """
    usable = [t for t in table if t.get("_identity_curve") is not None]

    def find(name: str) -> dict | None:
        try:
            cfg = parse_config(name)
            key = (cfg.codec, cfg.packing)
        except ValueError:
            key = None
        for t in table:
            if name == t["config"] or (key is not None and key == (t["codec"], t["packing"])):
                return t
        return None

    if requested:
        hit = find(requested)
        if hit is None:
            raise ValueError(
                f"reference {requested!r} is not one of the configured codecs ({', '.join(t['config'] for t in table)}); "
                "name one of them"
            )
        return hit["config"]
    hit = find(preferred)
    if hit is not None and hit.get("_identity_curve") is not None:
        return hit["config"]
    if not usable:
        return None
    return max(usable, key=lambda t: (t["enc_cpu_s"] if t["enc_cpu_s"] is not None else -1.0))["config"]


def codec_benchmark_table(
    rows: Sequence[dict],
    configs: Sequence[CodecConfig],
    task=None,
    images: Sequence[str] | None = None,
    qps: Mapping[str, Sequence[int]] | None = None,
    orders: Sequence[str] = ("tsp-correlation",),
    anchor_order: str = "identity",
    reference: str | None = None,
    method: str = "pchip",
) -> tuple[list[dict], list[str], str | None]:
    """One entry per configuration from the result rows (``ok`` and ``error`` rows).

    ``qps`` maps a configuration label to its QP list (for counting expected cells; default:
    whatever QPs its rows have). Returns ``(table, notes, reference label)``. Each entry
    holds ``config``, ``codec``, ``packing``, ``status``, cell counts, ``enc_cpu_s`` /
    ``dec_cpu_s`` / ``enc_wall_s`` (mean per image and QP point over all its cells),
    ``enc_cpu_s_per_qp``, ``bd_ref_feature_psnr`` / ``bd_ref_task`` (identity order vs the
    reference configuration's identity order), ``gain`` {order: {"feature_psnr", "task"}}
    (order vs identity with this configuration), ``gain_delta`` {order: {...}} (this gain
    minus the reference's, percentage points) and the identity curve's bpp / PSNR per QP.
    """
    images = list(images) if images is not None else sorted({r["image_id"] for r in rows})
    n_orders = 1 + len([o for o in orders if o != anchor_order])
    by_cfg: dict[tuple[str, str], list[dict]] = {c.key: [] for c in configs}
    for r in rows:
        k = (r.get("codec"), r.get("packing"))
        if k in by_cfg and r.get("image_id") in images:
            by_cfg[k].append(r)
    notes: list[str] = []
    table: list[dict] = []
    for cfg in configs:
        cfg_rows = by_cfg[cfg.key]
        ok = [r for r in cfg_rows if r.get("status") == "ok"]
        errors = [r for r in cfg_rows if r.get("status") != "ok"]
        cfg_qps = list(qps[cfg.label]) if qps and cfg.label in qps else sorted({int(r["qp"]) for r in cfg_rows})
        expected = len(images) * n_orders * len(cfg_qps)
        curves = {c.setup["order"]: c for c in build_curves(ok, task=task, setup_columns=("order",), images=images)}
        for c in curves.values():
            left_out = [q for q in cfg_qps if q not in c.qp]
            if left_out:
                notes.append(f"{cfg.label} {c.label}: QP {', '.join(map(str, left_out))} left out "
                             "(not every image has a finished row there)")
        identity = curves.get(anchor_order)
        gain = {}
        for name in orders:
            if name == anchor_order:
                continue
            gain[name] = {
                "feature_psnr": bd_between(identity, curves.get(name), "feature_psnr", method, notes=notes, label=f"{cfg.label} {name}"),
                "task": bd_between(identity, curves.get(name), "task", method, notes=notes, label=f"{cfg.label} {name}"),
            }
        per_qp: dict[int, list[float]] = {}
        for r in ok:
            if r.get("encode_cpu_seconds") is not None:
                per_qp.setdefault(int(r["qp"]), []).append(float(r["encode_cpu_seconds"]))
        errors_now = [r for r in errors if (r["key"] not in {o["key"] for o in ok})]
        table.append({
            "config": cfg.label,
            "codec": cfg.codec,
            "packing": cfg.packing,
            "status": _status(ok, errors_now, expected, cfg),
            "error": (errors_now[0].get("error", "") if errors_now else cfg.error) or "",
            "cells_ok": len(ok),
            "cells_expected": expected,
            "qps": cfg_qps,
            "enc_cpu_s": _mean(r.get("encode_cpu_seconds") for r in ok),
            "dec_cpu_s": _mean(r.get("decode_cpu_seconds") for r in ok),
            "enc_wall_s": _mean(r.get("encode_seconds") for r in ok),
            "enc_cpu_s_per_qp": {qp: float(np.mean(v)) for qp, v in sorted(per_qp.items())},
            "identity_bpp": dict(zip(identity.qp, identity.bpp)) if identity else {},
            "identity_feature_psnr": dict(zip(identity.qp, identity.feature_psnr)) if identity else {},
            "identity_task": dict(zip(identity.qp, identity.task)) if identity and identity.task else {},
            "gain": gain,
            "_identity_curve": identity if identity and len(identity.qp) >= 1 else None,
        })
    ref_label = choose_reference(table, reference)
    ref = next((t for t in table if t["config"] == ref_label), None)
    for t in table:
        ref_curve = ref["_identity_curve"] if ref else None
        if t is ref:
            t["bd_ref_feature_psnr"] = 0.0 if ref_curve is not None else None
            t["bd_ref_task"] = 0.0 if ref_curve is not None and ref_curve.task else None
        else:
            t["bd_ref_feature_psnr"] = bd_between(ref_curve, t["_identity_curve"], "feature_psnr", method, notes=notes, label=f"{t['config']} vs reference")
            t["bd_ref_task"] = bd_between(ref_curve, t["_identity_curve"], "task", method, notes=notes, label=f"{t['config']} vs reference")
        t["gain_delta"] = {
            name: {
                m: (g[m] - ref["gain"][name][m]) if (ref and g[m] is not None and ref["gain"].get(name, {}).get(m) is not None) else None
                for m in g
            }
            for name, g in t["gain"].items()
        }
    if reference is None and ref_label is not None and ref_label != "vvenc:preset=medium":
        notes.append(f"reference: {ref_label} (vvenc:preset=medium not usable here; the slowest finished configuration)")
    return table, notes, ref_label


def flat_table(table: Sequence[dict]) -> list[dict]:
    """``table`` with nested dicts flattened into columns (for CSV) and private entries dropped."""
    out = []
    for t in table:
        row = {k: v for k, v in t.items() if not k.startswith("_") and k not in ("gain", "gain_delta")}
        for name, g in t["gain"].items():
            for m, v in g.items():
                row[f"gain_{name}_{m}"] = v
                row[f"gain_delta_{name}_{m}"] = t["gain_delta"][name][m]
        out.append(row)
    return out


def format_benchmark_table(table: Sequence[dict], reference: str | None, order: str = "tsp-correlation",
                           task_name: str = "task", status_width: int = 70) -> str:
    """Plain-text table, one line per configuration; a failed one shows ``failed: <reason>``."""
    head = ["config", "packing", "QPs", "enc CPU s", "dec CPU s", "enc wall s",
            "BD vs ref feat %", f"BD vs ref {task_name} %", "gain feat %", f"gain {task_name} %", "Δgain feat pp", "status"]
    lines = []
    for t in table:
        g = t["gain"].get(order, {})
        d = t["gain_delta"].get(order, {})
        name = t["config"] + (" (ref)" if t["config"] == reference else "")
        lines.append([
            name, t["packing"], ",".join(map(str, t["qps"])), fmt(t["enc_cpu_s"], ".2f"), fmt(t["dec_cpu_s"], ".2f"),
            fmt(t["enc_wall_s"], ".2f"), fmt(t["bd_ref_feature_psnr"]), fmt(t["bd_ref_task"]),
            fmt(g.get("feature_psnr")), fmt(g.get("task")), fmt(d.get("feature_psnr")), _short(t["status"], status_width),
        ])
    out = [line.rstrip() for line in text_table(head, lines).split("\n")]
    legend = (f"CPU s: mean per image and QP point (codec processes, user+sys); BD vs ref: identity order against "
              f"{reference or 'n/a'}; gain: {order} vs identity with the same codec; Δgain: gain minus the reference's gain")
    return "\n".join(out + ["", legend])


def format_points_table(table: Sequence[dict]) -> str:
    """The identity-order RD points of each configuration: per QP, bpp, feature PSNR and encoder CPU seconds."""
    lines = []
    width = max([len(t["config"]) for t in table] + [6])
    for t in table:
        pts = []
        for qp in t["qps"]:
            bpp, psnr = t["identity_bpp"].get(qp), t["identity_feature_psnr"].get(qp)
            if bpp is None:
                pts.append(f"QP{qp} n/a")
                continue
            cpu = t["enc_cpu_s_per_qp"].get(qp)
            pts.append(f"QP{qp} {bpp:.3f} bpp {psnr:.2f} dB" + (f" {cpu:.2f} s" if cpu is not None else ""))
        lines.append(t["config"].ljust(width) + "  " + " | ".join(pts))
    return "identity order per QP point (bpp, feature PSNR, encoder CPU s per image):\n" + "\n".join(lines)


def agreement_lines(table: Sequence[dict], reference: str | None, order: str = "tsp-correlation",
                    family: str | None = "vvenc") -> list[str]:
    """Sentences comparing the ordering gain each configuration measures with the reference's.

    With ``family`` set, also the spread (max - min, percentage points) of the gain over
    that codec's temporal-packing configurations (its presets).
    """
    lines = []
    ref = next((t for t in table if t["config"] == reference), None)
    ref_gain = ref["gain"].get(order, {}).get("feature_psnr") if ref else None
    for t in table:
        g = t["gain"].get(order, {}).get("feature_psnr")
        if g is None or t is ref:
            continue
        d = t["gain_delta"].get(order, {}).get("feature_psnr")
        lines.append(f"{order} gain with {t['config']} ({t['packing']}): {g:+.2f}% "
                     + (f"vs {ref_gain:+.2f}% with {reference} ({d:+.2f} pp)" if d is not None else "(no reference gain)"))
    if family:
        fam = [t for t in table if t["codec"].partition(":")[0] == family and t["packing"] == "temporal"
               and t["gain"].get(order, {}).get("feature_psnr") is not None]
        if len(fam) >= 2:
            vals = [t["gain"][order]["feature_psnr"] for t in fam]
            lines.append(f"{family} temporal presets: {order} gain {min(vals):+.2f}% .. {max(vals):+.2f}% "
                         f"(spread {max(vals) - min(vals):.2f} pp over {len(fam)} presets)")
    return lines


def codec_rd_curves(table: Sequence[dict]) -> list[Curve]:
    """The identity-order curve of every finished configuration, labelled by configuration
    (for :func:`eval.plots.plot_rd_curves`, whose legend shows ``setup["order"]``)."""
    out = []
    for t in table:
        c = t.get("_identity_curve")
        if c is not None:
            out.append(Curve(setup={**c.setup, "order": t["config"]}, qp=c.qp, bpp=c.bpp, feature_psnr=c.feature_psnr,
                             task=c.task, n_images=c.n_images, missing=c.missing))
    return out
