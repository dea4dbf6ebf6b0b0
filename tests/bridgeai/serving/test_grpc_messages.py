"""The committed gRPC descriptor is what protoc makes of the committed .proto, and the messages
live in a pool of their own (stock clients register the same names in protobuf's default one)."""

from __future__ import annotations

import importlib

from google.protobuf import descriptor_pool

from tests.support import protos


def test_the_embedded_descriptor_is_the_compiled_proto() -> None:
    compiled = protos.generated_block(protos.compiled_descriptor())
    assert protos.embedded_block() == compiled, (
        "src/bridgeai/serving/grpc_messages.py is stale: run `python -m tests.support.protos`"
    )


def test_the_service_is_kserves_v2_inference_service() -> None:
    from bridgeai.serving import grpc_messages as pb

    service = pb.POOL.FindServiceByName(pb.SERVICE)
    assert service.full_name == "inference.GRPCInferenceService"
    assert {"ServerLive", "ServerReady", "ModelReady", "ModelMetadata", "ModelInfer"} <= set(
        service.methods_by_name
    )


def test_it_coexists_with_clients_that_use_the_default_pool() -> None:
    importlib.import_module("tritonclient.grpc")  # registers inference.* in the default pool
    from bridgeai.serving import grpc_messages as pb

    assert pb.POOL is not descriptor_pool.Default()
    request = pb.ModelInferRequest(model_name="m", id="1")
    assert pb.ModelInferRequest.FromString(request.SerializeToString()).id == "1"
