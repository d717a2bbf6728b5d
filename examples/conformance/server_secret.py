"""A step that reads a declared secret, as a run through a conveyor server does.

Each step reports what its process holds (its environment as it started and
as it is now), with the secret's value blanked out, so that a test can look
for credentials that should not have reached it. The report is compressed:
the stored artifact must not itself hold the values the test looks for in
everything else the run left behind.
"""

import hashlib
import json
import os
import zlib
from pathlib import Path

from conveyor import get_step_context, pipeline, step

SECRET = "conformance_secret"


def _start_environment() -> dict[str, str]:
    """The environment the process was started with (a later os.environ change does not show here)."""
    try:
        raw = Path("/proc/self/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in pairs}


def _blank(env: dict[str, str], value: str) -> dict[str, str]:
    return {k: v.replace(value, "<secret>") if value else v for k, v in sorted(env.items())}


def _sealed(env: dict[str, str]) -> str:
    return zlib.compress(json.dumps(env).encode()).hex()


def report(value: str = "") -> dict:
    """What this step process holds, the secret's value blanked out (read it with :func:`unseal`)."""
    return {
        "environ": _sealed(_blank(dict(os.environ), value)),
        "start_environ": _sealed(_blank(_start_environment(), value)),
    }


def unseal(sealed: str) -> dict[str, str]:
    """An environment of a report."""
    return json.loads(zlib.decompress(bytes.fromhex(sealed)))


@step(secrets=[SECRET], environment={"CONFORMANCE_TOKEN": "{{" + SECRET + ".token}}"})
def read_secret() -> dict:
    value = get_step_context().get_secret(SECRET)["token"]
    seen = report(value)
    seen["digest"] = hashlib.sha256(value.encode()).hexdigest()
    seen["environment_resolved"] = os.environ.get("CONFORMANCE_TOKEN") == value
    return seen


@step
def after_secret(first: dict) -> dict:
    seen = report()
    seen["digest"] = first["digest"]
    return seen


@pipeline(name="server_secret")
def server_secret() -> None:
    after_secret(read_secret())
