"""The ``data_validator.pandera`` flavor."""

from __future__ import annotations

import builtins
from typing import Any

from pydantic import BaseModel, ConfigDict

from conveyor.stack import ComponentType, DataValidator, Flavor, StackComponent


class PanderaDataValidatorConfig(BaseModel):
    """Config of the ``pandera`` data validator."""

    model_config = ConfigDict(extra="forbid")

    on_failure: str = "fail"
    """What ``validate`` does with an invalid frame by default: ``fail`` or ``warn``."""


class PanderaDataValidator(DataValidator):
    """Validates pandas DataFrames with pandera, inside the steps that name it."""

    def validate(self, data: Any, schema: Any, *, on_failure: str | None = None, **options: Any) -> Any:
        """Validate ``data`` against a pandera schema; return a :class:`ValidationReport`.

        Raises:
            DataValidationError: the frame is invalid and ``on_failure`` is ``fail`` (one line naming the checks).
        """
        from conveyor_pandera._validate import act_on, validate_frame

        report = validate_frame(data, schema)
        act_on(report, on_failure or self.config.on_failure)
        return report


class PanderaDataValidatorFlavor(Flavor):
    """pandera schemas for pandas DataFrames."""

    type = ComponentType.DATA_VALIDATOR
    name = "pandera"
    description = "pandera schemas for pandas DataFrames"
    install = "pip install ./core ./integrations/pandera"

    @property
    def config_class(self) -> builtins.type[BaseModel]:
        return PanderaDataValidatorConfig

    def validate_config(self, config: dict[str, Any], *, component: str) -> dict[str, Any]:
        from conveyor.exceptions import ConfigError

        clean = super().validate_config(config, component=component)
        if clean.get("on_failure", "fail") not in ("fail", "warn"):
            raise ConfigError(f"data-validator {component!r} (pandera): on_failure must be 'fail' or 'warn'")
        return clean

    def implementation(self) -> builtins.type[StackComponent]:
        return PanderaDataValidator
