"""schemathesis against ``/openapi.json``: no write, however odd, gets a 5xx (reads: ``test_server_fuzz.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conveyor_testing.server import ConveyorServer
from tests_support import fuzz_openapi, fuzz_target

pytestmark = [pytest.mark.server, pytest.mark.integration, pytest.mark.postgres]

# Deleting these, the fuzzer would lock itself out.
SPARED = {("DELETE", "/api/service-accounts/{name}"), ("DELETE", "/api/users/{name}")}


@pytest.fixture(scope="module")
def fuzzed(conveyor_server_factory: Callable[..., ConveyorServer], postgres_server: Any) -> ConveyorServer:
    return fuzz_target(conveyor_server_factory, postgres_server, "fuzz_writes")


def test_no_write_gets_a_server_error(fuzzed: ConveyorServer) -> None:
    fuzzed_count = fuzz_openapi(fuzzed, lambda method, path: method != "GET" and (method, path) not in SPARED)
    assert fuzzed_count > 30  # every writing store method
