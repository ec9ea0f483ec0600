"""The execution environment definition: ``ansible-builder create`` writes a complete build context.

``create`` is offline: it validates execution-environment.yml and writes the Containerfile and the
files it copies; building the image needs a registry and is not part of the tests."""

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from .conftest import REPO_ROOT

pytestmark = pytest.mark.integration

BIN_DIR = os.path.dirname(sys.executable)
BUILDER_SCRIPTS = ("assemble", "check_ansible", "check_galaxy", "entrypoint", "install-from-bindep", "introspect.py", "pip_install")


def load(path):
    with open(path) as handle:
        return yaml.safe_load(handle)


def collection_version():
    return load(os.path.join(REPO_ROOT, "galaxy.yml"))["version"]


def test_the_definition_pins_ansible_and_names_this_collection_version():
    definition = load(os.path.join(REPO_ROOT, "execution-environment.yml"))
    assert definition["version"] == 3
    dependencies = definition["dependencies"]
    with open(os.path.join(REPO_ROOT, "requirements", "test.txt")) as handle:
        test_pins = dict(line.split("==") for line in handle.read().split() if "==" in line)
    # The image runs what the collection is tested with.
    assert dependencies["ansible_core"]["package_pip"] == "ansible-core==" + test_pins["ansible-core"]
    assert dependencies["ansible_runner"]["package_pip"] == "ansible-runner==" + test_pins["ansible-runner"]
    assert dependencies["python"] == "requirements.txt"
    tarball = f"cmk-atlas-{collection_version()}.tar.gz"
    assert dependencies["galaxy"]["collections"] == [{"name": f"collections/{tarball}", "type": "file"}]
    assert definition["additional_build_files"] == [{"src": f"build/ee/{tarball}", "dest": "collections"}]
    # The collection ships what ansible-builder's introspection reads from it.
    assert load(os.path.join(REPO_ROOT, "meta", "execution-environment.yml")) == {"version": 1, "dependencies": {"python": "requirements.txt"}}


def test_ansible_builder_create_writes_the_build_context(installed_collection, tmp_path):
    # A copy of the definition and the files it names, laid out as in the checkout, with the collection tarball where
    # `ansible-galaxy collection build --output-path build/ee` puts it (the one the test session built and installed).
    source = tmp_path / "checkout"
    (source / "build" / "ee").mkdir(parents=True)
    for name in ("execution-environment.yml", "requirements.txt"):
        shutil.copy2(os.path.join(REPO_ROOT, name), source / name)
    (tarball,) = (installed_collection.parent / "build").glob("cmk-atlas-*.tar.gz")
    assert tarball.name == f"cmk-atlas-{collection_version()}.tar.gz"
    shutil.copy2(tarball, source / "build" / "ee" / tarball.name)

    context = tmp_path / "context"
    proc = subprocess.run(
        [
            os.path.join(BIN_DIR, "ansible-builder"),
            "create",
            "--file",
            "execution-environment.yml",
            "--context",
            str(context),
            "--output-filename",
            "Containerfile",
        ],
        cwd=str(source),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    containerfile = (context / "Containerfile").read_text()
    assert 'ARG EE_BASE_IMAGE="quay.io/centos/centos:stream9"' in containerfile
    assert 'ARG PYCMD="/usr/bin/python3.11"' in containerfile
    assert 'ARG ANSIBLE_INSTALL_REFS="ansible-core==2.19.14 ansible-runner==2.4.3"' in containerfile
    install = 'ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml --collections-path "/usr/share/ansible/collections"'
    assert install in containerfile
    assert "introspect.py introspect --user-pip=requirements.txt" in containerfile
    assert "ENV ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3.11" in containerfile

    build = context / "_build"
    # The collection requirements, and the tarball they install, at the path they name (relative to WORKDIR /build).
    galaxy = load(build / "requirements.yml")
    (requirement,) = galaxy["collections"]
    assert requirement["type"] == "file"
    assert (build / requirement["name"]).read_bytes() == tarball.read_bytes()
    # The Python requirements.
    python = [line.split(">=")[0].split("==")[0].strip() for line in (build / "requirements.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert {"boto3", "botocore", "requests"} <= set(python)
    for script in BUILDER_SCRIPTS:
        assert (build / "scripts" / script).is_file(), script


def test_introspection_finds_the_python_requirements_in_the_installed_collection(installed_collection):
    # What the image's builder stage runs on the collections the galaxy stage installed.
    import ansible_builder

    introspect = os.path.join(os.path.dirname(ansible_builder.__file__), "_target_scripts", "introspect.py")
    proc = subprocess.run([sys.executable, introspect, "introspect", str(installed_collection)], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = yaml.safe_load(proc.stdout)
    assert {line.split(">=")[0] for line in found["python"] if "from collection cmk.atlas" in line} == {"boto3", "botocore", "requests"}
