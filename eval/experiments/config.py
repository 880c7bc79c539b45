"""Typed configurations: one dataclass per experiment, the one source of its parameters.

Every experiment (``eval.experiments.*``) takes one configuration object. Its fields are the
experiment's parameters, declared once with :func:`option`: type, default, help text and, for
the command line, a metavar or a short flag. Everything else derives from them:

* a Python call builds the object directly (``SearchConfig(coding=CodingConfig(qps=[27, 37]))``);
* ``OUT/config.toml`` is the object written as TOML (:func:`config_to_toml`, with ``tomli-w``),
  and :func:`config_from_dict` reads such a file back;
* ``studies/*`` build their command lines from the fields (:mod:`studies.cli`).

All three go through one conversion (:func:`convert`, run by every config's ``__post_init__``):
a value of the wrong type is refused with one line naming the parameter, whatever its source
(``qps = [27.9]`` is not an integer, ``limit = true`` is not a number). Checks that need the
codec or the data (a QP outside the codec's range, an unknown packing) are the experiment
configs' ``check()`` methods, called before any work.

Groups shared by several experiments: :class:`DataConfig` (model and data), :class:`CodingConfig`
(quantizer, codec, QPs) and :class:`RunConfig` (output folder, workers). In ``config.toml`` they
are the tables ``[data]``, ``[coding]`` and ``[run]``; files of earlier versions, which held every
option as a top-level key, still load (each key goes to the group that has it).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, Mapping

__all__ = ["ConfigError", "option", "convert", "config_fields", "config_to_dict", "config_from_dict", "config_to_toml",
           "read_toml", "default_of", "DataConfig", "CodingConfig", "RunConfig", "META_TABLE", "DEFAULT_QPS"]

#: the table of config.toml that holds what is not a parameter (experiment, package version, command)
META_TABLE = "fcm-reorder"
DEFAULT_QPS = [22, 27, 32, 37]


class ConfigError(ValueError):
    """A parameter with a value it cannot take: ``parameter`` names it (the command line maps it to its flag)."""

    def __init__(self, parameter: str, message: str):
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.detail = message


def option(default: Any = MISSING, *, help: str, factory: Any = None, metavar: str | None = None,  # noqa: A002
           short: str | None = None, flag: str | None = None, choices: tuple | None = None, repeat: bool = False,
           positional: bool = False, minimum: float | None = None, optional_list: bool = False,
           renamed_from: tuple[str, ...] = ()) -> Any:
    """A config field with what the command line and the checks need to know about it.

    ``factory`` gives mutable or computed defaults; ``repeat`` makes a list a repeatable flag
    (``--order-file A --order-file B``) instead of one flag with several values; ``minimum``
    bounds numbers (and every item of a list of numbers); ``optional_list`` lets a list flag
    be given with no value (``--calib-sizes`` alone = an empty list); ``renamed_from`` names
    the parameter's names in earlier versions' config files.
    """
    meta = {"help": help, "metavar": metavar, "short": short, "flag": flag, "choices": choices, "repeat": repeat,
            "positional": positional, "minimum": minimum, "optional_list": optional_list, "renamed_from": renamed_from}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


# ----------------------------------------------------------------------------------------- conversion


def _base_and_optional(tp) -> tuple[Any, bool]:
    """``(T, True)`` for ``T | None``; ``(tp, False)`` otherwise."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _shown(value) -> str:
    """A value as a configuration file writes it (``true``, ``27.9``, ``"text"``)."""
    import json

    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _scalar(tp, value, name: str):
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise ConfigError(name, f"{_shown(value)} is not true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ConfigError(name, f"{_shown(value)} is not an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise ConfigError(name, f"{_shown(value)} is not a number")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, Path):
            return str(value)
        raise ConfigError(name, f"{_shown(value)} is not text; write it in quotes")
    raise TypeError(f"parameter {name}: unsupported type {tp!r}")  # a config class declared something new


def _key_values(value, name: str) -> dict:
    """``{key: value}`` from a table, or from ``KEY=VALUE`` texts (the command line's and earlier files' form)."""
    from codec.registry import coerce_value

    if isinstance(value, Mapping):
        return {str(k): (coerce_value(v) if isinstance(v, str) else v) for k, v in value.items()}
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ConfigError(name, f"{value!r} is not a table of KEY = VALUE")
    out = {}
    for item in items:
        if isinstance(item, (tuple, list)) and len(item) == 2:
            key, text = item
        elif isinstance(item, str) and "=" in item and item.partition("=")[0].strip():
            key, _, text = item.partition("=")
        else:
            raise ConfigError(name, f"{item!r} is not KEY=VALUE")
        out[str(key).strip()] = coerce_value(text) if isinstance(text, str) else text
    return out


def convert(tp, value, name: str, meta: Mapping | None = None):
    """``value`` as a value of type ``tp`` (``int``, ``float``, ``str``, ``bool``, ``list[T]``, ``dict``,
    ``T | None``), checked against the field's ``choices`` and ``minimum``; :class:`ConfigError` otherwise.

    Texts are parsed (the command line gives texts); other values must already have the type:
    a float is not an integer, a boolean is not a number.
    """
    meta = meta or {}
    base, optional = _base_and_optional(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(name, "a value is required")
    origin = typing.get_origin(base)
    if origin is list:
        (item_tp,) = typing.get_args(base) or (Any,)
        items = value if isinstance(value, (list, tuple)) else [value]
        out = [convert(item_tp, v, name, meta) for v in items]
        return out
    if base is dict or origin is dict:
        return _key_values(value, name)
    out = _scalar(base, value, name)
    choices = meta.get("choices")
    if choices and out not in choices:
        raise ConfigError(name, f"{out!r} is not one of {', '.join(map(str, choices))}")
    minimum = meta.get("minimum")
    if minimum is not None and isinstance(out, (int, float)) and not isinstance(out, bool) and out < minimum:
        raise ConfigError(name, f"{out} is below the smallest value allowed, {minimum:g}")
    return out


def config_fields(cls) -> list[tuple[dataclasses.Field, Any]]:
    """``[(field, resolved type)]`` of a config class, in declaration order."""
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls)]


def _is_group(tp) -> bool:
    return dataclasses.is_dataclass(tp) and isinstance(tp, type)


def convert_fields(obj) -> None:
    """Convert every field of a config object in place (called by each config's ``__post_init__``)."""
    for f, tp in config_fields(type(obj)):
        value = getattr(obj, f.name)
        if _is_group(tp):
            if isinstance(value, Mapping):
                object.__setattr__(obj, f.name, config_from_dict(tp, value))
            elif not isinstance(value, tp):
                raise ConfigError(f.name, f"expected a {tp.__name__}, got {type(value).__name__}")
            continue
        object.__setattr__(obj, f.name, convert(tp, value, f.name, f.metadata))


# ----------------------------------------------------------------------------------------- dicts and TOML


def config_to_dict(obj) -> dict:
    """The config as plain values: groups as nested dicts, parameters without a value (None) left out."""
    out: dict = {}
    for f, tp in config_fields(type(obj)):
        value = getattr(obj, f.name)
        if _is_group(tp):
            out[f.name] = config_to_dict(value)
        elif value is not None:
            out[f.name] = dict(value) if isinstance(value, Mapping) else (list(value) if isinstance(value, (list, tuple)) else value)
    return out


def _owners(cls) -> dict[str, str]:
    """Parameter name (and former names) -> the group field holding it ('' for the config's own)."""
    out = {}
    for f, tp in config_fields(cls):
        if _is_group(tp):
            for name in _owners(tp):
                out.setdefault(name, f.name)
        else:
            for name in (f.name, *f.metadata.get("renamed_from", ())):
                out.setdefault(name, "")
    return out


def _canonical(cls, name: str) -> str:
    for f, _ in config_fields(cls):
        if name == f.name or name in f.metadata.get("renamed_from", ()):
            return f.name
    return name


def default_of(cls, name: str):
    """The default value of field ``name`` of a config class (its factory called)."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return f.default_factory() if f.default_factory is not MISSING else f.default


def config_from_dict(cls, values: Mapping, source: str | None = None, experiment: str | None = None):
    """Build ``cls`` from nested (or, as earlier versions wrote, flat) parameter values.

    Keys may use ``-`` or ``_``; a parameter's former name (``renamed_from``) is read as its
    current one. A group not given keeps the experiment's default for it (e.g. its own output
    folder); given parameters of a group replace that default's. An unknown key, a group that
    is not a table or a value of the wrong type raise :class:`ConfigError` naming ``source``.
    """
    owners = _owners(cls)
    groups = {f.name: tp for f, tp in config_fields(cls) if _is_group(tp)}
    own: dict = {}
    nested: dict[str, dict] = {g: {} for g in groups}

    def put(target: dict, group_cls, name: str, value) -> None:
        canonical = _canonical(group_cls, name)
        if canonical in target:
            raise ConfigError(canonical, f"{source or 'configuration'}: given twice")
        target[canonical] = value

    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name in groups:
            if not isinstance(value, Mapping):
                raise ConfigError("from", f"{source}: [{name}] must be a table of parameters")
            inner = _owners(groups[name])
            for sub, v in value.items():
                sub = str(sub).replace("-", "_")
                if sub not in inner:
                    _unknown(sub, inner, source, experiment, f"[{name}]")
                put(nested[name], groups[name], sub, v)
        elif name in owners:
            group = owners[name]
            put(nested[group] if group else own, groups[group] if group else cls, name, value)
        else:
            _unknown(name, owners, source, experiment)
    try:
        for g, tp in groups.items():
            base = default_of(cls, g)
            own[g] = dataclasses.replace(base, **nested[g]) if nested[g] else base
        return cls(**own)
    except ConfigError as exc:
        if source is None:
            raise
        raise ConfigError(exc.parameter, f"{source}: {exc.detail}") from None


def _unknown(name: str, known, source: str, experiment: str | None, where: str = "") -> None:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    of = f" of {experiment}" if experiment else ""
    raise ConfigError("from", f"{source}: '{name}'{' in ' + where if where else ''} is not a parameter{of}{hint}")


def config_to_toml(obj, meta: Mapping | None = None, header: str = "") -> str:
    """The text of a ``config.toml``: a comment header, the parameters (groups as tables), then ``[fcm-reorder]``."""
    import tomli_w

    body = config_to_dict(obj)
    if meta:
        body[META_TABLE] = {k: v for k, v in meta.items() if v is not None}
    head = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    return head + ("\n" if head else "") + tomli_w.dumps(body)


def read_toml(path: str | Path) -> tuple[dict, dict]:
    """``(parameters, meta)`` of a TOML configuration file; one-line errors for a folder, a binary or a bad file."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    path = Path(path)
    if path.is_dir():
        raise ConfigError("from", f"{path} is a folder; give the config.toml file inside it ({path / 'config.toml'})")
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError("from", f"{path} does not exist; give the config.toml an earlier run wrote") from None
    except UnicodeDecodeError:
        raise ConfigError("from", f"{path} is not a text file; give a TOML configuration such as OUT/config.toml") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("from", f"{path} is not valid TOML ({exc})") from None
    except OSError as exc:
        raise ConfigError("from", f"cannot read {path} ({exc.strerror or exc})") from None
    meta = data.pop(META_TABLE, {})
    if not isinstance(meta, dict):
        raise ConfigError("from", f"{path}: '{META_TABLE}' must be a table of the run's provenance, not a parameter")
    return data, meta


# ----------------------------------------------------------------------------------------- shared groups


def _default_workers() -> int:
    from eval.pipeline.cluster import default_workers

    return default_workers()


@dataclass
class DataConfig:
    """The model (split point, weights) and the images of the calibration and test splits."""

    model: str = option("mobilenet_v2", help="model adapter: mobilenet_v2 (embedded default), ssdlite-person or detectron2")
    config: str | None = option(None, help="detectron2: model-zoo config name or yaml path")
    weights: str | None = option(None, help="model weights file (detectron2: model_final_*.pkl or .pth)")
    device: str = option("cpu", help="torch device for the model (cpu, cuda)")
    model_args: dict = option(factory=dict, flag="--model-arg", repeat=True, metavar="KEY=VALUE", renamed_from=("model_arg",),
                              help="extra keyword for the model adapter (repeatable), e.g. short_side=384")
    images: str | None = option(None, metavar="DIR", help="one image folder, split deterministically into calibration and test")
    calib: str | None = option(None, metavar="DIR", help="calibration image folder or bundled:NAME set (with --test)")
    test: str | None = option(None, metavar="DIR",
                              help="test image folder, or a set shipped with the installed packages: bundled:other "
                              "(scikit-learn's and matplotlib's sample photos, disjoint from the default split), "
                              "bundled:default-test; alone it keeps the default calibration photos")
    dataset: str | None = option(None, metavar="SPEC",
                                 help="annotated test set: coco:ANNOTATIONS.json:IMAGE_DIR or "
                                 "openimages:BOXES.csv:IMAGE_DIR[:LABELS.csv]; calibration images then come from "
                                 "--calib or the first --n-calib images of the set")
    video: str | None = option(None, metavar="PATH",
                               help="a video split in time into calibration and test frames (calibration from its start, test "
                               "from later, --frame-gap frames apart); 'vtest' = OpenCV's pedestrian video put in place by "
                               "python -m eval.install")
    n_calib: int | None = option(None, minimum=1, help="calibration images taken from --images/--dataset, or frames from "
                                 "--video (default: about half, at least 1; video: 32)")
    n_test: int | None = option(None, minimum=1, help="test frames taken from --video (default 64)")
    frame_stride: int | None = option(None, minimum=1, help="--video: take every Nth frame (default 8)")
    frame_gap: int | None = option(None, minimum=1, help="--video: frames between the last calibration and the first test frame (default 40)")
    limit: int | None = option(None, minimum=1, help="use only the first N images of each split (a quick run)")
    allow_overlap: bool = option(False, help="allow test images whose content is also in the calibration split (an error otherwise)")
    cache_dir: str = option(".cache/features", help="feature cache (keyed by model, layer and image content)")

    def __post_init__(self):
        convert_fields(self)

    def model_spec(self) -> dict:
        """``{"name", "kwargs"}`` for :func:`eval.models.make_model` (what every cell records)."""
        kwargs = dict(self.model_args)
        for key in ("config", "weights"):
            if getattr(self, key):
                kwargs[key] = getattr(self, key)
        if self.device != "cpu":
            kwargs["device"] = self.device
        return {"name": self.model, "kwargs": kwargs}

    def splits(self):
        """Calibration and test samples (embedded default: the bundled sample photos)."""
        from eval.data import choose_splits

        video = None
        if self.video:
            video = {"path": self.video, **{k: v for k, v in (("n_calib", self.n_calib), ("n_test", self.n_test),
                                                                ("stride", self.frame_stride), ("gap", self.frame_gap))
                                             if v is not None}}
        return choose_splits(dataset=self.dataset, calib=self.calib, test=self.test, images=self.images,
                             n_calib=self.n_calib, limit=self.limit, allow_overlap=self.allow_overlap, video=video)


@dataclass
class CodingConfig:
    """How features are coded: the quantizer, the packing, the codec and its QPs, and the BD-rate method."""

    qps: list[int] = option(factory=lambda: list(DEFAULT_QPS), minimum=0, help="quantisation parameters of the RD curve")
    codec: str = option("vvenc", help="codec registry spec, e.g. vvenc, 'vvenc:preset=slow', x265, svtav1, vtm, ffv1")
    preset: str | None = option(None, help="encoder preset (vvenc: faster, fast, medium, slow, slower); default: the codec's own (vvenc: faster)")
    quantizer: str = option("log", help="quantizer spec fitted on calibration features, e.g. log, uniform, 'log:bits=10', "
                            "or a JSON file saved by studies.tune_quantizer")
    packing: str = option("temporal", help="how channels become frames: temporal (one channel per frame) or tiled")
    bd_method: str = option("pchip", choices=("pchip", "cubic"),
                            help="BD-rate interpolation: piecewise cubic (JVET) or cubic polynomial (VCEG-M33)")

    def __post_init__(self):
        convert_fields(self)

    def codec_spec(self) -> str:
        """The codec spec with ``preset`` added (what the cells record)."""
        spec = self.codec
        if self.preset:
            spec += ("," if ":" in spec else ":") + f"preset={self.preset}"
        return spec

    def check(self) -> None:
        """Codec, QPs, packing and quantizer that can be built, before any work (:class:`ConfigError` otherwise)."""
        check_codec_qps(self.codec_spec(), self.qps)
        check_packing(self.packing)
        check_quantizer(self.quantizer)


@dataclass
class RunConfig:
    """Where results go and how cells run: output folder, workers, retries."""

    out: str = option("results/search_order", help="output folder; re-running with the same folder resumes and skips finished cells")
    workers: int = option(factory=_default_workers, minimum=1, help="parallel coding workers (Dask LocalCluster when > 1; 1 = inline)")
    scheduler: str | None = option(None, metavar="ADDRESS", help="address of an existing Dask scheduler (tcp://HOST:8786) instead of local workers")
    max_attempts: int = option(2, minimum=1, help="tries per failing cell, counted across runs")
    keep_bitstreams: bool = option(True, help="keep every bitstream under OUT/bitstreams")
    quiet: bool = option(False, help="no progress bars")
    verbose: bool = option(False, short="-v", help="debug logging")

    def __post_init__(self):
        convert_fields(self)

    @property
    def progress(self) -> bool:
        return not self.quiet

    def grid_kwargs(self) -> dict:
        """What :func:`eval.pipeline.runner.run_grid` takes from this group."""
        return dict(workers=self.workers, scheduler=self.scheduler, max_attempts=self.max_attempts, progress=self.progress)

    def bitstream_dir(self, folder) -> str | None:
        """Where the cells keep their bitstreams: the study folder's ``bitstreams/`` with ``keep_bitstreams``, else None."""
        return str(folder.bitstreams_dir) if self.keep_bitstreams else None


# ----------------------------------------------------------------------------------------- checks before the work


def check_codec_qps(spec: str, qps, parameter: str = "qps") -> None:
    """The codec spec builds and every QP is inside its range."""
    from codec import make_codec

    try:
        codec = make_codec(spec)
    except ValueError as exc:
        raise ConfigError("codec", str(exc)) from None
    lo, hi = codec.qp_range
    bad = [q for q in qps if not lo <= int(q) <= hi]
    if bad:
        raise ConfigError(parameter, f"{', '.join(map(str, bad))} outside {codec.name}'s range {lo}..{hi}")


def check_packing(spec: str, parameter: str = "packing") -> None:
    from codec import make_packing

    try:
        make_packing(spec)
    except ValueError as exc:
        raise ConfigError(parameter, str(exc)) from None


def check_quantizer(spec: str, parameter: str = "quantizer") -> None:
    """A quantizer spec that builds, or a JSON file that exists (its content is read when it is fitted)."""
    from codec import make_quantizer

    if spec.endswith(".json"):
        from eval.pipeline.setup import load_saved_quantizer

        try:
            load_saved_quantizer(spec)
        except (OSError, ValueError) as exc:
            raise ConfigError(parameter, str(exc)) from None
        return
    try:
        make_quantizer(spec)
    except ValueError as exc:
        raise ConfigError(parameter, f"{spec}: {exc}") from None
