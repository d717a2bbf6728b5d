"""Pipeline and step names as Airflow ``dag_id`` / ``task_id`` keys: valid and stable."""

from __future__ import annotations

import hashlib
import re

_NOT_KEY = re.compile(r"[^A-Za-z0-9_.-]")

MAX_DAG_ID = 200
"""Room is left in conveyor's 255-character run key (``airflow:<dag_id>:<run_id>``)."""
MAX_TASK_ID = 250
"""Airflow's limit for keys."""


def airflow_key(name: str, max_length: int) -> str:
    """``name`` as an Airflow key: every character outside ``A-Z a-z 0-9 _ . -`` becomes ``_``.

    Names longer than ``max_length`` are cut and end in a hash of the whole
    name, so the key stays the same for the same name on every machine.
    """
    key = _NOT_KEY.sub("_", name) or "_"
    if len(key) > max_length:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        key = f"{key[: max_length - 9]}_{digest}"
    return key


def dag_id_for(pipeline: str) -> str:
    """The default ``dag_id`` of a pipeline."""
    return airflow_key(pipeline, MAX_DAG_ID)


def task_id_for(step_id: str) -> str:
    """The ``task_id`` of a step invocation."""
    return airflow_key(step_id, MAX_TASK_ID)
