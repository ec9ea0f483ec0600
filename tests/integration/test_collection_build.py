"""ansible-galaxy collection build from a checkout that has been used: what the tools leave behind never ships."""

import os
import shutil
import subprocess
import sys
import tarfile

import pytest

from .conftest import REPO_ROOT

pytestmark = pytest.mark.integration

# What make test, make bench and ansible-lint leave in a checkout, none of it part of the collection.
LEFTOVERS = (
    ".venv/pyvenv.cfg",
    ".venv-bench/pyvenv.cfg",
    ".venv-bench/lib/python3.11/site-packages/boto3/__init__.py",
    ".ansible/collections/ansible_collections/amazon/aws/galaxy.yml",
    "tests/output/bot/ansible-test-sanity.json",
    ".pytest_cache/v/cache/lastfailed",
    ".ruff_cache/0.5.0/cache",
    ".hypothesis/examples/0/1",
)


def test_a_build_ships_none_of_the_tools_leftovers(tmp_path):
    source = tmp_path / "source"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT, check=True, capture_output=True)
    for name in filter(None, files.stdout.decode().split("\0")):
        if os.path.isfile(os.path.join(REPO_ROOT, name)):
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.join(REPO_ROOT, name), source / name)
    for leftover in LEFTOVERS:
        (source / leftover).parent.mkdir(parents=True, exist_ok=True)
        (source / leftover).write_text("home = /usr/bin\n")
    galaxy = os.path.join(os.path.dirname(sys.executable), "ansible-galaxy")
    subprocess.run([galaxy, "collection", "build", str(source), "--output-path", str(tmp_path / "build")], check=True, capture_output=True)
    (tarball,) = (tmp_path / "build").glob("cmk-atlas-*.tar.gz")
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    top = {name.split("/", 1)[0] for name in names}
    left = {leftover.split("/", 1)[0] if not leftover.startswith("tests/") else "tests/output" for leftover in LEFTOVERS}
    shipped = [name for name in names if any(name == path or name.startswith(path + "/") for path in left)]
    assert shipped == [], shipped
    assert {"MANIFEST.json", "plugins", "roles", "playbooks", "meta"} - top == set(), sorted(top)
    assert "roles/enable/meta/argument_specs.yml" in names
