"""pandera for conveyor: a data validator flavor and a ready-made validation step.

``pandera_validator(schema=TripsSchema, on_failure="fail")`` is a step that
validates a pandas DataFrame; ``@step(data_validator="pandera")`` gives a step
the stack's validator (``get_step_context().data_validator.validate(df, schema)``).
Both produce a :class:`ValidationReport` with a view that ``conveyor artifact show`` prints.
"""

from conveyor_pandera._flavors import PanderaDataValidator, PanderaDataValidatorConfig, PanderaDataValidatorFlavor
from conveyor_pandera._report import FailedCheck, ValidationReport
from conveyor_pandera._step import PanderaValidator, pandera_validator, validate_dataframe
from conveyor_pandera._validate import DataValidationError, validate_frame

__all__ = [
    "DataValidationError",
    "FailedCheck",
    "PanderaDataValidator",
    "PanderaDataValidatorConfig",
    "PanderaDataValidatorFlavor",
    "PanderaValidator",
    "ValidationReport",
    "pandera_validator",
    "validate_dataframe",
    "validate_frame",
]
