"""KServe's Python ``ModelServer`` with a ``kserve.Model`` around a LightGBM booster file.

Run in the KServe anchor's venv (``bench/_venvs.py``); the kserve wheel has no LightGBM server of
its own, so this is the custom-model pattern of KServe's docs: ``load`` reads the booster,
``predict`` takes the v2 ``InferRequest``'s one FP64 tensor ``[N, 12]`` (already encoded: no
categorical encoding, imputation, baseline or target transform happen here) and answers one FP64
output. Settings: one uvicorn worker, gRPC off, latency logging off, no access-log middleware,
the uvicorn access log off, LightGBM with ``--threads`` threads (the bench passes the same count
to every server).

    python _kserve_model.py --model_dir DIR --model_name NAME --http_port PORT --threads 1
"""

from __future__ import annotations

import argparse
import logging
import uuid
from pathlib import Path

import kserve
import lightgbm
from kserve import InferOutput, InferRequest, InferResponse, ModelServer


class BoosterModel(kserve.Model):  # type: ignore[misc]
    def __init__(self, name: str, model_file: Path, threads: int) -> None:
        super().__init__(name)
        self.model_file = model_file
        self.threads = threads
        self.booster: lightgbm.Booster | None = None

    def load(self) -> bool:
        self.booster = lightgbm.Booster(model_file=str(self.model_file))
        self.ready = True
        return self.ready

    def predict(
        self, payload: InferRequest, headers: dict[str, str] | None = None
    ) -> InferResponse:
        assert self.booster is not None
        matrix = payload.inputs[0].as_numpy()
        prediction = self.booster.predict(matrix, num_threads=self.threads)
        output = InferOutput(name="predict", shape=list(prediction.shape), datatype="FP64")
        output.set_data_from_numpy(prediction, binary_data=False)
        return InferResponse(
            model_name=self.name, infer_outputs=[output], response_id=payload.id or uuid.uuid4().hex
        )


def main() -> None:
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--model_dir", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    args, _ = parser.parse_known_args()
    model = BoosterModel(args.model_name, args.model_dir / "model.txt", args.threads)
    model.load()
    server = ModelServer(
        http_port=args.http_port,
        workers=1,
        enable_grpc=False,
        enable_latency_logging=False,
        enable_docs_url=False,
    )
    # After the constructor, which configures KServe's logging (uvicorn.access at INFO).
    logging.getLogger("uvicorn.access").disabled = True
    server.start([model])


if __name__ == "__main__":
    main()
