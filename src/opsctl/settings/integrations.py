"""The systems opsctl talks to: the global ``integrations``, each environment's overrides of
them (:class:`EnvironmentSettings`), and the state store (:class:`StateConfig`).

Merging an environment's overrides over the global blocks is
:meth:`opsctl.settings.Config.integrations_for`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field

from opsctl.settings.ratelimit import RateLimitOverride
from opsctl.settings.types import Duration, Given, Model, SecretRef, Url, UrlOrSecret


class PagerDutyIntegration(Model):
    token: SecretRef | None = Field(default=None, description="API token (secret reference)")
    from_: str | None = Field(default=None, alias="from", description="email sent in the From header")
    base_url: Url = "https://api.pagerduty.com"
    ca_bundle: str | None = Field(default=None, description="CA bundle for a PagerDuty-compatible proxy")
    timeout: Duration = Field(default=timedelta(seconds=30), description="total time budget per call, retries included")
    request_timeout: Duration = Field(default=timedelta(seconds=10), description="time limit of one HTTP request")


class PrometheusIntegration(Model):
    url: Url = "http://127.0.0.1:9090"
    ca_bundle: str | None = Field(default=None, description="CA bundle for an https Prometheus")
    timeout: Duration = Field(
        default=timedelta(seconds=15), description="total time budget per query, retries included"
    )


class AwsIntegration(Model):
    region: str = "eu-central-1"
    secondary_region: str | None = "eu-west-1"
    endpoint_url: Url | None = None
    profile: str | None = None
    ca_bundle: str | None = Field(
        default=None, description="CA bundle for AWS endpoints (passed explicitly: AWS_CA_BUNDLE never overrides it)"
    )
    mfa_serial: str | None = Field(default=None, description="the MFA device's serial number or ARN (STS sessions)")


class KubernetesIntegration(Model):
    kubeconfig: str | None = None
    context: str | None = Field(default=None, description="kubeconfig context (default: its current context)")
    timeout: Duration = Field(default=timedelta(seconds=30), description="total time budget per call, retries included")
    request_timeout: Duration = Field(default=timedelta(seconds=10), description="time limit of one API request")


class VaultIntegration(Model):
    address: Url = "http://127.0.0.1:8200"
    namespace: str | None = None
    mount: str = "secret"


class Integrations(Model):
    pagerduty: PagerDutyIntegration = PagerDutyIntegration()
    prometheus: PrometheusIntegration = PrometheusIntegration()
    aws: AwsIntegration = AwsIntegration()
    kubernetes: KubernetesIntegration = KubernetesIntegration()
    vault: VaultIntegration = VaultIntegration()


# Per-environment overrides: the same fields, each absent unless it differs from the global
# integrations (tests/unit/test_settings.py keeps the two field lists in step).


class PagerDutyOverride(Model):
    token: SecretRef | None = None
    from_: str | None = Field(default=None, alias="from")
    base_url: Given[Url] = None
    ca_bundle: str | None = None
    timeout: Given[Duration] = None
    request_timeout: Given[Duration] = None


class PrometheusOverride(Model):
    url: Given[Url] = None
    ca_bundle: str | None = None
    timeout: Given[Duration] = None


class AwsOverride(Model):
    region: Given[str] = None
    secondary_region: str | None = None
    endpoint_url: Url | None = None
    profile: str | None = None
    ca_bundle: str | None = None
    mfa_serial: str | None = None


class KubernetesOverride(Model):
    kubeconfig: str | None = None
    context: str | None = None
    timeout: Given[Duration] = None
    request_timeout: Given[Duration] = None


class VaultOverride(Model):
    address: Given[Url] = None
    namespace: str | None = None
    mount: Given[str] = None


class IntegrationOverrides(Model):
    pagerduty: PagerDutyOverride | None = None
    prometheus: PrometheusOverride | None = None
    aws: AwsOverride | None = None
    kubernetes: KubernetesOverride | None = None
    vault: VaultOverride | None = None


class EnvironmentSettings(Model):
    """One environment; its ``integrations`` and ``ratelimit`` name only the fields that differ
    from the global ones."""

    integrations: IntegrationOverrides = IntegrationOverrides()
    ratelimit: RateLimitOverride | None = None


class StateConfig(Model):
    url: UrlOrSecret | None = Field(
        default=None, description="postgresql:// URL (or secret reference) for a shared store; unset = SQLite"
    )
    locks: Literal["state", "redis"] = "state"
    redis_url: UrlOrSecret | None = None
