"""ArrowMaterializer: exact round trips of tables and record batches, memory-mapped loads, metadata and views."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from data_test_support import Folders
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conveyor.exceptions import MaterializerError
from conveyor_data import ArrowMaterializer

TEXT = st.text(max_size=8)


def _optional(strategy: st.SearchStrategy, n: int) -> st.SearchStrategy:
    return st.lists(st.none() | strategy, min_size=n, max_size=n)


@st.composite
def arrow_arrays(draw: st.DrawFn, n: int) -> pa.Array:
    kind = draw(
        st.sampled_from(
            [
                "int",
                "float_bits",
                "bool",
                "string",
                "large_string",
                "binary",
                "timestamp",
                "date",
                "decimal",
                "list",
                "struct",
                "dictionary",
                "null",
                "duration",
            ]
        )
    )
    if kind == "int":
        dtype = np.dtype(draw(st.sampled_from(["i1", "i8", "u2", "u8"])))
        values = draw(hnp.arrays(dtype, n))
        mask = draw(hnp.arrays(np.dtype(bool), n))
        return pa.array(values, mask=mask)
    if kind == "float_bits":  # every NaN payload: Arrow keeps them as values
        width = draw(st.sampled_from([2, 4, 8]))
        return pa.array(draw(hnp.arrays(np.dtype(f"u{width}"), n)).view(f"f{width}"))
    if kind == "bool":
        return pa.array(draw(_optional(st.booleans(), n)), pa.bool_())
    if kind in ("string", "large_string"):
        return pa.array(draw(_optional(TEXT, n)), getattr(pa, kind)())
    if kind == "binary":
        return pa.array(draw(_optional(st.binary(max_size=6), n)), pa.binary())
    if kind == "timestamp":
        unit = draw(st.sampled_from(["s", "ms", "us", "ns"]))
        tz = draw(st.none() | st.sampled_from(["UTC", "Europe/Paris", "+05:30"]))
        return pa.array(draw(_optional(st.integers(-(2**40), 2**40), n)), pa.timestamp(unit, tz=tz))
    if kind == "date":
        return pa.array(draw(_optional(st.dates(), n)), pa.date32())
    if kind == "decimal":
        values = draw(_optional(st.decimals(min_value=-(10**6), max_value=10**6, places=3, allow_nan=False), n))
        return pa.array([None if v is None else decimal.Decimal(v) for v in values], pa.decimal128(12, 3))
    if kind == "list":
        return pa.array(draw(_optional(st.lists(st.integers(-100, 100), max_size=3), n)), pa.list_(pa.int32()))
    if kind == "struct":
        rows = draw(_optional(st.fixed_dictionaries({"x": st.integers(-5, 5), "name": TEXT}), n))
        return pa.array(rows, pa.struct([("x", pa.int16()), ("name", pa.string())]))
    if kind == "dictionary":
        return pa.array(draw(_optional(st.sampled_from(["a", "b", "c"]), n)), pa.string()).dictionary_encode()
    if kind == "duration":
        return pa.array(draw(_optional(st.integers(-(10**9), 10**9), n)), pa.duration("ms"))
    return pa.nulls(n)


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    """Tables of many types, in one to three chunks (each its own dictionary), with metadata."""
    n = draw(st.integers(0, 10))
    names = draw(st.lists(TEXT, max_size=5, unique=True))
    chunks = draw(st.integers(1, 3))
    columns = []
    for _ in names:
        first = draw(arrow_arrays(n))
        parts = [first] + [draw(arrow_arrays(n).filter(lambda a, t=first.type: a.type == t)) for _ in range(chunks - 1)]
        columns.append(pa.chunked_array(parts, type=first.type))
    fields = [
        pa.field(
            name,
            col.type,
            nullable=draw(st.booleans()) or col.null_count > 0 or col.type == pa.null(),
            metadata=draw(st.none() | st.just({"unit": "cm"})),
        )
        for name, col in zip(names, columns, strict=True)
    ]
    metadata = draw(st.none() | st.dictionaries(TEXT.filter(bool), TEXT, max_size=2))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=metadata))


def assert_same_table(out: pa.Table | pa.RecordBatch, table: pa.Table | pa.RecordBatch) -> None:
    assert type(out) is type(table)
    assert out.schema.equals(table.schema, check_metadata=True)
    # Arrow's equals treats NaN as unequal to itself: compare the buffers' bytes instead.
    if isinstance(table, pa.Table):
        assert [c.num_chunks for c in out.columns] == [c.num_chunks for c in table.columns]
        pairs = [
            (a, b)
            for co, ct in zip(out.columns, table.columns, strict=True)
            for a, b in zip(co.chunks, ct.chunks, strict=True)
        ]
    else:
        pairs = list(zip(out.columns, table.columns, strict=True))
    for got, want in pairs:
        assert got.type == want.type and len(got) == len(want) and got.null_count == want.null_count
        assert got.equals(want) or _same_bits(got, want)  # equals: NaN is unequal to itself
        if pa.types.is_dictionary(want.type):
            assert got.dictionary.equals(want.dictionary) and got.indices.equals(want.indices)


def _same_bits(got: pa.Array, want: pa.Array) -> bool:
    return np.asarray(got).tobytes() == np.asarray(want).tobytes()


@given(table=tables())
def test_tables_round_trip_exactly(local: Folders, table: pa.Table) -> None:
    assert_same_table(local.roundtrip(ArrowMaterializer, table), table)


@given(table=tables())
def test_tables_round_trip_exactly_on_a_remote_store(remote: Folders, table: pa.Table) -> None:
    assert_same_table(remote.roundtrip(ArrowMaterializer, table), table)


@given(table=tables())
def test_record_batches_round_trip_exactly(local: Folders, table: pa.Table) -> None:
    batch = (
        table.combine_chunks().to_batches()[0]
        if table.num_rows
        else pa.RecordBatch.from_pylist([], schema=table.schema)
    )
    assert_same_table(local.roundtrip(ArrowMaterializer, batch), batch)


@given(table=tables())
def test_two_saves_of_a_table_write_the_same_bytes(local: Folders, table: pa.Table) -> None:
    hashes = set()
    for value in (table, pickle.loads(pickle.dumps(table))):  # an equal table in other memory
        uri = local.new()
        ArrowMaterializer(uri, local.store).save(value)
        hashes.add(local.store.content_hash(uri))
    assert len(hashes) == 1


def test_a_local_load_maps_the_file(local: Folders) -> None:
    table = pa.table({"x": np.arange(100_000, dtype=np.int64)})
    before = pa.total_allocated_bytes()
    out = local.roundtrip(ArrowMaterializer, table)
    assert out.equals(table)
    assert pa.total_allocated_bytes() - before < 100_000  # the 800 kB column is the file's pages, not a copy


def test_other_values_are_refused(local: Folders) -> None:
    with pytest.raises(MaterializerError, match="give it a pyarrow Table or RecordBatch"):
        ArrowMaterializer(local.new(), local.store).save(pa.array([1, 2]))


def test_metadata_has_rows_columns_schema_and_size_on_disk(local: Folders) -> None:
    table = pa.table({"id": pa.array([1, 2, None]), "when": pa.array([dt.date(2024, 1, 1)] * 3)})
    uri = local.new()
    m = ArrowMaterializer(uri, local.store)
    m.save(table)
    meta = m.extract_metadata(table)
    assert (meta["rows"], meta["columns"]) == (3, 2)
    assert meta["schema"] == [
        {"name": "id", "type": "int64", "nullable": True},
        {"name": "when", "type": "date32[day]", "nullable": True},
    ]
    assert meta["size_on_disk"] == os.path.getsize(os.path.join(uri, "table.arrows"))


def test_views_are_a_schema_page_and_a_markdown_summary(local: Folders) -> None:
    table = pa.table({"id": pa.array(range(30)), "tag": pa.array(["<b>x</b>"] * 30)}, metadata={"source": "sensor-7"})
    uri = local.new()
    m = ArrowMaterializer(uri, local.store)
    m.save(table)
    views = m.save_visualizations(table)
    assert views == {os.path.join(uri, "schema.html"): "html", os.path.join(uri, "summary.md"): "markdown"}
    page = Path(uri, "schema.html").read_text(encoding="utf-8")
    assert "Arrow Table: 30 rows x 2 columns" in page
    assert '<td class="l">id</td><td class="l">int64</td>' in page
    assert "sensor-7" in page  # schema metadata
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page  # values are escaped
    assert "First 10 rows" in page
    assert "| tag | string | yes | 0 |" in Path(uri, "summary.md").read_text(encoding="utf-8")


@given(table=tables())
def test_metadata_and_views_work_for_any_table(local: Folders, table: pa.Table) -> None:
    uri = local.new()
    m = ArrowMaterializer(uri, local.store)
    m.save(table)
    meta = m.extract_metadata(table)
    assert json.loads(json.dumps(meta)) == meta
    for path in m.save_visualizations(table):
        assert os.path.getsize(path) > 0
