"""The test kit's own helpers: the repository fixture, the facade and golden-file checks, the marker rule."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from conveyor_testing import UPDATE_GOLDEN, assert_facade_complete, assert_golden, fresh_repository

ROOT = Path(__file__).resolve().parents[2]
KIT_MODULES = [
    "conveyor_testing",
    "conveyor_testing.conformance",
    "conveyor_testing.docker_env",
    "conveyor_testing.leaks",
    "conveyor_testing.mariadb",
    "conveyor_testing.plugin",
    "conveyor_testing.postgres",
    "conveyor_testing.processes",
    "conveyor_testing.s3_server",
    "conveyor_testing.sql_servers",
    "conveyor_testing.strategies",
]


# -- the repository fixture ------------------------------------------------------------------
def test_repo_is_a_fresh_repository_that_is_the_working_folder(repo: Path, tmp_path: Path) -> None:
    from conveyor import Client

    assert repo.parent == tmp_path and repo.is_dir()
    assert Path.cwd() == repo
    assert sys.path[0] == str(repo)
    assert os.environ["CONVEYOR_REPOSITORY"] == str(repo)
    assert "CONVEYOR_STORE_URL" not in os.environ and "CONVEYOR_STACK" not in os.environ
    assert [s.name for s in Client().list_stacks()] == ["default"]
    assert (repo / ".conveyor").is_dir()


def test_a_module_written_into_repo_imports(repo: Path) -> None:
    (repo / "kit_written_module.py").write_text("VALUE = 41 + 1\n")
    sys.modules.pop("kit_written_module", None)
    assert importlib.import_module("kit_written_module").VALUE == 42


def test_switching_repositories_opens_the_new_ones_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor import Client

    monkeypatch.setenv("CONVEYOR_STORE_URL", "sqlite:////nonexistent/elsewhere.db")
    monkeypatch.setenv("CONVEYOR_STACK", "elsewhere")
    with fresh_repository(tmp_path / "first", monkeypatch) as first:
        client = Client()
        client.register_component("orchestrator", "kit_local", "local", {})
        client.register_stack("kit_stack", {"orchestrator": "kit_local", "artifact_store": "default"})
        assert "kit_stack" in {s.name for s in Client().list_stacks()}
    with fresh_repository(tmp_path / "second", monkeypatch) as second:
        assert Path.cwd() == second != first
        assert [s.name for s in Client().list_stacks()] == ["default"]
    assert (first / ".conveyor").is_dir() and (second / ".conveyor").is_dir()


# -- assert_facade_complete -------------------------------------------------------------------
@pytest.mark.parametrize("name", KIT_MODULES)
def test_the_kits_own_facades_are_complete(name: str) -> None:
    assert_facade_complete(importlib.import_module(name))


def _module(name: str, all_: list[str] | None, **names: object) -> types.ModuleType:
    module = types.ModuleType(name)
    for key, value in names.items():
        setattr(module, key, value)
    if all_ is not None:
        module.__all__ = all_
    return module


def _defined_in(module: str, name: str) -> type:
    return type(name, (), {"__module__": module})


def test_a_complete_facade_passes_in_either_order() -> None:
    names = {"MAX": 3, "Alpha": _defined_in("pkg._a", "Alpha"), "beta": _defined_in("pkg._b", "beta")}
    assert_facade_complete(_module("pkg", ["Alpha", "MAX", "beta"], **names))
    assert_facade_complete(_module("pkg", ["MAX", "Alpha", "beta"], **names))


@pytest.mark.parametrize(
    ("all_", "names", "message"),
    [
        (None, {}, "has no __all__"),
        (["b", "a"], {"a": 1, "b": 2}, "is not sorted"),
        (["a", "a"], {"a": 1}, "more than once"),
        (["a", "ghost"], {"a": 1}, "do not resolve"),
        (["a", "nothing"], {"a": 1, "nothing": None}, "pkg.nothing is None"),
        (["Alpha"], {"Alpha": _defined_in("pkg._a", "Alpha"), "Beta": _defined_in("pkg.sub", "Beta")}, "['Beta']"),
        (["a"], {"a": 1, "_EXPORTS": {"a": "pkg._a", "lazy": "pkg._a"}}, "['lazy']"),
    ],
)
def test_an_incomplete_facade_fails_naming_the_problem(
    all_: list[str] | None, names: dict[str, object], message: str
) -> None:
    with pytest.raises(AssertionError) as info:
        assert_facade_complete(_module("pkg", all_, **names))
    assert message in str(info.value)


def test_names_imported_from_elsewhere_need_not_be_exported() -> None:
    from typing import Any

    assert_facade_complete(_module("pkg", ["a"], a=1, Any=Any, Path=Path, os=os))


def test_a_lazy_facade_resolves_its_names_through_getattr() -> None:
    module = _module("pkg", ["lazy"], _EXPORTS={"lazy": "json"})
    module.__getattr__ = lambda name: importlib.import_module("json") if name in module._EXPORTS else None  # type: ignore[method-assign]
    module.__dir__ = lambda: ["lazy"]  # type: ignore[method-assign]
    assert_facade_complete(module)


# -- assert_golden ----------------------------------------------------------------------------
def test_golden_file_matches_and_mismatch_names_the_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UPDATE_GOLDEN, raising=False)
    golden = tmp_path / "out.txt"
    golden.write_bytes(b"one\ntwo\n")
    assert_golden(golden, "one\ntwo\n")
    with pytest.raises(AssertionError) as info:
        assert_golden(golden, "one\nTWO\n")
    text = str(info.value)
    assert "out.txt changed" in text and f"{UPDATE_GOLDEN}=1" in text
    assert "line 2" in text and "- two" in text and "+ TWO" in text
    assert golden.read_bytes() == b"one\ntwo\n"  # never rewritten without being asked


def test_golden_file_is_compared_byte_for_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UPDATE_GOLDEN, raising=False)
    golden = tmp_path / "out.txt"
    golden.write_bytes(b"a\r\nb\n")
    with pytest.raises(AssertionError):
        assert_golden(golden, "a\nb\n")


def test_missing_golden_file_fails_with_the_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UPDATE_GOLDEN, raising=False)
    with pytest.raises(AssertionError, match="missing"):
        assert_golden(tmp_path / "absent.txt", "x")
    assert not (tmp_path / "absent.txt").exists()


def test_update_golden_rewrites_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    golden = tmp_path / "deeper" / "out.txt"
    monkeypatch.setenv(UPDATE_GOLDEN, "1")
    assert_golden(golden, "new ✓\n")
    assert golden.read_bytes() == "new ✓\n".encode()
    monkeypatch.delenv(UPDATE_GOLDEN)
    assert_golden(golden, "new ✓\n")


# -- the marker rule --------------------------------------------------------------------------
def _pytest_in(folder: Path, source: str, *args: str) -> subprocess.CompletedProcess[str]:
    (folder / "test_sample.py").write_text(textwrap.dedent(source))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(folder), "-q", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_server_test_without_the_integration_marker_is_refused(tmp_path: Path) -> None:
    out = _pytest_in(
        tmp_path,
        """
        import pytest

        def test_uses_a_server(fresh_postgres_url):
            pass

        @pytest.mark.docker
        def test_marked_docker_only():
            pass

        @pytest.mark.integration
        def test_marked_properly(registry):
            pass

        def test_plain():
            pass
        """,
        "-m",
        "not integration",
    )
    assert out.returncode == 4, out.stdout + out.stderr  # a usage error: nothing ran
    err = out.stderr
    assert "lack the integration marker" in err
    assert "test_sample.py::test_uses_a_server (postgres_server)" in err
    assert "test_sample.py::test_marked_docker_only (docker)" in err
    assert "test_marked_properly" not in err and "test_plain" not in err


def test_marked_server_tests_are_deselected_by_the_unit_run(tmp_path: Path) -> None:
    out = _pytest_in(
        tmp_path,
        """
        import pytest

        @pytest.mark.integration
        @pytest.mark.postgres
        def test_uses_a_server(fresh_postgres_url):
            raise AssertionError("must not run")

        def test_plain(repo):
            assert repo.name == "repo"
        """,
        "-m",
        "not integration",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed, 1 deselected" in out.stdout


def test_markers_come_from_the_root_configuration_only(tmp_path: Path) -> None:
    def markers(*config: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "pytest", "--markers", *config],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return out.stdout

    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    ours = ("integration", "docker", "mysql", "postgres", "s3", "airflow", "kubeflow", "prefect")
    with_root = markers("-c", str(ROOT / "pyproject.toml"))
    assert all(f"@pytest.mark.{name}:" in with_root for name in ours)
    without = markers("-c", str(tmp_path / "pytest.ini"))
    assert not [name for name in ours if f"@pytest.mark.{name}:" in without]


# -- leaks --------------------------------------------------------------------------------------
def test_find_values_labels_each_value_it_finds_in_one_pass(tmp_path: Path) -> None:
    import base64
    import gzip
    import json

    from conveyor_testing.leaks import find_value, find_values

    (tmp_path / "plain.txt").write_text("url=sqlite:////srv/db.sqlite\n")
    (tmp_path / "env.json").write_text(json.dumps({"auth": base64.b64encode(b"user:cvk_admin-key-1234").decode()}))
    with gzip.open(tmp_path / "layer.gz", "wb") as f:
        f.write(b"nothing here")
    hits = find_values(
        [tmp_path], {"db": "sqlite:////srv/db.sqlite", "admin": "cvk_admin-key-1234", "absent": "not-written-anywhere"}
    )
    assert sorted((h.label, Path(h.where).name) for h in hits) == [("admin", "env.json"), ("db", "plain.txt")]
    assert next(h.form for h in hits if h.label == "admin").startswith("base64")
    # find_value is find_values with one unlabelled value.
    alone = find_value([tmp_path], "cvk_admin-key-1234")
    assert [(h.where, h.offset, h.form, h.label) for h in alone] == [
        (h.where, h.offset, h.form, "") for h in hits if h.label == "admin"
    ]
    with pytest.raises(ValueError, match="4 characters"):
        find_values([tmp_path], {"short": "abc"})
    with pytest.raises(ValueError, match="nothing to look for"):
        find_values([tmp_path], {})
