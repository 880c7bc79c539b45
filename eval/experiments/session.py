"""What every experiment does around its own work: check, lock its folder, record its configuration, prepare.

:func:`study_session` is the frame of an experiment run: the output folder locked (one study
per folder, :class:`eval.pipeline.lock.StudyLock`), ``config.toml`` written from the typed
configuration (the file ``--from`` reads back), and local Dask workers pre-started so their
imports overlap the experiment's own preparation. :func:`prepare` builds the model, both
splits' features, the fitted quantizer and the checked codec from the shared config groups.
"""

from __future__ import annotations

import contextlib
import platform
from typing import Iterator

from eval.experiments.config import CodingConfig, DataConfig, RunConfig, config_to_toml
from eval.study_folder import StudyFolder

__all__ = ["study_session", "prepare", "provenance", "write_config", "PYTHON_CALL"]

#: what config.toml records as the command of a run started from Python rather than a command line
PYTHON_CALL = "Python call"


def write_config(folder: StudyFolder, config, experiment: str, command: str | None = None,
                 source: str | None = None):
    """Write ``folder/config.toml``: the configuration as TOML, with the experiment, versions and command in ``[fcm-reorder]``."""
    from codec.version import package_version

    cli = f"python -m studies.{experiment}"
    header = (
        f"Parameters of {experiment} as this run used them (fcm-reorder {package_version()}).\n"
        f"Run it again:  {cli} --from {folder.config_toml}\n"
        f"A variant:     {cli} --from {folder.config_toml} --out OTHER_FOLDER [OPTIONS]\n"
        "Options given on the command line override this file (repeatable ones such as --model-arg add to it);\n"
        "parameters not listed keep their default. In Python: eval.experiments.config.read_toml and config_from_dict."
    )
    meta = {"study": experiment, "version": package_version(), "python": platform.python_version(),
            "command": command or PYTHON_CALL, "from": source}
    return folder.write_config(config_to_toml(config, meta, header))


@contextlib.contextmanager
def study_session(config, experiment: str, run: RunConfig | None = None, command: str | None = None,
                  source: str | None = None) -> Iterator[StudyFolder]:
    """Lock ``run.out`` for the experiment, write its ``config.toml``, pre-start local workers; yield the folder.

    ``command`` and ``source`` (the configuration file it was read from) are recorded in
    ``config.toml``; a Python call records :data:`PYTHON_CALL`.
    """
    from eval.pipeline.cluster import prestart_workers
    from eval.pipeline.lock import StudyLock

    run = run if run is not None else config.run
    folder = StudyFolder(run.out)
    with StudyLock(folder.root):
        write_config(folder, config, experiment, command, source)
        if getattr(run, "workers", 1) > 1 and getattr(run, "scheduler", None) is None:
            prestart_workers()  # local workers' imports overlap the study's own preparation
        yield folder


def prepare(data: DataConfig, coding: CodingConfig, progress: bool = True, check_codec: bool = True, splits=None,
            codec: str | None = None):
    """Model, both splits' features, the fitted quantizer and the checked codec (an :class:`eval.pipeline.setup.Setup`).

    ``splits`` replaces the data config's own calibration/test samples (e.g. the tuning study's
    fit/validation parts of the calibration split); ``codec`` replaces ``coding.codec_spec()``
    (e.g. an ablation's first preset).
    """
    from eval.pipeline.setup import prepare_setup

    calib, test = splits if splits is not None else data.splits()
    return prepare_setup(data.model_spec(), calib, test, quantizer=coding.quantizer, codec=codec or coding.codec_spec(),
                         cache_dir=data.cache_dir, progress=progress, check_codec=check_codec)


def provenance(setup) -> dict:
    """What every learned order records about where its calibration features came from."""
    return {"model": setup.adapter.name, "layer": setup.adapter.layer}
