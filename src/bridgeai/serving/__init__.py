"""The Open Inference Protocol v2 model server.

* :mod:`bridgeai.serving.codec`: the protocol's documents and the hot path's codec;
* :mod:`bridgeai.serving.served_model`: the loaded model and how it predicts;
* :mod:`bridgeai.serving.app`: the ASGI application (a lean inference lane + Starlette);
* :mod:`bridgeai.serving.errors`: the server's errors and the one map to responses;
* :mod:`bridgeai.serving.settings`: ``BRIDGEAI_MODEL_SERVER_*`` process knobs;
* :mod:`bridgeai.serving.logs`: JSON logs and the batched access log;
* :mod:`bridgeai.serving.gc`: garbage-collector tuning shared with the prediction service;
* :mod:`bridgeai.serving.main`: the entrypoint (``python -m bridgeai.serving``).

It imports nothing of the project beyond ``bridgeai.model``, ``bridgeai.schema`` and
``bridgeai.paths``, so the model image carries only these (see :mod:`bridgeai.deploy.wheelhouse`).
"""
