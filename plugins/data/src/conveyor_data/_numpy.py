"""numpy arrays and scalars as ``.npy`` files, memory-mapped on load from local stores."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from conveyor.exceptions import MaterializerError
from conveyor.materializers import BaseMaterializer
from conveyor_data._common import PREVIEW_ROWS, human_bytes, md_table, size_on_disk, write_text

_ARRAY = "array.npy"
_SCALAR = "scalar.npy"
_CHUNK = 1 << 20
"""Elements per chunk when computing statistics, so they need little extra memory."""
_HIST_BINS = 40
_HIST_SAMPLE = 1_000_000
"""Arrays larger than this get a histogram of evenly spaced values, not of all of them."""

_PICKLE_HINT = (
    "convert it to an array of a fixed-size dtype (numbers, bool, datetime64, fixed-width str), or opt in to "
    "pickle for this output: @step(output_materializers=conveyor.materializers.PickleMaterializer)"
)


def _as_array(data: Any) -> np.ndarray:
    """The array to write, or a MaterializerError when ``.npy`` cannot hold ``data`` exactly."""
    if isinstance(data, np.generic):
        arr = np.asarray(data)
    elif type(data) is np.ndarray or isinstance(data, np.memmap):
        arr = data
    elif isinstance(data, np.ndarray):
        name = f"{type(data).__module__}.{type(data).__qualname__}"
        raise MaterializerError(
            f"a {name} is a subclass of numpy.ndarray that a .npy file cannot hold exactly (it would load as a plain array)",
            "return np.asarray(value) if a plain array will do, or opt in to pickle: "
            "@step(output_materializers=conveyor.materializers.PickleMaterializer)",
        )
    else:
        raise MaterializerError(
            f"NumpyMaterializer cannot save a {type(data).__name__}", "give it a numpy array or scalar"
        )
    # Object arrays (and variable-width string arrays) have no .npy form but a pickle.
    if arr.dtype.hasobject or arr.dtype.kind == "T":
        raise MaterializerError(f"a numpy array of dtype {arr.dtype} can be saved only by pickling it", _PICKLE_HINT)
    return arr


def _format_version(dtype: np.dtype) -> tuple[int, int] | None:
    """The .npy format version to ask for: None lets numpy pick 1.0 or 2.0.

    Field names outside latin-1 need 3.0; numpy would pick it too, with a
    warning that only numpy < 1.17 cannot read the file.
    """
    try:
        repr(np.lib.format.dtype_to_descr(dtype)).encode("latin1")
    except UnicodeEncodeError:
        return (3, 0)
    return None


def _chunks(arr: np.ndarray) -> Any:
    """The array's elements in 1-D chunks of at most ``_CHUNK``, without copying the whole array."""
    if arr.size == 0:
        return
    if arr.flags.c_contiguous or arr.flags.f_contiguous:
        flat = arr.reshape(-1, order="A")  # a view, in the order of memory
        for start in range(0, flat.size, _CHUNK):
            yield flat[start : start + _CHUNK]
        return
    yield from np.nditer(arr, flags=["external_loop", "buffered", "zerosize_ok"], buffersize=_CHUNK, order="C")


class _Stats:
    """Statistics of a numeric array's finite values, computed chunk by chunk.

    Each chunk costs a few vectorized passes into two reused buffers, so the
    whole needs a few MB whatever the array's size.
    """

    def __init__(self, arr: np.ndarray) -> None:
        self.nan = 0
        self.inf = 0
        self.count = 0  # finite values
        self.minimum: Any = math.inf
        self.maximum: Any = -math.inf
        size = min(arr.size, _CHUNK)
        finite_buf = np.empty(size, dtype=bool)
        diff_buf = np.empty(size, dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):  # sums of huge values overflow to inf
            self._add_chunks(arr, finite_buf, diff_buf)
        self.mean = self._mean if self.count and math.isfinite(self._mean) else None
        std = math.sqrt(self._m2 / self.count) if self.count and math.isfinite(self._m2) else math.nan
        self.std = std if math.isfinite(std) else None

    def _add_chunks(self, arr: np.ndarray, finite_buf: np.ndarray, diff_buf: np.ndarray) -> None:
        floating = arr.dtype.kind == "f"
        mean = 0.0
        m2 = 0.0
        for chunk in _chunks(arr):
            values = chunk
            if floating:
                finite = np.isfinite(chunk, out=finite_buf[: chunk.size])
                if not finite.all():
                    nans = int(np.count_nonzero(np.isnan(chunk)))
                    values = chunk[finite]
                    self.nan += nans
                    self.inf += chunk.size - values.size - nans
            n_b = values.size
            if n_b == 0:
                continue
            # .item(): Python ints stay exact, floats become Python floats.
            self.minimum = min(self.minimum, values.min().item())
            self.maximum = max(self.maximum, values.max().item())
            mean_b = float(values.sum(dtype=np.float64)) / n_b
            diff = np.subtract(values, mean_b, out=diff_buf[:n_b], dtype=np.float64, casting="unsafe")
            m2_b = float(np.dot(diff, diff))
            # Chan et al.'s update of the mean and the sum of squared deviations.
            n_a = self.count
            total = n_a + n_b
            delta = mean_b - mean
            mean += delta * n_b / total
            m2 += m2_b + delta * delta * n_a * n_b / total
            self.count = total
        self._mean = mean
        self._m2 = m2


def _fmt(value: float) -> str:
    return f"{value:.6g}"


class NumpyMaterializer(BaseMaterializer):
    """numpy arrays and scalars as ``.npy`` files.

    Saving writes the array straight from its memory to the file, without a
    copy. Loading from a local artifact store maps the file into memory
    copy-on-write: the array pages in as it is read, writes to it stay in the
    process, and the stored file never changes. Other stores read the file
    into memory. Arrays of Python objects are refused (a ``.npy`` of them is a
    pickle); opt in to ``conveyor.materializers.PickleMaterializer`` for them.

    Views: ``summary.md`` (shape, dtype, statistics, first values) and, for
    numbers with Pillow installed, ``histogram.png``.
    """

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (np.ndarray, np.generic)
    ARTIFACT_TYPE: ClassVar[str] = "array"

    MEMORY_MAP: ClassVar[bool] = True
    """Map local files into memory on load (copy-on-write) instead of reading them."""

    def save(self, data: Any) -> None:
        arr = _as_array(data)
        name = _SCALAR if isinstance(data, np.generic) else _ARRAY
        # On a local store this is a real file, so numpy writes the array's memory
        # straight to it (ndarray.tofile); other stores get it in 16 MiB chunks.
        with self.open(name, "wb") as f:
            try:
                np.lib.format.write_array(f, arr, version=_format_version(arr.dtype), allow_pickle=False)
            except ValueError as exc:
                raise MaterializerError(
                    f"cannot save a numpy array of dtype {arr.dtype}: {exc}", _PICKLE_HINT
                ) from None

    def load(self, data_type: type) -> Any:
        scalar_uri = self.path(_SCALAR)
        if self.artifact_store.exists(scalar_uri):
            with self.open(_SCALAR, "rb") as f:
                return np.load(f, allow_pickle=False)[()]
        uri = self.path(_ARRAY)
        local = self.artifact_store.local_path(uri)
        if local is not None and self.MEMORY_MAP:
            arr = np.load(local, mmap_mode="c", allow_pickle=False)
            # A plain ndarray over the mapping: np.memmap's type leaks into results otherwise.
            return arr.view(np.ndarray) if isinstance(arr, np.memmap) else arr
        with self.open(_ARRAY, "rb") as f:
            return np.load(f, allow_pickle=False)

    def _stats(self, arr: np.ndarray) -> _Stats | None:
        if arr.dtype.kind not in "iuf":
            return None
        cached = getattr(self, "_stats_cache", None)
        if cached is not None and cached[0] is arr:
            return cached[1]
        stats = _Stats(arr)
        self._stats_cache = (arr, stats)
        return stats

    def extract_metadata(self, data: Any) -> dict[str, Any]:
        arr = _as_array(data)
        name = _SCALAR if isinstance(data, np.generic) else _ARRAY
        meta: dict[str, Any] = {
            "shape": list(arr.shape),
            "dtype": str(arr.dtype),
            "size": int(arr.size),
            "nbytes": int(arr.nbytes),
            "size_on_disk": size_on_disk(self, [name]),
        }
        stats = self._stats(arr)
        if stats is not None and stats.count:
            meta.update(min=stats.minimum, max=stats.maximum)
            meta.update({k: v for k, v in (("mean", stats.mean), ("std", stats.std)) if v is not None})
        if stats is not None and arr.dtype.kind == "f":
            meta.update(nan_count=stats.nan, inf_count=stats.inf)
        return meta

    def save_visualizations(self, data: Any) -> dict[str, str]:
        arr = _as_array(data)
        stats = self._stats(arr)
        views = {write_text(self, "summary.md", _summary(arr, stats)): "markdown"}
        if stats is not None and stats.count and arr.ndim:
            png = _histogram_png(arr, stats)
            if png is not None:
                with self.open("histogram.png", "wb") as f:
                    f.write(png)
                views[self.path("histogram.png")] = "png"
        return views


def _summary(arr: np.ndarray, stats: _Stats | None) -> str:
    rows = [
        ("shape", " x ".join(str(n) for n in arr.shape) or "() (scalar)"),
        ("dtype", str(arr.dtype)),
        ("size", f"{arr.size:,} values, {human_bytes(arr.nbytes)}"),
    ]
    if stats is not None and stats.count:
        rows += [("min", _fmt(stats.minimum)), ("max", _fmt(stats.maximum))]
        rows += [(k, _fmt(v)) for k, v in (("mean", stats.mean), ("std", stats.std)) if v is not None]
    if stats is not None and arr.dtype.kind == "f":
        rows += [("NaN", f"{stats.nan:,}"), ("±inf", f"{stats.inf:,}")]
    if arr.dtype.kind == "b" and arr.size:
        rows.append(("true", f"{int(np.count_nonzero(arr)):,}"))
    with np.printoptions(threshold=PREVIEW_ROWS * 2, edgeitems=PREVIEW_ROWS // 2, linewidth=100):
        preview = np.array2string(arr) if arr.ndim else repr(arr[()])
    return f"# numpy array\n\n{md_table(['', 'value'], rows)}\n```\n{preview}\n```\n"


def _histogram_png(arr: np.ndarray, stats: _Stats) -> bytes | None:
    """A histogram of the finite values as PNG bytes, or None without Pillow."""
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        return None
    import io

    sampled = arr.size > _HIST_SAMPLE
    step = math.ceil(arr.size / _HIST_SAMPLE) if sampled else 1
    if arr.flags.c_contiguous or arr.flags.f_contiguous:
        values = arr.reshape(-1, order="A")[::step]
    else:
        values = np.asarray(arr.flat[::step])  # copies only the values it picks
    if arr.dtype.kind == "f":
        values = values[np.isfinite(values)]
    lo, hi = float(stats.minimum), float(stats.maximum)
    if lo == hi:  # one value: a bar in the middle
        pad = max(0.5, abs(lo) * 1e-6)
        lo, hi = lo - pad, hi + pad
    try:
        with np.errstate(all="ignore"):
            counts, _edges = np.histogram(values.astype(np.float64), bins=_HIST_BINS, range=(lo, hi))
    except ValueError:  # a range too wide for float64 bins (near ±1.8e308): no picture
        return None

    width, height = 560, 300
    left, right, top, bottom = 64, 16, 34, 40
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = int(counts.max()) or 1
    bar_w = plot_w / _HIST_BINS
    for i, c in enumerate(counts):
        if c:
            h = max(1, round(plot_h * int(c) / peak))
            x0 = left + i * bar_w
            draw.rectangle([round(x0), top + plot_h - h, round(x0 + bar_w) - 1, top + plot_h], fill=(76, 114, 176))
    draw.line([left, top, left, top + plot_h, left + plot_w, top + plot_h], fill="black")
    shape = " x ".join(map(str, arr.shape))
    title = f"{arr.dtype} array ({shape}): histogram of {values.size:,} finite values"
    if sampled:
        title += f" (every {step}th)"
    draw.text((left, 10), title, fill="black", font=font)
    draw.text((4, top - 4), f"{peak:,}", fill="black", font=font)
    draw.text((4, top + plot_h - 10), "0", fill="black", font=font)
    draw.text((left, top + plot_h + 8), _fmt(stats.minimum), fill="black", font=font)
    hi_text = _fmt(stats.maximum)
    draw.text((left + plot_w - draw.textlength(hi_text, font=font), top + plot_h + 8), hi_text, fill="black", font=font)
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()
