"""The OIP v2 gRPC descriptor: compiled from ``src/bridgeai/serving/grpc_predict_v2.proto`` with
grpcio-tools (a dev dependency; the server and its image need only protobuf and grpcio).

``python -m tests.support.protos`` rewrites ``src/bridgeai/serving/grpc_messages.py`` from the
.proto; ``tests/bridgeai/serving/test_grpc_messages.py`` fails when the two disagree.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from tests.support.env import REPO_ROOT

SERVING = REPO_ROOT / "src" / "bridgeai" / "serving"
PROTO = SERVING / "grpc_predict_v2.proto"
MODULE = SERVING / "grpc_messages.py"
_BEGIN = "# -- generated: the serialized FileDescriptorProto, base64 --"
_END = "# -- end of generated --"


def compiled_descriptor(proto: Path = PROTO) -> bytes:
    """The FileDescriptorProto protoc makes of ``proto``, as Python's generator embeds it."""
    from google.protobuf import descriptor_pb2

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.binpb"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"-I{proto.parent}",
                f"--descriptor_set_out={out}",
                proto.name,
            ],
            check=True,
        )
        file = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]

    def strip(message: descriptor_pb2.DescriptorProto) -> None:
        for field in message.field:
            field.ClearField("json_name")  # as protoc's Python generator leaves it out
        for nested in message.nested_type:
            strip(nested)

    for message in file.message_type:
        strip(message)
    return bytes(file.SerializeToString(deterministic=True))


def generated_block(descriptor: bytes) -> str:
    """The generated block of ``grpc_messages.py`` for ``descriptor``."""
    text = base64.b64encode(descriptor).decode()
    lines = "\n".join(f'    "{line}"' for line in textwrap.wrap(text, 88))
    return f"{_BEGIN}\n_DESCRIPTOR = base64.b64decode(\n{lines}\n)\n{_END}"


def embedded_block(module: Path = MODULE) -> str:
    text = module.read_text()
    start = text.index(_BEGIN)
    end = text.index(_END) + len(_END)
    return text[start:end]


def rewrite(module: Path = MODULE) -> None:
    text = module.read_text()
    module.write_text(text.replace(embedded_block(module), generated_block(compiled_descriptor())))


if __name__ == "__main__":
    rewrite()
