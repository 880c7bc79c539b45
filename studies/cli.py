"""Command lines derived from the experiments' typed configurations, and their one-line errors.

A study module is a thin shell: ``main(argv)`` calls :func:`run_experiment` with the experiment's
config class and function. Every option comes from a field of that config
(:mod:`eval.experiments.config`): its flag is the field's name with ``-`` (``n_calib`` ->
``--n-calib``), booleans get ``--x/--no-x``, lists take several values (or repeat the flag where
the field says so), and the help text is the field's. ``--from FILE`` reads a ``config.toml``
first; options on the command line override it (repeatable ones add to it). Values from the
file and from the command line go through the same typed conversion, so both are refused the
same way.

Known failures (a bad order file, an unreadable image, a missing codec, NaN features, an
unreachable scheduler, a parameter out of range) end the program with one line naming the
problem and what to do, exit status 2; Ctrl-C exits 130 and SIGTERM 143, after the clean-up.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shlex
import sys
from dataclasses import MISSING
from typing import Any, Callable

from eval.experiments.config import (ConfigError, config_fields, config_from_dict, config_to_dict, convert, default_of,
                                     read_toml)

__all__ = ["build_parser", "parse_config", "run_experiment", "friendly_errors", "Terminated", "flag_of"]

CONFIG_DEST = "from_config"


def _is_group(tp) -> bool:
    import dataclasses

    return dataclasses.is_dataclass(tp) and isinstance(tp, type)


def _leaves(cls, group: str = ""):
    """``(group, field, type, default)`` for every parameter of a config class, groups flattened."""
    for f, tp in config_fields(cls):
        if _is_group(tp):
            base = default_of(cls, f.name)
            for g, gtp in config_fields(tp):
                yield f.name, g, gtp, getattr(base, g.name)
        else:
            default = f.default_factory() if f.default_factory is not MISSING else f.default
            yield group, f, tp, default


def flag_of(f) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _default_text(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value)) or "none"
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items()) or "none"
    return str(value)


def _add(container, f, tp, default) -> None:
    import typing

    meta = f.metadata
    help_text = (meta.get("help") or "").replace("%", "%%").replace("%%%%", "%%")
    if default is not None and default is not MISSING and default != [] and default != {}:
        help_text += f" (default: {_default_text(default)})"
    names = [n for n in (meta.get("short"), flag_of(f)) if n]
    kwargs: dict[str, Any] = {"help": help_text, "default": argparse.SUPPRESS, "metavar": meta.get("metavar")}
    base = tp
    if isinstance(tp, type(int | None)) or typing.get_origin(tp) is typing.Union:
        base = next(a for a in typing.get_args(tp) if a is not type(None))
    if base is bool:
        kwargs.pop("metavar")
        kwargs["action"] = argparse.BooleanOptionalAction
    elif typing.get_origin(base) is list or base is dict:
        if meta.get("repeat") or base is dict:
            kwargs["action"] = "append"
        else:
            kwargs["nargs"] = "*" if meta.get("optional_list") else "+"
    if meta.get("choices") and base is not bool:
        kwargs["choices"] = list(meta["choices"])
    if default is MISSING and not meta.get("positional"):
        kwargs["required"] = True
    if meta.get("positional"):
        kwargs.pop("default")
        container.add_argument(f.name, **{k: v for k, v in kwargs.items() if k != "metavar"}, metavar=meta.get("metavar"))
        return
    container.add_argument(*names, dest=f"{f.name}", **kwargs)


def build_parser(config_cls, module: str, doc: str) -> argparse.ArgumentParser:
    """The parser of ``python -m MODULE`` for ``config_cls``: one option per parameter, grouped as the config is."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=(doc or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest=CONFIG_DEST, default=None, metavar="FILE",
                        help="take the parameters from a TOML configuration, e.g. OUT/config.toml written by an earlier run; "
                        "options given on the command line override the file (repeatable ones such as --model-arg add to it)")
    groups: dict[str, Any] = {}
    titles = {f.name: f.metadata.get("help") or f.name for f, tp in config_fields(config_cls) if _is_group(tp)}
    for group, f, tp, default in _leaves(config_cls):
        container = parser
        if group:
            if group not in groups:
                groups[group] = parser.add_argument_group(titles[group])
            container = groups[group]
        _add(container, f, tp, default)
    return parser


def _flags(config_cls) -> dict[str, str]:
    return {f.name: flag_of(f) for _, f, _, _ in _leaves(config_cls)}


def parse_config(config_cls, argv, module: str, doc: str, experiment: str):
    """``(config, source file or None)`` from a command line (``--from FILE`` read first, the command line over it)."""
    parser = build_parser(config_cls, module, doc)
    args = vars(parser.parse_args(argv))
    source = args.pop(CONFIG_DEST, None)
    values: dict = {}
    if source:
        params, meta = read_toml(source)
        written_by = str(meta.get("study") or "").removeprefix("studies.")
        if written_by and written_by != experiment:
            print(f"note: {source} was written by {written_by}; reading its parameters for {experiment}", file=sys.stderr)
        values = config_to_dict(config_from_dict(config_cls, params, source=str(source), experiment=experiment))
    where = {f.name: (group, f, tp) for group, f, tp, _ in _leaves(config_cls)}
    for name, value in args.items():
        group, f, tp = where[name]
        target = values.setdefault(group, {}) if group else values
        if name in target and isinstance(target[name], (list, dict)):  # repeatable options add to the file's values
            old = target[name]
            value = {**old, **convert(tp, value, name)} if isinstance(old, dict) else \
                ([*old, *value] if f.metadata.get("repeat") else value)
        target[name] = value
    return config_from_dict(config_cls, values, experiment=experiment), source


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _known_errors() -> tuple[type, ...]:
    from codec.errors import CodecError
    from eval.errors import FeatureError, ImageReadError, RDCurveError, WeightsNotFoundError
    from eval.pipeline.cluster import SchedulerError
    from eval.pipeline.faults import ResourceError
    from eval.pipeline.store import StoreError
    from reorder.permutation import PermutationError

    return (PermutationError, ImageReadError, FeatureError, RDCurveError, WeightsNotFoundError, CodecError,
            SchedulerError, StoreError, ResourceError, FileNotFoundError, NotADirectoryError, ValueError, ImportError)


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
def friendly_errors(flags: dict[str, str] | None = None):
    """Known failures -> one line on stderr and exit status 2 (a parameter named by its flag); Ctrl-C -> 130,
    SIGTERM (:class:`Terminated`) -> 143, both after the clean-up."""
    try:
        with _sigterm_raises():
            yield
    except Terminated:
        print("\nterminated: finished cells are stored; run the same command again to resume", file=sys.stderr)
        raise SystemExit(143)
    except KeyboardInterrupt:
        print("\ninterrupted: finished cells are stored; run the same command again to resume", file=sys.stderr)
        raise SystemExit(130)
    except OSError as exc:
        from eval.errors import StorageError
        from eval.pipeline.faults import resource_fault

        fault = resource_fault(exc)
        if isinstance(exc, (StorageError, FileNotFoundError, NotADirectoryError)):
            message = str(exc)  # already says what and where
        elif fault is not None:
            message = (f"cannot write: {fault}; finished cells are stored; free space (or fix the permission) and run "
                       "the same command again")
        else:
            raise
        print(f"error: {' '.join(message.split())}", file=sys.stderr)
        raise SystemExit(2)
    except _known_errors() as exc:
        if isinstance(exc, ConfigError) and flags is not None:
            name = "--from" if exc.parameter == "from" else flags.get(exc.parameter, exc.parameter)
            message = f"{name}: {exc.detail}"
        else:
            message = str(exc)
        print(f"error: {' '.join(message.split()) or type(exc).__name__}", file=sys.stderr)
        raise SystemExit(2)


def run_experiment(config_cls, experiment_fn: Callable, argv, module: str, doc: str) -> int:
    """Parse ``argv`` into ``config_cls``, run ``experiment_fn(config)`` with one-line errors, print its result.

    The result's ``text()`` goes to stdout and its ``notes()`` to stderr; its ``exit_code`` is returned.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    experiment = module.rpartition(".")[2]
    flags = _flags(config_cls)
    with friendly_errors(flags):
        config, source = parse_config(config_cls, argv, module, doc, experiment)
        run = getattr(config, "run", config)
        setup_logging(bool(getattr(run, "verbose", False)))
        result = experiment_fn(config, command=shlex.join(["python", "-m", module, *argv]), source=source)
    print(result.text())
    for line in result.notes():
        print(line, file=sys.stderr)
    for label, path in result.files.items():
        print(f"{label + ':':<9} {path}")
    return result.exit_code
