"""Names never become paths or code unchecked: one rule, checked before anything runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.exceptions import ConfigError, ConveyorError, DefinitionError, StoreError
from conveyor.ir import name_problem, run_name_template_problem
from conveyor.stores import LocalArtifactStore
from tests_support import fails, write_module

HOSTILE_PARTS = st.one_of(
    st.sampled_from(["..", ".", "", "/", "a/b", "..\\x", "\x00", "x\n", " ", "-rf", ".hidden", "~", "*", "?", "[x]"]),
    st.text(min_size=0, max_size=30),
)


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


# -- the rule ----------------------------------------------------------------------------------


@given(st.one_of(st.text(max_size=300), st.text(alphabet="ab_-. \n\x00é/", max_size=70)))
def test_the_rule_accepts_exactly_the_harmless_path_segments(name: str) -> None:
    harmless = (
        1 <= len(name.encode("utf-8", "surrogatepass")) <= 255
        and (name[0].isalnum() or name[0] == "_")
        and all(ch.isalnum() or ch in "_-. " for ch in name)
        and not name.endswith(" ")
    )
    assert (name_problem(name) is None) == harmless
    if harmless:
        assert "/" not in name and "\\" not in name and "\x00" not in name
        assert name not in (".", "..") and not name.startswith((".", "-", " "))


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("../../victim", "starts with '.'"),
        ("a/b", "contains '/'"),
        ("x" * 10_000, "is 10000 bytes long"),
        ("..", "starts with '.'"),
        ("ok\nname", "contains '\\n'"),
        ("", "is empty"),
        ("trailing ", "ends with a space"),
        ("é" * 128, "is 256 bytes long"),
    ],
)
def test_names_the_rule_refuses_say_why(name: str, problem: str) -> None:
    assert problem in (name_problem(name) or "")


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("../../../victim", "starts with '.'"),
        ("{date}-{nope}", "unknown field {nope}"),
        ("{date!r}", "unknown field {date!r}"),
        ("{time:>30}", "unknown field {time:>30}"),
        ("run-{", "is not a valid template"),
        ("a/{date}", "contains '/'"),
        ("x" * 300, "bytes long"),
    ],
)
def test_bad_run_name_templates_say_why(template: str, problem: str) -> None:
    assert problem in (run_name_template_problem(template) or "")


def test_zenml_style_placeholders_are_filled() -> None:
    assert run_name_template_problem("train-{{date}}-{{time}}") is None


# -- the artifact store: nothing is written or deleted outside its root ------------------------


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(HOSTILE_PARTS, min_size=1, max_size=4))
def test_joined_paths_stay_inside_the_store_or_are_refused(tmp_path: Path, parts: list[str]) -> None:
    store = LocalArtifactStore(str(tmp_path / "store"))
    try:
        uri = store.join(*parts)
    except StoreError:
        return
    assert store.contains(uri)
    real = os.path.realpath(uri)
    assert real.startswith(os.path.realpath(tmp_path / "store") + os.sep)


@pytest.mark.parametrize("uri", ["/etc/passwd", "{root}/../outside", "{root}x/sibling", "{root}"])
def test_writes_and_deletes_outside_the_store_are_refused(tmp_path: Path, uri: str) -> None:
    root = tmp_path / "store"
    (tmp_path / "outside").mkdir()
    (tmp_path / "storex" / "sibling").mkdir(parents=True)
    store = LocalArtifactStore(str(root))
    target = uri.format(root=root)
    before = _tree(tmp_path)
    with pytest.raises(StoreError):
        store.rmtree(target)
    if target != str(root):
        with pytest.raises(StoreError):
            store.open(os.path.join(target, "x"), "wb")
    assert _tree(tmp_path) == before


def test_a_symlink_cannot_lead_a_write_out_of_the_store(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (root / "link").symlink_to(tmp_path / "outside")
    store = LocalArtifactStore(str(root))
    with pytest.raises(StoreError, match="outside the artifact store"):
        store.open(str(root / "link" / "x.txt"), "wb")
    assert list((tmp_path / "outside").iterdir()) == []


@pytest.mark.parametrize("link", ["p", "p/s/out", "p/s"])
def test_a_commit_through_a_link_out_of_the_store_is_refused(tmp_path: Path, link: str) -> None:
    root = tmp_path / "store"
    (root / "p" / "s").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    store = LocalArtifactStore(str(root))
    tmp = store.join("p", "s", ".tmp-x")
    store.makedirs(tmp)
    with store.open(store.join(tmp, "data.json"), "wb") as f:
        f.write(b"1")
    # Made a link after the temporary folder was written: the commit itself must look again.
    moved = root / link
    if moved.exists():
        moved.rename(tmp_path / "outside" / moved.name)
    moved.symlink_to(tmp_path / "outside" / moved.name if link != "p/s/out" else tmp_path / "outside")
    before = _tree(tmp_path / "outside")
    with pytest.raises(StoreError, match="outside the artifact store"):
        store.commit(str(root / "p" / "s" / ".tmp-x"), store.join("p", "s", "out"))
    with pytest.raises(StoreError, match="outside the artifact store"):
        store.rename(str(root / "p" / "s" / ".tmp-x"), store.join("p", "s", "out"))
    assert _tree(tmp_path / "outside") == before


# A store folder with links at several depths: to a folder and a file outside, to a folder inside,
# to the root's parent, a link to a link, and a dangling one.
_LINKS = {
    "out": "{tmp}/outside",
    "a/out": "{tmp}/outside",
    "a/b/out_file": "{tmp}/outside/secret.txt",
    "a/b/c/up": "{tmp}",
    "in": "{root}/a/b",
    "a/in_deep": "{root}/a/b/c",
    "via": "{root}/out",
    "dangling": "{tmp}/nowhere",
}
_SEGMENTS = st.sampled_from(["a", "b", "c", "out", "out_file", "up", "in", "in_deep", "via", "dangling", "x", ".."])


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(_SEGMENTS, min_size=0, max_size=6))
def test_containment_is_what_the_path_resolves_to_through_every_link(tmp_path: Path, parts: list[str]) -> None:
    root = tmp_path / "store"
    if not root.exists():
        (root / "a" / "b" / "c").mkdir(parents=True)
        (tmp_path / "outside").mkdir()
        (tmp_path / "outside" / "secret.txt").write_text("secret")
        for link, target in _LINKS.items():
            (root / link).symlink_to(target.format(tmp=tmp_path, root=root))
    store = LocalArtifactStore(str(root))
    uri = os.path.join(str(root), *parts)
    lexically = os.path.normpath(uri) == str(root) or os.path.normpath(uri).startswith(str(root) + os.sep)
    real = os.path.realpath(uri)
    resolved = real == os.path.realpath(root) or real.startswith(os.path.realpath(root) + os.sep)
    assert store.contains(uri) == (lexically and resolved)
    if not store.contains(uri):
        with pytest.raises(StoreError, match="outside the artifact store"):
            store.open(uri, "rb")


# -- pipelines: refused before any step runs ---------------------------------------------------

PIPE = """
from typing import Annotated
from conveyor import pipeline, step

@step
def make() -> Annotated[int, "{output}"]:
    open("step_ran", "w").close()
    return 1

@pipeline(name={name!r})
def pipe():
    make()
"""


def _script(repo: Path, name: str = "pipe", output: str = "value", run_name: str | None = None) -> str:
    write_module(repo, "hostile_pipe", PIPE.format(name=name, output=output))
    config = ""
    if run_name is not None:
        (repo / "run.yaml").write_text(f"run_name: {run_name!r}\n")
        config = ".with_options(config_path='run.yaml')"
    (repo / "go.py").write_text(f"import hostile_pipe\nhostile_pipe.pipe{config}()\n")
    return "go.py"


def _run_script(repo: Path, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, script], cwd=repo, capture_output=True, text=True, check=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"run_name": "../../../victim"}, "run_name '../../../victim'"),
        ({"run_name": "{date}-{oops}"}, "unknown field {oops}"),
        ({"run_name": "x" * 10_000}, "bytes long"),
        ({"name": "../escape"}, "pipeline name '../escape' starts with '.'"),
        ({"output": ".."}, "output name '..'"),
        ({"output": "logs.txt"}, "reserved for the step's log file"),
        ({"output": "a/b"}, "contains '/'"),
    ],
)
def test_a_bad_name_is_one_line_before_any_step_runs(repo: Path, kwargs: dict[str, str], message: str) -> None:
    # Where '../../../victim' would land from <artifacts>/pipe/make/: a folder outside the store.
    victim = repo / ".conveyor" / "victim"
    victim.mkdir(parents=True)
    (victim / "keep.txt").write_text("mine")
    script = _script(repo, **kwargs)
    before = _tree(repo)
    result = _run_script(repo, script)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert message in result.stderr, result.stderr
    assert not (repo / "step_ran").exists()
    assert (victim / "keep.txt").read_text() == "mine"
    new = {p for p in _tree(repo) - before if not p.startswith((".conveyor/conveyor.db", "__pycache__"))}
    assert new <= {".conveyor/artifacts"}, new


def test_a_run_name_that_exists_is_one_line_before_any_step_runs(repo: Path) -> None:
    script = _script(repo, run_name="fixed-name")
    assert _run_script(repo, script).returncode == 0
    (repo / "step_ran").unlink()
    result = _run_script(repo, script)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "a run named 'fixed-name' already exists" in result.stderr
    assert not (repo / "step_ran").exists()


IDS = """
from conveyor import pipeline, step

@step
def one() -> int:
    return 1

def make(name):
    @pipeline(name="ids")
    def ids() -> None:
        one.with_options(id=name)()
    return ids
"""


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(min_size=1, max_size=40))
def test_any_step_id_either_traces_or_is_refused_in_one_line(repo: Path, name: str) -> None:
    if not (repo / "ids_pipe.py").exists():
        write_module(repo, "ids_pipe", IDS)
    import ids_pipe

    try:
        ir = ids_pipe.make(name).trace()
    except DefinitionError as exc:
        assert name_problem(name) is not None
        assert "\n" not in str(exc)
        return
    assert name_problem(name) is None
    assert ir.steps[0].id == name


def test_a_tampered_deployment_with_a_hostile_name_is_refused_when_read(repo: Path) -> None:
    from conveyor.ir import load_deployment

    data = {
        "ir_version": 1,
        "pipeline": {"name": "../../etc", "steps": []},
        "stack": {"name": "s", "components": {}},
    }
    with pytest.raises(ValueError, match="pipeline name '../../etc'"):
        load_deployment(data)


def test_the_cli_says_the_rule_in_one_line(repo: Path) -> None:
    _script(repo, run_name="../x")
    error = fails("pipeline", "run", str(repo / "hostile_pipe.py") + ":pipe", "--config", str(repo / "run.yaml"))
    assert "run_name '../x' makes names like '../x', which starts with '.'" in error
    assert not (repo / "step_ran").exists()


def test_errors_are_conveyor_errors() -> None:
    assert issubclass(ConfigError, ConveyorError) and issubclass(DefinitionError, ConveyorError)
