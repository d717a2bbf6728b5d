"""The image's code context without a Docker daemon: which files go in, the ignore syntax, hostile names, links."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.exceptions import ConfigError
from conveyor.ir import canonical_json
from conveyor_docker import DockerSettings
from conveyor_docker._context import ImagePlan, write_context
from conveyor_docker._ignore import IgnoreRules, parse_lines
from conveyor_docker._source import NEVER_COPIED, code_files, folder_files

REPO_ROOT = Path(__file__).resolve().parents[4]
GOLDEN = {
    "airflow": REPO_ROOT / "adapters" / "airflow" / "tests" / "unit" / "golden",
    "kubeflow": REPO_ROOT / "adapters" / "kubeflow" / "tests" / "unit" / "golden",
    "prefect": REPO_ROOT / "adapters" / "prefect" / "tests" / "unit" / "golden",
}
# The tests' git must not read the machine's configuration (a global excludes file would change what is untracked).
GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}
SECRET = b"outside the source root: never in an image"


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, env=GIT_ENV).stdout.decode(
        "utf-8", "surrogateescape"
    )


def write(root: Path, rel: str, text: str = "x") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def names(root: Path, settings: DockerSettings | None = None) -> list[str]:
    return [rel for rel, _ in code_files(root, settings or DockerSettings()).files]


# -- the .dockerignore syntax ------------------------------------------------------------
@pytest.mark.parametrize(
    ("patterns", "path", "left_out"),
    [
        (["*/temp*"], "somedir/temporary.txt", True),
        (["*/temp*"], "somedir/temp/x.py", True),
        (["*/temp*"], "temp.txt", False),
        (["*/temp*"], "a/b/temp.txt", False),
        (["*/*/temp*"], "a/b/temp.txt", True),
        (["temp?"], "temp1", True),
        (["temp?"], "temp12", False),
        (["**/*.go"], "a.go", True),
        (["**/*.go"], "x/y/a.go", True),
        (["a*/**/z"], "ab/z", True),
        (["a*/**/z"], "ab/c/d/z", True),
        (["a*/**/z"], "b/z", False),
        (["data"], "data/deep/file.bin", True),
        (["data/**"], "data/deep/file.bin", True),
        (["data"], "database.py", False),
        (["*.md", "!README.md"], "README.md", False),
        (["*.md", "!README.md"], "CHANGES.md", True),
        (["*.md", "!README*.md", "README-secret.md"], "README-secret.md", True),
        (["/main.py"], "main.py", True),
        (["./a//b/"], "a/b/c.py", True),
        (["a/../b"], "b", True),
        (["../x"], "x", False),
        (["[a-c].py"], "b.py", True),
        (["[a-c].py"], "d.py", False),
        (["[^a].py"], "a.py", False),
        (["[^a].py"], "b.py", True),
        (["a[^x]b"], "a/b", False),
        (["\\*.py"], "*.py", True),
        (["\\*.py"], "x.py", False),
        (["\\!keep"], "!keep", True),
        (["x?y"], "x\ny", True),
        (["*"], "new\nline", True),
        (["."], "main.py", False),
    ],
)
def test_ignore_patterns_follow_dockers_rules(patterns, path, left_out):
    assert IgnoreRules(patterns).excludes(path) is left_out


def test_ignore_files_have_comments_and_trimmed_lines():
    text = "\ufeff# a comment\r\n  spaced.txt  \r\n\n  #not-a-comment\n!  keep.txt\n"
    assert parse_lines(text) == ["spaced.txt", "#not-a-comment", "!  keep.txt"]
    rules = IgnoreRules([*parse_lines(text), "*.txt"])
    assert rules.excludes("spaced.txt") and rules.excludes("#not-a-comment") and rules.excludes("keep.txt")


@pytest.mark.parametrize("bad", ["[abc", "x[]", "[z-a]", "!", "a[\\"])
def test_a_malformed_pattern_is_a_one_line_error_naming_the_file(tmp_path, bad):
    write(tmp_path, "main.py")
    (tmp_path / ".conveyorignore").write_text(f"ok.txt\n{bad}\n")
    with pytest.raises(ConfigError) as err:
        code_files(tmp_path, DockerSettings())
    assert ".conveyorignore" in str(err.value) and "\n" not in str(err.value)


# -- a plain folder ---------------------------------------------------------------------
def test_a_plain_folder_is_every_file_but_ignored_ones_and_tool_folders(tmp_path):
    for rel in (
        "main.py",
        "pkg/mod.py",
        "pkg/__pycache__/mod.cpython-311.pyc",
        "pkg/stale.pyc",
        ".conveyor/conveyor.db",
        ".conveyor/secrets.key",
        ".git/HEAD",
        ".hg/store",
        "sub/.svn/entries",
        ".venv/bin/python",
        "sub/.venv/pyvenv.cfg",
        ".nox/docker/x",
        "data/big.bin",
        "notes.txt",
        "scratch/out.csv",
    ):
        write(tmp_path, rel)
    (tmp_path / ".dockerignore").write_text("data\n*.txt\n")
    (tmp_path / ".conveyorignore").write_text("scratch/\n")
    assert names(tmp_path) == [".conveyorignore", ".dockerignore", "main.py", "pkg/mod.py"]


def test_settings_dockerignore_replaces_the_roots_and_conveyorignore_still_applies(tmp_path):
    write(tmp_path, "main.py")
    write(tmp_path, "a.log")
    write(tmp_path, "b.tmp")
    (tmp_path / ".dockerignore").write_text("*.log\n")
    (tmp_path / ".conveyorignore").write_text("*.tmp\n")
    write(tmp_path, "docker/ship.ignore", "*.py\n")
    got = names(tmp_path, DockerSettings(dockerignore="docker/ship.ignore"))
    assert got == [".conveyorignore", ".dockerignore", "a.log", "docker/ship.ignore"]
    with pytest.raises(ConfigError, match="dockerignore file .*missing.ignore does not exist"):
        code_files(tmp_path, DockerSettings(dockerignore="missing.ignore"))


def test_an_exception_puts_back_a_file_of_a_left_out_folder(tmp_path):
    write(tmp_path, "data/big.bin")
    write(tmp_path, "data/keep/schema.json")
    (tmp_path / ".dockerignore").write_text("data\n!data/keep/schema.json\n")
    assert names(tmp_path) == [".dockerignore", "data/keep/schema.json"]


def test_links_are_copied_as_links_and_nothing_behind_them_is_read(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    write(outside, "secret.txt", SECRET.decode())
    write(root, "main.py")
    (root / "to-file").symlink_to("../outside/secret.txt")
    (root / "to-abs").symlink_to(outside / "secret.txt")
    (root / "to-dir").symlink_to(outside)
    (root / "inner").symlink_to("main.py")
    os.mkfifo(root / "a-fifo")  # reading it would block the build

    found = code_files(root, DockerSettings())
    assert [r for r, _ in found.files] == ["inner", "main.py", "to-abs", "to-dir", "to-file"]
    members = _context_members(found.root, found.files)
    assert members["app/to-file"] == ("link", "../outside/secret.txt")
    assert members["app/to-dir"] == ("link", str(outside))
    assert members["app/inner"] == ("link", "main.py")
    assert members["app/main.py"] == ("file", b"x")
    assert not any(kind == "file" and SECRET in data for kind, data in members.values())


def _context_members(root: Path, files: list[tuple[str, Path]]) -> dict[str, tuple[str, object]]:
    plan = ImagePlan(repository="r", parent="p", parent_id="sha256:x", settings=DockerSettings())
    plan.code_root, plan.code_files = root, files
    out: dict[str, tuple[str, object]] = {}
    with write_context(plan, [], []) as f, tarfile.open(fileobj=f) as tar:
        for m in tar.getmembers():
            if m.issym():
                out[m.name] = ("link", m.linkname)
            elif m.isfile():
                out[m.name] = ("file", tar.extractfile(m).read())  # type: ignore[union-attr]
    return out


# -- what conveyor itself writes ----------------------------------------------------------
def _compiled_outputs() -> dict[str, bytes]:
    out = {f"airflow-{p.name}": p.read_bytes() for p in sorted(GOLDEN["airflow"].glob("*.py"))}
    out.update({f"kubeflow-{p.name}": p.read_bytes() for p in sorted(GOLDEN["kubeflow"].glob("*.yaml"))})
    # What `conveyor pipeline export` writes for Prefect: the spec as canonical JSON (the golden file is indented).
    spec = json.loads((GOLDEN["prefect"] / "demo.prefect.json").read_text())
    out["demo.prefect.json"] = (canonical_json(spec) + "\n").encode()
    return out


def test_files_conveyors_orchestrators_write_are_not_code(tmp_path):
    outputs = _compiled_outputs()
    assert len(outputs) >= 8
    for name, data in outputs.items():
        (tmp_path / "dags").mkdir(exist_ok=True)
        (tmp_path / "dags" / name).write_bytes(data)
    write(tmp_path, "main.py")
    # Look-alikes are the user's: a spec kfp itself compiled, a DAG of the user's, JSON naming no conveyor flow.
    write(tmp_path, "specs/own.yaml", "# PIPELINE DEFINITION\n# Name: own\ncomponents: {}\n")
    write(tmp_path, "dags/mine.py", "# An Airflow DAG written by hand.\nfrom airflow.sdk import DAG\n")
    write(tmp_path, "deploy.json", '{"deployment_id":"' + "0" * 32 + '","entrypoint":"mine:flow"}\n')
    assert names(tmp_path) == ["dags/mine.py", "deploy.json", "main.py", "specs/own.yaml"]
    # The Dockerfile context of a user's parent image is Docker's: every file.
    assert len(folder_files(tmp_path)) == len(outputs) + 4


# -- a git checkout -------------------------------------------------------------------------
@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    if shutil.which("git") is None:
        pytest.fail("git is not installed (apt-get install git)")
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "-q")
    (root / ".gitignore").write_text(".conveyor/\n*.log\n")
    write(root, "main.py", "print('v1')\n")
    write(root, "pkg/mod.py")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    return root


def test_a_checkout_is_its_tracked_files_as_they_are_on_disk(checkout):
    write(checkout, "main.py", "print('v2')\n")  # modified, not committed
    write(checkout, "added.py")
    git(checkout, "add", "added.py")  # staged, not committed
    write(checkout, "scratch.py")  # untracked
    write(checkout, "out/result.csv")  # untracked folder
    write(checkout, "run.log")  # ignored by git
    write(checkout, ".conveyor/conveyor.db")
    (checkout / "pkg" / "mod.py").unlink()  # tracked, deleted here

    found = code_files(checkout, DockerSettings())
    assert found.git
    assert [r for r, _ in found.files] == [".gitignore", "added.py", "main.py"]
    assert dict(found.files)["main.py"].read_text() == "print('v2')\n"
    assert found.untracked_python == ["scratch.py"]


def test_ignore_files_apply_to_tracked_files_too(checkout):
    write(checkout, "notebooks/explore.ipynb")
    write(checkout, "pkg/__pycache__/mod.cpython-311.pyc")
    git(checkout, "add", "-f", "-A")
    (checkout / ".conveyorignore").write_text("notebooks/\n")
    assert names(checkout) == [".gitignore", "main.py", "pkg/mod.py"]


def test_a_subfolder_of_a_checkout_is_its_own_root(checkout):
    write(checkout, "pkg/sub/deep.py")
    git(checkout, "add", "-A")
    assert names(checkout / "pkg") == ["mod.py", "sub/deep.py"]


def test_a_folder_git_does_not_track_is_a_plain_folder(checkout):
    write(checkout, "elsewhere/run.py")
    write(checkout, "elsewhere/helper.py")
    found = code_files(checkout / "elsewhere", DockerSettings())
    assert not found.git and [r for r, _ in found.files] == ["helper.py", "run.py"]


def test_a_tracked_path_behind_a_folder_that_became_a_link_is_not_read(checkout, tmp_path):
    write(tmp_path / "outside", "mod.py", SECRET.decode())
    shutil.rmtree(checkout / "pkg")
    (checkout / "pkg").symlink_to(tmp_path / "outside")  # git still tracks pkg/mod.py
    found = code_files(checkout, DockerSettings())
    assert [r for r, _ in found.files] == [".gitignore", "main.py"]


# -- hostile names ----------------------------------------------------------------------------
_SPECIAL = {".conveyorignore", ".dockerignore", ".gitignore", ".gitattributes", ".gitmodules", ".git"}
_LINKS = ("link-to-file", "link-to-abs", "link-to-dir")
_HOSTILE_CHARS = " -.*?[]^\\!#\n\t\r\x0b\x0c\x85\u00a0\u2028'\"$`;|&~éß中🙂\u200b\ufeff"
_CHARS = st.one_of(st.sampled_from(_HOSTILE_CHARS), st.characters(codec="utf-8", exclude_characters="/\0"))
_SEGMENT = st.one_of(
    st.text(alphabet=_CHARS, min_size=1, max_size=10),
    st.sampled_from(["..", "...", "-rf", "--help", " lead", "trail ", "a..b", "__pycache__", ".venv", ".nox", "x.pyc"]),
).filter(lambda s: s not in (".", "..") and s not in _SPECIAL and s not in _LINKS and len(s.encode()) < 100)
_ANY = object()  # a pattern position that matches any one character but "/"


def _tree(paths: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Paths that can all be files at once (none is a folder of another)."""
    kept: list[tuple[str, ...]] = []
    for p in paths:
        if not any(p[: len(q)] == q or q[: len(p)] == p for q in kept):
            kept.append(p)
    return kept


def _literal_pattern(parts: tuple[str, ...]) -> tuple[str, list[object]]:
    """A pattern that matches these path parts, and what each of its positions matches (the test's own matcher).

    A character the line-based syntax cannot hold literally (a newline, whitespace that would be trimmed)
    becomes ``?``; wildcard and comment characters are escaped with ``\\``.
    """
    text, tokens = [], []
    for i, part in enumerate(parts):
        if i:
            text.append("/")
            tokens.append("/")
        for ch in part:
            if ch.isspace():
                text.append("?")
                tokens.append(_ANY)
            elif ch in "*?[]\\!#":
                text.append("\\" + ch)
                tokens.append(ch)
            else:
                text.append(ch)
                tokens.append(ch)
    return "".join(text), tokens


def _matches(tokens: list[object], rel: str) -> bool:
    rel_parts = rel.split("/")
    candidates = ["/".join(rel_parts[: i + 1]) for i in range(len(rel_parts))]
    return any(
        len(c) == len(tokens) and all(t == ch or (t is _ANY and ch != "/") for t, ch in zip(tokens, c, strict=True))
        for c in candidates
    )


def _expected(universe: list[str], ignored: list[list[object]]) -> list[str]:
    return sorted(
        rel
        for rel in universe
        if not any(p in NEVER_COPIED for p in rel.split("/"))
        and not rel.endswith((".pyc", ".pyo"))
        and not any(_matches(t, rel) for t in ignored)
    )


@st.composite
def _hostile_trees(draw: st.DrawFn) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    paths = _tree(draw(st.lists(st.lists(_SEGMENT, min_size=1, max_size=3).map(tuple), min_size=1, max_size=10)))
    prefixes = sorted({p[:i] for p in paths for i in range(1, len(p) + 1)})
    ignored = draw(st.lists(st.sampled_from(prefixes), max_size=4, unique=True))
    return paths, ignored


def _make_tree(base: Path, paths: list[tuple[str, ...]], ignored: list[tuple[str, ...]]) -> tuple[Path, list]:
    root, outside = base / "root", base / "outside"
    write(outside, "secret.txt", SECRET.decode())
    root.mkdir()
    for parts in paths:
        path = root.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"content of " + os.fsencode("/".join(parts)))
    (root / "link-to-file").symlink_to("../outside/secret.txt")
    (root / "link-to-abs").symlink_to(outside / "secret.txt")
    (root / "link-to-dir").symlink_to("../outside")
    tokens = []
    lines = ["# written by the test"]
    for parts in ignored:
        text, toks = _literal_pattern(parts)
        lines.append(text)
        tokens.append(toks)
    (root / ".conveyorignore").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root, tokens


def _check_context(root: Path, files: list[tuple[str, Path]]) -> None:
    real_root = os.path.realpath(root)
    for rel, path in files:
        assert not rel.startswith("/") and ".." not in rel.split("/"), rel
        assert str(path) == os.path.join(real_root, rel)
        assert os.path.realpath(path.parent).startswith(real_root), rel
    members = _context_members(root, files)
    assert not any(kind == "file" and SECRET in data for kind, data in members.values())
    for rel, _ in files:
        kind, data = members[f"app/{rel}"]
        assert kind == ("link" if rel in _LINKS else "file")
        if kind == "file" and rel != ".conveyorignore":
            assert data == b"content of " + os.fsencode(rel)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_hostile_trees())
def test_hostile_names_in_a_plain_folder_never_leave_the_root_nor_pass_an_ignore(tree):
    paths, ignored = tree
    with tempfile.TemporaryDirectory() as tmp:
        root, tokens = _make_tree(Path(tmp), paths, ignored)
        universe = ["/".join(p) for p in paths] + [".conveyorignore", *_LINKS]
        found = code_files(root, DockerSettings())
        assert not found.git
        assert [r for r, _ in found.files] == _expected(universe, tokens)
        _check_context(root, found.files)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_hostile_trees())
def test_hostile_names_in_a_checkout_never_leave_the_root_nor_pass_an_ignore(tree):
    paths, ignored = tree
    with tempfile.TemporaryDirectory() as tmp:
        root, tokens = _make_tree(Path(tmp), paths, ignored)
        git(root, "init", "-q")
        git(root, "add", "-A")
        tracked = [os.fsdecode(n) for n in git(root, "ls-files", "-z").encode("utf-8", "surrogateescape").split(b"\0")]
        write(root, "untracked-scratch.py")
        write(root, "untracked/deep.txt")
        found = code_files(root, DockerSettings())
        assert found.git
        assert [r for r, _ in found.files] == _expected([t for t in tracked if t], tokens)
        assert "untracked-scratch.py" in found.untracked_python or any(
            _matches(t, "untracked-scratch.py") for t in tokens
        )
        _check_context(root, found.files)
