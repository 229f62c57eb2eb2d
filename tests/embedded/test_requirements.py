"""`requirements: install`: what a function needs and the platform lacks is installed with pip
into a directory for its revision (platform/lepton_platform/installs.py)."""

import subprocess
import sys

import pytest

import lepton
from tests.embedded.conftest import PlatformProcess, start_platform
from tests.helpers import FUNCTIONS


@pytest.fixture
def installing(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(FUNCTIONS / "packages" / "sample_extra"),
        ],
        check=True,
        capture_output=True,
    )
    home = tmp_path / "home"
    env = {"LEPTON_REQUIREMENTS": "install", "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}
    running = PlatformProcess(start_platform(home, tmp_path / "platform.log", env=env), home, tmp_path / "src")
    yield running
    running.process.stop()


def test_a_missing_package_is_installed_for_the_revision(installing):
    (deployed,) = installing.deploy(installing.source("extra_package.py"), "extra")
    assert deployed["status"] == "ready"
    with installing.http() as http:
        assert http.post("/fn/extra", json={}).json() == "installed for this revision"
    (folder,) = [p for p in (installing.home / "packages").iterdir() if p.is_dir()]
    assert (folder / "lepton_sample_extra" / "__init__.py").exists()


def test_a_package_pip_cannot_find_fails_the_deploy_naming_it(installing):
    with pytest.raises(lepton.InvocationError) as info:
        installing.deploy(installing.source("extra_package.py"), "unobtainable")
    assert info.value.status_code == 422
    assert "could not install definitely-not-installed-pkg>=1" in str(info.value)
    assert "definitely-not-installed-pkg" in str(info.value).splitlines()[0]
