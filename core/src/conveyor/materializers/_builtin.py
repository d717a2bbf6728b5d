"""Materializers for Python's built-in types, pydantic models, and opt-in pickle."""

from __future__ import annotations

import base64
import json
import math
import pickle
import warnings
from typing import Any, ClassVar

from conveyor.exceptions import MaterializerError
from conveyor.materializers._base import BaseMaterializer

_TAG = "__conveyor__"
_DATA = "data.json"


def _encode(value: Any) -> Any:
    # JSON with tags for what JSON cannot tell apart, so tuples, sets, bytes,
    # non-finite floats and non-string keys come back as they went in.
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else {_TAG: "float", "value": repr(value)}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, tuple):
        return {_TAG: "tuple", "items": [_encode(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        items = sorted((_encode(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
        return {_TAG: type(value).__name__ if type(value) in (set, frozenset) else "set", "items": items}
    if isinstance(value, (bytes, bytearray)):
        return {_TAG: "bytes", "b64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and _TAG not in value:
            return {k: _encode(v) for k, v in value.items()}
        return {_TAG: "dict", "items": [[_encode(k), _encode(v)] for k, v in value.items()]}
    raise MaterializerError(
        f"a {type(value).__name__} inside a built-in container has no JSON form",
        "return it as its own output with a materializer for its type",
    )


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(_TAG)
    if tag is None:
        return {k: _decode(v) for k, v in value.items()}
    if tag == "float":
        return float(value["value"])
    if tag == "tuple":
        return tuple(_decode(v) for v in value["items"])
    if tag == "set":
        return {_freeze(_decode(v)) for v in value["items"]}
    if tag == "frozenset":
        return frozenset(_freeze(_decode(v)) for v in value["items"])
    if tag == "bytes":
        return base64.b64decode(value["b64"])
    if tag == "dict":
        return {_freeze(_decode(k)): _decode(v) for k, v in value["items"]}
    raise MaterializerError(f"unknown tag {tag!r} in a stored built-in value")


def _freeze(value: Any) -> Any:
    return value


class BuiltInMaterializer(BaseMaterializer):
    """None, bool, int, float, str, list, tuple, dict, set and frozenset as tagged JSON."""

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (
        type(None),
        bool,
        int,
        float,
        str,
        list,
        tuple,
        dict,
        set,
        frozenset,
    )

    def save(self, data: Any) -> None:
        text = json.dumps(_encode(data), sort_keys=False, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        with self.open(_DATA, "wb") as f:
            f.write(text.encode())

    def load(self, data_type: type) -> Any:
        with self.open(_DATA, "rb") as f:
            value = _decode(json.loads(f.read()))
        if data_type in (tuple, set, frozenset, list) and not isinstance(value, data_type):
            value = data_type(value)
        return value

    def extract_metadata(self, data: Any) -> dict[str, Any]:
        if isinstance(data, (list, tuple, dict, set, frozenset, str)):
            return {"length": len(data)}
        if isinstance(data, (bool, int, float)) and not (isinstance(data, float) and not math.isfinite(data)):
            return {"value": data}
        return {}


class BytesMaterializer(BaseMaterializer):
    """Raw bytes, written as they are."""

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (bytes, bytearray)

    def save(self, data: Any) -> None:
        with self.open("data.bin", "wb") as f:
            f.write(bytes(data))

    def load(self, data_type: type) -> Any:
        with self.open("data.bin", "rb") as f:
            raw = f.read()
        return bytearray(raw) if data_type is bytearray else raw

    def extract_metadata(self, data: Any) -> dict[str, Any]:
        return {"size": len(data)}


def _pydantic_base() -> tuple[type, ...]:
    from pydantic import BaseModel

    return (BaseModel,)


class PydanticMaterializer(BaseMaterializer):
    """Pydantic models as their JSON, validated again on load."""

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = _pydantic_base()

    def save(self, data: Any) -> None:
        with self.open(_DATA, "wb") as f:
            f.write(data.model_dump_json().encode())

    def load(self, data_type: type) -> Any:
        with self.open(_DATA, "rb") as f:
            return data_type.model_validate_json(f.read())  # type: ignore[attr-defined]


class PickleMaterializer(BaseMaterializer):
    """Any picklable object. Opt-in only: loading a pickle can run code.

    Use it explicitly with ``@step(output_materializers=PickleMaterializer)``.
    """

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = ()
    UNSAFE = True

    def save(self, data: Any) -> None:
        warnings.warn(
            f"saving a {type(data).__name__} with pickle: it loads only with the same code, and loading runs code",
            UserWarning,
            stacklevel=2,
        )
        with self.open("data.pkl", "wb") as f:
            pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)

    def load(self, data_type: type) -> Any:
        with self.open("data.pkl", "rb") as f:
            return pickle.load(f)
