"""scikit-learn in pipelines as ZenML's examples write them: mixin annotations, the project's own transformers."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from data_test_support import write_module

from conveyor import Client
from conveyor.exceptions import MaterializerError

MIXINS = """
from typing import Annotated

import numpy as np
from sklearn.base import ClassifierMixin, ClusterMixin, RegressorMixin, TransformerMixin
from sklearn.cluster import KMeans
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.preprocessing import StandardScaler

from conveyor import ArtifactConfig, pipeline, step

X = np.random.default_rng(3).normal(size=(80, 3))
Y = (X[:, 0] > 0).astype(int)


@step
def train_classifier() -> Annotated[ClassifierMixin, ArtifactConfig(name="clf")]:
    return LogisticRegression().fit(X, Y)


@step
def train_regressor() -> RegressorMixin:
    return LinearRegression().fit(X, X[:, 1])


@step
def fit_scaler() -> Annotated[TransformerMixin, "scaler"]:
    return StandardScaler().fit(X)


@step
def fit_clusters() -> ClusterMixin:
    return KMeans(n_clusters=2, n_init=2, random_state=0).fit(X)


@step
def evaluate(model: ClassifierMixin, scaler: TransformerMixin, regressor: RegressorMixin) -> float:
    return float(model.score(X, Y)) + float(scaler.transform(X).mean()) * 0 + float(regressor.score(X, X[:, 1])) * 0


@pipeline(name="mixins")
def mixins() -> None:
    fit_clusters()
    evaluate(train_classifier(), fit_scaler(), train_regressor())
"""

CUSTOM = """
from typing import Annotated

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline, make_pipeline

from conveyor import pipeline, step

X = np.abs(np.random.default_rng(5).normal(size=(50, 2))) + 1


class LogScaler(TransformerMixin, BaseEstimator):
    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X):
        return np.log(np.asarray(X))


def double(X):
    return np.asarray(X) * 2


@step
def train() -> Annotated[Pipeline, "model"]:
    return make_pipeline(LogScaler(), LinearRegression()).fit(X, X[:, 0])


@step
def predict(model: Pipeline) -> list[float]:
    return [float(v) for v in model.predict(X[:3])]


@pipeline(name="custom_model")
def custom_model() -> None:
    predict(train())
"""


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_outputs_annotated_with_scikit_learn_mixins_are_saved_and_loaded(repo: Path, mode: str) -> None:
    from sklearn.linear_model import LogisticRegression

    Client().update_component("orchestrator", "default", {"mode": mode})
    write_module(repo, "mixin_flow", MIXINS)
    import mixin_flow

    run = mixin_flow.mixins()
    assert run.status == "completed", run.error
    assert run.steps["evaluate"].output.load() == pytest.approx(
        LogisticRegression().fit(mixin_flow.X, mixin_flow.Y).score(mixin_flow.X, mixin_flow.Y)
    )
    for step_id in ("train_classifier", "train_regressor", "fit_scaler", "fit_clusters"):
        artifact = run.steps[step_id].output
        assert artifact.materializer == "conveyor_data._sklearn:SklearnMaterializer"
        assert (Path(artifact.uri) / "model.skops").is_file()
    # The classifier was named with ArtifactConfig: found by that name alone, newest version first.
    clf = Client().get_artifact_version("clf")
    assert clf.version == 1 and clf.load().predict(mixin_flow.X[:5]).tolist() == mixin_flow.Y[:5].tolist()


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_a_model_holding_the_projects_own_classes_loads_without_trusting_them(repo: Path, mode: str) -> None:
    Client().update_component("orchestrator", "default", {"mode": mode})
    write_module(repo, "custom_flow", CUSTOM)
    import custom_flow

    run = custom_flow.custom_model()
    assert run.status == "completed", run.error  # predict loaded it, in its own process too
    model_artifact = run.steps["train"].outputs["model"]
    assert model_artifact.metadata["skops_untrusted_types"] == ["custom_flow.LogScaler"]
    model = model_artifact.load()  # no trust_skops_types call anywhere
    expected = custom_flow.train.func().predict(custom_flow.X[:3])
    assert np.allclose(model.predict(custom_flow.X[:3]), expected)
    assert run.steps["predict"].output.load() == pytest.approx(expected.tolist())


def test_a_function_of_the_project_inside_a_model_still_needs_trust(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stored model could wire any function into what runs when it is used: functions are trusted by name only.
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    import conveyor
    from conveyor_data import trust_skops_types

    monkeypatch.setattr(sys.modules["conveyor_data._sklearn"], "_trusted", set())
    write_module(repo, "custom_flow", CUSTOM)
    import custom_flow

    model = make_pipeline(custom_flow.LogScaler(), FunctionTransformer(custom_flow.double), LinearRegression()).fit(
        custom_flow.X, custom_flow.X[:, 0]
    )
    conveyor.save_artifact(model, "with_function")
    with pytest.raises(MaterializerError, match=r"skops does not trust: custom_flow\.double \("):
        conveyor.load_artifact("with_function")
    trust_skops_types("custom_flow.double")
    assert np.allclose(
        conveyor.load_artifact("with_function").predict(custom_flow.X[:2]), model.predict(custom_flow.X[:2])
    )


def test_classes_from_outside_the_project_still_need_trust(
    repo: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor_data import trust_skops_types

    elsewhere = tmp_path_factory.mktemp("elsewhere")  # a package that is not the project's code
    write_module(elsewhere, "outside_features", CUSTOM.split("@step")[0])
    monkeypatch.syspath_prepend(str(elsewhere))
    write_module(
        repo,
        "outside_flow",
        "from typing import Annotated\n"
        "from sklearn.pipeline import Pipeline, make_pipeline\n"
        "from sklearn.linear_model import LinearRegression\n"
        "from conveyor import pipeline, step\n"
        "from outside_features import LogScaler, X\n\n"
        "@step\n"
        "def train() -> Annotated[Pipeline, 'model']:\n"
        "    return make_pipeline(LogScaler(), LinearRegression()).fit(X, X[:, 0])\n\n"
        "@pipeline(name='outside')\n"
        "def outside() -> None:\n"
        "    train()\n",
    )
    import outside_flow

    monkeypatch.setattr(sys.modules["conveyor_data._sklearn"], "_trusted", set())
    run = outside_flow.outside()
    assert run.status == "completed", run.error
    artifact = run.steps["train"].outputs["model"]
    with pytest.raises(MaterializerError, match="skops does not trust: outside_features.LogScaler"):
        artifact.load()
    trust_skops_types("outside_features.LogScaler")
    assert artifact.load().predict(outside_flow.X[:2]).shape == (2,)


METRICS = """
from typing import Annotated

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score

from conveyor import log_metadata, pipeline, step

X = np.random.default_rng(5).normal(size=(60, 2))
Y = (X[:, 0] > 0).astype(int)


@step
def train(c: float) -> Annotated[ClassifierMixin, "model"]:
    model = LogisticRegression(C=c).fit(X, Y)
    log_metadata({
        "accuracy": accuracy_score(Y, model.predict(X)),
        "positives": np.int64(Y.sum()),
        "converged": np.bool_(model.n_iter_[0] < model.max_iter),
        "scale": np.float32(0.5),
    })
    return model


@pipeline(name="metrics")
def metrics(c: float = 1.0) -> None:
    train(c)
"""


def test_numpy_scalars_from_scikit_learn_metrics_are_logged_as_plain_numbers(repo: Path) -> None:
    write_module(repo, "metrics_flow", METRICS)
    import metrics_flow

    from conveyor.exceptions import MetadataError
    from conveyor.runtime import StepContext

    run = metrics_flow.metrics()
    logged = run.steps["train"].metadata
    assert logged == {
        "accuracy": pytest.approx(logged["accuracy"]),
        "positives": int(metrics_flow.Y.sum()),
        "converged": True,
        "scale": 0.5,
    }
    assert type(logged["positives"]) is int and type(logged["converged"]) is bool and 0.5 < logged["accuracy"] <= 1
    assert run.steps["train"].output.metadata["positives"] == logged["positives"]
    ctx = StepContext(pipeline_name="p", run_id="r", run_name="r", step_id="s", step_name="s", attempt=1)
    with pytest.raises(MetadataError, match="NaN"):
        ctx.log_metadata({"loss": np.float64("nan")})
    with pytest.raises(MetadataError, match="is of type ndarray"):
        ctx.log_metadata({"weights": np.zeros(3)})
