"""The coding pipeline: features (cached) -> cells (the shared codec+eval core) -> runner -> results store.

* :mod:`~eval.pipeline.features`: the model head once per image, streamed back from the cache;
* :mod:`~eval.pipeline.setup`: model, both splits' features, fitted quantizer, checked codec;
* :mod:`~eval.pipeline.orders`: orders learned on the calibration split or read from files;
* :mod:`~eval.pipeline.cell`: one cell (image, order, quantizer, packing, codec, QP) -> one result row;
* :mod:`~eval.pipeline.runner`: every unfinished cell inline or on Dask (the only place that builds a cluster);
* :mod:`~eval.pipeline.store`: the crash-safe SQLite store of rows.
"""
