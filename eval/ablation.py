"""Ablation grids over how an order is learned and how it is coded, on the shared core.

An ablation compares *variants* (ways to get a channel order) under *coding settings*
(quantizer x codec preset x packing). Every (setting, variant) cell is a BD-rate against the
identity order coded in the same setting on the same test images. Variants:

* ``grid``: a TSP order learned on the calibration split for one (similarity metric,
  channel normalization, solver) combination (:func:`grid_variants`);
* ``fixed``: a reference orderer (e.g. ``tsp-correlation``) learned on the whole
  calibration split, the fixed order that ``oracle`` and ``calib_size`` are compared with;
* ``oracle``: the same kind of order learned on each test image itself and used only for
  that image: the upper bound of any fixed order; its rows carry the cost of sending the
  permutation with each image (``side_bits`` = ceil(log2 C!), 830 bits for 144 channels);
* ``calib_size``: the order learned on the first ``k`` calibration images, for the curve
  of saving against calibration-set size.

Each row also carries ``bd_vs_first_setting`` (and ``bd_task_vs_first_setting``): the BD-rate of the variant
in its setting against the same variant in the first setting (first quantizer, preset and
packing given), i.e. what the coding choice itself is worth, e.g. a tuned quantizer against
the log one for the identity order and for a learned order.

All coding goes through :func:`eval.pipeline.cell.make_jobs` / :func:`eval.pipeline.runner.run_grid`
into one result store. Two variants that produce the same order in the same setting (e.g.
Pearson correlation with and without z-scoring, which it already implies) share their
cells: the cell key is (image, order digest, quantizer, packing, codec, QP, model), so the
work is done once and both variants report it. Rows are therefore attributed to variants
through the plan's keys (:class:`AblationPlan`), not through the ``extra`` columns a row
carries (those name the first variant that coded it).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from eval.analysis.curves import bd_between
from eval.analysis.tables import fmt, text_table
from eval.pipeline.cell import make_jobs, order_side_bits
from eval.pipeline.features import FeatureSet
from eval.pipeline.orders import learn_orders

__all__ = [
    "Variant", "CodingSetting", "AblationPlan", "orderer_name", "grid_variants", "codec_with_preset",
    "coding_settings", "learn_per_image_orders", "learn_calibration_size_orders", "ablation_table",
    "format_ablation", "pivot", "add_variants", "reference_summary", "TABLE_COLUMNS",
]

TABLE_COLUMNS = [
    "kind", "variant", "metric", "normalization", "solver", "k", "quantizer", "preset", "packing",
    "bd_feature_psnr", "bd_task", "bd_vs_first_setting", "bd_task_vs_first_setting", "tour_cost", "order_digest", "codec", "n_images", "qps", "note",
]


@dataclass(frozen=True)
class Variant:
    """One way of getting an order: its label, kind, reorder factory name and ablation axes."""

    label: str
    kind: str  # "anchor" | "grid" | "fixed" | "oracle" | "calib_size"
    orderer: str
    axes: tuple = ()  # ((axis, value), ...) - hashable

    @property
    def axes_dict(self) -> dict:
        return dict(self.axes)


@dataclass(frozen=True)
class CodingSetting:
    """One coding setup: quantizer (label as given and fitted dict), codec spec with preset, packing."""

    quantizer: str
    quantizer_dict_json: str
    preset: str
    codec: str
    packing: str

    @property
    def quantizer_dict(self) -> dict:
        return json.loads(self.quantizer_dict_json)

    @property
    def label(self) -> str:
        return f"{self.quantizer} | {self.preset} | {self.packing}"


def orderer_name(metric: str, normalization: str, solver: str) -> str:
    """The reorder factory name of a TSP order over ``metric`` with a normalization and a solver."""
    return f"tsp-{metric}:normalization={normalization},solver={solver}"


def grid_variants(metrics: Sequence[str], normalizations: Sequence[str], solvers: Sequence[str]) -> list[Variant]:
    """metric x normalization x solver, as :class:`Variant` objects (checked against the reorder factory)."""
    from reorder import make_orderer

    variants = []
    for metric in metrics:
        for norm in normalizations:
            for solver in solvers:
                name = orderer_name(metric, norm, solver)
                try:
                    make_orderer(name)
                except (ValueError, KeyError, TypeError) as exc:
                    raise ValueError(f"ablation cell metric={metric} normalization={norm} solver={solver}: {exc}") from None
                label = f"tsp-{metric}/{norm}/{solver}"
                variants.append(Variant(label, "grid", name, (("metric", metric), ("normalization", norm), ("solver", solver))))
    if not variants:
        raise ValueError("the ablation grid is empty; give at least one value of metrics, normalizations and solvers")
    return variants


def codec_with_preset(codec: str, preset: str | None) -> str:
    """``codec`` spec with ``preset=...`` added (``None``/``"default"`` keeps the codec's own)."""
    if preset in (None, "", "default"):
        return codec
    return codec + ("," if ":" in codec else ":") + f"preset={preset}"


def coding_settings(quantizers: Mapping[str, dict], codecs: Mapping[str, str], packings: Sequence[str]) -> list[CodingSetting]:
    """quantizer x preset x packing; ``quantizers`` maps label -> fitted dict, ``codecs`` preset -> canonical spec."""
    from codec import make_packing

    for p in packings:
        make_packing(p)  # unknown packings fail before any coding
    settings = []
    for qlabel, qdict in quantizers.items():
        for preset, spec in codecs.items():
            for packing in packings:
                settings.append(CodingSetting(qlabel, json.dumps(qdict, sort_keys=True), preset, spec, packing))
    return settings


def learn_per_image_orders(names: Sequence[str], images: FeatureSet, folder, provenance: dict,
                           progress: bool = True) -> dict[str, dict[str, np.ndarray]]:
    """Per-image ("oracle") orders: ``{orderer name: {image id: order}}``, each learned on that image alone.

    ``folder`` is an :class:`~eval.study_folder.OrderFolder`; each image's orders go to its own sub-folder.
    """
    result: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
    for i, image_id in enumerate(images.ids):
        orders = learn_orders(names, images[i:i + 1], folder.sub(image_id), {**provenance, "oracle_image": image_id},
                              progress=progress)
        for name in names:
            result[name][image_id] = orders[name].order
    return dict(result)


def learn_calibration_size_orders(names: Sequence[str], calib: FeatureSet, sizes: Sequence[int], folder,
                                  provenance: dict, progress: bool = True) -> dict[str, dict[int, Any]]:
    """``{orderer name: {k: Permutation}}`` learned on the first ``k`` calibration images."""
    result: dict[str, dict[int, Any]] = defaultdict(dict)
    for k in sizes:
        if not 1 <= k <= len(calib):
            raise ValueError(f"calib_sizes {k}: there are {len(calib)} calibration images; give sizes from 1 to {len(calib)}")
        orders = learn_orders(names, calib[:k], folder.sub(f"k{k}"), {**provenance, "calibration_size": k}, progress=progress)
        for name in names:
            result[name][k] = orders[name]
    return dict(result)


@dataclass
class AblationPlan:
    """The jobs of an ablation and which cell keys make up each (setting, variant) curve."""

    test: FeatureSet
    references: Mapping[str, str]
    qps: Sequence[int]
    model: dict
    bitstream_dir: str | None = None
    jobs: list = field(default_factory=list)
    keys: dict = field(default_factory=dict)  # (setting, variant) -> [cell keys]
    info: dict = field(default_factory=dict)  # variant label -> {"tour_cost", "order_digest"}

    def add(self, setting: CodingSetting, variant: Variant, order, info: dict | None = None) -> None:
        """Add ``variant`` in ``setting``: ``order`` is one order for all images or ``{image id: order}``."""
        extra = {"study": "ablate", "kind": variant.kind, "variant": variant.label, **variant.axes_dict,
                 "quantizer_label": setting.quantizer, "preset": setting.preset}
        common = dict(quantizer=setting.quantizer_dict, codec=setting.codec, qps=self.qps, model=self.model,
                      packing=setting.packing, bitstream_dir=self.bitstream_dir, extra=extra)
        if isinstance(order, Mapping):
            jobs = []
            for i, image_id in enumerate(self.test.ids):
                # a per-image order must be sent with its stream: its index costs ceil(log2 C!) bits per image
                jobs += make_jobs(self.test[i:i + 1], self.references, {variant.label: order[image_id]}, **common,
                                  side_bits=order_side_bits(len(order[image_id])))
        else:
            jobs = make_jobs(self.test, self.references, {variant.label: order}, **common)
        self.jobs.extend(jobs)
        self.keys[(setting, variant)] = [j.key for j in jobs]
        if info:
            self.info[variant.label] = info


def ablation_table(plan: AblationPlan, rows: Sequence[dict], task, method: str = "pchip",
                   anchor: str = "identity") -> tuple[list[dict], list[str]]:
    """BD-rate of every (setting, variant) against the ``anchor`` variant of the same setting.

    Rows are attributed through the plan's keys, so shared cells count for every variant
    that needs them. Returns (table rows with :data:`TABLE_COLUMNS`, notes).
    """
    from eval.analysis.curves import bd_table, build_curves

    by_key = {r["key"]: r for r in rows if r.get("status", "ok") == "ok"}
    settings = list(dict.fromkeys(s for s, _ in plan.keys))
    index = {s: i for i, s in enumerate(settings)}
    variants = {}
    relabelled = []
    for (setting, variant), keys in plan.keys.items():
        variants[variant.label] = variant
        for k in keys:
            if k in by_key:
                relabelled.append({**by_key[k], "order": variant.label, "setting": index[setting]})
    curves = build_curves(relabelled, task=task, setup_columns=("order", "setting"), images=plan.test.ids)
    table, notes = bd_table(curves, anchor=anchor, method=method, match_columns=("setting",))
    curve_of = {(c.setup["order"], c.setup["setting"]): c for c in curves}
    out = []
    for entry in table:
        setting = settings[entry["setting"]]
        variant = variants[entry["order"]]
        axes = variant.axes_dict
        curve = curve_of[(entry["order"], entry["setting"])]
        first = curve_of.get((entry["order"], 0))  # the same variant in the first setting
        info = plan.info.get(variant.label, {})
        out.append({
            "kind": variant.kind, "variant": variant.label, "metric": axes.get("metric"),
            "normalization": axes.get("normalization"), "solver": axes.get("solver"), "k": axes.get("k"),
            "quantizer": setting.quantizer, "preset": setting.preset, "packing": setting.packing,
            "bd_feature_psnr": entry["bd_feature_psnr"], "bd_task": entry["bd_task"],
            "tour_cost": info.get("tour_cost"), "order_digest": info.get("order_digest"), "codec": setting.codec,
            "bd_vs_first_setting": bd_between(first, curve, "feature_psnr", method) if entry["setting"] else None,
            "bd_task_vs_first_setting": bd_between(first, curve, "task", method) if entry["setting"] else None,
            "n_images": curve.n_images, "qps": curve.qp,
            "note": "; ".join(n for n in notes if n.startswith(variant.label + " ") or n.startswith(variant.label + ":")),
            "bpp": entry["bpp"], "feature_psnr": entry["feature_psnr"], "task": entry["task"],
        })
    kinds = {"anchor": 0, "grid": 1, "fixed": 2, "oracle": 3, "calib_size": 4}
    order = {id(r): (e["setting"], kinds.get(r["kind"], 9), r["k"] or 0) for r, e in zip(out, table)}
    out.sort(key=lambda r: order[id(r)])
    return out, notes


def format_ablation(table: Sequence[dict], task_name: str = "task") -> str:
    """One block per coding setting: variant, kind, BD-rates (%)."""
    blocks = []
    for setting in dict.fromkeys((r["quantizer"], r["preset"], r["packing"]) for r in table):
        sub = [r for r in table if (r["quantizer"], r["preset"], r["packing"]) == setting]
        head = ["variant", "kind", "BD feat-PSNR %", f"BD {task_name} %", "tour cost"]
        lines = [[r["variant"], r["kind"], fmt(r["bd_feature_psnr"]), fmt(r["bd_task"]), fmt(r["tour_cost"], ".2f")] for r in sub]
        if any(r.get("bd_vs_first_setting") is not None for r in sub):
            head += ["feat vs 1st setting %", f"{task_name} vs 1st setting %"]
            for line, r in zip(lines, sub):
                line += [fmt(r.get("bd_vs_first_setting")), fmt(r.get("bd_task_vs_first_setting"))]
        title = f"quantizer {setting[0]}, preset {setting[1]}, packing {setting[2]} (vs identity, same setting)"
        blocks.append(text_table(head, lines, title=title))
    return "\n\n".join(blocks)


def pivot(table: Sequence[dict], rows: str = "metric", cols: str = "normalization", value: str = "bd_feature_psnr",
          where: dict | None = None) -> str:
    """A ``rows`` x ``cols`` text grid of ``value`` over the grid variants matching ``where``."""
    sel = [r for r in table if r["kind"] == "grid" and all(r.get(k) == v for k, v in (where or {}).items())]
    rvals = list(dict.fromkeys(r[rows] for r in sel))
    cvals = list(dict.fromkeys(r[cols] for r in sel))
    cell = {(r[rows], r[cols]): r[value] for r in sel}
    width = max([len(rows)] + [len(str(v)) for v in rvals])
    cw = max([8] + [len(str(c)) for c in cvals])
    out = [f"{rows} \\ {cols}".ljust(width + 4) + "  ".join(str(c).rjust(cw) for c in cvals)]
    for rv in rvals:
        out.append(str(rv).ljust(width + 4) + "  ".join(fmt(cell.get((rv, c))).rjust(cw) for c in cvals))
    return "\n".join(out)


def add_variants(plan: AblationPlan, setting: CodingSetting, identity, orders, variants: Sequence[Variant],
                 refs: Sequence[str], oracle: Mapping, by_size: Mapping, n_calib: int) -> None:
    """Add one coding setting's variants to ``plan``: the identity anchor, the grid, and per reference orderer
    its fixed order, per-image oracle and calibration-size orders."""
    def info(perm):
        return {"tour_cost": perm.provenance.get("tour_cost"), "order_digest": perm.digest()}

    plan.add(setting, Variant("identity", "anchor", "identity"), identity, info(orders["identity"]))
    for v in variants:
        plan.add(setting, v, orders[v.orderer].order, info(orders[v.orderer]))
    for name in refs:
        plan.add(setting, Variant(f"{name} (fixed)", "fixed", name, (("reference", name), ("k", n_calib))),
                 orders[name].order, info(orders[name]))
        if name in oracle:
            plan.add(setting, Variant(f"{name} (per-image oracle)", "oracle", name, (("reference", name),)), oracle[name])
        for k, perm in by_size.get(name, {}).items():
            plan.add(setting, Variant(f"{name} @ k={k}", "calib_size", name, (("reference", name), ("k", k))), perm.order, info(perm))


def reference_summary(table: Sequence[dict], refs: Sequence[str]) -> list[str]:
    """Per setting and reference orderer: its fixed order against its per-image oracle, and its calibration-size curve."""
    def fmt_bd(v):
        return "n/a" if v is None else f"{v:+.2f} %"

    out = []
    for setting in dict.fromkeys((r["quantizer"], r["preset"], r["packing"]) for r in table):
        sub = [r for r in table if (r["quantizer"], r["preset"], r["packing"]) == setting]
        for name in refs:
            fixed = next((r for r in sub if r["kind"] == "fixed" and r["variant"] == f"{name} (fixed)"), None)
            orc = next((r for r in sub if r["kind"] == "oracle" and r["variant"] == f"{name} (per-image oracle)"), None)
            curve = [r for r in sub if r["kind"] == "calib_size" and r["variant"].startswith(f"{name} @ ")]
            label = f"{name}, {setting[0]} | {setting[1]} | {setting[2]}"
            if fixed and orc:
                f, o = fixed["bd_feature_psnr"], orc["bd_feature_psnr"]
                share = f"; the fixed order reaches {f / o:.0%} of the oracle's saving" if f is not None and o not in (None, 0) else ""
                out.append(f"{label}: fixed {fmt_bd(f)} vs per-image oracle {fmt_bd(o)} (feature PSNR){share}; "
                           f"task: fixed {fmt_bd(fixed['bd_task'])}, oracle {fmt_bd(orc['bd_task'])}")
            if curve:
                out.append(f"calibration-size curve ({name}): " + ", ".join(f"k={r['k']}: {fmt_bd(r['bd_feature_psnr'])}" for r in curve))
    return out
