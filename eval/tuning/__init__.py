"""Optuna tuning of the feature quantizer, run entirely through the shared core.

What is tuned
-------------
The quantizer between float features and the codec's integer samples
(:mod:`codec.quantize`): its curve (``uniform``, ``log``, ``power``, ``mulaw``), the curve's
shape parameter (log ``shape``, power ``gamma``, mu-law ``mu``; log-uniform priors), the
clipping percentile (``clip`` on/off and, when on, the tail clipped per side, 0.001-1 %,
log-uniform) and the code depth (8 or 10 bits). The codec always sees 10-bit samples (VVenC
via ffmpeg is 10-bit only: 8-bit codes are shifted up by 2), so at one QP an 8- and a 10-bit
quantizer get the same codec step relative to the range: the same QPs compare them fairly.

Objective (why this one)
------------------------
BD-rate in percent (minimised) of the candidate against the *untuned* log quantizer (the
package default, ``LogQuantizer()``: shape 100, 8 bit, no clipping), both coding the same
held-out images with the same channel order, packing, codec and QPs, quality measured as
feature PSNR against the *float* features:

* Quality against the float features (not the integer codes) charges the candidate for its
  own quantisation error, so curves of different quantizers sit on one scale; a PSNR of the
  codes would reward a coarse quantizer whose codes the codec reproduces easily.
* A BD-rate summarises the whole QP range as "bits for the same quality", the quantity the
  package reports for orders too; picking one QP would tune for one operating point.
* Feature PSNR rather than the task metric by default: on a handful of images the task
  proxy moves by about +-15 % in BD-rate (README, Known limits) and would tune noise. The task
  BD-rate is computed and stored for every trial (``objective = "task"`` optimises it).
* A BD-rate is only computed over the quality range both curves cover, and that can be
  gamed: an 8-bit uniform quantizer saturates far below the anchor's top PSNR, and over the
  low-quality part it does cover it may look 40 % cheaper (seen on the tiny configuration).
  So a candidate must cover ``min_overlap`` (default 80 %) of the anchor's feature-PSNR range;
  otherwise, or when a curve is not monotone, the trial fails with the reason recorded
  rather than scoring a number from a sliver of the range.

* Measured on MobileNetV2 features, the two disagree: near-uniform curves (uniform with
  light clipping, mu-law with small mu) cut the feature-PSNR BD-rate by 30-40 % while the
  task BD-rate gets a few percent worse, because feature PSNR is dominated by the few
  large activations and the log curve spends its codes on the many small ones. So
  ``max_task_loss`` turns the task into a constraint (a TPE trial constraint): the
  study minimises the feature-PSNR BD-rate among quantizers whose task BD-rate is at most
  ``max_task_loss`` percent, and the best trial is chosen among those.

Data: the calibration split only (never the test split). It is split once, reproducibly,
into a *fit* part (candidate ranges are fitted here) and a *validation* part (coded and
scored here). The best quantizer is finally refitted on the whole calibration split and
saved as JSON (:meth:`Quantizer.to_dict` plus a ``tuning`` record).

Caching and resuming: every coded cell goes through :func:`eval.pipeline.cell.make_jobs` and
:func:`eval.pipeline.runner.run_grid` into one :class:`~eval.pipeline.store.ResultStore`, so the anchor is coded
once, a repeated or resumed candidate recomputes nothing, and a killed study loses at most
the cells in flight. The Optuna study lives in an RDB (SQLite by default) and is opened with
``load_if_exists``; trials carry heartbeats, so a trial left RUNNING by a killed process is
marked FAIL once its heartbeat is older than the grace period and its parameters are queued
again (their finished cells are reused). The study records a digest of its setup and refuses
to continue under a different one (other QPs, images, codec, anchor), whose values would not
be comparable.
"""

from eval.tuning.objective import QuantizerObjective, TrialFailed, TuningContext, code_curve, compare_curves
from eval.tuning.search_space import (BITS, CLIP_TAIL, CURVES, OBJECTIVES, QUALITY_METRICS, QUANTIZER_SCOPES, SHAPE_PARAMS,
                                      STATS, anchor_params, quantizer_kwargs, split_calibration, suggest_quantizer,
                                      trial_params)
from eval.tuning.study import (best_quantizer_dict, best_trial, complete_trials, feasible, format_trials, open_study,
                               setup_digest, study_cluster, trials_rows)

__all__ = [
    "CURVES", "SHAPE_PARAMS", "CLIP_TAIL", "BITS", "QUANTIZER_SCOPES", "STATS", "OBJECTIVES", "QUALITY_METRICS",
    "suggest_quantizer", "quantizer_kwargs", "anchor_params", "trial_params", "split_calibration",
    "TrialFailed", "TuningContext", "code_curve", "compare_curves", "QuantizerObjective",
    "study_cluster", "setup_digest", "open_study", "feasible", "best_trial", "complete_trials", "trials_rows",
    "format_trials", "best_quantizer_dict",
]
