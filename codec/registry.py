"""Registries and spec strings: the one way a name becomes an object in this package.

A spec string names a registered class and its options, ``"name:key=value,key=value"``
(``"vvenc:preset=slow"``, ``"log:bits=10"``, ``"tsp-correlation:solver=lkh"``). Every
kind of component (codec backends, quantizers, packings, orderers, model adapters) keeps
a :class:`Registry`; a class joins it with a decorator where it is defined, so a new
backend or orderer is one new file in the registry's package and no central list is
edited (CompressAI's registry shape).

This module lives in :mod:`codec` because codec is the package's base layer: it imports
neither :mod:`reorder` nor :mod:`eval`, so both can use the same registry and parser.

One typing rule for option values, used everywhere (:func:`coerce_value`): ``true/yes/on``
and ``false/no/off`` are booleans, ``none``/``null`` is ``None``, then int, then float,
else the text itself. Values may contain ``=`` and ``:`` (``vvenc_params=MCTF=1:BIM=1``)
but not ``,``.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Registry", "parse_spec", "coerce_value", "format_spec"]

_TRUE = {"true", "yes", "on"}
_FALSE = {"false", "no", "off"}


def coerce_value(text: Any) -> Any:
    """A spec option's text as a Python value (the package's one typing rule, see module doc)."""
    if not isinstance(text, str):
        return text
    t = text.strip()
    low = t.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(t)
        except ValueError:
            pass
    return t


def parse_spec(spec: str, what: str = "spec") -> tuple[str, dict[str, Any]]:
    """``"name:key=value,key=value"`` -> ``("name", {key: value})`` with typed values.

    ``what`` names the kind of spec in error messages (``"codec"``, ``"orderer"``, ...).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"{what} spec {spec!r} is empty; write name or name:key=value,key=value")
    name, _, rest = spec.strip().partition(":")
    opts: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ValueError(f"bad option {item!r} in {what} spec {spec!r}; write name:key=value,key=value")
        if key in opts:
            raise ValueError(f"option {key!r} given twice in {what} spec {spec!r}")
        opts[key] = coerce_value(value)
    return name.strip(), opts


def format_spec(name: str, params: dict[str, Any]) -> str:
    """The inverse of :func:`parse_spec`: ``name:key=value,...`` with keys sorted, ``None`` left out."""
    def text(v: Any) -> str:
        return ("true" if v else "false") if isinstance(v, bool) else str(v)

    opts = ",".join(f"{k}={text(v)}" for k, v in sorted(params.items()) if v is not None)
    return f"{name}:{opts}" if opts else name


def _key(name: str) -> str:
    return str(name).strip().lower().replace("_", "-")


class Registry:
    """Named classes (or factories) of one kind, filled by the :meth:`register` decorator.

    ``package``: a package whose modules are imported on first lookup, so that every
    module in it that registers a class is known without being listed anywhere.
    A registered class may declare ``name_arg``: then ``"family-value"`` builds
    ``cls(**{name_arg: "value"})`` (``tsp-mse`` is ``TSPOrder(metric="mse")``), with the value
    passed through the class's ``name_value`` (canonical spelling, checked early) and
    ``name_defaults[value]`` applied first; ``option_aliases`` maps other spellings of options.
    """

    def __init__(self, kind: str, package: str | None = None):
        self.kind = kind
        self.package = package
        self._classes: dict[str, Any] = {}  # normalized name -> class
        self._display: dict[str, str] = {}  # normalized name -> the name as registered
        self._aliases: dict[str, str] = {}
        self._discovered = package is None

    def register(self, name: str, *aliases: str) -> Callable[[Any], Any]:
        """Class decorator: ``@QUANTIZERS.register("log")``."""
        def add(cls):
            key = _key(name)
            if key in self._classes and self._classes[key] is not cls:
                raise ValueError(f"{self.kind} {name!r} is registered twice ({self._classes[key]!r} and {cls!r})")
            self._classes[key] = cls
            self._display[key] = name
            for alias in aliases:
                self._aliases[_key(alias)] = key
            if isinstance(cls, type) and "registry_name" not in vars(cls):  # not inherited from a registered parent
                cls.registry_name = key
            return cls
        return add

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        pkg = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self.package}.{info.name}")

    def names(self) -> tuple[str, ...]:
        """The registered names, as they were registered."""
        self._discover()
        return tuple(self._display[k] for k in self._classes)

    def __contains__(self, name: str) -> bool:
        """Whether :meth:`resolve` knows ``name`` (a registered name, an alias or a ``family-value`` name)."""
        try:
            self.resolve(name)
        except ValueError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def resolve(self, name: str) -> tuple[Any, dict[str, Any]]:
        """The class registered as ``name`` and the options the name itself implies (``name_arg``)."""
        self._discover()
        key = self._aliases.get(_key(name), _key(name))
        if key in self._classes:
            return self._classes[key], {}
        family, dash, value = key.partition("-")
        cls = self._classes.get(self._aliases.get(family, family))
        if dash and value and cls is not None and getattr(cls, "name_arg", None):
            return cls, {cls.name_arg: value}
        raise ValueError(f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}")

    def get(self, name: str) -> Any:
        return self.resolve(name)[0]

    def params_of(self, cls: Any) -> list[str]:
        """Option names a registered class takes (its ``__init__`` signature)."""
        target = cls.__init__ if isinstance(cls, type) else cls
        return [p.name for p in inspect.signature(target).parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def make(self, spec: str, **overrides: Any) -> Any:
        """Build from ``"name:key=value,..."``; keyword ``overrides`` win over the spec's options."""
        name, opts = parse_spec(spec, self.kind)
        cls, implied = self.resolve(name)
        canonical = getattr(cls, "name_value", None)  # e.g. check and canonicalise the metric of "tsp-mse"
        if callable(canonical):
            implied = {key: canonical(value) for key, value in implied.items()}
        defaults = getattr(cls, "name_defaults", {}).get(next(iter(implied.values()), None), {})
        aliases = getattr(cls, "option_aliases", {})  # other spellings of options ("path" for "order_or_path")
        given = {aliases.get(key, key): value for key, value in {**opts, **overrides}.items()}
        params = {**defaults, **implied, **given}
        valid = self.params_of(cls)
        unknown = [k for k in params if k not in valid]
        if unknown:
            raise ValueError(f"{self.kind} {name!r} has no option {unknown[0]!r}; valid options: {', '.join(valid) or 'none'}")
        return cls(**params)
