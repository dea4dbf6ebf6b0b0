"""Running the project: the only part of ``bridgeai`` (with the CLI) that imports Prefect.

* :mod:`~bridgeai.ops.stack`, :mod:`~bridgeai.ops.seaweed`: the local stack (``bridgeai up``);
* :mod:`~bridgeai.ops.demo`: ``bridgeai demo``, the whole pipeline in embedded mode;
* :mod:`~bridgeai.ops.data`: ``bridgeai.load_split`` / ``list_data_versions`` for notebooks,
  which turn the saved blocks into the plain values the library takes.
"""
