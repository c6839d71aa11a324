"""Answers already serialised: by PostgreSQL (``json_build_object``) or taken from the
cache. The hottest listings skip pydantic on the way out; ``model`` names the schema
the bytes follow, and tests/api/test_listing_shape.py holds them to it."""

from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Rendered(Generic[M]):
    """JSON bytes that follow ``model`` (a list of them when ``many``)."""

    model: type[M]
    body: bytes
    many: bool = False
