"""Stage 1, data ingestion and versioning (the ``data-ingestion`` flow's library).

* :mod:`~bridgeai.data.download`: the CSV from an http(s) URL, an ``s3://`` object or a path;
* :mod:`~bridgeai.data.validation`: every schema rule at once, each offending column named;
* :mod:`~bridgeai.data.cleaning`: duplicates and missing prices out, the content checksum;
* :mod:`~bridgeai.data.split`: the original's 64/16/20 split, row for row;
* :mod:`~bridgeai.data.dvc_store`, :mod:`~bridgeai.data.git`, :mod:`~bridgeai.data.repository`:
  DVC and git on the data repository (secrets in memory only);
* :mod:`~bridgeai.data.versions`: ``data-vX.Y.Z`` tags, what a version holds, reading splits.
"""
