"""The OIP v2 gRPC messages (KServe's ``grpc_predict_v2.proto``, package ``inference``).

The descriptor below is what protoc (grpcio-tools) compiles ``grpc_predict_v2.proto`` into, the
same bytes protoc's Python generator would embed in a ``_pb2`` module (the proto's Apache 2.0
licence is at the top of that file). It is loaded into a private descriptor pool rather than
protobuf's default one, so this server coexists in one process with clients that register the
same ``inference.*`` messages in the default pool (tritonclient and kserve both do).
Regenerate with ``python -m tests.support.protos`` after editing the .proto.
"""

from __future__ import annotations

import base64
from typing import Any, Final

from google.protobuf import descriptor_pool, message_factory

# -- generated: the serialized FileDescriptorProto, base64 --
_DESCRIPTOR = base64.b64decode(
    "ChVncnBjX3ByZWRpY3RfdjIucHJvdG8SCWluZmVyZW5jZSITChFTZXJ2ZXJMaXZlUmVxdWVzdCIiChJTZXJ2ZXJM"
    "aXZlUmVzcG9uc2USDAoEbGl2ZRgBIAEoCCIUChJTZXJ2ZXJSZWFkeVJlcXVlc3QiJAoTU2VydmVyUmVhZHlSZXNw"
    "b25zZRINCgVyZWFkeRgBIAEoCCIyChFNb2RlbFJlYWR5UmVxdWVzdBIMCgRuYW1lGAEgASgJEg8KB3ZlcnNpb24Y"
    "AiABKAkiIwoSTW9kZWxSZWFkeVJlc3BvbnNlEg0KBXJlYWR5GAEgASgIIhcKFVNlcnZlck1ldGFkYXRhUmVxdWVz"
    "dCJLChZTZXJ2ZXJNZXRhZGF0YVJlc3BvbnNlEgwKBG5hbWUYASABKAkSDwoHdmVyc2lvbhgCIAEoCRISCgpleHRl"
    "bnNpb25zGAMgAygJIjUKFE1vZGVsTWV0YWRhdGFSZXF1ZXN0EgwKBG5hbWUYASABKAkSDwoHdmVyc2lvbhgCIAEo"
    "CSKNAgoVTW9kZWxNZXRhZGF0YVJlc3BvbnNlEgwKBG5hbWUYASABKAkSEAoIdmVyc2lvbnMYAiADKAkSEAoIcGxh"
    "dGZvcm0YAyABKAkSPwoGaW5wdXRzGAQgAygLMi8uaW5mZXJlbmNlLk1vZGVsTWV0YWRhdGFSZXNwb25zZS5UZW5z"
    "b3JNZXRhZGF0YRJACgdvdXRwdXRzGAUgAygLMi8uaW5mZXJlbmNlLk1vZGVsTWV0YWRhdGFSZXNwb25zZS5UZW5z"
    "b3JNZXRhZGF0YRo/Cg5UZW5zb3JNZXRhZGF0YRIMCgRuYW1lGAEgASgJEhAKCGRhdGF0eXBlGAIgASgJEg0KBXNo"
    "YXBlGAMgAygDIu4GChFNb2RlbEluZmVyUmVxdWVzdBISCgptb2RlbF9uYW1lGAEgASgJEhUKDW1vZGVsX3ZlcnNp"
    "b24YAiABKAkSCgoCaWQYAyABKAkSQAoKcGFyYW1ldGVycxgEIAMoCzIsLmluZmVyZW5jZS5Nb2RlbEluZmVyUmVx"
    "dWVzdC5QYXJhbWV0ZXJzRW50cnkSPQoGaW5wdXRzGAUgAygLMi0uaW5mZXJlbmNlLk1vZGVsSW5mZXJSZXF1ZXN0"
    "LkluZmVySW5wdXRUZW5zb3ISSAoHb3V0cHV0cxgGIAMoCzI3LmluZmVyZW5jZS5Nb2RlbEluZmVyUmVxdWVzdC5J"
    "bmZlclJlcXVlc3RlZE91dHB1dFRlbnNvchIaChJyYXdfaW5wdXRfY29udGVudHMYByADKAwalAIKEEluZmVySW5w"
    "dXRUZW5zb3ISDAoEbmFtZRgBIAEoCRIQCghkYXRhdHlwZRgCIAEoCRINCgVzaGFwZRgDIAMoAxJRCgpwYXJhbWV0"
    "ZXJzGAQgAygLMj0uaW5mZXJlbmNlLk1vZGVsSW5mZXJSZXF1ZXN0LkluZmVySW5wdXRUZW5zb3IuUGFyYW1ldGVy"
    "c0VudHJ5EjAKCGNvbnRlbnRzGAUgASgLMh4uaW5mZXJlbmNlLkluZmVyVGVuc29yQ29udGVudHMaTAoPUGFyYW1l"
    "dGVyc0VudHJ5EgsKA2tleRgBIAEoCRIoCgV2YWx1ZRgCIAEoCzIZLmluZmVyZW5jZS5JbmZlclBhcmFtZXRlcjoC"
    "OAEa1QEKGkluZmVyUmVxdWVzdGVkT3V0cHV0VGVuc29yEgwKBG5hbWUYASABKAkSWwoKcGFyYW1ldGVycxgCIAMo"
    "CzJHLmluZmVyZW5jZS5Nb2RlbEluZmVyUmVxdWVzdC5JbmZlclJlcXVlc3RlZE91dHB1dFRlbnNvci5QYXJhbWV0"
    "ZXJzRW50cnkaTAoPUGFyYW1ldGVyc0VudHJ5EgsKA2tleRgBIAEoCRIoCgV2YWx1ZRgCIAEoCzIZLmluZmVyZW5j"
    "ZS5JbmZlclBhcmFtZXRlcjoCOAEaTAoPUGFyYW1ldGVyc0VudHJ5EgsKA2tleRgBIAEoCRIoCgV2YWx1ZRgCIAEo"
    "CzIZLmluZmVyZW5jZS5JbmZlclBhcmFtZXRlcjoCOAEi1QQKEk1vZGVsSW5mZXJSZXNwb25zZRISCgptb2RlbF9u"
    "YW1lGAEgASgJEhUKDW1vZGVsX3ZlcnNpb24YAiABKAkSCgoCaWQYAyABKAkSQQoKcGFyYW1ldGVycxgEIAMoCzIt"
    "LmluZmVyZW5jZS5Nb2RlbEluZmVyUmVzcG9uc2UuUGFyYW1ldGVyc0VudHJ5EkAKB291dHB1dHMYBSADKAsyLy5p"
    "bmZlcmVuY2UuTW9kZWxJbmZlclJlc3BvbnNlLkluZmVyT3V0cHV0VGVuc29yEhsKE3Jhd19vdXRwdXRfY29udGVu"
    "dHMYBiADKAwalwIKEUluZmVyT3V0cHV0VGVuc29yEgwKBG5hbWUYASABKAkSEAoIZGF0YXR5cGUYAiABKAkSDQoF"
    "c2hhcGUYAyADKAMSUwoKcGFyYW1ldGVycxgEIAMoCzI/LmluZmVyZW5jZS5Nb2RlbEluZmVyUmVzcG9uc2UuSW5m"
    "ZXJPdXRwdXRUZW5zb3IuUGFyYW1ldGVyc0VudHJ5EjAKCGNvbnRlbnRzGAUgASgLMh4uaW5mZXJlbmNlLkluZmVy"
    "VGVuc29yQ29udGVudHMaTAoPUGFyYW1ldGVyc0VudHJ5EgsKA2tleRgBIAEoCRIoCgV2YWx1ZRgCIAEoCzIZLmlu"
    "ZmVyZW5jZS5JbmZlclBhcmFtZXRlcjoCOAEaTAoPUGFyYW1ldGVyc0VudHJ5EgsKA2tleRgBIAEoCRIoCgV2YWx1"
    "ZRgCIAEoCzIZLmluZmVyZW5jZS5JbmZlclBhcmFtZXRlcjoCOAEiaQoOSW5mZXJQYXJhbWV0ZXISFAoKYm9vbF9w"
    "YXJhbRgBIAEoCEgAEhUKC2ludDY0X3BhcmFtGAIgASgDSAASFgoMc3RyaW5nX3BhcmFtGAMgASgJSABCEgoQcGFy"
    "YW1ldGVyX2Nob2ljZSLQAQoTSW5mZXJUZW5zb3JDb250ZW50cxIVCg1ib29sX2NvbnRlbnRzGAEgAygIEhQKDGlu"
    "dF9jb250ZW50cxgCIAMoBRIWCg5pbnQ2NF9jb250ZW50cxgDIAMoAxIVCg11aW50X2NvbnRlbnRzGAQgAygNEhcK"
    "D3VpbnQ2NF9jb250ZW50cxgFIAMoBBIVCg1mcDMyX2NvbnRlbnRzGAYgAygCEhUKDWZwNjRfY29udGVudHMYByAD"
    "KAESFgoOYnl0ZXNfY29udGVudHMYCCADKAwiMAoaUmVwb3NpdG9yeU1vZGVsTG9hZFJlcXVlc3QSEgoKbW9kZWxf"
    "bmFtZRgBIAEoCSJDChtSZXBvc2l0b3J5TW9kZWxMb2FkUmVzcG9uc2USEgoKbW9kZWxfbmFtZRgBIAEoCRIQCghp"
    "c0xvYWRlZBgCIAEoCCIyChxSZXBvc2l0b3J5TW9kZWxVbmxvYWRSZXF1ZXN0EhIKCm1vZGVsX25hbWUYASABKAki"
    "RwodUmVwb3NpdG9yeU1vZGVsVW5sb2FkUmVzcG9uc2USEgoKbW9kZWxfbmFtZRgBIAEoCRISCgppc1VubG9hZGVk"
    "GAIgASgIMtIFChRHUlBDSW5mZXJlbmNlU2VydmljZRJLCgpTZXJ2ZXJMaXZlEhwuaW5mZXJlbmNlLlNlcnZlckxp"
    "dmVSZXF1ZXN0Gh0uaW5mZXJlbmNlLlNlcnZlckxpdmVSZXNwb25zZSIAEk4KC1NlcnZlclJlYWR5Eh0uaW5mZXJl"
    "bmNlLlNlcnZlclJlYWR5UmVxdWVzdBoeLmluZmVyZW5jZS5TZXJ2ZXJSZWFkeVJlc3BvbnNlIgASSwoKTW9kZWxS"
    "ZWFkeRIcLmluZmVyZW5jZS5Nb2RlbFJlYWR5UmVxdWVzdBodLmluZmVyZW5jZS5Nb2RlbFJlYWR5UmVzcG9uc2Ui"
    "ABJXCg5TZXJ2ZXJNZXRhZGF0YRIgLmluZmVyZW5jZS5TZXJ2ZXJNZXRhZGF0YVJlcXVlc3QaIS5pbmZlcmVuY2Uu"
    "U2VydmVyTWV0YWRhdGFSZXNwb25zZSIAElQKDU1vZGVsTWV0YWRhdGESHy5pbmZlcmVuY2UuTW9kZWxNZXRhZGF0"
    "YVJlcXVlc3QaIC5pbmZlcmVuY2UuTW9kZWxNZXRhZGF0YVJlc3BvbnNlIgASSwoKTW9kZWxJbmZlchIcLmluZmVy"
    "ZW5jZS5Nb2RlbEluZmVyUmVxdWVzdBodLmluZmVyZW5jZS5Nb2RlbEluZmVyUmVzcG9uc2UiABJmChNSZXBvc2l0"
    "b3J5TW9kZWxMb2FkEiUuaW5mZXJlbmNlLlJlcG9zaXRvcnlNb2RlbExvYWRSZXF1ZXN0GiYuaW5mZXJlbmNlLlJl"
    "cG9zaXRvcnlNb2RlbExvYWRSZXNwb25zZSIAEmwKFVJlcG9zaXRvcnlNb2RlbFVubG9hZBInLmluZmVyZW5jZS5S"
    "ZXBvc2l0b3J5TW9kZWxVbmxvYWRSZXF1ZXN0GiguaW5mZXJlbmNlLlJlcG9zaXRvcnlNb2RlbFVubG9hZFJlc3Bv"
    "bnNlIgBiBnByb3RvMw=="
)
# -- end of generated --

SERVICE: Final = "inference.GRPCInferenceService"
POOL = descriptor_pool.DescriptorPool()
POOL.AddSerializedFile(_DESCRIPTOR)


def _message(name: str) -> Any:
    return message_factory.GetMessageClass(POOL.FindMessageTypeByName(f"inference.{name}"))


ServerLiveRequest = _message("ServerLiveRequest")
ServerLiveResponse = _message("ServerLiveResponse")
ServerReadyRequest = _message("ServerReadyRequest")
ServerReadyResponse = _message("ServerReadyResponse")
ModelReadyRequest = _message("ModelReadyRequest")
ModelReadyResponse = _message("ModelReadyResponse")
ServerMetadataRequest = _message("ServerMetadataRequest")
ServerMetadataResponse = _message("ServerMetadataResponse")
ModelMetadataRequest = _message("ModelMetadataRequest")
ModelMetadataResponse = _message("ModelMetadataResponse")
ModelInferRequest = _message("ModelInferRequest")
ModelInferResponse = _message("ModelInferResponse")
InferTensorContents = _message("InferTensorContents")
