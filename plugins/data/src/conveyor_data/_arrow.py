"""pyarrow Tables and RecordBatches as Arrow IPC streams, memory-mapped on load from local stores."""

from __future__ import annotations

from typing import Any, ClassVar

import pyarrow as pa

from conveyor.exceptions import MaterializerError
from conveyor.materializers import BaseMaterializer
from conveyor_data._common import (
    PREVIEW_ROWS,
    html_page,
    html_table,
    human_bytes,
    md_table,
    shorten,
    size_on_disk,
    write_text,
)

_FILE = "table.arrows"
_BATCH = b"conveyor.record_batch"


class ArrowMaterializer(BaseMaterializer):
    """pyarrow Tables and RecordBatches as one uncompressed Arrow IPC stream.

    The IPC stream format holds every Arrow type, the schema's and fields'
    metadata, and the table's chunks as they are (dictionaries that differ
    from chunk to chunk included), so a table loads back equal with
    ``check_metadata=True``. Uncompressed, a local file is memory-mapped on
    load: the table's buffers are the file's pages, read as they are used.

    Views: ``schema.html`` (fields, types, nulls, first rows) and ``summary.md``.
    """

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (pa.Table, pa.RecordBatch)
    ARTIFACT_TYPE: ClassVar[str] = "table"

    def save(self, data: Any) -> None:
        if not isinstance(data, (pa.Table, pa.RecordBatch)):
            raise MaterializerError(
                f"ArrowMaterializer cannot save a {type(data).__name__}", "give it a pyarrow Table or RecordBatch"
            )
        schema = data.schema
        if isinstance(data, pa.RecordBatch):
            # Marked in the stored schema; load takes the mark out again.
            schema = schema.with_metadata({**(schema.metadata or {}), _BATCH: b"1"})
        local = self.artifact_store.local_path(self.path(_FILE))
        sink = pa.OSFile(local, "wb") if local is not None else pa.PythonFile(self.open(_FILE, "wb"), mode="w")
        with sink, pa.ipc.new_stream(sink, schema) as writer:
            if isinstance(data, pa.RecordBatch):
                writer.write_batch(data.replace_schema_metadata(schema.metadata))
            else:
                for batch in _batches(data):
                    writer.write_batch(batch)

    def load(self, data_type: type) -> Any:
        local = self.artifact_store.local_path(self.path(_FILE))
        if local is not None:
            source: Any = pa.memory_map(local, "r")
        else:
            with self.open(_FILE, "rb") as f:
                source = pa.BufferReader(f.read())
        reader = pa.ipc.open_stream(source)
        metadata = dict(reader.schema.metadata or {})
        if metadata.pop(_BATCH, None) is not None:
            batch = reader.read_next_batch()
            return batch.replace_schema_metadata(metadata or None)
        return reader.read_all()

    def extract_metadata(self, data: Any) -> dict[str, Any]:
        return {
            "rows": int(data.num_rows),
            "columns": int(data.num_columns),
            "schema": [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in list(data.schema)[:200]],
            "nbytes": int(data.nbytes),
            "size_on_disk": size_on_disk(self, [_FILE]),
        }

    def save_visualizations(self, data: Any) -> dict[str, str]:
        kind = "RecordBatch" if isinstance(data, pa.RecordBatch) else "Table"
        title = f"Arrow {kind}: {data.num_rows:,} rows x {data.num_columns:,} columns, {human_bytes(data.nbytes)}"
        fields = [
            (f.name, str(f.type), "yes" if f.nullable else "no", f"{data.column(i).null_count:,}")
            for i, f in enumerate(data.schema)
        ]
        head = data.slice(0, PREVIEW_ROWS)
        columns = head.column_names[:30]
        cells = [_cells(head.column(i)) for i in range(len(columns))]
        rows = [[col[r] for col in cells] for r in range(head.num_rows)]
        body = html_table(["field", "type", "nullable", "nulls"], fields, caption="Schema", left=2)
        if data.schema.metadata:
            meta = [
                (shorten(k.decode("utf-8", "replace"), 60), shorten(v.decode("utf-8", "replace"), 120))
                for k, v in data.schema.metadata.items()
            ]
            body += "\n" + html_table(["key", "value"], meta, caption="Schema metadata", left=2)
        body += "\n" + html_table(columns, rows, caption=f"First {len(rows)} rows", left=len(columns))
        views = {write_text(self, "schema.html", html_page(title, body)): "html"}
        views[
            write_text(self, "summary.md", f"# {title}\n\n" + md_table(["field", "type", "nullable", "nulls"], fields))
        ] = "markdown"
        return views


def _batches(table: pa.Table) -> list[pa.RecordBatch]:
    """The table's chunks as record batches, empty chunks included (``to_batches`` drops a lone one)."""
    batches = table.to_batches()
    if not batches and table.num_columns:
        counts = {c.num_chunks for c in table.columns}
        if len(counts) == 1:
            batches = [
                pa.record_batch([c.chunk(i) for c in table.columns], schema=table.schema) for i in range(counts.pop())
            ]
    return batches


def _cells(column: pa.Array | pa.ChunkedArray) -> list[str]:
    """A column's values as short strings, even where Python has no type for them (year 0, say)."""
    try:
        values = column.to_pylist()
    except (OverflowError, ValueError, pa.ArrowException):
        try:
            values = column.cast(pa.string()).to_pylist()
        except pa.ArrowException:
            return ["?"] * len(column)
    return [shorten(repr(v) if isinstance(v, bytes) else str(v), 60) for v in values]
