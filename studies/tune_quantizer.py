"""Tune the feature quantizer (and the channel order) with Optuna on the calibration split, against the paper's pipeline.

    python -m studies.tune_quantizer                                 # embedded default, 20 trials
    python -m studies.tune_quantizer --n-trials 40                   # resume the same study up to 40 trials
    python -m studies.tune_quantizer --orders tsp-correlation tsp-mse 'tsp-mse:normalization=zscore'
    python -m studies.tune_quantizer --objective feature_psnr --normalisations global --no-match-qps  # the older, quantizer-only tuning
    python -m studies.tune_quantizer --storage postgresql://host/db --study-name q1
    python -m studies.search_order --compare-quantizers tuned=results/tune_quantizer/best_quantizer.json

Each trial samples a quantizer (per-channel normalisation or none, and for per-channel the statistic and
centring; curve uniform/log/power/mulaw, its shape parameter, clipping percentile, 8 or 10 bits) and,
with ``--orders``, one of the given orders (learned on the fit part: the order's metric and
normalisation are tuned with the quantizer). It fits the quantizer on the *fit* part of the
calibration split, picks QPs whose curve spans the anchor's quality range (``--match-qps``), codes
the *validation* part (held-out calibration images; the test split is never touched) through the
shared core and scores it by BD-rate against the anchor: the untuned ``--quantizer`` (default
``log``, the paper's global log 8-bit curve) with the identity order (with ``--order``: that order)
coding the same images. The objective (``--objective``) is ``worst`` by default: the larger of the
feature-PSNR and task BD-rates, so a candidate wins only by saving bits on both. Why, and how
failures and resuming work: :mod:`eval.tuning`.

Outputs in ``--out``: ``optuna.sqlite`` (the study, unless ``--storage``), ``results.sqlite``
(every coded cell; a re-run or resumed trial recomputes nothing), ``anchor.json``,
``trials.csv``, ``best_quantizer.json`` (the best quantizer refitted on the whole calibration
split; ``--quantizer FILE`` of the other studies reads it), ``summary.json`` and
``rd_curves.png`` (anchor vs best on the validation images).
"""

from __future__ import annotations

import argparse
import sys
import time

from studies import cli


def build_parser() -> argparse.ArgumentParser:
    from eval.tuning import NORMALISATIONS, OBJECTIVES

    parser = cli.study_parser("studies.tune_quantizer", __doc__)
    cli.add_data_arguments(parser)
    cli.add_coding_arguments(parser)  # --quantizer is the anchor the candidates are compared with
    g = parser.add_argument_group("tuning")
    g.add_argument("--n-trials", type=int, default=20, help="completed trials the study should hold (a re-run tops it up)")
    g.add_argument("--n-val", type=int, default=3, help="calibration images held out to score candidates (the rest fit ranges)")
    g.add_argument("--objective", choices=OBJECTIVES, default="worst",
                   help="BD-rate minimised: feature_psnr, task, or worst = the larger of the two")
    g.add_argument("--min-overlap", type=float, default=0.8, help="fail a trial whose feature-PSNR range covers less than this fraction of the anchor's")
    g.add_argument("--max-task-loss", type=float, default=None, metavar="PCT",
                   help="constraint: keep only quantizers whose task BD-rate vs the anchor is at most PCT %% (e.g. 0)")
    g.add_argument("--order", default="identity", help="channel order used for anchor and candidates (a reorder name learned on the fit part)")
    g.add_argument("--orders", nargs="+", default=None, metavar="NAME",
                   help="tune the order too: each trial picks one of these reorder names (learned on the fit part, e.g. "
                   "tsp-correlation tsp-mse 'tsp-mse:normalization=zscore'); the anchor keeps --order")
    g.add_argument("--normalisations", nargs="+", default=list(NORMALISATIONS), choices=list(NORMALISATIONS),
                   help="global: one curve for all channels; channel: each channel scaled by a calibration statistic first")
    g.add_argument("--enqueue", nargs="+", default=[], metavar="SPEC[@ORDER]",
                   help="candidates tried before the sampler's own (quantizer specs, e.g. "
                   "'channel:curve=mulaw,bits=10,stat=p99.9,center=false@tsp-correlation'); one already tried is skipped")
    g.add_argument("--match-qps", action=argparse.BooleanOptionalAction, default=True,
                   help="each candidate's QPs chosen so that its curve spans the anchor's feature-PSNR and task range")
    g.add_argument("--storage", default=None, help="Optuna RDB URL (default: sqlite:///OUT/optuna.sqlite)")
    g.add_argument("--study-name", default="quantizer", help="study name inside the storage")
    g.add_argument("--seed", type=int, default=0, help="TPE sampler seed and validation split seed")
    g.add_argument("--startup-trials", type=int, default=8, help="random trials before TPE models the results")
    g.add_argument("--grace-period", type=int, default=30, help="seconds without heartbeat after which a RUNNING trial counts as killed")
    cli.add_run_arguments(parser, default_out="results/tune_quantizer")
    return parser


def main(argv=None) -> int:
    return cli.run_study(build_parser(), run, argv)


def run(args) -> int:
    import numpy as np

    from codec import make_codec
    from eval import tuning
    from eval.analysis.curves import Curve
    from eval.pipeline.features import FeatureSet, prepare_references
    from eval.pipeline.orders import learn_orders
    from eval.pipeline.setup import prepare_setup
    from eval.plots import plot_rd_curves
    from eval.study_folder import StudyFolder

    t_start = time.perf_counter()
    if args.n_trials < 1:
        raise ValueError(f"--n-trials {args.n_trials}: give at least 1")
    folder = StudyFolder(args.out)
    out = folder.root
    storage = args.storage or f"sqlite:///{(out / 'optuna.sqlite').resolve()}"
    anchor_spec = args.quantizer  # a spec string, or the JSON file of an earlier tuning study

    calib_samples, _ = cli.split_samples(args)  # the test split is not used for tuning
    fit_samples, val_samples = tuning.split_calibration(calib_samples, args.n_val, seed=args.seed)
    setup = prepare_setup(
        cli.model_spec(args), fit_samples, val_samples, quantizer=anchor_spec, codec=cli.codec_spec(args),
        cache_dir=args.cache_dir, progress=not args.quiet,
    )
    fit, val = setup.calib, setup.test
    order_name, order = "identity", None
    if args.order != "identity":
        order_name = args.order
        order = learn_orders([args.order], setup.calib, folder.orders, cli.provenance(setup), progress=not args.quiet)[args.order].order
    order_choices = None
    if args.orders:
        learned = learn_orders([o for o in args.orders if o != "identity"], setup.calib, folder.orders,
                               cli.provenance(setup), progress=not args.quiet)
        arrays = learned.arrays()
        order_choices = {o: (np.arange(fit.n_channels) if o == "identity" else arrays[o]) for o in args.orders}
    references = prepare_references(setup.adapter, val, progress=not args.quiet)
    print(f"tuning on {len(fit)} fit + {len(val)} validation calibration images ({', '.join(val.ids)}), "
          f"{setup.codec_spec}, anchor QPs {' '.join(map(str, args.qps))}, anchor order {order_name}"
          + (f", orders tuned among {', '.join(args.orders)}" if args.orders else ""), file=sys.stderr)

    with folder.results_store() as store, tuning.study_cluster(args.workers, args.scheduler) as address:
        ctx = tuning.TuningContext(
            fit=fit, val=val, references=references, task=setup.adapter.task, model=setup.model_spec,
            codec=setup.codec_spec, qps=list(args.qps), store=store, order_name=order_name, order=order,
            packing=args.packing, objective=args.objective, method=args.bd_method, min_overlap=args.min_overlap,
            order_choices=order_choices, normalisations=list(args.normalisations), match_qps=args.match_qps,
            qp_range=make_codec(setup.codec_spec).qp_range,
            max_task_loss=args.max_task_loss, workers=args.workers, scheduler=address, max_attempts=args.max_attempts, progress=not args.quiet,
            bitstream_dir=str(folder.bitstreams_dir) if args.keep_bitstreams else None, extra={"study": "tune_quantizer"},
        )
        anchor, summary = tuning.code_curve(ctx, setup.quantizer_dict, "anchor")
        if anchor is None or len(anchor.qp) < 4:
            raise ValueError(f"the anchor quantizer's curve has {0 if anchor is None else len(anchor.qp)} complete QP points "
                             "(need 4); see the failed cells in results.sqlite and fix the codec setup")
        folder.write_json("anchor.json", {"quantizer": setup.quantizer_dict, "curve": anchor.as_dict(),
                                                "cells_coded": summary.finished, "cells_reused": summary.skipped})
        digest = tuning.setup_digest(
            model=setup.model_spec, codec=setup.codec_spec, qps=list(args.qps), packing=args.packing,
            fit=[r.key for r in fit.refs], val=[r.key for r in val.refs], order=[int(i) for i in ctx.order],
            anchor=setup.quantizer_dict, objective=args.objective, method=args.bd_method, min_overlap=args.min_overlap,
            **({"max_task_loss": args.max_task_loss} if args.max_task_loss is not None else {}),
            # only what differs from the quantizer-only tuning, so studies stored before these options still resume
            **({"normalisations": list(args.normalisations)} if list(args.normalisations) != ["global"] else {}),
            **({"match_qps": True} if args.match_qps else {}),
            **({"orders": {o: [int(i) for i in a] for o, a in order_choices.items()}} if order_choices else {}),
        )
        first_params = None if anchor_spec.endswith(".json") else tuning.anchor_params(anchor_spec)
        if first_params is not None and len(args.normalisations) > 1:
            first_params["norm"] = "global"
        if first_params is not None and "global" not in args.normalisations:
            first_params = None
        if first_params is not None and order_choices:
            if order_name in order_choices:
                first_params["order"] = order_name
            else:
                first_params = None
        study, n_before = tuning.open_study(storage, args.study_name, args.seed, digest, n_startup_trials=args.startup_trials,
                                            grace_period=args.grace_period, heartbeat_interval=max(1, args.grace_period // 3),
                                            first_params=first_params, constrained=args.max_task_loss is not None)
        for item in args.enqueue:
            study.enqueue_trial(enqueued_params(item, args, order_choices), skip_if_exists=True)
        if n_before == 0:
            study.set_user_attr("anchor_quantizer", setup.quantizer_dict)
            study.set_user_attr("validation_images", val.ids)
        remaining = args.n_trials - len(tuning.complete_trials(study))
        print(f"study {args.study_name!r}: {n_before} stored trial(s), running {max(0, remaining)} more", file=sys.stderr)
        if remaining > 0:
            study.optimize(tuning.QuantizerObjective(ctx, anchor), n_trials=remaining, catch=(tuning.TrialFailed,))

    rows = tuning.trials_rows(study)
    folder.write_csv("trials.csv", rows)
    best_t = tuning.best_trial(study)
    best_number = best_t.number if best_t is not None else None
    print()
    print(tuning.format_trials(rows, best=best_number))
    print()
    if best_t is None:
        print("no trial completed (and met the task constraint); see the error column of trials.csv", file=sys.stderr)
        return 3
    best = tuning.best_quantizer_dict(
        study, FeatureSet(fit.refs + val.refs),
        extra={"objective": args.objective, "max_task_loss": args.max_task_loss, "validation_images": val.ids,
               "orders_tuned": args.orders,
               "codec": setup.codec_spec, "qps": list(args.qps)},
    )
    folder.write_json("best_quantizer.json", best)
    best_curve = best_t.user_attrs.get("curve")
    curves = [Curve(**{**anchor.as_dict(), "setup": {"order": "untuned anchor"}})]
    if best_curve:
        curves.append(Curve(**{**best_curve, "setup": {"order": f"best (trial {best_number})"}}))
    plot_rd_curves(curves, folder.rd_plot, anchor="untuned anchor", task_label=setup.adapter.task.name,
                   title=f"quantizer tuning on {len(val)} validation images, {setup.codec_spec}")
    bd = best_t.user_attrs.get("bd_rate", {})
    folder.write_json("summary.json", {
        "study": args.study_name, "storage": storage, "objective": args.objective, "max_task_loss": args.max_task_loss,
        "n_trials": len(rows), "n_complete": len(tuning.complete_trials(study)), "best_trial": best_number,
        "best_value": best_t.value, "best_bd_rate": bd, "best_quantizer": best,
        "anchor_quantizer": setup.quantizer_dict, "fit_images": fit.ids, "validation_images": val.ids,
    })
    task_bd = bd.get("task")
    print(f"best: trial {best_number}, {best['name']} {best['params']}: BD-rate {best_t.value:+.2f} % ({args.objective}; "
          f"task {'n/a' if task_bd is None else format(task_bd, '+.2f')} %) vs the anchor (--quantizer with --order) on the validation images; "
          f"{time.perf_counter() - t_start:.0f} s", file=sys.stderr)
    print(f"best quantizer: {out / 'best_quantizer.json'}\ntrials:         {out / 'trials.csv'}\n"
          f"study:          {storage} (study {args.study_name!r})\ncells:          {out / 'results.sqlite'}\n"
          f"plot:           {out / 'rd_curves.png'}")
    return 0


def enqueued_params(item: str, args, order_choices) -> dict:
    """Trial parameters of one ``--enqueue SPEC[@ORDER]`` item (a one-line error when outside the search space)."""
    from eval import tuning

    spec, _, order = item.partition("@")
    params = tuning.anchor_params(spec)
    if params is None:
        raise ValueError(f"--enqueue {item}: {spec!r} is outside the search space (a curve quantizer or channel:..., "
                         "no fixed range or per-image side information)")
    norm = params.setdefault("norm", "global")
    if norm not in args.normalisations:
        raise ValueError(f"--enqueue {item}: normalisation {norm!r} is not among --normalisations {' '.join(args.normalisations)}")
    if len(args.normalisations) == 1:
        params.pop("norm")
    if order_choices:
        order = order or next(iter(order_choices))
        if order not in order_choices:
            raise ValueError(f"--enqueue {item}: order {order!r} is not among --orders {' '.join(order_choices)}")
        params["order"] = order
    elif order:
        raise ValueError(f"--enqueue {item}: an @ORDER needs --orders")
    return params


if __name__ == "__main__":
    sys.exit(main())
