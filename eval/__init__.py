"""Evaluation side of the package: from images to BD-rate tables, one subpackage per concern.

``data`` (images, annotated sets) -> ``models`` (head/tail adapters) -> ``pipeline`` (features,
cells, runner, store) -> ``tasks`` (task metrics) -> ``analysis`` (BD-rate, curves, tables) ->
``study_folder`` (the output folder) -> ``plots``. ``install`` holds the package's own install
steps. See README.md, "Layout".
"""
