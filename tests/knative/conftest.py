"""Fixtures for the image tests, and the `images` marker: tests that build a large image (torch)
run only with LEPTON_IMAGE_TESTS=1 (`make test-images`), not in every `make test`."""

from __future__ import annotations

import os

import pytest

from tests.knative import images


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "images: builds a large container image; runs only with LEPTON_IMAGE_TESTS=1 (make test-images)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("LEPTON_IMAGE_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="builds a large image; set LEPTON_IMAGE_TESTS=1 (make test-images)")
    for item in items:
        if item.get_closest_marker("images"):
            item.add_marker(skip)


def pytest_collection_finish(session: pytest.Session) -> None:
    """When image tests will run, their images start building now, in the background."""
    if session.config.option.collectonly:
        return
    if any(
        {"runtime_image", "platform_image"} & set(getattr(item, "fixturenames", ())) and not item.get_closest_marker("skip")
        for item in session.items
    ):
        images.prebuild()


def pytest_sessionfinish(session: pytest.Session) -> None:
    images.stop_prebuild()


@pytest.fixture(scope="session")
def runtime_image() -> str:
    return images.runtime_image()


@pytest.fixture(scope="session")
def platform_image() -> str:
    return images.platform_image()
