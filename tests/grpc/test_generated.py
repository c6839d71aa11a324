"""The .proto shipped in the package is the contract's, and the committed generated
code is what grpcio-tools makes of it (a changed .proto must be regenerated)."""

from pathlib import Path

import pytest

from app.grpc import generate
from tests.conftest import REPO_ROOT

SHARED_PROTO = REPO_ROOT.parent / "shared" / "proto" / "dlsms" / "v1" / "dlsms.proto"


def test_packaged_proto_is_the_shared_contract() -> None:
    if not SHARED_PROTO.exists():
        pytest.skip(f"no shared contract beside the repository ({SHARED_PROTO})")
    packaged = generate.PROTO_ROOT / generate.PROTO_FILE
    assert packaged.read_bytes() == SHARED_PROTO.read_bytes(), (
        "app/grpc/proto differs from shared/proto: copy it, then python -m app.grpc.generate"
    )


def test_regenerating_gives_the_committed_files(tmp_path: Path) -> None:
    written = generate.generate(tmp_path)
    assert sorted(p.name for p in written) == sorted(generate.GENERATED)
    for path in written:
        committed = generate.OUTPUT_DIR / path.name
        assert committed.read_bytes() == path.read_bytes(), (
            f"{committed} is stale: run python -m app.grpc.generate"
        )


def test_generated_modules_import_as_a_package() -> None:
    from app.grpc.generated import dlsms_pb2, dlsms_pb2_grpc

    assert dlsms_pb2.DESCRIPTOR.package == "dlsms.v1"
    assert dlsms_pb2_grpc.SeatServiceStub is not None
