"""What an order search records beside its BD-rate table in ``summary.json``.

Kept apart from :mod:`eval.experiments.search` because it is the long, flat list of what a
reader of ``summary.json`` finds: the run settings, every compared quantizer's runs and
their BD-rates against the paper's pipeline, the QP matching, and the environment.
"""

from __future__ import annotations

__all__ = ["search_summary", "MPEG_ANCHOR"]

#: the name of MPEG's anchor pipeline (codec.pipelines): the run every other is compared with in bd_rate_vs_anchor
MPEG_ANCHOR = "mpeg-anchor"


def _vs(report) -> dict:
    """``{RUN: {feature_psnr, feature_psnr_ci, task, task_ci, overlap}}`` of a runs report."""
    return {name: {**v, "overlap": report.overlaps()[name]} for name, v in report.bd_rates().items()}


def search_summary(config, setup, folder, orders, report, compared, rows) -> tuple[dict, object | None, object | None]:
    """``(extra summary entries, runs report, anchor report)``: the runs report (every run against the main
    quantizer's identity) is None when no further run was compared; the anchor report (every run against
    ``mpeg-anchor/identity``, ``bd_rate_vs_anchor``) None unless MPEG's anchor pipeline was among them."""
    from eval.environment import environment
    from eval.pipeline.quantizer_runs import PAPER_LABEL, main_run, run_label, runs_report

    extra: dict = {}
    vs = anchor_vs = None
    if compared:
        coding = config.coding
        runs = [main_run(coding.quantizer, setup.quantizer_dict, coding.qps, list(orders))] + [c.run for c in compared]
        anchor = run_label(runs[0].label, "identity")
        vs = runs_report(rows, runs, setup.adapter.task, setup.test.ids, anchor=anchor, method=coding.bd_method,
                         replicates=config.bootstrap, block=config.bootstrap_block)
        key = "bd_rate_vs_paper" if runs[0].label == PAPER_LABEL else "bd_rate_vs_main_quantizer"
        extra = {
            "bd_rate": {**report.bd_rates(), **{k: v for c in compared for k, v in c.report.bd_rates().items()}},
            "overlap": {**report.overlaps(), **{k: v for c in compared for k, v in c.report.overlaps().items()}},
            key: _vs(vs),
            f"{key}_anchor": anchor,
            "quantizers": {r.label: {"spec": r.spec, "quantizer": r.quantizer, "qps": r.qps, "orders": r.orders,
                                     **({"packing": r.packing, "codec": r.codec} if r.packing else {})} for r in runs},
            "qp_match": {c.run.label: c.run.match.as_dict() for c in compared if c.run.match is not None},
            "warnings": report.warnings + [w for c in compared for w in c.report.warnings] + vs.warnings,
        }
        if any(r.label == MPEG_ANCHOR for r in runs):
            anchor_vs = runs_report(rows, runs, setup.adapter.task, setup.test.ids, anchor=run_label(MPEG_ANCHOR, "identity"),
                                    method=coding.bd_method, replicates=config.bootstrap, block=config.bootstrap_block)
            extra.update(bd_rate_vs_anchor=_vs(anchor_vs), bd_rate_vs_anchor_anchor=run_label(MPEG_ANCHOR, "identity"))
            extra["warnings"] += anchor_vs.warnings
    # what the data said about itself (a damaged JPEG decodes, but a reader must know)
    # the reports overlap (a compared run's own report and the runs reports name the same curves): each warning once
    extra["warnings"] = list(dict.fromkeys(extra.get("warnings", report.warnings) + setup.calib.warnings()
                                           + setup.test.warnings()))
    extra.update({
        "model": setup.model_spec, "codec": setup.codec_spec, "quantizer": setup.quantizer_dict,
        "packing": config.coding.packing, "qps": list(config.coding.qps), "calibration": setup.calib.ids,
        "test": setup.test.ids, "orders": {name: str(folder.orders.order_path(name)) for name in orders},
        "environment": {**environment(setup.codec_spec, config.run.workers),
                        # cached features keep the CPU they were computed on (figures follow it)
                        "features_computed_on": {"calibration": setup.calib.computed_on(),
                                                 "test": setup.test.computed_on()}},
    })
    return extra, vs, anchor_vs
