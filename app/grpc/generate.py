"""Regenerate the gRPC code from the packaged .proto: ``python -m app.grpc.generate``.

The generated modules are committed (app/grpc/generated/) and tests/grpc checks that
regenerating them changes nothing, so the .proto and the code never drift apart.
grpcio-tools and mypy-protobuf (dev dependencies) are needed only here, not at run time.
"""

import argparse
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROTO_ROOT = PACKAGE_DIR / "proto"
PROTO_FILE = "dlsms/v1/dlsms.proto"
OUTPUT_DIR = PACKAGE_DIR / "generated"
GENERATED = ("dlsms_pb2.py", "dlsms_pb2.pyi", "dlsms_pb2_grpc.py", "dlsms_pb2_grpc.pyi")

# protoc writes `from dlsms.v1 import dlsms_pb2` (the .proto's own path); the modules
# live flat in app.grpc.generated, so the import names that package instead.
_PROTOC_IMPORT = "from dlsms.v1 import dlsms_pb2 as"
_PACKAGE_IMPORT = "from app.grpc.generated import dlsms_pb2 as"


def generate(output_dir: Path) -> list[Path]:
    """Write the generated modules into ``output_dir``; returns their paths."""
    from grpc_tools import protoc  # build time only: a dev dependency

    well_known = resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory() as scratch:
        status = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{PROTO_ROOT}",
                f"-I{well_known}",
                f"--python_out={scratch}",
                f"--pyi_out={scratch}",
                f"--grpc_python_out={scratch}",
                # Typed stubs and servicer bases (mypy-protobuf's protoc plugin).
                f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
                f"--mypy_grpc_out={scratch}",
                str(PROTO_ROOT / PROTO_FILE),
            ]
        )
        if status != 0:
            raise RuntimeError(f"protoc failed with status {status}")
        output_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for name in GENERATED:
            text = (Path(scratch) / "dlsms" / "v1" / name).read_text()
            text = text.replace(_PROTOC_IMPORT, _PACKAGE_IMPORT)
            target = output_dir / name
            target.write_text(text)
            written.append(target)
    return written


def _plugin(name: str) -> str:
    beside = Path(sys.executable).with_name(name)  # the virtualenv's scripts
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: pip install mypy-protobuf (a dev dependency)")
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.grpc.generate", description=__doc__)
    parser.add_argument("--out", type=Path, default=OUTPUT_DIR, help="default: %(default)s")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path, file=sys.stderr)


if __name__ == "__main__":
    main()
