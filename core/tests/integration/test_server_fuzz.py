"""schemathesis against ``/openapi.json``: no request, however odd, gets a 5xx.

The server runs over PostgreSQL, the strictest of the databases about what
it stores (NUL characters, column lengths, 32-bit integers), with an admin's
key so every endpoint is reached past its door. The reads are fuzzed here,
the writes in ``test_server_fuzz_writes.py`` (two files, so parallel workers
share the work).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conveyor_testing.server import ConveyorServer
from tests_support import fuzz_openapi, fuzz_target

pytestmark = [pytest.mark.server, pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture(scope="module")
def fuzzed(conveyor_server_factory: Callable[..., ConveyorServer], postgres_server: Any) -> ConveyorServer:
    return fuzz_target(conveyor_server_factory, postgres_server, "fuzz_reads")


def test_no_read_gets_a_server_error(fuzzed: ConveyorServer) -> None:
    assert fuzz_openapi(fuzzed, lambda method, path: method == "GET") > 30  # every reading store method
