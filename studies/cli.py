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

from eval.pipeline.cluster import default_workers, prestart_workers

__all__ = [
    "study_parser", "add_data_arguments", "add_coding_arguments", "add_run_arguments", "setup_logging", "friendly_errors",
    "run_study", "prepare", "provenance", "report_failures", "codec_spec", "model_spec", "split_samples",
    "add_config_argument", "parse_study_args", "load_study_config", "study_config", "write_study_config",
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
    g.add_argument("--calib", default=None, metavar="DIR", help="calibration image folder or bundled:NAME set (with --test)")
    g.add_argument("--test", default=None, metavar="DIR",
                   help="test image folder, or a set shipped with the installed packages: bundled:other (scikit-learn's "
                   "and matplotlib's sample photos, disjoint from the default split), bundled:default-test; alone it keeps "
                   "the default calibration photos")
    g.add_argument("--dataset", default=None, metavar="SPEC",
                   help="annotated test set: coco:ANNOTATIONS.json:IMAGE_DIR or openimages:BOXES.csv:IMAGE_DIR[:LABELS.csv]; "
                   "calibration images then come from --calib or the first --n-calib images of the set")
    g.add_argument("--n-calib", type=int, default=None, help="calibration images taken from --images/--dataset (default: about half, at least 1)")
    g.add_argument("--limit", type=int, default=None, help="use only the first N images of each split (a quick run)")
    g.add_argument("--allow-overlap", action="store_true",
                   help="allow test images whose content is also in the calibration split (an error otherwise)")
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
    from eval.pipeline.cluster import SchedulerError
    from eval.pipeline.store import StoreError
    from reorder.permutation import PermutationError

    return (PermutationError, ImageReadError, FeatureError, RDCurveError, WeightsNotFoundError, CodecError,
            SchedulerError, StoreError, FileNotFoundError, NotADirectoryError, ValueError, ImportError)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so every ``finally`` (cluster, encoders) runs."""


@contextlib.contextmanager
def _sigterm_raises():
    """While active, SIGTERM raises :class:`Terminated` in the main thread (once: a second
    SIGTERM during the clean-up is ignored, so it is not cut short; SIGKILL still ends it)."""
    import signal
    import threading

    fired = []

    def handler(signum, frame):
        if not fired:
            fired.append(signum)
            raise Terminated()

    previous = None
    if threading.current_thread() is threading.main_thread():
        try:
            previous = signal.signal(signal.SIGTERM, handler)
        except (ValueError, OSError):  # pragma: no cover - an interpreter without signals
            previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def friendly_errors():
    """Turn known failures into one line on stderr and exit status 2; Ctrl-C into status 130,
    SIGTERM (:class:`Terminated`) into status 143 (128 + 15), both after the clean-up."""
    try:
        with _sigterm_raises():
            yield
    except Terminated:
        print("\nterminated: finished cells are stored; run the same command again to resume", file=sys.stderr)
        raise SystemExit(143)
    except KeyboardInterrupt:
        print("\ninterrupted: finished cells are stored; run the same command again to resume", file=sys.stderr)
        raise SystemExit(130)
    except _known_errors() as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def run_study(parser: argparse.ArgumentParser, run, argv=None) -> int:
    """Parse the command line (``--from FILE`` first, see :func:`parse_study_args`), set up logging,
    write ``OUT/config.toml`` (:func:`write_study_config`) and run ``run(args)`` with one-line errors.

    The ``--out`` folder is locked first (:class:`eval.pipeline.lock.StudyLock`): a second study
    on the same folder stops at once with one line naming the first one's pid and host."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_study_args(parser, argv)
    setup_logging(args)
    with friendly_errors():
        from eval.pipeline.lock import StudyLock

        with StudyLock(args.out) if getattr(args, "out", None) else contextlib.nullcontext():
            write_study_config(parser, args, argv)
            if getattr(args, "workers", 1) > 1 and getattr(args, "scheduler", None) is None:
                prestart_workers()  # local workers' imports overlap the study's own preparation
            return run(args)


# ------------------------------------------------------------------ a study's configuration: --from FILE, OUT/config.toml

CONFIG_DEST = "from_config"


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """``--from FILE`` (added once; :func:`run_study` adds it to every study)."""
    if any(a.dest == CONFIG_DEST for a in parser._actions):
        return
    parser.add_argument("--from", dest=CONFIG_DEST, default=None, metavar="FILE",
                        help="take the options from a TOML configuration, e.g. OUT/config.toml written by an earlier run; "
                        "options given on the command line override the file (repeatable ones such as --model-arg add to it)")


def _study_name(parser: argparse.ArgumentParser) -> str:
    return parser.prog.removeprefix("python -m ")


def _config_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The parser's options that a configuration file holds, in declaration order."""
    return [a for a in parser._actions
            if a.dest not in (argparse.SUPPRESS, CONFIG_DEST) and not isinstance(a, (argparse._HelpAction, argparse._VersionAction))]


def _option_name(action: argparse.Action) -> str:
    return max(action.option_strings, key=len) if action.option_strings else action.dest


def _spec_text(value) -> str:
    """A value as KEY=VALUE text that :func:`codec.registry.coerce_value` reads back as the same value."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def _config_value(action: argparse.Action, value):
    """An option's parsed value as the configuration file writes it (``--model-arg`` pairs as ``KEY=VALUE``)."""
    if action.type is _key_value and isinstance(value, (list, tuple)):
        return [f"{k}={_spec_text(v)}" for k, v in value]
    return value


def _file_value(action: argparse.Action, value, key: str, source: str):
    """A value read from a configuration file as the option holds it: strings go through the option's ``type``."""
    what = f"{source}: {key} = {value!r}"
    option = _option_name(action)

    def one(v):
        if isinstance(v, str) and action.type is not None:
            try:
                v = action.type(v)
            except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
                raise ValueError(f"{what} is not a valid value of {option} ({exc})") from None
        if action.choices is not None and v not in action.choices:
            raise ValueError(f"{what}: {option} takes one of {', '.join(map(str, action.choices))}")
        return v

    if action.nargs == 0:  # a flag: store_true/store_false/--x/--no-x
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse.BooleanOptionalAction)) \
                and not isinstance(value, bool):
            raise ValueError(f"{what}: {option} is a switch; write true or false")
        return value
    many = isinstance(action, (argparse._AppendAction, argparse._ExtendAction)) or action.nargs in ("*", "+") \
        or isinstance(action.nargs, int)
    if many:
        return [one(v) for v in (value if isinstance(value, list) else [value])]
    if isinstance(value, (list, dict)):
        raise ValueError(f"{what}: {option} takes one value")
    return one(value)


def load_study_config(parser: argparse.ArgumentParser, path) -> dict:
    """``{dest: value}`` of the TOML configuration ``path`` for this study's parser.

    Keys are the options' names with ``_`` or ``-`` (``model_arg``, ``model-arg``); values are
    typed as on the command line. A key that is not an option of the study, a bad value or a
    file that is not TOML raise ValueError naming the file, the key and the study.
    """
    import difflib

    from eval.study_folder import CONFIG_META_TABLE, read_config_file

    options, meta = read_config_file(path)
    study = _study_name(parser)
    written_by = meta.get("study")
    if written_by and written_by != study:
        print(f"note: {path} was written by {written_by}; reading its options for {study}", file=sys.stderr)
    actions = {a.dest: a for a in _config_actions(parser)}
    values: dict = {}
    for key, value in options.items():
        dest = str(key).replace("-", "_")
        action = actions.get(dest)
        if action is None:
            close = difflib.get_close_matches(dest, list(actions), n=1)
            hint = ""
            if close:
                hint = f" (did you mean '{close[0]}'?)"
            elif isinstance(value, dict):
                hint = f" (only [{CONFIG_META_TABLE}] may be a table)"
            raise ValueError(f"{path}: '{key}' is not an option of {study}{hint}")
        if dest in values:
            raise ValueError(f"{path}: option '{dest}' is given twice")
        values[dest] = _file_value(action, value, str(key), str(path))
    return values


def parse_study_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse ``argv`` with ``--from FILE``: the file's options become the parser's defaults, so the
    command line overrides them. Errors in the file end the program with one line and status 2."""
    add_config_argument(parser)
    argv = sys.argv[1:] if argv is None else list(argv)
    first = argparse.ArgumentParser(prog=parser.prog, add_help=False)
    first.add_argument("--from", dest=CONFIG_DEST, default=None)
    known, _ = first.parse_known_args(argv)
    if known.from_config:
        with friendly_errors():
            values = load_study_config(parser, known.from_config)
        for action in _config_actions(parser):
            if action.dest in values and action.option_strings:
                action.required = False  # the file gives it
        parser.set_defaults(**values)
    return parser.parse_args(argv)


def study_config(parser: argparse.ArgumentParser, args: argparse.Namespace, argv=None) -> tuple[dict, dict, dict]:
    """``(options, meta, comments)`` of a parsed run: every option's final value (declaration order),
    the study, package version, Python version, command line and ``--from`` file, and the
    option-group titles as comments."""
    import platform
    import shlex

    argv = sys.argv[1:] if argv is None else list(argv)
    groups = {a: g.title for g in parser._action_groups for a in g._group_actions}
    options, comments, last = {}, {}, None
    for action in _config_actions(parser):
        title = groups.get(action) or "options"
        if title != last:
            comments[action.dest] = f"--- {title}"
            last = title
        options[action.dest] = _config_value(action, getattr(args, action.dest, None))
    from codec.version import package_version

    version = package_version()
    meta = {
        "study": _study_name(parser), "version": version, "python": platform.python_version(),
        "command": shlex.join([*parser.prog.split(), *argv]), "from": getattr(args, CONFIG_DEST, None),
    }
    return options, meta, comments


def write_study_config(parser: argparse.ArgumentParser, args: argparse.Namespace, argv=None):
    """Write ``OUT/config.toml`` (through :meth:`eval.study_folder.StudyFolder.write_config`) when the
    study has an ``--out`` folder; returns its path, or None."""
    if not getattr(args, "out", None):
        return None
    from eval.study_folder import StudyFolder

    folder = StudyFolder(args.out)
    options, meta, comments = study_config(parser, args, argv)
    header = (
        f"Options of `{parser.prog}` as this run used them (fcm-reorder {meta['version']}).\n"
        f"Run it again:  {parser.prog} --from {folder.config_toml}\n"
        f"A variant:     {parser.prog} --from {folder.config_toml} --out OTHER_FOLDER [OPTIONS]\n"
        "Options given on the command line override this file (repeatable ones such as --model-arg add to it);\n"
        "options commented out have no value and keep their default."
    )
    try:
        return folder.write_config(options, meta, header=header, comments=comments)
    except (TypeError, ValueError) as exc:  # an option value TOML cannot hold: the study still runs
        print(f"warning: {folder.config_toml} not written: {exc}", file=sys.stderr)
        return None


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
                         n_calib=args.n_calib, limit=args.limit, allow_overlap=getattr(args, "allow_overlap", False))


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
