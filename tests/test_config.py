"""`load_config` (platform/lepton_platform/config.py): `$LEPTON_HOME/config.yaml` overridden by
its LEPTON_* environment twins, and a one-line ConfigError naming the key and the problem for
anything it cannot use."""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path

import pytest

from lepton_platform import config as config_module
from lepton_platform.config import ENV, Config, ConfigError, load_config


@pytest.fixture(autouse=True)
def no_ambient_twins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets the variables it means; none leak in from the machine's environment."""
    for var in ENV:
        monkeypatch.delenv(var, raising=False)


def load(tmp_path: Path, text: str | None) -> Config:
    if text is not None:
        (tmp_path / "config.yaml").write_text(textwrap.dedent(text))
    return load_config(tmp_path)


def refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    message = str(caught.value)
    assert "\n" not in message.split(": not valid YAML")[0], "one line up to the YAML parser's own detail"
    return message


def test_no_file_means_the_defaults(tmp_path):
    assert load(tmp_path, None) == Config()
    assert load(tmp_path, "") == Config()  # an empty file too


def test_the_documented_example_loads(tmp_path):
    doc = inspect.getdoc(config_module)
    example = doc.split("\n\n")[1]  # the indented config.yaml after the first line
    assert example.lstrip().startswith("backend:")
    loaded = load(tmp_path, example)
    assert loaded.storage.backend == "s3" and loaded.limits.max_starting == 4 and loaded.gpus == "0,1"
    assert loaded.tracing.otlp_endpoint == "http://127.0.0.1:4318" and loaded.logs.keep == 2


@pytest.mark.parametrize(
    "text, key, problem",
    [
        ("colour: red", "colour", "Extra inputs are not permitted"),
        ("limits:\n  max_object_byte: 10", "limits.max_object_byte", "Extra inputs are not permitted"),
        ("storage:\n  s3:\n    bucket: x", "storage.s3.bucket", "Extra inputs are not permitted"),
        ("1: x", "1", "Keys should be strings"),
    ],
)
def test_an_unknown_key_is_refused_by_its_dotted_path(tmp_path, text, key, problem):
    assert refused(tmp_path, text).startswith(f"configuration {key}: {problem} (from {tmp_path / 'config.yaml'} or LEPTON_* variables)")


@pytest.mark.parametrize(
    "text, key, problem",
    [
        ("limits:\n  max_queued_jobs: lots", "limits.max_queued_jobs", "valid integer"),
        ("limits:\n  max_object_bytes: 1.5", "limits.max_object_bytes", "fractional part"),
        ("metrics_public: maybe", "metrics_public", "valid boolean"),
        ("job_ttl: soon", "job_ttl", "valid number"),
        ("knative: 5", "knative", "valid dictionary"),
        ("storage: s3", "storage", "valid dictionary"),  # meant `storage: {backend: s3}`
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_the_key(tmp_path, text, key, problem):
    message = refused(tmp_path, text)
    assert message.startswith(f"configuration {key}: ") and problem in message


@pytest.mark.parametrize(
    "text, key, problem",
    [
        ("backend: kubernetes", "backend", "'embedded' or 'knative'"),
        ("sandbox: maybe", "sandbox", "'auto', 'required' or 'off'"),
        ("memory_limits: lots", "memory_limits", "'auto', 'cgroup' or 'watchdog'"),
        ("gpus: '0,a'", "gpus", "should match pattern"),
        ("sandbox_user: ''", "sandbox_user", "at least 1 character"),
        ("job_ttl: 0", "job_ttl", "greater than 0"),
        ("limits:\n  max_starting: 0", "limits.max_starting", "greater than 0"),
        ("limits:\n  max_queued_requests: -1", "limits.max_queued_requests", "greater than 0"),
        ("logs:\n  keep: 21", "logs.keep", "less than or equal to 20"),
        ("logs:\n  max_bytes: 100", "logs.max_bytes", "greater than or equal to 4096"),
        ("storage:\n  s3:\n    multipart_threshold: 1024", "storage.s3.multipart_threshold", "greater than or equal to 5242880"),
        ("storage:\n  s3:\n    bucket_prefix: Bad_Prefix", "storage.s3.bucket_prefix", "should match pattern"),
        ("knative:\n  ready_timeout: 0", "knative.ready_timeout", "greater than 0"),
        ("tracing:\n  otlp_endpoint: collector:4318", "tracing.otlp_endpoint", "should match pattern"),
    ],
)
def test_a_bad_value_is_refused_naming_the_key_and_the_problem(tmp_path, text, key, problem):
    message = refused(tmp_path, text)
    assert message.startswith(f"configuration {key}: ") and problem in message, message


def test_a_file_that_is_not_yaml_or_not_a_mapping_is_refused(tmp_path):
    path = tmp_path / "config.yaml"
    assert refused(tmp_path, "limits: [\n").startswith(f"{path}: not valid YAML: ")
    assert refused(tmp_path, "- backend: knative\n") == f"{path}: expected a mapping at the top level"


def test_an_environment_twin_overrides_the_file(tmp_path, monkeypatch):
    text = "backend: embedded\nlimits:\n  max_queued_requests: 5\n  max_functions: 20\nmetrics_public: true\n"
    monkeypatch.setenv("LEPTON_MAX_QUEUED_REQUESTS", "7")
    monkeypatch.setenv("LEPTON_METRICS_PUBLIC", "false")
    monkeypatch.setenv("LEPTON_BACKEND", "knative")
    loaded = load(tmp_path, text)
    assert (loaded.limits.max_queued_requests, loaded.metrics_public, loaded.backend) == (7, False, "knative")
    assert loaded.limits.max_functions == 20  # the file's other keys in the section stay


def test_an_environment_twin_fills_a_section_the_file_leaves_out(tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTON_S3_REGION", "eu-west-1")
    monkeypatch.setenv("LEPTON_LOG_KEEP", "5")
    loaded = load(tmp_path, "backend: embedded\n")
    assert loaded.storage.s3.region == "eu-west-1" and loaded.logs.keep == 5
    assert load(tmp_path, None).storage.s3.region == "eu-west-1"  # with no file at all too


def test_an_empty_environment_twin_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTON_BACKEND", "")
    assert load(tmp_path, "backend: knative\n").backend == "knative"


def test_a_bad_environment_twin_is_refused_naming_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTON_MAX_STARTING", "none")
    message = refused(tmp_path, "limits:\n  max_starting: 4\n")
    assert message.startswith("configuration limits.max_starting: Input should be a valid integer")
    assert message.endswith("or LEPTON_* variables)")


@pytest.mark.parametrize("var", sorted(ENV))
def test_every_environment_twin_sets_a_real_setting_and_is_documented(var):
    model: type = Config
    for part in ENV[var]:
        assert part in model.model_fields, f"{var} points at {'.'.join(ENV[var])}, which Config does not have"
        model = model.model_fields[part].annotation
    assert var in (config_module.__doc__ or ""), f"{var} is not listed in config.py's docstring"


def test_an_environment_twin_fills_a_section_left_empty_and_refuses_one_that_is_not_a_mapping(tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTON_S3_REGION", "eu-west-1")
    assert load(tmp_path, "storage:\n").storage.s3.region == "eu-west-1"
    with pytest.raises(ConfigError, match=r"^configuration storage: .* sets it to 's3', but LEPTON_S3_REGION sets storage.s3.region"):
        load(tmp_path, "storage: s3\n")
