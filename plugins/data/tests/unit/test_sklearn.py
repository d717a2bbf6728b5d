"""SklearnMaterializer (skops) and the pickle opt-in: round trips, trust, determinism, metadata and views."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from data_test_support import Folders
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import KMeans
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

import conveyor_data._sklearn as sklearn_module
from conveyor.exceptions import MaterializerError
from conveyor_data import SklearnMaterializer, SklearnPickleMaterializer, trust_skops_types

X = np.random.default_rng(0).normal(size=(60, 4))
Y_CLASS = (X[:, 0] + X[:, 1] > 0).astype(int)
Y_REG = X @ np.array([1.0, -2.0, 0.5, 3.0])
DOCS = ["red apple pie", "green apple", "blue sky pie", "red sky"]


class Doubler(TransformerMixin, BaseEstimator):
    """A transformer of the user's own: skops does not trust it until told to."""

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X):
        return np.asarray(X) * 2


@pytest.fixture(autouse=True)
def _no_trust(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sklearn_module, "_trusted", set())
    monkeypatch.delenv(sklearn_module.ENV_TRUSTED, raising=False)


MODELS = {
    "scaler+logistic": lambda: make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y_CLASS),
    "random-forest": lambda: RandomForestClassifier(n_estimators=4, max_depth=3, random_state=0).fit(X, Y_CLASS),
    "hist-gradient-boosting": lambda: HistGradientBoostingRegressor(max_iter=5).fit(X, Y_REG),
    "kmeans": lambda: KMeans(n_clusters=3, n_init=2, random_state=0).fit(X),
    "numpy-function": lambda: make_pipeline(FunctionTransformer(np.log1p), Ridge()).fit(np.abs(X), Y_REG),
}


def _outputs(model: BaseEstimator) -> np.ndarray:
    return (
        model.predict(X if not isinstance(model.steps[0][1], FunctionTransformer) else np.abs(X))
        if hasattr(model, "steps")
        else model.predict(X)
    )


@pytest.mark.parametrize("name", list(MODELS))
def test_fitted_models_round_trip_and_predict_the_same(local: Folders, name: str) -> None:
    model = MODELS[name]()
    out = local.roundtrip(SklearnMaterializer, model)
    assert type(out) is type(model)
    assert repr(out.get_params()) == repr(model.get_params())
    assert np.array_equal(_outputs(out), _outputs(model))


def test_a_text_model_with_sparse_state_round_trips(local: Folders) -> None:
    model = TfidfVectorizer().fit(DOCS)
    out = local.roundtrip(SklearnMaterializer, model)
    assert out.vocabulary_ == model.vocabulary_
    assert (out.transform(DOCS) != model.transform(DOCS)).nnz == 0


def test_an_unfitted_model_round_trips(local: Folders) -> None:
    out = local.roundtrip(SklearnMaterializer, LogisticRegression(C=0.5, max_iter=7))
    assert out.get_params() == LogisticRegression(C=0.5, max_iter=7).get_params()


@given(
    data=hnp.arrays(np.float64, st.tuples(st.integers(2, 30), st.integers(1, 4)), elements=st.floats(-1e6, 1e6)),
    alpha=st.floats(1e-3, 1e3),
)
def test_fitted_coefficients_come_back_bit_for_bit(local: Folders, data: np.ndarray, alpha: float) -> None:
    y = data.sum(axis=1)
    for model in (LinearRegression().fit(data, y), Ridge(alpha=alpha).fit(data, y)):
        out = local.roundtrip(SklearnMaterializer, model)
        assert out.coef_.tobytes() == model.coef_.tobytes()
        assert np.float64(out.intercept_).tobytes() == np.float64(model.intercept_).tobytes()
        assert out.get_params() == model.get_params()


SAVE_IN_A_PROCESS = """
import sys
from sklearn.ensemble import RandomForestClassifier
import numpy as np
from conveyor.stores import LocalArtifactStore
from conveyor_data import SklearnMaterializer
X = np.random.default_rng(0).normal(size=(60, 4))
model = RandomForestClassifier(n_estimators=3, random_state=1).fit(X, X[:, 0] > 0)
store = LocalArtifactStore(sys.argv[1])
store.makedirs(sys.argv[1])
SklearnMaterializer(sys.argv[1], store).save(model)
print(store.content_hash(sys.argv[1]))
"""


def test_the_same_model_saved_in_two_processes_has_the_same_content_hash(tmp_path: Path) -> None:
    # In one process the ids skops names arrays after are new each time; across processes they surely differ.
    hashes = {
        subprocess.run(
            [sys.executable, "-c", SAVE_IN_A_PROCESS, str(tmp_path / name)], check=True, capture_output=True, text=True
        ).stdout.strip()
        for name in ("a", "b")
    }
    assert len(hashes) == 1


def test_models_of_untrusted_types_load_only_once_trusted(
    local: Folders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Working elsewhere, this test module is not the project's code: its Doubler needs trust.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONVEYOR_SOURCE_ROOT", raising=False)
    monkeypatch.delenv("CONVEYOR_REPOSITORY", raising=False)
    model = make_pipeline(Doubler(), LinearRegression()).fit(X, Y_REG)
    uri = local.new()
    SklearnMaterializer(uri, local.store).save(model)
    with pytest.raises(MaterializerError) as err:
        SklearnMaterializer(uri, local.store).load(type(model))
    assert err.value.message == f"the model holds types that skops does not trust: {__name__}.Doubler"
    assert f"conveyor_data.trust_skops_types('{__name__}.Doubler')" in err.value.hint
    trust_skops_types(f"{__name__}.Doubler")
    out = SklearnMaterializer(uri, local.store).load(type(model))
    assert np.array_equal(out.predict(X), model.predict(X))


def test_types_can_be_trusted_through_the_environment(
    local: Folders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONVEYOR_SOURCE_ROOT", raising=False)
    monkeypatch.delenv("CONVEYOR_REPOSITORY", raising=False)
    model = Doubler().fit(X)
    uri = local.new()
    SklearnMaterializer(uri, local.store).save(model)
    monkeypatch.setenv("CONVEYOR_SKOPS_TRUSTED", f"other.Type, {__name__}.Doubler")
    assert isinstance(SklearnMaterializer(uri, local.store).load(Doubler), Doubler)


def test_trusting_needs_qualified_names() -> None:
    with pytest.raises(MaterializerError, match="is not a qualified type name"):
        trust_skops_types("Doubler")


def test_a_lambda_is_refused_at_save_with_the_pickle_opt_in(local: Folders) -> None:
    model = FunctionTransformer(func=lambda x: x + 1)
    with pytest.raises(MaterializerError) as err:
        SklearnMaterializer(local.new(), local.store).save(model)
    assert "<lambda>" in err.value.message and "skops cannot load back by name" in err.value.message
    assert "SklearnPickleMaterializer" in err.value.hint


def test_what_skops_cannot_save_is_refused_with_the_pickle_opt_in(local: Folders) -> None:
    model = LinearRegression().fit(X, Y_REG)
    model.batches_ = (row for row in X)  # a generator: skops has no form for it
    with pytest.raises(MaterializerError) as err:
        SklearnMaterializer(local.new(), local.store).save(model)
    assert err.value.message.startswith("skops cannot save this sklearn.linear_model._base.LinearRegression: ")
    assert (
        err.value.hint
        == "opt in to pickle for this output: @step(output_materializers=conveyor_data.SklearnPickleMaterializer)"
    )


def test_the_pickle_opt_in_warns_and_round_trips(local: Folders) -> None:
    model = LinearRegression().fit(X, Y_REG)
    model.note_ = 1 + 2j  # which recent skops cannot hold
    with pytest.warns(UserWarning, match="with pickle .opted in.: loading it runs code from the file"):
        out = local.roundtrip(SklearnPickleMaterializer, model)
    assert type(out) is LinearRegression
    assert out.note_ == 1 + 2j and out.coef_.tobytes() == model.coef_.tobytes()


def test_the_pickle_opt_in_is_never_picked_by_itself() -> None:
    from conveyor.materializers import registry

    assert registry.get(LinearRegression, where="test") is SklearnMaterializer


def test_metadata_describes_the_model(local: Folders) -> None:
    model = RandomForestClassifier(n_estimators=2, random_state=0).fit(X, Y_CLASS)
    uri = local.new()
    m = SklearnMaterializer(uri, local.store)
    m.save(model)
    meta = m.extract_metadata(model)
    assert meta["estimator"] == "sklearn.ensemble._forest.RandomForestClassifier"
    assert meta["format"] == "skops" and meta["fitted"] is True
    assert meta["params"]["n_estimators"] == "2"
    assert meta["n_features_in"] == 4 and meta["classes"] == [0, 1]
    assert meta["size_on_disk"] == os.path.getsize(os.path.join(uri, "model.skops"))
    custom = Doubler().fit(X)
    uri = local.new()
    m = SklearnMaterializer(uri, local.store)
    m.save(custom)
    meta = m.extract_metadata(custom)
    assert meta["skops_untrusted_types"] == [f"{__name__}.Doubler"]
    assert meta["n_features_in"] == 4 and meta["fitted"] is True


def test_views_are_the_estimator_diagram_and_its_parameters(local: Folders) -> None:
    model = make_pipeline(StandardScaler(), LogisticRegression(C=3.0)).fit(X, Y_CLASS)
    uri = local.new()
    m = SklearnMaterializer(uri, local.store)
    m.save(model)
    views = m.save_visualizations(model)
    assert views == {os.path.join(uri, "model.html"): "html", os.path.join(uri, "summary.md"): "markdown"}
    page = Path(uri, "model.html").read_text(encoding="utf-8")
    assert "<title>Pipeline (fitted)</title>" in page
    assert "sk-estimator" in page and "LogisticRegression" in page  # scikit-learn's own diagram
    summary = Path(uri, "summary.md").read_text(encoding="utf-8")
    assert summary.startswith("# Pipeline (fitted)") and "| steps |" in summary


def test_a_skops_file_is_rewritten_the_same_way_each_time() -> None:
    import skops.io as sio

    model = TfidfVectorizer().fit(DOCS)
    first, second = sio.dumps(model), sio.dumps(model)
    assert sklearn_module.canonical_skops(first) == sklearn_module.canonical_skops(second)
    loaded = sio.loads(sklearn_module.canonical_skops(first), trusted=sio.get_untrusted_types(data=first))
    assert loaded.vocabulary_ == model.vocabulary_


def test_only_classes_of_scikit_learn_are_trusted_without_asking() -> None:
    # Restoring an instance of a library class runs none of the file's code; calling a function might.
    assert sklearn_module._is_sklearn_class("sklearn.tree._tree.Tree")
    assert not sklearn_module._is_sklearn_class("sklearn.utils.check_array")
    assert not sklearn_module._is_sklearn_class("sklearnx.Tree")
    assert not sklearn_module._is_sklearn_class("builtins.object")
