"""Platform configuration: `$LEPTON_HOME/config.yaml`, overridden by environment variables.

    backend: embedded              # or knative: functions run as Knative Services
    cpu_affinity: true             # embedded: each replica on ceil(cpu) cores of its own (cpus.py)
    requirements: check            # or install: pip installs what a function needs and the platform lacks
    sandbox: auto                  # Landlock per replica where the kernel has it; required: refuse replicas without; off
    sandbox_user: nobody           # when the platform runs as root, replicas run as this user
    gpus: "0,1"                    # the GPUs replicas may use; default: every GPU NVML finds ("none": no GPUs)
    memory_limits: auto            # cgroup v2 where the platform's cgroup was delegated to it, else watchdog; or cgroup, watchdog
    knative:
      namespace: lepton
      broker: default
      broker_url: http://broker-ingress.knative-eventing.svc/lepton/default   # where /v1/events go
      image: ghcr.io/lepton-dev/lepton-runtime:0.1.0     # the default runtime image of function pods
      platform_url: http://lepton-platform.lepton.svc.cluster.local:8765   # how pods reach the platform
    storage:
      backend: s3                  # or local (the default)
      s3:
        endpoint_url: http://127.0.0.1:9000   # MinIO, Ceph RGW; omit for AWS
        region: us-east-1
        bucket_prefix: lepton-
        multipart_threshold: 67108864
        notifications: false       # true once S3 event notifications reach /v1/sources/s3
    limits:
      max_object_bytes: 5368709120     # one bucket upload
      max_event_bytes: 33554432        # one CloudEvent (or batch) at /v1/events
      max_invocation_bytes: 33554432   # one request body to /fn/NAME
      max_secret_bytes: 65536          # one secret's value
      max_job_result_bytes: 33554432   # one async job's result, kept until job_ttl
      max_queued_jobs: 100000          # jobs waiting to run, per function; more get 429
      max_queued_requests: 1000        # requests waiting for a replica, per function (its max_queue wins); more get 503
      max_starting: 4                  # replicas starting at once across the platform; default: the number of cores
      max_functions: 10000             # functions the platform holds; a deploy past it is refused
    job_ttl: 86400                     # seconds a finished job and its result are kept
    metrics_public: true               # false: GET /metrics needs the admin token
    tracing:
      otlp_endpoint: http://127.0.0.1:4318   # export spans over OTLP/HTTP (the otlp extra); default: none exported
      service_name: lepton                   # the platform's service.name; a replica's is its function's name
    logs:
      max_bytes: 10485760              # a replica's log file is rotated at this size (LEPTON_LOG_MAX_BYTES)
      keep: 2                          # rotated files kept per replica, <replica>.log.1 ... (LEPTON_LOG_KEEP)

The Kubernetes API is found from KUBECONFIG, or from the pod's service account in a cluster.
Credentials for S3 come from boto3's usual chain (AWS_ACCESS_KEY_ID, ...) or from
`access_key_id` / `secret_access_key` under `s3:`. Environment twins: LEPTON_STORAGE,
LEPTON_S3_ENDPOINT_URL, LEPTON_S3_REGION, LEPTON_S3_BUCKET_PREFIX,
LEPTON_S3_MULTIPART_THRESHOLD, LEPTON_S3_NOTIFICATIONS, LEPTON_MAX_OBJECT_BYTES,
LEPTON_MAX_EVENT_BYTES, LEPTON_MAX_INVOCATION_BYTES, LEPTON_MAX_SECRET_BYTES, LEPTON_MAX_JOB_RESULT_BYTES, LEPTON_MAX_QUEUED_JOBS, LEPTON_MAX_QUEUED_REQUESTS,
LEPTON_MAX_STARTING, LEPTON_MAX_FUNCTIONS, LEPTON_JOB_TTL, LEPTON_METRICS_PUBLIC, LEPTON_BACKEND, LEPTON_KNATIVE_NAMESPACE, LEPTON_KNATIVE_BROKER,
LEPTON_KNATIVE_BROKER_URL, LEPTON_KNATIVE_IMAGE, LEPTON_KNATIVE_PLATFORM_URL, LEPTON_KNATIVE_READY_TIMEOUT, LEPTON_CPU_AFFINITY,
LEPTON_REQUIREMENTS, LEPTON_OTLP_ENDPOINT, LEPTON_OTLP_SERVICE_NAME, LEPTON_SANDBOX, LEPTON_SANDBOX_USER, LEPTON_GPUS, LEPTON_MEMORY_LIMITS. pip reads its own configuration (pip.conf, PIP_INDEX_URL, PIP_FIND_LINKS).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lepton.errors import LeptonError


class ConfigError(LeptonError):
    exit_code = 2


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class S3Config(_Section):
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    bucket_prefix: str = Field(default="", pattern=r"^[a-z0-9.-]{0,40}$")
    multipart_threshold: int = Field(default=64 << 20, ge=5 << 20)
    notifications: bool = False


class StorageConfig(_Section):
    backend: Literal["local", "s3"] = "local"
    s3: S3Config = S3Config()


class KnativeConfig(_Section):
    namespace: str = "default"
    broker: str = "default"
    broker_url: str | None = None
    image: str = "ghcr.io/lepton-dev/lepton-runtime:0.1.0"
    platform_url: str = "http://lepton-platform.lepton.svc.cluster.local:8765"
    kubeconfig: str | None = None
    ready_timeout: float = Field(default=300, gt=0)


class Limits(_Section):
    max_object_bytes: int = Field(default=5 << 30, gt=0)
    max_event_bytes: int = Field(default=32 << 20, gt=0)
    max_invocation_bytes: int = Field(default=32 << 20, gt=0)
    max_secret_bytes: int = Field(default=64 << 10, gt=0)
    max_job_result_bytes: int = Field(default=32 << 20, gt=0)
    max_queued_jobs: int = Field(default=100_000, gt=0)
    max_queued_requests: int = Field(default=1000, gt=0)
    max_starting: int | None = Field(default=None, gt=0)
    max_functions: int = Field(default=10_000, gt=0)


class LogsConfig(_Section):
    max_bytes: int = Field(default=10 << 20, ge=4096)
    keep: int = Field(default=2, ge=0, le=20)


class TracingConfig(_Section):
    otlp_endpoint: str | None = Field(default=None, pattern=r"^https?://\S+$")
    service_name: str = Field(default="lepton", min_length=1)


class Config(_Section):
    backend: Literal["embedded", "knative"] = "embedded"
    cpu_affinity: bool = True
    requirements: Literal["check", "install"] = "check"
    sandbox: Literal["auto", "required", "off"] = "auto"
    sandbox_user: str = Field(default="nobody", min_length=1)
    gpus: str | None = Field(default=None, pattern=r"^(none|\d+(,\d+)*)$")
    memory_limits: Literal["auto", "cgroup", "watchdog"] = "auto"
    job_ttl: float = Field(default=24 * 3600.0, gt=0)
    metrics_public: bool = True
    knative: KnativeConfig = KnativeConfig()
    storage: StorageConfig = StorageConfig()
    limits: Limits = Limits()
    tracing: TracingConfig = TracingConfig()
    logs: LogsConfig = LogsConfig()


ENV = {
    "LEPTON_BACKEND": ("backend",),
    "LEPTON_CPU_AFFINITY": ("cpu_affinity",),
    "LEPTON_REQUIREMENTS": ("requirements",),
    "LEPTON_SANDBOX": ("sandbox",),
    "LEPTON_SANDBOX_USER": ("sandbox_user",),
    "LEPTON_GPUS": ("gpus",),
    "LEPTON_MEMORY_LIMITS": ("memory_limits",),
    "LEPTON_KNATIVE_NAMESPACE": ("knative", "namespace"),
    "LEPTON_KNATIVE_BROKER": ("knative", "broker"),
    "LEPTON_KNATIVE_BROKER_URL": ("knative", "broker_url"),
    "LEPTON_KNATIVE_IMAGE": ("knative", "image"),
    "LEPTON_KNATIVE_PLATFORM_URL": ("knative", "platform_url"),
    "LEPTON_KNATIVE_READY_TIMEOUT": ("knative", "ready_timeout"),
    "LEPTON_STORAGE": ("storage", "backend"),
    "LEPTON_S3_ENDPOINT_URL": ("storage", "s3", "endpoint_url"),
    "LEPTON_S3_REGION": ("storage", "s3", "region"),
    "LEPTON_S3_BUCKET_PREFIX": ("storage", "s3", "bucket_prefix"),
    "LEPTON_S3_MULTIPART_THRESHOLD": ("storage", "s3", "multipart_threshold"),
    "LEPTON_S3_NOTIFICATIONS": ("storage", "s3", "notifications"),
    "LEPTON_MAX_OBJECT_BYTES": ("limits", "max_object_bytes"),
    "LEPTON_MAX_EVENT_BYTES": ("limits", "max_event_bytes"),
    "LEPTON_MAX_INVOCATION_BYTES": ("limits", "max_invocation_bytes"),
    "LEPTON_MAX_SECRET_BYTES": ("limits", "max_secret_bytes"),
    "LEPTON_MAX_JOB_RESULT_BYTES": ("limits", "max_job_result_bytes"),
    "LEPTON_MAX_QUEUED_JOBS": ("limits", "max_queued_jobs"),
    "LEPTON_MAX_QUEUED_REQUESTS": ("limits", "max_queued_requests"),
    "LEPTON_MAX_STARTING": ("limits", "max_starting"),
    "LEPTON_MAX_FUNCTIONS": ("limits", "max_functions"),
    "LEPTON_JOB_TTL": ("job_ttl",),
    "LEPTON_METRICS_PUBLIC": ("metrics_public",),
    "LEPTON_OTLP_ENDPOINT": ("tracing", "otlp_endpoint"),
    "LEPTON_OTLP_SERVICE_NAME": ("tracing", "service_name"),
    "LEPTON_LOG_MAX_BYTES": ("logs", "max_bytes"),
    "LEPTON_LOG_KEEP": ("logs", "keep"),
}


def load_config(home: Path) -> Config:
    path = home / "config.yaml"
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
    for var, where in ENV.items():
        if os.environ.get(var):
            node = raw
            for depth, part in enumerate(where[:-1]):
                if node.get(part) is None:  # absent, or left empty (`storage:`)
                    node[part] = {}
                node = node[part]
                if not isinstance(node, dict):
                    raise ConfigError(
                        f"configuration {'.'.join(where[: depth + 1])}: {path} sets it to {node!r}, "
                        f"but {var} sets {'.'.join(where)} inside it; make it a mapping"
                    )
            node[where[-1]] = os.environ[var]
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:  # the message names the first error; the cause lists them all
        err = exc.errors()[0]
        raise ConfigError(f"configuration {'.'.join(map(str, err['loc']))}: {err['msg']} (from {path} or LEPTON_* variables)") from exc
    return config
