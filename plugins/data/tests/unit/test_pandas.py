"""PandasMaterializer: exact round trips of frames and series, refusals, determinism, metadata and views."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from data_test_support import Folders
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conveyor.exceptions import MaterializerError
from conveyor_data import PandasMaterializer
from conveyor_data._pandas import _dtype_key

# pandas' repr of a float16 column with large values warns while formatting; hypothesis
# prints the values it tried, so that warning must not fail a test.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning:pandas.io.formats.format")

ZONES = ["UTC", "Europe/Paris", "Asia/Kolkata", "America/New_York", "Australia/Lord_Howe"]
TEXT = st.text(max_size=8)
UNITS = ["s", "ms", "us", "ns"]
# Datetimes a pandas of any unit can hold: within about 1678..2261 (the ns range).
EPOCH_SECONDS = st.integers(-9_000_000_000, 9_000_000_000)


def _optional(strategy: st.SearchStrategy, n: int) -> st.SearchStrategy:
    return st.lists(st.none() | strategy, min_size=n, max_size=n)


@st.composite
def columns(draw: st.DrawFn, n: int) -> object:
    """One column of ``n`` values, of a kind Parquet must bring back exactly."""
    kind = draw(
        st.sampled_from(
            [
                "int",
                "float",
                "float_bits",
                "bool",
                "Int64",
                "Float64",
                "boolean",
                "str",
                "object_str",
                "string_python",
                "string_pyarrow",
                "category_str",
                "category_num",
                "category_dates",
                "interval_category",
                "datetime",
                "datetime_tz",
                "timedelta",
                "period",
                "bytes",
            ]
        )
    )
    if kind == "int":
        dtype = draw(st.sampled_from(["i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8"]))
        return draw(hnp.arrays(np.dtype(dtype), n))
    if kind == "float":
        return draw(hnp.arrays(np.dtype(draw(st.sampled_from(["f2", "f4", "f8"]))), n))
    if kind == "float_bits":  # every NaN payload, signed zeros
        width = draw(st.sampled_from([4, 8]))
        return draw(hnp.arrays(np.dtype(f"u{width}"), n)).view(f"f{width}")
    if kind == "bool":
        return draw(hnp.arrays(np.dtype(bool), n))
    if kind == "Int64":
        return pd.array(draw(_optional(st.integers(-(2**63), 2**63 - 1), n)), dtype="Int64")
    if kind == "Float64":
        return pd.array(draw(_optional(st.floats(allow_nan=False), n)), dtype="Float64")
    if kind == "boolean":
        return pd.array(draw(_optional(st.booleans(), n)), dtype="boolean")
    if kind == "str":
        return pd.array(draw(_optional(TEXT, n)), dtype="str")
    if kind == "object_str":
        return pd.Series(draw(_optional(TEXT, n)), dtype=object).array
    if kind in ("string_python", "string_pyarrow"):
        return pd.array(draw(_optional(TEXT, n)), dtype=pd.StringDtype(kind.split("_")[1]))
    if kind.startswith("category") or kind == "interval_category":
        if kind == "category_str":
            cats = pd.Index(draw(st.lists(TEXT, min_size=1, max_size=6, unique=True)), dtype="str")
        elif kind == "category_num":
            element = draw(
                st.sampled_from([st.integers(-1000, 1000), st.floats(allow_nan=False, allow_infinity=False)])
            )
            cats = pd.Index(draw(st.lists(element, min_size=1, max_size=6, unique=True)))
        elif kind == "category_dates":
            cats = pd.DatetimeIndex(
                pd.to_datetime(draw(st.lists(EPOCH_SECONDS, min_size=1, max_size=6, unique=True)), unit="s")
            )
        else:
            edges = sorted(draw(st.lists(st.integers(-100, 100), min_size=2, max_size=6, unique=True)))
            cats = pd.IntervalIndex.from_breaks(
                edges, closed=draw(st.sampled_from(["left", "right", "both", "neither"]))
            )
        codes = draw(st.lists(st.integers(-1, len(cats) - 1), min_size=n, max_size=n))
        return pd.Categorical.from_codes(codes, categories=cats, ordered=draw(st.booleans()))
    if kind in ("datetime", "datetime_tz"):
        unit = draw(st.sampled_from(UNITS))
        raw = draw(_optional(EPOCH_SECONDS, n))
        values = np.array(["NaT" if v is None else v for v in raw], dtype="datetime64[s]").astype(f"datetime64[{unit}]")
        series = pd.Series(values)
        if kind == "datetime_tz":
            series = series.dt.tz_localize("UTC").dt.tz_convert(draw(st.sampled_from(ZONES)))
        return series.array
    if kind == "timedelta":
        unit = draw(st.sampled_from(UNITS))
        raw = draw(_optional(st.integers(-(10**9), 10**9), n))
        return np.array(["NaT" if v is None else v for v in raw], dtype="timedelta64[s]").astype(f"timedelta64[{unit}]")
    if kind == "period":
        return pd.period_range("2000-01", periods=n, freq=draw(st.sampled_from(["M", "D", "Q-DEC"]))).array
    return pd.Series(draw(_optional(st.binary(max_size=6), n)), dtype=object).array


@st.composite
def indexes(draw: st.DrawFn, n: int) -> pd.Index:
    kind = draw(
        st.sampled_from(
            [
                "range",
                "range_step",
                "int",
                "str",
                "object",
                "datetime_freq",
                "datetime_tz",
                "multi",
                "category",
                "float",
            ]
        )
    )
    name = draw(st.none() | TEXT)
    if kind == "range":
        return pd.RangeIndex(n, name=name)
    if kind == "range_step":
        start, step = draw(st.integers(-50, 50)), draw(st.sampled_from([-3, 2, 7]))
        return pd.RangeIndex(start, start + step * n, step, name=name)
    if kind == "int":
        return pd.Index(draw(hnp.arrays(np.int64, n)), name=name)
    if kind == "float":
        return pd.Index(draw(hnp.arrays(np.dtype("u8"), n)).view("f8"), name=name)
    if kind == "str":
        return pd.Index(draw(st.lists(TEXT, min_size=n, max_size=n)), dtype="str", name=name)
    if kind == "object":
        return pd.Index(draw(st.lists(TEXT, min_size=n, max_size=n)), dtype=object, name=name)
    if kind == "datetime_freq":
        freq = draw(st.sampled_from(["D", "h", "15min", "ME", "W-SUN"]))
        return pd.date_range("2020-01-01", periods=n, freq=freq, tz=draw(st.none() | st.sampled_from(ZONES)), name=name)
    if kind == "datetime_tz":
        values = pd.to_datetime(draw(st.lists(EPOCH_SECONDS, min_size=n, max_size=n)), unit="s", utc=True)
        return pd.DatetimeIndex(values, name=name).tz_convert(draw(st.sampled_from(ZONES)))
    if kind == "category":
        cats = draw(st.lists(st.integers(0, 20), min_size=1, max_size=5, unique=True))
        codes = draw(st.lists(st.integers(0, len(cats) - 1), min_size=n, max_size=n))
        return pd.CategoricalIndex(pd.Categorical.from_codes(codes, categories=cats), name=name)
    first = draw(st.lists(TEXT, min_size=n, max_size=n))
    second = draw(hnp.arrays(np.int32, n))
    return pd.MultiIndex.from_arrays([pd.Index(first, dtype="str"), second], names=[name, "level_1"])


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(0, 12))
    count = draw(st.integers(0, 5))
    if draw(st.booleans()):
        labels: list = draw(st.lists(TEXT, min_size=count, max_size=count, unique=True))
    else:
        labels = draw(st.lists(st.integers(-5, 50), min_size=count, max_size=count, unique=True))
    data = {label: draw(columns(n)) for label in labels}
    frame = pd.DataFrame(data, index=draw(indexes(n)), columns=pd.Index(labels) if labels else None)
    if draw(st.booleans()):
        frame.attrs = {"source": draw(TEXT), "n": n}
    return frame


def _float_bits(values: object) -> bytes | None:
    arr = np.asarray(values)
    return arr.tobytes() if arr.dtype.kind == "f" else None


def assert_same_frame(out: pd.DataFrame, frame: pd.DataFrame) -> None:
    assert type(out) is pd.DataFrame
    pd.testing.assert_frame_equal(out, frame, check_exact=True, check_freq=True, check_flags=True)
    # assert_frame_equal sees string storages as one dtype and all NaNs as one value: look closer.
    assert [_dtype_key(t) for t in out.dtypes] == [_dtype_key(t) for t in frame.dtypes]
    for j in range(frame.shape[1]):
        assert _float_bits(out.iloc[:, j]) == _float_bits(frame.iloc[:, j])
    for k in range(frame.index.nlevels):
        got, want = out.index.get_level_values(k), frame.index.get_level_values(k)
        assert _dtype_key(got.dtype) == _dtype_key(want.dtype)
        assert _float_bits(got) == _float_bits(want)
    assert out.attrs == frame.attrs


@given(frame=frames())
def test_frames_round_trip_exactly(local: Folders, frame: pd.DataFrame) -> None:
    assert_same_frame(local.roundtrip(PandasMaterializer, frame), frame)


@given(frame=frames())
def test_frames_round_trip_exactly_on_a_remote_store(remote: Folders, frame: pd.DataFrame) -> None:
    assert_same_frame(remote.roundtrip(PandasMaterializer, frame), frame)


@st.composite
def series(draw: st.DrawFn) -> pd.Series:
    n = draw(st.integers(0, 10))
    name = draw(st.none() | TEXT | st.integers(-5, 5) | st.just("series"))
    return pd.Series(draw(columns(n)), index=draw(indexes(n)), name=name)


@given(value=series())
def test_series_round_trip_exactly_with_their_name(local: Folders, value: pd.Series) -> None:
    out = local.roundtrip(PandasMaterializer, value)
    assert type(out) is pd.Series
    pd.testing.assert_series_equal(out, value, check_exact=True, check_freq=True)
    assert out.name == value.name and type(out.name) is type(value.name)
    assert _dtype_key(out.dtype) == _dtype_key(value.dtype)
    assert _float_bits(out) == _float_bits(value)


@given(frame=frames())
def test_two_saves_of_a_frame_write_the_same_bytes(local: Folders, frame: pd.DataFrame) -> None:
    hashes = set()
    for value in (frame, frame.copy(deep=True)):
        uri = local.new()
        PandasMaterializer(uri, local.store).save(value)
        hashes.add(local.store.content_hash(uri))
    assert len(hashes) == 1


def test_a_frame_is_one_parquet_file_other_tools_read(local: Folders) -> None:
    frame = pd.DataFrame(
        {"x": [1.5, None], "name": ["a", "b"], "kind": pd.Categorical(["u", "v"])}, index=pd.Index([10, 20], name="id")
    )
    uri = local.new()
    PandasMaterializer(uri, local.store).save(frame)
    assert os.listdir(uri) == ["frame.parquet"]
    pd.testing.assert_frame_equal(pd.read_parquet(os.path.join(uri, "frame.parquet")), frame)


def test_categoricals_of_numbers_keep_their_categories_beside_the_frame(local: Folders) -> None:
    frame = pd.DataFrame({"bucket": pd.cut([1, 7, 3, 15], bins=[0, 5, 10, 20])})
    uri = local.new()
    PandasMaterializer(uri, local.store).save(frame)
    assert sorted(os.listdir(uri)) == ["categories-0.parquet", "frame.parquet"]
    out = PandasMaterializer(uri, local.store).load(pd.DataFrame)
    assert out["bucket"].cat.ordered
    assert_same_frame(out, frame)


@pytest.mark.parametrize(
    ("frame", "message", "hint"),
    [
        (
            pd.DataFrame({"z": np.array([1 + 2j])}),
            "Conversion failed for column z with type complex128",
            "PickleMaterializer",
        ),
        (
            pd.DataFrame({"m": pd.Series([1, "x"], dtype=object)}),
            "Conversion failed for column m",
            "PickleMaterializer",
        ),
        (pd.DataFrame([[1, 2]], columns=["a", "a"]), "duplicate column labels (a)", "rename the columns"),
        (pd.DataFrame([[1, 2]], columns=["a", 1]), "column labels mix types", "astype(str)"),
        (
            pd.DataFrame({"a": [1]}).pipe(lambda f: f.attrs.update(when=object()) or f),
            "attrs holds values that are not JSON",
            "JSON",
        ),
    ],
    ids=["complex", "mixed-objects", "duplicate-labels", "mixed-labels", "attrs"],
)
def test_what_parquet_cannot_hold_is_refused_with_a_hint(
    local: Folders, frame: pd.DataFrame, message: str, hint: str
) -> None:
    with pytest.raises(MaterializerError) as err:
        PandasMaterializer(local.new(), local.store).save(frame)
    assert message in err.value.message
    assert hint in err.value.hint


def test_subclasses_of_dataframe_are_refused(local: Folders) -> None:
    class Frame(pd.DataFrame):
        pass

    with pytest.raises(MaterializerError, match=r"is not a plain pandas DataFrame or Series"):
        PandasMaterializer(local.new(), local.store).save(Frame({"a": [1]}))


def test_metadata_has_rows_columns_dtypes_and_size_on_disk(local: Folders) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": pd.Categorical([1, 2, 1])})
    uri = local.new()
    m = PandasMaterializer(uri, local.store)
    m.save(frame)
    meta = m.extract_metadata(frame)
    assert (meta["rows"], meta["columns"]) == (3, 2)
    assert meta["column_names"] == ["x", "c"]
    assert meta["dtypes"] == {"x": "float64", "c": "category"}
    assert meta["index"] == "RangeIndex"
    assert meta["size_on_disk"] == sum(os.path.getsize(os.path.join(uri, f)) for f in os.listdir(uri))


def test_views_are_an_html_preview_and_a_markdown_summary(local: Folders) -> None:
    frame = pd.DataFrame({"height": np.arange(25.0), "name": [f"n{i}" for i in range(25)]})
    frame["size"] = pd.cut(frame["height"].where(frame["height"] > 2), bins=[0, 10, 30])  # 3 missing, stored as codes
    frame.loc[5, "name"] = None
    uri = local.new()
    m = PandasMaterializer(uri, local.store)
    m.save(frame)
    views = m.save_visualizations(frame)
    assert views == {os.path.join(uri, "preview.html"): "html", os.path.join(uri, "summary.md"): "markdown"}
    page = Path(uri, "preview.html").read_text(encoding="utf-8")
    assert "DataFrame: 25 rows x 3 columns" in page
    assert "First 10 rows" in page and "<td>n9</td>" in page and "<td>n10</td>" not in page
    assert "describe()" in page and "<th>mean</th>" in page and "<td>12.000000</td>" in page  # mean of 0..24
    summary = Path(uri, "summary.md").read_text(encoding="utf-8")
    assert "| height | float64 | 0 |" in summary and "| size | category | 3 |" in summary
    assert f"| name | {frame['name'].dtype} | 1 |" in summary  # str from pandas 3 on, object before


def test_long_frames_are_described_from_evenly_spaced_rows(local: Folders, monkeypatch: pytest.MonkeyPatch) -> None:
    import conveyor_data._pandas as pandas_module

    monkeypatch.setattr(pandas_module, "_DESCRIBE_ROWS", 10)
    frame = pd.DataFrame({"x": np.arange(100.0)})
    uri = local.new()
    m = PandasMaterializer(uri, local.store)
    m.save(frame)
    m.save_visualizations(frame)
    page = Path(uri, "preview.html").read_text(encoding="utf-8")
    assert "Of every 10th row (10 of them)." in page


def test_a_series_is_marked_in_the_file(local: Folders) -> None:
    uri = local.new()
    PandasMaterializer(uri, local.store).save(pd.Series([1, 2]))
    meta = pq.read_schema(os.path.join(uri, "frame.parquet")).metadata
    assert json.loads(meta[b"conveyor.series"]) == {"name": None, "from_label": False}


@given(value=frames() | series())
def test_metadata_and_views_work_for_any_frame(local: Folders, value: pd.DataFrame | pd.Series) -> None:
    uri = local.new()
    m = PandasMaterializer(uri, local.store)
    m.save(value)
    meta = m.extract_metadata(value)
    json.dumps(meta)  # stored as JSON with the artifact
    assert meta["rows"] == len(value)
    for path in m.save_visualizations(value):
        assert os.path.getsize(path) > 0
