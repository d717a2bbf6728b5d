"""NumpyMaterializer: exact round trips, memory-mapped loads, refusals, metadata and views."""

from __future__ import annotations

import io
import json
import mmap
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from data_test_support import Folders
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conveyor.exceptions import MaterializerError
from conveyor_data import NumpyMaterializer

SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6)
DTYPES = (
    hnp.scalar_dtypes()  # bool, ints, uints, floats, complex, datetime64, timedelta64 in every unit
    | hnp.byte_string_dtypes()
    | hnp.unicode_string_dtypes()
    | hnp.array_dtypes(subtype_strategy=hnp.scalar_dtypes(), min_size=1, max_size=3)  # structured
    | hnp.nested_dtypes(max_itemsize=64)
)


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    """Arrays of any fixed-size dtype and layout: C or Fortran order, or a strided view."""
    arr = draw(hnp.arrays(draw(DTYPES), draw(SHAPES)))
    layout = draw(st.sampled_from(["c", "fortran", "transposed", "strided"]))
    if layout == "fortran":
        arr = np.asfortranarray(arr)
    elif layout == "transposed":
        arr = arr.T
    elif layout == "strided" and arr.ndim:
        arr = arr[::2]
    return arr


@st.composite
def float_bits(draw: st.DrawFn) -> np.ndarray:
    """Float arrays from arbitrary bit patterns: every NaN payload, signed zeros, subnormals."""
    width = draw(st.sampled_from([2, 4, 8]))
    bits = draw(hnp.arrays(np.dtype(f"u{width}"), draw(SHAPES)))
    return bits.view(f"f{width}")


def mapped(arr: object) -> bool:
    """Whether an array's memory is a memory-mapped file."""
    while arr is not None:
        if isinstance(arr, (np.memmap, mmap.mmap)):
            return True
        arr = getattr(arr, "base", None)
    return False


def assert_same_bits(out: np.ndarray, arr: np.ndarray) -> None:
    assert type(out) is np.ndarray
    assert out.dtype == arr.dtype
    assert out.shape == arr.shape
    assert out.tobytes() == arr.tobytes()  # bit for bit, NaN payloads included
    if arr.flags.f_contiguous and not arr.flags.c_contiguous:
        assert out.flags.f_contiguous


@given(arr=arrays() | float_bits())
def test_arrays_round_trip_bit_for_bit_on_a_local_store(local: Folders, arr: np.ndarray) -> None:
    assert_same_bits(local.roundtrip(NumpyMaterializer, arr), arr)


@given(arr=arrays() | float_bits())
def test_arrays_round_trip_bit_for_bit_on_a_remote_store(remote: Folders, arr: np.ndarray) -> None:
    out = remote.roundtrip(NumpyMaterializer, arr)
    assert_same_bits(out, arr)
    assert not mapped(out)  # read into memory


@given(value=hnp.arrays(hnp.scalar_dtypes() | hnp.unicode_string_dtypes(), ()).map(lambda a: a[()]))
def test_numpy_scalars_come_back_as_scalars_of_their_type(local: Folders, value: np.generic) -> None:
    out = local.roundtrip(NumpyMaterializer, value)
    assert type(out) is type(value)
    assert np.asarray(out).tobytes() == np.asarray(value).tobytes()


def test_a_scalar_loads_as_a_scalar_whatever_type_the_reader_asks_for(local: Folders) -> None:
    # A downstream step annotated with float gets the np.float64 that was saved.
    out = local.roundtrip(NumpyMaterializer, np.float64(2.5), data_type=float)
    assert type(out) is np.float64 and out == 2.5


def test_a_local_load_is_memory_mapped_copy_on_write(local: Folders) -> None:
    arr = np.arange(1000, dtype=np.int32)
    uri = local.new()
    NumpyMaterializer(uri, local.store).save(arr)
    before = local.store.content_hash(uri)
    out = NumpyMaterializer(uri, local.store).load(np.ndarray)
    assert type(out) is np.ndarray
    assert mapped(out)
    assert out.flags.writeable
    out[:] = -1  # a step may change its input in place ...
    assert local.store.content_hash(uri) == before  # ... the artifact does not change
    assert np.array_equal(NumpyMaterializer(uri, local.store).load(np.ndarray), arr)


def test_memory_mapping_can_be_turned_off(local: Folders, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(NumpyMaterializer, "MEMORY_MAP", False)
    out = local.roundtrip(NumpyMaterializer, np.arange(10.0))
    assert not mapped(out)
    assert np.array_equal(out, np.arange(10.0))


def test_a_memmap_saves_and_loads_as_a_plain_array(local: Folders, tmp_path: Path) -> None:
    mm = np.lib.format.open_memmap(tmp_path / "m.npy", mode="w+", dtype=np.float32, shape=(4, 3))
    mm[:] = np.arange(12).reshape(4, 3)
    out = local.roundtrip(NumpyMaterializer, mm, data_type=np.memmap)
    assert type(out) is np.ndarray
    assert np.array_equal(out, np.arange(12, dtype=np.float32).reshape(4, 3))


def test_two_saves_of_equal_arrays_write_the_same_bytes(local: Folders) -> None:
    a = np.linspace(0, 1, 1001)
    hashes = set()
    for value in (a, a.copy(), np.asarray(a.tolist())):
        uri = local.new()
        NumpyMaterializer(uri, local.store).save(value)
        hashes.add(local.store.content_hash(uri))
    assert len(hashes) == 1


OBJECT_ARRAYS = {
    "object": np.array([1, "a", None], dtype=object),
    "structured-with-object": np.zeros(2, dtype=[("a", "i4"), ("o", "O")]),
}
if hasattr(np.dtypes, "StringDType"):  # numpy 2
    OBJECT_ARRAYS["StringDType"] = np.array(["a", "bc"], dtype=np.dtypes.StringDType())


@pytest.mark.parametrize("value", list(OBJECT_ARRAYS.values()), ids=list(OBJECT_ARRAYS))
def test_arrays_of_python_objects_are_refused_with_the_pickle_opt_in(local: Folders, value: np.ndarray) -> None:
    with pytest.raises(MaterializerError) as err:
        NumpyMaterializer(local.new(), local.store).save(value)
    assert "pickling" in err.value.message
    assert "output_materializers=conveyor.materializers.PickleMaterializer" in err.value.hint


def test_ndarray_subclasses_that_would_lose_information_are_refused(local: Folders) -> None:
    masked = np.ma.masked_array([1.0, 2.0], mask=[False, True])
    with pytest.raises(MaterializerError, match=r"MaskedArray is a subclass of numpy\.ndarray"):
        NumpyMaterializer(local.new(), local.store).save(masked)


def test_metadata_has_shape_dtype_statistics_and_size_on_disk(local: Folders) -> None:
    arr = np.array([[1.0, np.nan, 3.0], [np.inf, 5.0, -1.0]])
    uri = local.new()
    m = NumpyMaterializer(uri, local.store)
    m.save(arr)
    meta = m.extract_metadata(arr)
    assert meta["shape"] == [2, 3]
    assert meta["dtype"] == "float64"
    assert meta["size"] == 6 and meta["nbytes"] == 48
    assert meta["size_on_disk"] == os.path.getsize(os.path.join(uri, "array.npy"))
    assert (meta["min"], meta["max"], meta["nan_count"], meta["inf_count"]) == (-1.0, 5.0, 1, 1)
    assert meta["mean"] == pytest.approx(2.0)
    assert meta["std"] == pytest.approx(np.std([1.0, 3.0, 5.0, -1.0]))


@given(
    arr=hnp.arrays(
        st.sampled_from([np.float32, np.float64, np.int16, np.uint64]), hnp.array_shapes(max_dims=3, max_side=30)
    )
)
def test_statistics_match_numpy_on_the_finite_values(local: Folders, arr: np.ndarray) -> None:
    meta = NumpyMaterializer(local.new(), local.store)
    NumpyMaterializer.save(meta, arr)
    got = meta.extract_metadata(arr)
    finite = arr[np.isfinite(arr)] if arr.dtype.kind == "f" else arr.ravel()
    if finite.size == 0:
        assert "min" not in got
        return
    assert got["min"] == finite.min().item() and got["max"] == finite.max().item()
    values = finite.astype(np.float64)
    if np.abs(values).max() < 1e150:  # beyond, squares overflow: mean and std may be left out
        mean, std = values.mean(), values.std()
        assert got["mean"] == pytest.approx(mean, rel=1e-9, abs=1e-300)
        assert got["std"] == pytest.approx(std, rel=1e-6, abs=1e-9 * max(1.0, abs(mean)))
    for key in ("mean", "std"):
        assert key not in got or np.isfinite(got[key])


def test_statistics_of_a_large_array_are_exact_and_in_chunks(local: Folders) -> None:
    arr = np.arange(3_000_000, dtype=np.float64).reshape(1000, 3000)[:, ::2]  # strided: not contiguous
    m = NumpyMaterializer(local.new(), local.store)
    m.save(arr)
    meta = m.extract_metadata(arr)
    assert (meta["min"], meta["max"]) == (0.0, float(arr.max()))
    assert meta["mean"] == pytest.approx(arr.mean())
    assert meta["std"] == pytest.approx(arr.std())


def test_views_are_a_summary_and_a_histogram_png(local: Folders) -> None:
    from PIL import Image

    arr = np.random.default_rng(1).normal(size=(200, 5))
    uri = local.new()
    m = NumpyMaterializer(uri, local.store)
    m.save(arr)
    views = m.save_visualizations(arr)
    assert views == {os.path.join(uri, "summary.md"): "markdown", os.path.join(uri, "histogram.png"): "png"}
    summary = Path(uri, "summary.md").read_text(encoding="utf-8")
    assert "| shape | 200 x 5 |" in summary and "| dtype | float64 |" in summary
    with Image.open(os.path.join(uri, "histogram.png")) as img:
        assert img.format == "PNG" and img.size == (560, 300)
        # Bars are drawn: the plot holds the bar colour.
        assert (76, 114, 176) in {c for _, c in img.getcolors(maxcolors=100_000)}


def test_no_histogram_for_arrays_that_are_not_numbers(local: Folders) -> None:
    arr = np.array(["a", "b"])
    uri = local.new()
    m = NumpyMaterializer(uri, local.store)
    m.save(arr)
    assert m.save_visualizations(arr) == {os.path.join(uri, "summary.md"): "markdown"}


def test_without_pillow_the_summary_is_still_written(local: Folders, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "PIL", None)  # import PIL raises ImportError
    arr = np.arange(100.0)
    uri = local.new()
    m = NumpyMaterializer(uri, local.store)
    m.save(arr)
    assert m.save_visualizations(arr) == {os.path.join(uri, "summary.md"): "markdown"}


def test_views_on_a_remote_store(remote: Folders) -> None:
    from PIL import Image

    arr = np.arange(50, dtype=np.int64)
    uri = remote.new()
    m = NumpyMaterializer(uri, remote.store)
    m.save(arr)
    views = m.save_visualizations(arr)
    assert set(views.values()) == {"markdown", "png"}
    with remote.store.open(remote.store.join(uri, "histogram.png"), "rb") as f:
        assert Image.open(io.BytesIO(f.read())).format == "PNG"
    assert m.extract_metadata(arr)["size_on_disk"] == 50 * 8 + 128


@given(arr=arrays() | float_bits())
def test_metadata_and_views_work_for_any_array(local: Folders, arr: np.ndarray) -> None:
    uri = local.new()
    m = NumpyMaterializer(uri, local.store)
    m.save(arr)
    meta = m.extract_metadata(arr)
    assert json.loads(json.dumps(meta, allow_nan=False)) == meta  # plain JSON: no NaN or inf
    for path in m.save_visualizations(arr):
        assert os.path.getsize(path) > 0
