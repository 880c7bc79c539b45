"""The package's experiments as library functions: each takes one typed configuration and returns a result.

    from eval.experiments import search_orders, SearchConfig, DataConfig, RunConfig
    result = search_orders(SearchConfig(data=DataConfig(limit=1), run=RunConfig(out="runs/quick")))
    print(result.text())

``studies/*`` are their command lines (``python -m studies.search_order``). Each experiment
writes its output folder through :class:`eval.study_folder.StudyFolder`, including a
``config.toml`` that ``--from`` (or :func:`eval.experiments.config.config_from_dict`) reads back.
Names are imported on first use, so importing this package loads no experiment.
"""

from importlib import import_module

_WHERE = {
    "ConfigError": "config", "DataConfig": "config", "CodingConfig": "config", "RunConfig": "config",
    "SearchConfig": "search", "SearchResult": "search", "search_orders": "search",
    "DetectorSearchConfig": "detector", "search_detector": "detector",
    "TuneConfig": "tune", "tune_quantizer": "tune", "AblateConfig": "ablation", "ablate": "ablation",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'eval.experiments' has no attribute {name!r}")
    value = getattr(import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value
