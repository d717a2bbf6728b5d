"""The REST store answers every metadata store call the SQL store answers."""

from __future__ import annotations

from conveyor.stores import MetadataStore
from conveyor.stores.rest import RestStore
from conveyor.stores.sql import SqlStore

# What only a store on this machine has: a REST store keeps the interface's answer.
SQL_ONLY = {"local_path"}


def _defined(cls: type) -> set[str]:
    return {
        n for c in cls.__mro__ if c is not MetadataStore and c is not object for n in vars(c) if not n.startswith("_")
    }


def test_every_store_method_has_a_rest_implementation() -> None:
    interface = {n for n in vars(MetadataStore) if not n.startswith("_")}
    missing = sorted((interface & _defined(SqlStore)) - _defined(RestStore) - SQL_ONLY)
    assert not RestStore.__abstractmethods__ and not missing, (
        f"RestStore lacks {sorted(RestStore.__abstractmethods__) or missing}: add a server endpoint and a RestStore "
        "method (see the module docstring of conveyor.server._app)"
    )


def test_a_rest_store_opens_without_a_server_and_holds_no_database_url() -> None:
    store = RestStore("http://127.0.0.1:9", token="cvk_x")
    assert store.backend == "rest" and store.local_path is None
    assert store.child_environment() == {"CONVEYOR_SERVER": "http://127.0.0.1:9"}
