"""Command-line options and error handling shared by the studies' entry points.

Studies stay thin: they declare options with these helpers, turn the parsed options into
the library's arguments (:func:`prepare`, :func:`split_samples`, :func:`model_spec`) and call
:mod:`eval` directly. Known failures (a bad order file, an unreadable
image, a missing codec, NaN features, an unreachable scheduler) end the program with one
line naming the problem and what to do, not a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys

from eval.pipeline.runner import default_workers

__all__ = [
    "study_parser", "add_data_arguments", "add_coding_arguments", "add_run_arguments", "setup_logging", "friendly_errors",
    "run_study", "prepare", "provenance", "report_failures", "codec_spec", "model_spec", "split_samples",
]

DEFAULT_QPS = [22, 27, 32, 37]


def _key_value(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` typed by the package's one rule (:func:`codec.registry.coerce_value`)."""
    from codec.registry import coerce_value

    key, eq, value = text.partition("=")
    if not eq or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), coerce_value(value)


def study_parser(module: str, doc: str) -> argparse.ArgumentParser:
    """The parser of ``python -m MODULE``: its description is the first paragraph of the study's docstring."""
    return argparse.ArgumentParser(prog=f"python -m {module}", description=doc.split("\n\n")[0],
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model and data")
    g.add_argument("--model", default="mobilenet_v2", help="model adapter: mobilenet_v2 (embedded default) or detectron2")
    g.add_argument("--config", default=None, help="detectron2: model-zoo config name or yaml path")
    g.add_argument("--weights", default=None, help="model weights file (detectron2: model_final_*.pkl or .pth)")
    g.add_argument("--device", default="cpu", help="torch device for the model (cpu, cuda)")
    g.add_argument("--model-arg", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                   help="extra keyword for the model adapter (repeatable), e.g. short_side=384")
    g.add_argument("--images", default=None, metavar="DIR", help="one image folder, split deterministically into calibration and test")
    g.add_argument("--calib", default=None, metavar="DIR", help="calibration image folder (with --test)")
    g.add_argument("--test", default=None, metavar="DIR", help="test image folder (with --calib)")
    g.add_argument("--dataset", default=None, metavar="SPEC",
                   help="annotated test set: coco:ANNOTATIONS.json:IMAGE_DIR or openimages:BOXES.csv:IMAGE_DIR[:LABELS.csv]; "
                   "calibration images then come from --calib or the first --n-calib images of the set")
    g.add_argument("--n-calib", type=int, default=None, help="calibration images taken from --images/--dataset (default: about half, at least 1)")
    g.add_argument("--limit", type=int, default=None, help="use only the first N images of each split (a quick run)")
    g.add_argument("--cache-dir", default=".cache/features", help="feature cache (keyed by model, layer and image content)")


def add_coding_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("coding")
    g.add_argument("--qps", nargs="+", type=int, default=DEFAULT_QPS, help="quantisation parameters of the RD curve")
    g.add_argument("--codec", default="vvenc", help="codec registry spec, e.g. vvenc, 'vvenc:preset=slow', x265, svtav1, vtm, ffv1")
    g.add_argument("--preset", default=None, help="encoder preset (vvenc: faster, fast, medium, slow, slower); default: the codec's own (vvenc: faster)")
    g.add_argument("--quantizer", default="log", help="quantizer spec fitted on calibration features, e.g. log, uniform, 'log:bits=10', or a JSON file saved by studies.tune_quantizer")
    g.add_argument("--packing", default="temporal", help="how channels become frames: temporal (one channel per frame) or tiled")
    g.add_argument("--bd-method", default="pchip", choices=["pchip", "cubic"], help="BD-rate interpolation: piecewise cubic (JVET) or cubic polynomial (VCEG-M33)")


def add_run_arguments(parser: argparse.ArgumentParser, default_out: str) -> None:
    g = parser.add_argument_group("running")
    g.add_argument("--out", default=default_out, help="output folder; re-running with the same folder resumes and skips finished cells")
    g.add_argument("--workers", type=int, default=default_workers(), help="parallel coding workers (Dask LocalCluster when > 1; 1 = inline)")
    g.add_argument("--scheduler", default=None, metavar="ADDRESS", help="address of an existing Dask scheduler (tcp://HOST:8786) instead of local workers")
    g.add_argument("--max-attempts", type=int, default=2, help="tries per failing cell, counted across runs")
    g.add_argument("--keep-bitstreams", action=argparse.BooleanOptionalAction, default=True, help="keep every bitstream under OUT/bitstreams")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def setup_logging(args) -> None:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _known_errors() -> tuple[type, ...]:
    from codec.errors import CodecError
    from eval.errors import FeatureError, ImageReadError, RDCurveError, WeightsNotFoundError
    from eval.pipeline.runner import SchedulerError
    from eval.pipeline.store import StoreError
    from reorder.permutation import PermutationError

    return (PermutationError, ImageReadError, FeatureError, RDCurveError, WeightsNotFoundError, CodecError,
            SchedulerError, StoreError, FileNotFoundError, NotADirectoryError, ValueError, ImportError)


@contextlib.contextmanager
def friendly_errors():
    """Turn known failures into one line on stderr and exit status 2; Ctrl-C into status 130."""
    try:
        yield
    except KeyboardInterrupt:
        print("\ninterrupted: finished cells are stored; run the same command again to resume", file=sys.stderr)
        raise SystemExit(130)
    except _known_errors() as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def run_study(parser: argparse.ArgumentParser, run, argv=None) -> int:
    """Parse the command line, set up logging and run ``run(args)`` with one-line errors."""
    args = parser.parse_args(argv)
    setup_logging(args)
    with friendly_errors():
        return run(args)


def model_spec(args) -> dict:
    kwargs = dict(args.model_arg)
    for key in ("config", "weights"):
        if getattr(args, key, None):
            kwargs[key] = getattr(args, key)
    if args.device != "cpu":
        kwargs["device"] = args.device
    return {"name": args.model, "kwargs": kwargs}


def codec_spec(args) -> str:
    spec = args.codec
    if args.preset:
        spec += ("," if ":" in spec else ":") + f"preset={args.preset}"
    return spec


def split_samples(args):
    """Calibration and test samples from the data options (embedded default: sample photos)."""
    from eval.data import choose_splits

    return choose_splits(dataset=args.dataset, calib=args.calib, test=args.test, images=args.images,
                         n_calib=args.n_calib, limit=args.limit)


def prepare(args, check_codec: bool = True):
    """Model, both splits' features, the fitted quantizer and the checked codec (an :class:`eval.pipeline.setup.Setup`)."""
    from eval.pipeline.setup import prepare_setup

    calib, test = split_samples(args)
    return prepare_setup(model_spec(args), calib, test, quantizer=args.quantizer, codec=codec_spec(args),
                         cache_dir=args.cache_dir, progress=not args.quiet, check_codec=check_codec)


def provenance(setup) -> dict:
    """What every learned order records about where its calibration features came from."""
    return {"model": setup.adapter.name, "layer": setup.adapter.layer}


def report_failures(failed_rows) -> None:
    if not failed_rows:
        return
    print(f"{len(failed_rows)} cell(s) failed and are recorded in results.sqlite (re-run to retry):", file=sys.stderr)
    for r in failed_rows[:10]:
        print(f"  {r['image_id']} {r['order']} qp {r['qp']}: {r['error']}", file=sys.stderr)
