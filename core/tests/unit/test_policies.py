"""Policies every engine shares, owned by core once: resources, the settings merge, secret references."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict

from conveyor.exceptions import ConfigError
from conveyor.ir import MEMORY_UNITS, ResourceSettings, cpu_quantity, memory_quantity, parse_memory
from conveyor.stack import merge_settings, step_settings


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1.5Gi", 1536 * 2**20),
        ("1.5GiB", 1536 * 2**20),
        ("512M", 512 * 10**6),
        ("512mb", 512 * 10**6),
        ("2m", 2 * 10**6),  # mega, as in Docker: never Kubernetes' milli
        ("4GB", 4 * 10**9),
        (" 1 Ti ", 2**40),
        ("0.5k", 500),
        ("1024", 1024),
        (1024, 1024),
    ],
)
def test_one_memory_grammar(text: object, size: int) -> None:
    assert parse_memory(text) == size
    assert ResourceSettings(memory=text).memory == size


@pytest.mark.parametrize("text", ["1.5", "x", "-1G", "0", "1.5 bytes", "2 Gigs", "", True, 1.5, "1e9"])
def test_memory_that_is_not_a_size_is_refused_with_a_hint(text: object) -> None:
    with pytest.raises(ValueError, match="memory"):
        parse_memory(text)


@given(st.integers(min_value=1, max_value=2**62))
def test_the_kubernetes_quantity_is_the_same_number_of_bytes(size: int) -> None:
    quantity = memory_quantity(size)
    assert parse_memory(quantity) == size


@given(amount=st.integers(1, 10**6), unit=st.sampled_from(sorted(MEMORY_UNITS)))
def test_every_unit_reads_back(amount: int, unit: str) -> None:
    size = parse_memory(f"{amount}{unit}")
    assert size == amount * MEMORY_UNITS[unit]
    assert parse_memory(memory_quantity(size)) == size


@pytest.mark.parametrize(("cpu", "text"), [(0.5, "500m"), (2, "2"), (0.25, "250m"), (1.5, "1500m")])
def test_cpu_quantities(cpu: float, text: str) -> None:
    assert cpu_quantity(cpu) == text
    assert ResourceSettings(cpu=cpu).cpu_quantity() == text


def test_cpu_and_gpus_must_make_sense() -> None:
    with pytest.raises(ValueError, match="cpu"):
        ResourceSettings(cpu=0)
    with pytest.raises(ValueError, match="gpu_count"):
        ResourceSettings(gpu_count=-1)


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pool: str | None = None
    labels: dict[str, str] | None = None
    tolerations: list[str] | None = None


def test_a_step_setting_replaces_the_pipelines_and_mappings_merge_key_by_key() -> None:
    pipeline = {"pool": "big", "labels": {"team": "ml", "tier": "gold"}, "tolerations": ["a"], "title": "x"}
    step = {"labels": {"tier": "silver", "gpu": "yes"}, "tolerations": ["b"], "pool": None}
    assert merge_settings(pipeline, step) == {
        "pool": "big",
        "labels": {"team": "ml", "tier": "silver", "gpu": "yes"},
        "tolerations": ["b"],
        "title": "x",
    }
    merged = step_settings(_Settings, "ns", {"ns": pipeline}, {"ns": step}, where="step 's'")
    assert merged == _Settings(pool="big", labels={"team": "ml", "tier": "silver", "gpu": "yes"}, tolerations=["b"])


def test_a_bad_step_setting_names_the_step() -> None:
    with pytest.raises(ConfigError, match="step 's': unknown ns setting 'pol'") as info:
        step_settings(_Settings, "ns", {}, {"ns": {"pol": "x"}}, where="step 's'")
    assert info.value.hint is not None and "did you mean 'pool'" in info.value.hint
