"""The study's orders coded under further quantizers, at QPs matched to the anchor's quality range.

A *run* is one quantizer with one order, named ``QUANTIZER/ORDER`` (``paper/identity``,
``recommended/tsp-correlation``). The study's main quantizer (``coding.quantizer``; the paper's
pipeline by default: one global log-scale 8-bit curve) is coded at the study's QPs; each
further quantizer (``compare_quantizers``) is fitted on the calibration split, its QPs are
matched to the range the main quantizer's identity curve spans (:mod:`eval.pipeline.qp_match`,
probing with the identity order) and the compared orders are coded at those QPs.

Two BD-rates come out for every run: against identity under the *same* quantizer (what the
order alone saves) and against the main quantizer's identity (``bd_rate_vs_paper`` in
``summary.json`` when the main quantizer is the paper's: what quantizer and order save
together). Both have paired-bootstrap intervals and the curves' overlap.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from eval.analysis.curves import build_curves
from eval.analysis.report import Report
from eval.pipeline.cell import make_jobs
from eval.pipeline.qp_match import QPMatch, match_qps, quality_range
from eval.pipeline.runner import run_grid

__all__ = ["QuantizerRun", "ComparedRun", "parse_quantizer_specs", "is_paper_pipeline", "run_label", "grid_probe",
           "match_quantizer_qps", "code_order_curve", "match_curve_qps", "curve_points", "runs_report", "main_run",
           "compare_runs", "RunSpec", "pipeline_runs", "PAPER_LABEL", "RECOMMENDED_QUANTIZER"]

PAPER_LABEL = "paper"

#: The package's recommended quantizer (``--compare-quantizers``' default, named ``recommended``):
#: every channel centred on its calibration mean and divided by its calibration standard deviation
#: (fixed per channel, so no side bits), then one log-scale curve (shape 20) with 10-bit codes.
#: The best of 16 trials of ``studies.tune_quantizer --orders tsp-correlation tsp-mse`` (objective: the
#: worse of the feature-PSNR and task BD-rates against the paper's pipeline at matched QPs, on 3
#: held-out calibration photos): -47.2 % feature PSNR, -53.1 % task with tsp-correlation there; log
#: shapes 10 and 40 scored within 0.4 point of it (README, "Quantizer and order together").
RECOMMENDED_QUANTIZER = "channel:curve=log,bits=10,shape=20,stat=std,center=true"


def is_paper_pipeline(quantizer: Mapping) -> bool:
    """Whether a fitted quantizer dict is the paper's: one global log-scale curve, 8-bit codes, no clipping."""
    params = quantizer.get("params", {})
    return (quantizer.get("name") == "log" and int(params.get("bits", 0)) == 8
            and float(params.get("percentile", 100.0)) == 100.0)


def run_label(quantizer_label: str, order: str) -> str:
    return f"{quantizer_label}/{order}"


def parse_quantizer_specs(specs: Sequence[str]) -> list[tuple[str, str]]:
    """``[NAME=]SPEC`` items -> ``[(label, spec)]``; ``none`` alone gives no quantizer.

    ``recommended`` stands for :data:`RECOMMENDED_QUANTIZER` (and names it). The label defaults to the spec itself;
    labels must be unique and may not contain ``/`` (it separates quantizer and order in run names).
    """
    specs = [s for s in specs if s]
    if specs == ["none"]:
        return []
    out, seen = [], set()
    for item in specs:
        label, spec = item.split("=", 1) if "=" in item.split(":", 1)[0] else (None, item)
        if spec == "recommended":
            spec, label = RECOMMENDED_QUANTIZER, label or "recommended"
        label = label or ("recommended" if spec == RECOMMENDED_QUANTIZER else spec)
        if "/" in label or not label:
            raise ValueError(f"quantizer name {label!r} must be non-empty without '/'; write NAME=SPEC")
        if label in seen or label == PAPER_LABEL:
            raise ValueError(f"quantizer name {label!r} is used twice; give each compared quantizer a NAME=")
        seen.add(label)
        out.append((label, spec))
    return out


@dataclass
class QuantizerRun:
    """One quantizer of a study: its label, spec, fitted dict, QPs and (for compared ones) how they were matched."""

    label: str
    spec: str
    quantizer: dict
    qps: list
    match: QPMatch | None = None
    orders: list = field(default_factory=list)
    packing: str | None = None  # a named pipeline's own packing and codec spec; None: the study's
    codec: str | None = None

    @property
    def digest(self) -> str:
        """The quantizer as the rows store it (``quantizer`` column: sorted JSON)."""
        return json.dumps(self.quantizer, sort_keys=True)

    def owns(self, row: Mapping) -> bool:
        """Whether ``row`` was coded by this run (its quantizer, and its packing and codec where the run has its own)."""
        quantizer = row["quantizer"] if isinstance(row["quantizer"], str) else json.dumps(row["quantizer"], sort_keys=True)
        return (quantizer == self.digest and (self.packing is None or row.get("packing") == self.packing)
                and (self.codec is None or row.get("codec") == self.codec))


@dataclass(frozen=True)
class RunSpec:
    """A run to code beside the main quantizer: a quantizer spec and, for a named pipeline, its own packing and
    codec (None: the study's), with the orders it codes besides identity."""

    label: str
    quantizer: str
    packing: str | None = None
    codec: str | None = None
    orders: tuple = ()


def pipeline_runs(names: Sequence[str], codec: str, orders: Sequence[str] = ()) -> list[RunSpec]:
    """``RunSpec`` of each named pipeline (:data:`codec.pipelines.PIPELINES`), its chroma set on ``codec``; ``none`` = []."""
    from codec.pipelines import make_pipeline

    names = [n for n in names if n]
    if names == ["none"]:
        return []
    out = []
    for name in names:
        p = make_pipeline(name)
        out.append(RunSpec(p.name, p.quantizer, p.packing, p.codec_spec(codec), tuple(orders)))
    return out


def code_order_curve(features, references, order_name: str, order, quantizer: dict, codec: str, qps, model: dict,
                     store, task, *, packing: str = "temporal", bitstream_dir: str | None = None,
                     extra: Mapping | None = None, run_kwargs: Mapping | None = None, desc: str = "coding"):
    """Code one order under one quantizer at ``qps`` into ``store`` (finished cells reused).

    Returns ``(curve, run summary)``: the RD curve over all ``features`` images, aggregated as the
    study's curves are (None when no QP finished for every image). The tuner's trials and the QP
    probes both code through it.
    """
    jobs = make_jobs(features, references, {order_name: order}, quantizer, codec, list(qps), model,
                     packing=packing, bitstream_dir=bitstream_dir, extra=extra)
    summary = run_grid(jobs, store, **dict(run_kwargs or {}), desc=desc)
    curves = build_curves(summary.rows, task, images=features.ids)
    return (curves[0] if curves else None), summary


def grid_probe(features, references, order, quantizer: dict, codec: str, model: dict, store, task, *,
               packing: str = "temporal", bitstream_dir: str | None = None, run_kwargs: Mapping | None = None,
               order_name: str = "identity", extra: Mapping | None = None):
    """A :func:`~eval.pipeline.qp_match.match_qps` probe: codes ``order`` at the asked QPs into ``store``.

    Returns ``{qp: {"feature_psnr", "task"}}`` aggregated over all images as the study's curves are.
    """
    def probe(qps):
        curve, _ = code_order_curve(features, references, order_name, order, quantizer, codec, qps, model, store, task,
                                    packing=packing, bitstream_dir=bitstream_dir, extra=extra, run_kwargs=run_kwargs,
                                    desc=f"matching QPs {', '.join(map(str, qps))}")
        return curve_points(curve) if curve is not None else {}
    return probe


def curve_points(curve) -> dict:
    """``{qp: {"feature_psnr", "task"}}`` of a :class:`~eval.analysis.curves.Curve` (task only where it has one)."""
    return {q: {"feature_psnr": curve.feature_psnr[i], **({"task": curve.task[i]} if curve.task else {})}
            for i, q in enumerate(curve.qp)}


def match_curve_qps(anchor, probe, metrics: Sequence[str] = ("feature_psnr", "task"), qp_range=(0, 63)) -> QPMatch:
    """QPs whose probed curve spans the quality range of the ``anchor`` curve on ``metrics`` (as many points as it has)."""
    points = curve_points(anchor)
    metrics = [m for m in metrics if all(m in p for p in points.values())]
    result = match_qps(probe, quality_range(points, metrics), list(anchor.qp), qp_range=qp_range, n_points=len(anchor.qp))
    return result


def match_quantizer_qps(anchor_rows: Sequence[dict], task, images, probe, anchor_qps: Sequence[int],
                        metrics: Sequence[str] = ("feature_psnr", "task"), qp_range=(0, 63)) -> QPMatch:
    """QPs for one quantizer whose identity curve spans the anchor identity curve's range on ``metrics``."""
    curves = build_curves(anchor_rows, task, images=images)
    if len(curves) != 1 or sorted(curves[0].qp) != sorted(int(q) for q in anchor_qps):
        raise ValueError(f"expected the anchor's identity curve alone at QPs {list(anchor_qps)}, got "
                         f"{[c.qp for c in curves]}; check that its cells finished")
    result = match_curve_qps(curves[0], probe, metrics, qp_range)
    if not all(result.reached.values()):
        print(f"warning: QPs {result.qps[0]}..{result.qps[-1]} do not reach the anchor's whole quality range "
              f"({result.reached}); the BD-rates rest on the overlap reported", file=sys.stderr)
    return result


def runs_report(rows: Sequence[dict], runs: Sequence[QuantizerRun], task, images, anchor: str, method: str = "pchip",
                replicates: int = 1000, block: int = 1) -> Report:
    """BD-rates of every run against the run ``anchor`` (e.g. ``paper/identity``), across quantizers.

    Each run's rows are restricted to its own QPs and relabelled (``order`` = the run's name), so
    the curves are compared over the quality range they share (``match_qps=False``), each with
    its overlap and paired-bootstrap interval.
    """
    relabelled = []
    for row in rows:
        run = next((r for r in sorted(runs, key=lambda r: r.packing is None) if r.owns(row)), None)  # pipelines first
        if run is None or row["order"] not in run.orders or int(row["qp"]) not in run.qps:
            continue
        relabelled.append({**row, "order": run_label(run.label, row["order"])})
    return Report.from_rows(relabelled, task, images, anchor=anchor, method=method, replicates=replicates,
                            setup_columns=("order",), match_columns=(), match_qps=False, block=block)


def main_run(spec: str, quantizer: dict, qps: Sequence[int], orders: Sequence[str]) -> QuantizerRun:
    """The study's main quantizer as a run: ``paper`` when it is the paper's global log 8-bit curve,
    else named by its spec (a saved JSON file by its stem)."""
    from pathlib import Path

    spec = str(spec)
    label = PAPER_LABEL if is_paper_pipeline(quantizer) else (Path(spec).stem if spec.endswith(".json") else spec)
    return QuantizerRun(label.replace("/", "_"), spec, quantizer, list(qps), orders=list(orders))


@dataclass
class ComparedRun:
    """One compared quantizer's run: the run itself, its rows, and its report against its own identity."""

    run: QuantizerRun
    rows: list
    report: Report


def compare_runs(specs: Sequence[RunSpec], setup, orders: Mapping[str, object], references: Mapping[str, str],
                 anchor_rows: Sequence[dict], store, *, qps: Sequence[int], match_qps: bool = True,
                 packing: str = "temporal", bitstream_dir: str | None = None, method: str = "pchip",
                 replicates: int = 1000, block: int = 1, run_kwargs: Mapping | None = None) -> list[ComparedRun]:
    """Code identity and each run's orders under each run's quantizer (and packing and codec), at QPs matched to the anchor.

    Each quantizer is fitted on ``setup.calib``; with ``match_qps`` its identity curve is probed
    on the test images until its QPs span the quality range of ``anchor_rows`` (the main
    quantizer's identity rows at ``qps``), else it is coded at ``qps``. A run without its own
    packing or codec takes ``packing`` and the study's codec.
    """
    from codec import make_codec
    from eval.pipeline.setup import fit_quantizer

    task, ids = setup.adapter.task, setup.test.ids
    identity = [r for r in anchor_rows if r["order"] == "identity"]
    out = []
    for spec in specs:
        names = ["identity"] + [o for o in spec.orders if o != "identity"]
        codec, common = spec.codec or setup.codec_spec, dict(packing=spec.packing or packing, bitstream_dir=bitstream_dir)
        qdict = fit_quantizer(spec.quantizer, setup.calib).to_dict()
        match = None
        if match_qps:
            print(f"matching QPs of {spec.label} to the main quantizer's identity quality range", file=sys.stderr)
            probe = grid_probe(setup.test, references, orders["identity"], qdict, codec, setup.model_spec,
                               store, task, run_kwargs=run_kwargs, **common)
            match = match_quantizer_qps(identity, task, ids, probe, qps, qp_range=make_codec(codec).qp_range)
        run_qps = match.qps if match is not None else list(qps)
        jobs = make_jobs(setup.test, references, {n: orders[n] for n in names}, qdict, codec, run_qps,
                         setup.model_spec, **common)
        rows = run_grid(jobs, store, desc=f"coding under {spec.label}", **dict(run_kwargs or {})).rows
        relabelled = [{**r, "order": run_label(spec.label, r["order"])} for r in rows]
        report = Report.from_rows(relabelled, task, ids, anchor=run_label(spec.label, "identity"), method=method,
                                  replicates=replicates, block=block)
        run = QuantizerRun(spec.label, spec.quantizer, qdict, run_qps, match, names, spec.packing, spec.codec)
        out.append(ComparedRun(run, rows, report))
    return out
