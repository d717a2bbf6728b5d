"""schemathesis against ``/openapi.json``: no request, however odd, gets a 5xx.

The server runs over PostgreSQL, the strictest of the databases about what
it stores (NUL characters, column lengths, 32-bit integers), with an admin's
key so every endpoint is reached past its door.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from conveyor_testing.server import ConveyorServer

pytestmark = [pytest.mark.server, pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture(scope="module")
def fuzzed(conveyor_server_factory: Callable[..., ConveyorServer], postgres_server: Any) -> ConveyorServer:
    server = conveyor_server_factory(postgres_server.url(postgres_server.create_database("fuzz")))
    # Something to find: a secret, a component, a stack member, so reads have rows to return.
    server.api("POST", "/api/secrets", {"name": "known", "values": {"k": "v"}})
    return server


def test_no_request_gets_a_server_error(fuzzed: ConveyorServer) -> None:
    import schemathesis  # installed by the core session, where this test runs

    schema = schemathesis.openapi.from_url(f"{fuzzed.url}/openapi.json")
    headers = {"Authorization": f"Bearer {fuzzed.admin_key}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40  # every store method has its endpoint

    for operation in operations:
        if operation.method.upper() == "DELETE" and operation.path in SPARED:
            continue  # the fuzzer would lock itself out

        @settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def call(case: Any) -> None:
            response = case.call(base_url=fuzzed.url, headers=headers)
            where = f"{case.method} {case.formatted_path}"
            assert response.status_code < 500, f"{where}: {response.status_code} {response.text}"
            if response.status_code >= 400:
                body = response.json()
                assert isinstance(body.get("error"), str) and "\n" not in body["error"], (where, body)

        call()


SPARED = ("/api/service-accounts/{name}", "/api/users/{name}")
