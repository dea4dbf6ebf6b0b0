"""Stage 2, model training (the ``model-training`` flow's library).

* :mod:`~bridgeai.training.fit`: LightGBM from a ridge start, early stopping, the small search;
* :mod:`~bridgeai.training.evaluation`: metrics in price units, the median baseline, the plots;
* :mod:`~bridgeai.training.tracking`: the MLflow run with its lineage tags and artifacts;
* :mod:`~bridgeai.training.registry`: registration and the champion gate.
"""
