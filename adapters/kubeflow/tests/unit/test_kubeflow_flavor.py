"""The flavor: found through its entry point, light to import, strict about its config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import conveyor_kubeflow
from conveyor.exceptions import ConfigError
from conveyor.stack import Capability, ComponentType, flavors


def test_flavor_is_an_entry_point_that_needs_images() -> None:
    flavor = flavors.get("orchestrator", "kubeflow")
    assert type(flavor).__module__ == "conveyor_kubeflow._flavor"
    assert Capability.CONTAINER_IMAGE in flavor.capabilities and Capability.SCHEDULES in flavor.capabilities
    assert flavor.requires == (ComponentType.IMAGE_BUILDER, ComponentType.CONTAINER_REGISTRY)


def test_flavor_module_imports_no_kfp() -> None:
    code = (
        "import sys; from conveyor.stack import flavors; f = flavors.get('orchestrator', 'kubeflow'); "
        "f.validate_config({'host': 'https://kfp.example/'}, component='kf'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('kfp', 'kfp_server_api', 'kubernetes')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_package_exports_are_complete_and_sorted() -> None:
    public = {n for n in dir(conveyor_kubeflow) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(conveyor_kubeflow, n)).__name__ == "module"}
    assert set(conveyor_kubeflow.__all__) == public - modules
    assert conveyor_kubeflow.__all__ == sorted(conveyor_kubeflow.__all__)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"hots": "https://kfp.example"}, "unknown option 'hots'"),
        ({"host": "kfp.example"}, "host: must be an http:// or https:// URL"),
        ({"token": "abc123"}, "token: holds a credential, so it takes only a secret reference"),
        ({"store_url": "postgresql+psycopg://u:pw@db/conveyor"}, "store_url: must not carry a password"),
        ({"store_url": "not a url"}, "is not a database URL"),
        ({"secret_env": {"CONVEYOR_STORE_URL": "store"}}, "SECRET_NAME:KEY"),
        ({"wait_timeout": 0}, "wait_timeout"),
    ],
)
def test_bad_config_is_one_line(config: dict, match: str) -> None:
    flavor = flavors.get("orchestrator", "kubeflow")
    with pytest.raises(ConfigError, match=match) as info:
        flavor.validate_config(config, component="kf")
    assert "\n" not in str(info.value)


def test_good_config_is_kept() -> None:
    flavor = flavors.get("orchestrator", "kubeflow")
    clean = flavor.validate_config(
        {
            "host": "https://kfp.example/",
            "token": "{{kfp.token}}",
            "secret_env": {"CONVEYOR_STORE_URL": "conveyor-store:url"},
        },
        component="kf",
    )
    assert clean == {
        "host": "https://kfp.example",
        "token": "{{kfp.token}}",
        "secret_env": {"CONVEYOR_STORE_URL": "conveyor-store:url"},
    }


def test_cli_registers_the_orchestrator(repo: Path) -> None:
    def conveyor(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "conveyor.cli", *args], capture_output=True, text=True)

    ok = conveyor("orchestrator", "register", "kf", "--flavor", "kubeflow", "--host", "https://kfp.example/")
    assert ok.returncode == 0, ok.stderr
    bad = conveyor("orchestrator", "register", "kf2", "--flavor", "kubeflow", "--token", "plain")
    assert bad.returncode != 0
    assert (
        "token: holds a credential, so it takes only a secret reference" in bad.stderr and "Traceback" not in bad.stderr
    )
