"""A protoc plugin (for `buf generate`) that produces the Python client with grpcio-tools.

grpcio-tools bundles its own protoc with the `python`, `pyi` and `grpc_python` generators built in,
but no stand-alone plugin. This plugin reads buf's CodeGeneratorRequest, hands the descriptors to
that protoc, and returns what it wrote as a CodeGeneratorResponse. Needs grpcio-tools installed.
"""
import pathlib
import sys
import tempfile

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc


def main() -> None:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    response = plugin_pb2.CodeGeneratorResponse()
    response.supported_features = plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    with tempfile.TemporaryDirectory() as scratch:
        scratch_dir = pathlib.Path(scratch)
        descriptors = scratch_dir / "descriptors.binpb"
        descriptors.write_bytes(descriptor_pb2.FileDescriptorSet(file=request.proto_file).SerializeToString())
        out = scratch_dir / "out"
        out.mkdir()
        status = protoc.main([
            "grpc_tools.protoc",
            f"--descriptor_set_in={descriptors}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            *request.file_to_generate,
        ])
        if status != 0:
            response.error = f"grpc_tools.protoc failed with status {status}"
        else:
            for path in sorted(out.rglob("*")):
                if path.is_file():
                    generated = response.file.add()
                    generated.name = str(path.relative_to(out))
                    generated.content = path.read_text(encoding="utf-8")
    sys.stdout.buffer.write(response.SerializeToString())


if __name__ == "__main__":
    main()
