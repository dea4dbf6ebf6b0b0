"""Stages 3 and 4, the model image and its deployment (``build-model-image``, ``deploy-model``).

* :mod:`~bridgeai.deploy.wheelhouse`, :mod:`~bridgeai.deploy.image`: the offline build context,
  build, push and pull with the Docker SDK;
* :mod:`~bridgeai.deploy.digests`: a tag's digest from the registry's HTTP API;
* :mod:`~bridgeai.deploy.kserve`, :mod:`~bridgeai.deploy.rollout`: the ``house-price``
  InferenceService, applied and awaited;
* :mod:`~bridgeai.deploy.local`: the local target, model server and prediction service processes.
"""
