"""Stage 6, drift monitoring (the ``drift-monitoring`` flow's library).

* :mod:`~bridgeai.drift.result`: the columns compared and the :class:`DriftResult`;
* :mod:`~bridgeai.drift.stats`: every-row statistics with Evidently's tests and verdicts;
* :mod:`~bridgeai.drift.analysis`: a comparison, and the champion's side of a production one;
* :mod:`~bridgeai.drift.report`: the Evidently HTML and JSON;
* :mod:`~bridgeai.drift.storage`: reports into the ``evidently-reports`` bucket.
"""
