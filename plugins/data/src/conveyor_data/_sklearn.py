"""scikit-learn estimators with skops (no code runs on load) or, on request, pickle."""

from __future__ import annotations

import io
import json
import os
import pickle
import warnings
import zipfile
from typing import Any, ClassVar

import sklearn
import skops.io as sio
from sklearn.base import (
    BaseEstimator,
    BiclusterMixin,
    ClassifierMixin,
    ClusterMixin,
    DensityMixin,
    MetaEstimatorMixin,
    MultiOutputMixin,
    OutlierMixin,
    RegressorMixin,
    TransformerMixin,
)

from conveyor.exceptions import MaterializerError
from conveyor.materializers import BaseMaterializer, is_project_class
from conveyor_data._common import html_page, html_table, md_table, shorten, size_on_disk, write_text

_SKOPS = "model.skops"
_PICKLE = "model.pkl"
ENV_TRUSTED = "CONVEYOR_SKOPS_TRUSTED"
"""Comma-separated types to trust when loading skops files, besides :func:`trust_skops_types`."""
_PICKLE_OPT_IN = "@step(output_materializers=conveyor_data.SklearnPickleMaterializer)"

_trusted: set[str] = set()


def trust_skops_types(*names: str) -> None:
    """Let scikit-learn models that hold these types load from skops files.

    skops loads only the types it trusts (scikit-learn's estimators, numpy,
    scipy and the like); conveyor adds the classes of the project's own code.
    A model that holds others (a transformer from a package outside the
    project, a function given to FunctionTransformer) loads once they are
    trusted here, or listed in the environment variable ``CONVEYOR_SKOPS_TRUSTED``.
    Call it in the module of the steps that load the model (step inputs are
    loaded after the step's module is imported) or before
    ``Client().get_artifact(...).load()``.

    Args:
        names: qualified type names, as the load error lists them
            (``"mypackage.features.LogScaler"``).
    """
    for name in names:
        if not isinstance(name, str) or "." not in name:
            raise MaterializerError(
                f"{name!r} is not a qualified type name", "give names like 'mypackage.module.ClassName'"
            )
        _trusted.add(name)


def _trusted_names() -> set[str]:
    extra = {n.strip() for n in os.environ.get(ENV_TRUSTED, "").split(",") if n.strip()}
    return _trusted | extra


def _is_sklearn_class(name: str) -> bool:
    """Whether ``name`` is a class of scikit-learn itself (its trees, its loss objects).

    skops leaves some of them untrusted (a random forest's ``Tree``); restoring
    an instance of a library class runs none of the file's code, so they are
    trusted here. Functions stay untrusted: a model calls them.
    """
    import importlib

    module, _, attr = name.rpartition(".")
    if not module or not attr:
        return False
    if module == "sklearn" or module.startswith("sklearn."):
        candidates = [module]
    else:
        # Cython classes of scikit-learn before 1.6 name their module without the
        # package (_loss.CyHalfSquaredError lives in sklearn._loss._loss).
        candidates = [f"sklearn.{module}", f"sklearn.{module}.{module.rpartition('.')[2]}"]
    for candidate in candidates:
        try:
            obj = getattr(importlib.import_module(candidate), attr)
        except (ImportError, AttributeError, ValueError, TypeError):
            continue
        if isinstance(obj, type) and f"{obj.__module__}.{obj.__qualname__}" == name:
            return True
    return False


def _qualname(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


# -- deterministic skops files ---------------------------------------------------------
# A skops file is a zip whose entries carry the time they were written, are
# named after id() of the arrays they hold (or a uuid4), and whose schema.json
# numbers objects by id(). Renumbering both in the order the schema lists them
# and fixing the times gives the same bytes for the same model, which the
# artifact's content hash (and so caching) needs.

_EPOCH = (1980, 1, 1, 0, 0, 0)


def _zip_entry(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def _canonical_zip(raw: bytes) -> bytes:
    """The same zip (numpy's .npz of a sparse matrix) with fixed entry times."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            _zip_entry(dst, name, src.read(name))
    return out.getvalue()


def canonical_skops(raw: bytes) -> bytes:
    """A skops file rewritten so that equal models give equal bytes; loads as the original."""
    with zipfile.ZipFile(io.BytesIO(raw)) as src:
        names = set(src.namelist())
        schema = json.loads(src.read("schema.json"))
        ids: dict[int, int] = {}
        files: dict[str, str] = {}

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                old_id = node.get("__id__")
                if isinstance(old_id, int) and not isinstance(old_id, bool):
                    node["__id__"] = ids.setdefault(old_id, len(ids) + 1)  # skops ignores an id of 0
                name = node.get("file")
                if isinstance(name, str) and name in names:
                    node["file"] = files.setdefault(name, f"{len(files)}{os.path.splitext(name)[1]}")
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(schema)
        if set(files) != names - {"schema.json"}:  # entries the schema does not name: keep the file as it is
            return raw
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as dst:
            for old, new in files.items():
                data = src.read(old)
                _zip_entry(dst, new, _canonical_zip(data) if new.endswith(".npz") else data)
            _zip_entry(dst, "schema.json", json.dumps(schema, indent=2).encode())
    return out.getvalue()


class SklearnMaterializer(BaseMaterializer):
    """scikit-learn estimators in skops' format, which runs no code on load.

    Saved for outputs annotated with ``BaseEstimator`` or any of scikit-learn's
    mixins (``ClassifierMixin``, ``RegressorMixin``, ``TransformerMixin``, ...).
    A model that holds types skops does not trust by default loads when they
    are classes of the project's own code (a custom transformer in the
    pipeline's package, see :func:`conveyor.materializers.is_project_class`),
    classes of scikit-learn itself (a forest's trees), or trusted with
    :func:`trust_skops_types`; anything else is refused. A model skops cannot
    save is a MaterializerError naming the pickle opt-in,
    :class:`SklearnPickleMaterializer`.

    Views: ``model.html`` (scikit-learn's diagram of the estimator and its
    parameters) and ``summary.md``.
    """

    # Steps are annotated with scikit-learn's mixins as often as with BaseEstimator (-> ClassifierMixin).
    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (
        BaseEstimator,
        BiclusterMixin,
        ClassifierMixin,
        ClusterMixin,
        DensityMixin,
        MetaEstimatorMixin,
        MultiOutputMixin,
        OutlierMixin,
        RegressorMixin,
        TransformerMixin,
    )
    ARTIFACT_TYPE: ClassVar[str] = "model"
    FILE: ClassVar[str] = _SKOPS

    def save(self, data: Any) -> None:
        try:
            raw = sio.dumps(data)
        except Exception as exc:
            raise MaterializerError(
                f"skops cannot save this {_qualname(data)}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                f"opt in to pickle for this output: {_PICKLE_OPT_IN}",
            ) from None
        # skops writes functions by name; a lambda or a local function has none to load by.
        unnamed = [t for t in sio.get_untrusted_types(data=raw) if "<" in t]
        if unnamed:
            raise MaterializerError(
                f"this {_qualname(data)} holds {shorten(', '.join(unnamed), 200)}, which skops cannot load back by name",
                f"define the function at module level, or opt in to pickle for this output: {_PICKLE_OPT_IN}",
            )
        with self.open(_SKOPS, "wb") as f:
            f.write(canonical_skops(raw))

    def load(self, data_type: type) -> Any:
        with self.open(_SKOPS, "rb") as f:
            raw = f.read()
        untrusted = sio.get_untrusted_types(data=raw)
        trusted = _trusted_names()
        # The project's own classes are the code the pipeline runs anyway.
        missing = [t for t in untrusted if t not in trusted and not _is_sklearn_class(t) and not is_project_class(t)]
        if missing:
            listed = ", ".join(missing)
            raise MaterializerError(
                f"the model holds types that skops does not trust: {shorten(listed, 300)}",
                f"if you trust where the artifact comes from, call conveyor_data.trust_skops_types({', '.join(repr(m) for m in missing[:3])}"
                f"{', ...' if len(missing) > 3 else ''}) before loading it, or set {ENV_TRUSTED}",
            )
        return sio.loads(raw, trusted=list(untrusted))

    def extract_metadata(self, data: Any) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "estimator": _qualname(data),
            "format": "skops" if self.FILE == _SKOPS else "pickle",
            "sklearn_version": sklearn.__version__,
            "params": _params(data),
            "fitted": _is_fitted(data),
            "size_on_disk": size_on_disk(self, [self.FILE]),
        }
        for attr in ("n_features_in_", "n_outputs_"):
            value = getattr(data, attr, None)
            if isinstance(value, int):
                meta[attr.rstrip("_")] = value
        classes = getattr(data, "classes_", None)
        if classes is not None and getattr(classes, "ndim", 0) == 1:
            meta["classes"] = [c.item() if hasattr(c, "item") else str(c) for c in list(classes)[:50]]
        if self.FILE == _SKOPS:
            with self.open(_SKOPS, "rb") as f:
                untrusted = sio.get_untrusted_types(data=f.read())
            if untrusted:
                meta["skops_untrusted_types"] = list(untrusted)
        return meta

    def save_visualizations(self, data: Any) -> dict[str, str]:
        from sklearn.utils import estimator_html_repr

        title = f"{type(data).__qualname__} ({'fitted' if _is_fitted(data) else 'not fitted'})"
        params = sorted(_params(data).items())
        body = (
            estimator_html_repr(data) + "\n" + html_table(["parameter", "value"], params, caption="Parameters", left=2)
        )
        views = {write_text(self, "model.html", html_page(title, body)): "html"}
        md = f"# {title}\n\n`{_qualname(data)}`, scikit-learn {sklearn.__version__}\n\n" + md_table(
            ["parameter", "value"], params
        )
        views[write_text(self, "summary.md", md)] = "markdown"
        return views


class SklearnPickleMaterializer(SklearnMaterializer):
    """scikit-learn estimators as a pickle, for models skops cannot save. Opt-in only.

    Loading a pickle runs code named in the file: load only artifacts whose
    origin you trust, with the same library versions. Opt in per output::

        @step(output_materializers=SklearnPickleMaterializer)
        def train(...) -> MyModel: ...

    Saving warns (UserWarning) that the artifact is a pickle.
    """

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = ()
    UNSAFE = True
    FILE: ClassVar[str] = _PICKLE

    def save(self, data: Any) -> None:
        warnings.warn(
            f"saving a {_qualname(data)} with pickle (opted in): loading it runs code from the file, so load it only "
            "from a store you trust, with the same library versions",
            UserWarning,
            stacklevel=2,
        )
        with self.open(_PICKLE, "wb") as f:
            pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)

    def load(self, data_type: type) -> Any:
        with self.open(_PICKLE, "rb") as f:
            return pickle.load(f)


def _params(estimator: Any) -> dict[str, str]:
    try:
        params = estimator.get_params(deep=False)
    except Exception:
        return {}
    return {str(k): shorten(repr(v), 120) for k, v in params.items()}


def _is_fitted(estimator: Any) -> bool:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(estimator)
    except (NotFittedError, TypeError):
        return False
    return True
