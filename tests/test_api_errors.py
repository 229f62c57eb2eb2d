"""The API's one error handler: a LeptonError answers `{"detail": message}` with its own
status and headers, and one that is the platform's fault is logged with its cause. (The
embedded tests check each route's statuses and messages end to end.)"""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lepton.errors import ArtifactError, BucketError, LeptonError, SpecError
from lepton_platform.auth import BEARER
from lepton_platform.buckets import BucketNotEmpty, CannotStore, NoSuchBucket, StorageError
from lepton_platform.buckets.s3 import S3Error
from lepton_platform.control_api import answer_error
from lepton_platform.errors import Conflict, Denied, DeployFailed, NotFound
from lepton_platform.traffic import InvalidTraffic
from lepton_platform.vault import SecretError, SecretMissing, SecretUnreadable


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (LeptonError("x"), 500),
        (SpecError("x"), 422),
        (ArtifactError("x"), 400),
        (BucketError("x"), 400),
        (NotFound("x"), 404),
        (Conflict("x"), 409),
        (DeployFailed("x"), 422),
        (InvalidTraffic("x"), 422),
        (Denied("x"), 403),
        (Denied("x", 401, BEARER), 401),
        (StorageError("x"), 400),
        (NoSuchBucket("b"), 404),
        (BucketNotEmpty("b"), 409),
        (CannotStore("x"), 507),
        (S3Error("x"), 502),
        (SecretError("x"), 500),
        (SecretError("x", 409), 409),
        (SecretMissing("x"), 404),
        (SecretUnreadable("x"), 500),
    ],
)
def test_each_error_carries_its_status(error, status):
    assert error.status == status


def app_raising(error: Exception) -> FastAPI:
    app = FastAPI()
    app.add_exception_handler(LeptonError, answer_error)

    @app.get("/")
    async def fails() -> None:
        raise error

    return app


def test_the_answer_has_the_status_the_message_and_the_headers():
    with TestClient(app_raising(Denied("missing bearer token", 401, BEARER))) as client:
        response = client.get("/")
    assert response.status_code == 401
    assert response.json() == {"detail": "missing bearer token"}
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_platform_fault_is_logged_with_its_cause(caplog):
    try:
        raise OSError(28, "No space left on device")
    except OSError as exc:
        error = CannotStore("the platform could not store b/k (No space left on device)")
        error.__cause__ = exc
    with caplog.at_level(logging.ERROR, "lepton.platform.api"), TestClient(app_raising(error)) as client:
        response = client.get("/")
    assert response.status_code == 507 and response.json() == {"detail": str(error)}
    [record] = caplog.records
    assert "GET / failed" in record.getMessage() and record.exc_info[1] is error


def test_a_callers_mistake_is_not_logged(caplog):
    with caplog.at_level(logging.ERROR, "lepton.platform.api"), TestClient(app_raising(NotFound("function 'x' not found"))) as client:
        assert client.get("/").status_code == 404
    assert not caplog.records
