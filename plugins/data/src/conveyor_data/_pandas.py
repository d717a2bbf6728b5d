"""pandas DataFrames and Series as Parquet, written and read by pyarrow.

pyarrow's pandas metadata already brings back the index, column labels and
most dtypes. What it does not, this module records in the Parquet file's own
metadata (key ``conveyor.pandas``) and restores after reading:

- categoricals whose categories are not strings (pd.cut's intervals, numbers,
  dates) come back as their values from Parquet; they are stored as their
  integer codes, with the categories in a side file ``categories-N.parquet``;
- dtypes Parquet cannot hold as such: object columns of strings, the storage
  of a string dtype, datetime64[s] (Parquet has ms at the coarsest);
- NaN payloads: pyarrow turns NaN into null, which reads back as one
  NaN; a float column holding other NaNs keeps them as values;
- the ``freq`` of a DatetimeIndex or TimedeltaIndex, and ``DataFrame.attrs``.

The writer is deterministic: the same frame gives the same bytes.
"""

from __future__ import annotations

import functools
import json
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from conveyor.exceptions import MaterializerError
from conveyor.materializers import BaseMaterializer
from conveyor_data._common import PREVIEW_ROWS, html_page, html_table, md_table, shorten, size_on_disk, write_text

_FILE = "frame.parquet"
_KEY = b"conveyor.pandas"
_SERIES = "series"
"""The column label of an unnamed Series in its Parquet file."""
_SERIES_KEY = b"conveyor.series"
_DESCRIBE_ROWS = 100_000
"""Frames longer than this are described from evenly spaced rows."""
_PICKLE_HINT = (
    "or opt in to pickle for this output: @step(output_materializers=conveyor.materializers.PickleMaterializer)"
)


def _default_string_dtype() -> Any:
    return pd.Index(["x"]).dtype  # "str" from pandas 3 on, object before


def _dtype_key(dtype: Any) -> str:
    """A string that tells two dtypes apart where ``str(dtype)`` does not (string storages)."""
    if isinstance(dtype, pd.StringDtype):
        return f"string[{dtype.storage},{'nan' if dtype.na_value is not pd.NA else 'NA'}]"
    return str(dtype)


def _dtype_from_key(key: str) -> Any:
    if key.startswith("string[") and key.endswith("]"):
        storage, na = key[len("string[") : -1].split(",")
        # pandas before 2.3 knows only the NA flavour, and takes no na_value.
        return pd.StringDtype(storage=storage, na_value=np.nan) if na == "nan" else pd.StringDtype(storage=storage)
    return pd.api.types.pandas_dtype(key)


def _native_categories(categories: pd.Index) -> bool:
    """Whether Parquet's dictionary encoding brings these categories back as they are."""
    if categories.dtype != _default_string_dtype():
        return False
    return categories.dtype != object or pd.api.types.infer_dtype(categories, skipna=False) == "string"


@functools.cache
def _null_nan(dtype: np.dtype) -> int:
    """The bits of the NaN a null of this float dtype reads back as (0x7e00 for float16 is not it)."""
    column = pa.table({"x": pa.array([None], type=pa.from_numpy_dtype(dtype))}).to_pandas()["x"]
    return int(column.to_numpy().view(f"u{dtype.itemsize}")[0])


def _odd_nans(values: np.ndarray) -> bool:
    """Whether a float array holds a NaN other than the one a null reads back as."""
    nan = np.isnan(values)
    if not nan.any():
        return False
    bits = values.view(f"u{values.dtype.itemsize}")
    return bool((bits[nan] != _null_nan(values.dtype)).any())


def _check_labels(frame: pd.DataFrame) -> None:
    if not frame.columns.is_unique:
        dupes = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise MaterializerError(
            f"the DataFrame has duplicate column labels ({shorten(', '.join(dupes))}), which Parquet cannot hold",
            "rename the columns so that each label is unique, " + _PICKLE_HINT,
        )
    for k in range(frame.columns.nlevels):
        level = frame.columns.get_level_values(k)
        # The test pyarrow makes before it turns such labels into strings.
        if level.dtype == object and "mixed" in pd.api.types.infer_dtype(level, skipna=False):
            raise MaterializerError(
                "the DataFrame's column labels mix types (such as str and int), which Parquet stores as strings",
                "give the columns labels of one type (df.columns = df.columns.astype(str)), " + _PICKLE_HINT,
            )
    try:
        json.dumps(frame.attrs)
    except (TypeError, ValueError):
        raise MaterializerError(
            "DataFrame.attrs holds values that are not JSON, which Parquet metadata cannot hold",
            "keep only JSON values (str, numbers, lists, dicts) in .attrs or clear them",
        ) from None


def _freq(index: pd.Index) -> str | None:
    return index.freqstr if isinstance(index, (pd.DatetimeIndex, pd.TimedeltaIndex)) else None


class _Slot:
    """A column or an index level: how it is stored, and how to restore what Parquet changes."""

    def __init__(self, kind: str, position: int, values: Any) -> None:
        self.kind = kind  # "column" or "index"
        self.position = position
        self.values = values
        self.info: dict[str, Any] = {"dtype": _dtype_key(values.dtype)}


def _slots(frame: pd.DataFrame) -> list[_Slot]:
    slots = [_Slot("column", j, frame.iloc[:, j]) for j in range(frame.shape[1])]
    if type(frame.index) is not pd.RangeIndex:  # a RangeIndex is stored as metadata only
        slots += [_Slot("index", k, frame.index.get_level_values(k)) for k in range(frame.index.nlevels)]
    return slots


def _frame_to_table(frame: pd.DataFrame) -> tuple[pa.Table, list[pd.Index], list[str], list[int]]:
    """The Arrow table to write, the categories to store aside, the columns not to dictionary-encode,
    and the number of missing values in each column (which pyarrow counted on the way)."""
    _check_labels(frame)
    slots = _slots(frame)
    side: list[pd.Index] = []
    replaced_columns: dict[int, Any] = {}
    replaced_levels: dict[int, Any] = {}
    for slot in slots:
        dtype = slot.values.dtype
        # Without rows, Parquet writes no dictionary: the categories go aside then too.
        if isinstance(dtype, pd.CategoricalDtype) and not (len(frame) and _native_categories(dtype.categories)):
            slot.info["categories"] = len(side)
            slot.info["ordered"] = bool(dtype.ordered)
            side.append(dtype.categories)
            codes = np.asarray(slot.values.array.codes)
            (replaced_columns if slot.kind == "column" else replaced_levels)[slot.position] = codes
    if replaced_columns or replaced_levels:
        frame = frame.copy(deep=False)
        for j, codes in replaced_columns.items():
            frame.isetitem(j, codes)
        if replaced_levels:
            levels = [replaced_levels.get(k, frame.index.get_level_values(k)) for k in range(frame.index.nlevels)]
            names = list(frame.index.names)
            frame.index = (
                pd.MultiIndex.from_arrays(levels, names=names)
                if len(levels) > 1
                else pd.Index(levels[0], name=names[0])
            )
    try:
        table = pa.Table.from_pandas(frame, preserve_index=None)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise MaterializerError(
            f"pyarrow cannot convert the DataFrame: {'; '.join(str(a) for a in exc.args)}",
            "convert the column to a type Parquet supports, " + _PICKLE_HINT,
        ) from None
    if table.num_columns != len(slots):  # pragma: no cover - pyarrow's layout changed
        raise MaterializerError(f"pyarrow wrote {table.num_columns} columns for {len(slots)} columns and index levels")
    missing = [
        int(np.count_nonzero(replaced_columns[j] == -1)) if j in replaced_columns else table.column(j).null_count
        for j in range(frame.shape[1])
    ]
    plain: list[str] = []
    for i, slot in enumerate(slots):
        values = slot.values
        if "categories" in slot.info or not (isinstance(values.dtype, np.dtype) and values.dtype.kind == "f"):
            continue
        if table.column(i).null_count and _odd_nans(np.asarray(values)):
            # Keep NaNs as values, and out of the dictionary, whose hashing makes all NaNs one.
            table = table.set_column(i, table.field(i), pa.array(np.asarray(values), from_pandas=False))
            plain.append(table.field(i).name)
            slot.info["nan_values"] = True
    index = frame.index
    info = {
        "rows": len(frame),
        "attrs": frame.attrs,
        "columns": [s.info for s in slots if s.kind == "column"],
        "index": [s.info for s in slots if s.kind == "index"],
        "freq": _freq(index),
        "columns_freq": _freq(frame.columns),
        "columns_dtype": [_dtype_key(frame.columns.get_level_values(k).dtype) for k in range(frame.columns.nlevels)],
    }
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), _KEY: json.dumps(info, sort_keys=True).encode()}
    )
    return table, side, plain, missing


def _restore(table: pa.Table, out: pd.DataFrame, categories: list[pd.Index]) -> pd.DataFrame:
    """Undo in ``out`` (read from ``table``) what Parquet changed; see the module's docstring."""
    info = json.loads(table.schema.metadata[_KEY])
    ncols = len(info["columns"])
    if len(out) != info["rows"]:
        # Parquet keeps no row count without columns: rebuild the RangeIndex from pyarrow's metadata.
        (desc,) = table.schema.pandas_metadata["index_columns"]
        index = pd.RangeIndex(desc["start"], desc["stop"], desc["step"], name=desc["name"])
        out = pd.DataFrame(index=index, columns=out.columns).__finalize__(out)  # keeps .attrs

    def fixed(slot: dict[str, Any], values: Any, field: int) -> tuple[Any, Any] | None:
        # (values, dtype) to put in place of ``values``, or None if they are right.
        # The dtype is passed on explicitly: pandas 3 would infer "str" from an object array of strings.
        if "categories" in slot:
            dtype = pd.CategoricalDtype(categories[slot["categories"]], ordered=slot["ordered"])
            return pd.Categorical.from_codes(np.asarray(values), dtype=dtype), dtype
        if _dtype_key(values.dtype) == slot["dtype"]:
            return None
        if slot["dtype"] == "object":
            return table.column(field).to_numpy(zero_copy_only=False), object
        dtype = _dtype_from_key(slot["dtype"])
        return pd.Series(values).astype(dtype).array, dtype

    for j, slot in enumerate(info["columns"]):
        new = fixed(slot, out.iloc[:, j], j)
        if new is not None:
            out.isetitem(j, pd.Series(new[0], index=out.index, dtype=new[1], copy=False))
    if info["index"]:
        levels = [out.index.get_level_values(k) for k in range(out.index.nlevels)]
        changed = False
        for k, slot in enumerate(info["index"]):
            new = fixed(slot, levels[k], ncols + k)
            if new is not None:
                levels[k] = pd.Index(new[0], dtype=new[1], name=levels[k].name)
                changed = True
        if changed:
            names = list(out.index.names)
            out.index = pd.MultiIndex.from_arrays(levels, names=names) if len(levels) > 1 else levels[0]
    out.attrs = info["attrs"]  # pyarrow before 18 does not keep them
    if info["freq"] is not None:
        out.index = type(out.index)(out.index, freq=info["freq"])
    if info["columns_freq"] is not None:
        out.columns = type(out.columns)(out.columns, freq=info["columns_freq"])
    for k, key in enumerate(info["columns_dtype"]):
        if _dtype_key(out.columns.get_level_values(k).dtype) != key:
            dtype = _dtype_from_key(key)
            if out.columns.nlevels == 1:
                out.columns = out.columns.astype(dtype)
            else:
                out.columns = out.columns.set_levels(out.columns.levels[k].astype(dtype), level=k)
    return out


class PandasMaterializer(BaseMaterializer):
    """pandas DataFrames and Series as one Parquet file (through pyarrow).

    The index, column labels, dtypes (categoricals ordered or not, time zones,
    nullable and string dtypes), NaN and NaT come back exactly; see the
    module's docstring for what is recorded besides pyarrow's own metadata.
    Columns Parquet cannot hold (complex numbers, objects of mixed types) are
    a MaterializerError that names the pickle opt-in.

    Views: ``preview.html`` (dtypes, head, describe) and ``summary.md``.
    """

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (pd.DataFrame, pd.Series)
    ARTIFACT_TYPE: ClassVar[str] = "dataframe"

    def _frame(self, data: Any) -> pd.DataFrame:
        if type(data) is pd.DataFrame:
            return data
        if type(data) is pd.Series:
            # A label of None would make pyarrow store "None"; the name is restored on load.
            return data.to_frame(name=_SERIES if data.name is None else data.name)
        name = f"{type(data).__module__}.{type(data).__qualname__}"
        raise MaterializerError(
            f"a {name} is not a plain pandas DataFrame or Series (it would load as one)",
            "return pd.DataFrame(value) if that will do, register a materializer for the type, " + _PICKLE_HINT,
        )

    def save(self, data: Any) -> None:
        table, categories, plain, self._missing = _frame_to_table(self._frame(data))
        if type(data) is pd.Series:
            # A name of a JSON type comes back as that type (0, not np.int64(0)); others as the column label.
            json_name = data.name is None or type(data.name) in (str, int, float, bool)
            series = {"name": data.name, "from_label": False} if json_name else {"name": None, "from_label": True}
            table = table.replace_schema_metadata({**table.schema.metadata, _SERIES_KEY: json.dumps(series).encode()})
        self._files = [_FILE]
        self._write(_FILE, table, plain)
        for n, cats in enumerate(categories):
            cat_table, cat_categories, cat_plain, _ = _frame_to_table(pd.DataFrame({"categories": cats}))
            if cat_categories:  # pragma: no cover - categories are never categorical
                raise MaterializerError("categories of a categorical cannot themselves be categorical")
            self._write(f"categories-{n}.parquet", cat_table, cat_plain)
            self._files.append(f"categories-{n}.parquet")

    def _write(self, name: str, table: pa.Table, plain: list[str]) -> None:
        use_dictionary: bool | list[str] = [f for f in table.column_names if f not in plain] if plain else True
        local = self.artifact_store.local_path(self.path(name))
        if local is not None:
            pq.write_table(table, local, use_dictionary=use_dictionary)
        else:
            with self.open(name, "wb") as f:
                pq.write_table(table, f, use_dictionary=use_dictionary)

    def _read(self, name: str) -> pa.Table:
        local = self.artifact_store.local_path(self.path(name))
        if local is not None:
            return pq.read_table(local)
        with self.open(name, "rb") as f:
            return pq.read_table(f)

    def load(self, data_type: type) -> Any:
        table = self._read(_FILE)
        info = json.loads(table.schema.metadata[_KEY])
        count = sum("categories" in s for s in (*info["columns"], *info["index"]))
        categories = [
            _restore(t, t.to_pandas(), [])["categories"].array
            for t in (self._read(f"categories-{n}.parquet") for n in range(count))
        ]
        out = _restore(table, table.to_pandas(), [pd.Index(c, dtype=c.dtype) for c in categories])
        series = table.schema.metadata.get(_SERIES_KEY)
        if series is not None:
            info = json.loads(series)
            return out.iloc[:, 0].rename(out.columns[0] if info["from_label"] else info["name"])
        return out

    def extract_metadata(self, data: Any) -> dict[str, Any]:
        frame = self._frame(data)
        meta: dict[str, Any] = {
            "rows": int(frame.shape[0]),
            "columns": int(frame.shape[1]),
            "column_names": [shorten(str(c), 60) for c in frame.columns[:100]],
            "dtypes": {shorten(str(c), 60): str(t) for c, t in list(frame.dtypes.items())[:100]},
            "index": type(frame.index).__name__,
            "memory_bytes": int(frame.memory_usage(index=True, deep=False).sum()),
        }
        files = getattr(self, "_files", None)
        if files:
            meta["size_on_disk"] = size_on_disk(self, files)
        return meta

    def save_visualizations(self, data: Any) -> dict[str, str]:
        # Statistics of extreme values overflow; a view shows inf rather than warning about it.
        with np.errstate(all="ignore"):
            return self._views(data)

    def _views(self, data: Any) -> dict[str, str]:
        frame = self._frame(data)
        title = f"{'Series' if type(data) is pd.Series else 'DataFrame'}: {frame.shape[0]:,} rows x {frame.shape[1]:,} columns"
        # Counted while saving; counting again would take a pass over every column.
        missing = getattr(self, "_missing", None) or list(len(frame) - frame.count())
        dtypes = [
            (shorten(str(c), 60), str(t), f"{int(n):,}")
            for (c, t), n in zip(frame.dtypes.items(), missing, strict=True)
        ]
        described, note = _describe(frame)
        body = [html_table(["column", "dtype", "missing"], dtypes, caption="Columns", left=2)]
        body.append(
            f"<h3>First {min(PREVIEW_ROWS, len(frame))} rows</h3>"
            + frame.head(PREVIEW_ROWS).to_html(border=0, max_cols=30)
        )
        if described is not None:
            body.append(
                "<h3>describe()</h3>"
                + (f'<p class="note">{note}</p>' if note else "")
                + described.to_html(border=0, max_cols=30)
            )
        views = {write_text(self, "preview.html", html_page(title, "\n".join(body))): "html"}
        md = f"# {title}\n\n{md_table(['column', 'dtype', 'missing'], dtypes)}"
        head = frame.head(PREVIEW_ROWS)
        md += f"\nFirst {len(head)} rows:\n\n" + md_table(
            ["", *(shorten(str(c), 30) for c in head.columns[:12])],
            [
                [shorten(str(i), 30), *(shorten(str(v), 30) for v in head.iloc[r, :12])]
                for r, i in enumerate(head.index)
            ],
        )
        views[write_text(self, "summary.md", md)] = "markdown"
        return views


def _describe(frame: pd.DataFrame) -> tuple[pd.DataFrame | None, str]:
    if frame.shape[1] == 0 or frame.shape[0] == 0:
        return None, ""
    note = ""
    if len(frame) > _DESCRIBE_ROWS:
        step = -(-len(frame) // _DESCRIBE_ROWS)
        frame = frame.iloc[::step]
        note = f"Of every {step}th row ({len(frame):,} of them)."
    try:
        return frame.describe(include="all"), note
    except (TypeError, ValueError):  # columns describe() cannot summarise
        return None, ""
