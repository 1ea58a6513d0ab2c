"""The config model: tiers, services, integrations, policy, state.

Loading, discovery and located error messages live in :mod:`opsctl.configfile`.
The models reject unknown keys; cross references (a service's tier, its team,
its environments, duplicate names) are checked by :func:`cross_check`.

One module per part: :mod:`~opsctl.settings.types` (shared field types and validators),
:mod:`~opsctl.settings.tiers`, :mod:`~opsctl.settings.services`,
:mod:`~opsctl.settings.integrations` (with per-environment overrides and the state store),
:mod:`~opsctl.settings.policy` and :mod:`~opsctl.settings.config` (the whole file, its cross
checks, secret references and JSON schema). Import from here: ``from opsctl.settings import Config``.
Importing this package builds every pydantic model, so the CLI's start-up path imports it only
inside the functions that need it.
"""

from __future__ import annotations

from opsctl.settings.config import Config, cross_check, json_schema, references
from opsctl.settings.deploy import AnalysisPolicy, DeployPolicy
from opsctl.settings.integrations import (
    AwsIntegration,
    AwsOverride,
    EnvironmentSettings,
    IntegrationOverrides,
    Integrations,
    KubernetesIntegration,
    KubernetesOverride,
    PagerDutyIntegration,
    PagerDutyOverride,
    PrometheusIntegration,
    PrometheusOverride,
    StateConfig,
    VaultIntegration,
    VaultOverride,
)
from opsctl.settings.policy import BusinessHours, ConfirmRule, Policy, SeverityPolicy, Team, Weekday
from opsctl.settings.services import (
    Backup,
    Cache,
    Database,
    Dns,
    EnvironmentOverride,
    Kubernetes,
    PagerDutyService,
    Prometheus,
    Service,
    Traffic,
)
from opsctl.settings.tiers import BUILTIN_TIERS, Tier, TierOverride
from opsctl.settings.types import (
    REFERENCE_FIELD,
    Duration,
    Given,
    Model,
    Name,
    SecretRef,
    TimeZone,
    Url,
    UrlOrSecret,
    plaintext_password,
)

__all__ = [
    "BUILTIN_TIERS",
    "REFERENCE_FIELD",
    "AnalysisPolicy",
    "AwsIntegration",
    "AwsOverride",
    "Backup",
    "BusinessHours",
    "Cache",
    "Config",
    "ConfirmRule",
    "Database",
    "DeployPolicy",
    "Dns",
    "Duration",
    "EnvironmentOverride",
    "EnvironmentSettings",
    "Given",
    "IntegrationOverrides",
    "Integrations",
    "Kubernetes",
    "KubernetesIntegration",
    "KubernetesOverride",
    "Model",
    "Name",
    "PagerDutyIntegration",
    "PagerDutyOverride",
    "PagerDutyService",
    "Policy",
    "Prometheus",
    "PrometheusIntegration",
    "PrometheusOverride",
    "SecretRef",
    "Service",
    "SeverityPolicy",
    "StateConfig",
    "Team",
    "Tier",
    "TierOverride",
    "TimeZone",
    "Traffic",
    "Url",
    "UrlOrSecret",
    "VaultIntegration",
    "VaultOverride",
    "Weekday",
    "cross_check",
    "json_schema",
    "plaintext_password",
    "references",
]
