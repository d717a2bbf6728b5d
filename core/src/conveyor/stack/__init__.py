"""Stacks, stack components and flavors (discovered through entry points)."""

from conveyor.stack._components import (
    DataValidator,
    ExperimentTracker,
    ModelDeployer,
    ServiceInfo,
    ServiceStatus,
    StepComponent,
)
from conveyor.stack._flavor import (
    GENERIC_INSTALL_HINT,
    Capability,
    ComponentType,
    Flavor,
    FlavorRegistry,
    engine_flavors,
    flavors,
    merge_settings,
    parse_settings,
    step_settings,
)
from conveyor.stack._stack import Stack, StackComponent, add_config_resolver, report_unread_settings, resolve_config

__all__ = [
    "GENERIC_INSTALL_HINT",
    "Capability",
    "ComponentType",
    "DataValidator",
    "ExperimentTracker",
    "Flavor",
    "FlavorRegistry",
    "ModelDeployer",
    "ServiceInfo",
    "ServiceStatus",
    "Stack",
    "StackComponent",
    "StepComponent",
    "add_config_resolver",
    "engine_flavors",
    "flavors",
    "merge_settings",
    "parse_settings",
    "report_unread_settings",
    "resolve_config",
    "step_settings",
]
