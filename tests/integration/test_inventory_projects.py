"""The inventory plugin cmk.atlas.projects for real: ansible-inventory --list against the test bed,
and a playbook over its hosts."""

import json
import os
import subprocess
import sys

import pytest
import yaml
from emulators.atlas.state import DEFAULT_ORG_ID

BIN_DIR = os.path.dirname(sys.executable)
PLAIN = "660000000000000000000011"
LEGACY = "660000000000000000000012"
ENABLED = {"ANSIBLE_INVENTORY_ENABLED": "cmk.atlas.projects,ansible.builtin.yaml,ansible.builtin.ini"}

pytestmark = pytest.mark.integration


def write_source(tmp_path, config, name="demo.atlas_projects.yml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"plugin": "cmk.atlas.projects", **config}, sort_keys=False))
    return str(path)


def ansible_inventory(installed_collection, env, tmp_path, source, *extra):
    run_env = {k: v for k, v in env.items() if not k.startswith("ANSIBLE_")}
    run_env.update(
        {
            "ANSIBLE_COLLECTIONS_PATH": str(installed_collection),
            "ANSIBLE_HOME": str(tmp_path / "home"),
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
            "ANSIBLE_NOCOLOR": "1",
            "PATH": BIN_DIR + os.pathsep + env.get("PATH", ""),
            **ENABLED,
        }
    )
    args = [os.path.join(BIN_DIR, "ansible-inventory"), "-i", source, "--list", *extra]
    return subprocess.run(args, cwd=str(tmp_path), env=run_env, capture_output=True, text=True, timeout=300, check=False)


def listed(proc):
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Without this, ansible-inventory only warns when a source fails to parse.
    assert "Unable to parse" not in proc.stderr, proc.stderr
    return unwrapped(json.loads(proc.stdout))


def unwrapped(value):
    """The JSON without the markers ansible-inventory puts on values not trusted as templates (all Atlas data)."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {key: unwrapped(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrapped(item) for item in value]
    return value


@pytest.mark.scenario("demo")
def test_inventory_list(installed_collection, testbed_env, tmp_path):
    source = write_source(tmp_path, {"compose": {"cmk_atlas_iam_role_name": "'atlas-kms-' ~ inventory_hostname"}})
    data = listed(ansible_inventory(installed_collection, testbed_env, tmp_path, source))
    assert sorted(data["atlas_projects"]["hosts"]) == ["cmk-demo-legacy", "cmk-demo-plain"]
    assert data["cmk_atlas_none"]["hosts"] == ["cmk-demo-plain"]
    assert data["cmk_atlas_credentials"]["hosts"] == ["cmk-demo-legacy"]
    assert not data.get("cmk_atlas_role", {}).get("hosts")
    hostvars = data["_meta"]["hostvars"]
    plain, legacy = hostvars["cmk-demo-plain"], hostvars["cmk-demo-legacy"]
    assert plain["cmk_atlas_project_id"] == PLAIN
    assert plain["cmk_atlas_project_name"] == "cmk-demo-plain"
    assert plain["cmk_atlas_org_id"]
    assert plain["cmk_atlas_iam_role_name"] == "atlas-kms-cmk-demo-plain"
    assert plain["cmk_atlas_encryption_at_rest"]["access_method"] == "none"
    assert legacy["cmk_atlas_project_id"] == LEGACY
    ear = legacy["cmk_atlas_encryption_at_rest"]
    assert ear["access_method"] == "credentials"
    assert ear["region"] == "US_EAST_1"
    assert ear["aws_region"] == "us-east-1"
    assert ear["customer_master_key_id"]
    assert ear["valid"] is True
    text = json.dumps(data)
    assert testbed_env["MONGODB_ATLAS_PRIVATE_KEY"] not in text
    assert "secret" not in text.lower()


@pytest.mark.scenario("demo")
def test_filters_organization_and_cache(installed_collection, testbed_env, tmp_path):
    cache_dir = tmp_path / "cache"
    source = write_source(
        tmp_path,
        {
            "organization_id": DEFAULT_ORG_ID,
            "name_pattern": "legacy$",
            "hostname": "id",
            "group": "",
            "cache": True,
            "cache_plugin": "ansible.builtin.jsonfile",
            "cache_connection": str(cache_dir),
        },
    )
    data = listed(ansible_inventory(installed_collection, testbed_env, tmp_path, source))
    assert data["cmk_atlas_credentials"]["hosts"] == [LEGACY]
    assert "atlas_projects" not in data
    cached = "".join(path.read_text() for path in cache_dir.iterdir())
    assert LEGACY in cached
    for secret in (testbed_env["MONGODB_ATLAS_PRIVATE_KEY"], testbed_env["MONGODB_ATLAS_PUBLIC_KEY"], "private_key"):
        assert secret not in cached
    # The second listing is answered from the cache, even without credentials.
    no_credentials = {k: v for k, v in testbed_env.items() if not k.startswith("MONGODB_ATLAS_") or k == "MONGODB_ATLAS_BASE_URL"}
    again = listed(ansible_inventory(installed_collection, no_credentials, tmp_path, source))
    assert again["cmk_atlas_credentials"]["hosts"] == [LEGACY]


@pytest.mark.scenario("demo")
def test_wrong_credentials_fail_the_source(installed_collection, testbed_env, tmp_path):
    source = write_source(tmp_path, {"private_key": "not-the-private-key"})
    proc = ansible_inventory(installed_collection, testbed_env, tmp_path, source)
    assert "could not list the Atlas projects" in proc.stderr
    assert "not-the-private-key" not in proc.stdout + proc.stderr


@pytest.mark.scenario("demo")
def test_playbook_over_the_inventory(run_playbook, testbed_env, tmp_path):
    source = write_source(
        tmp_path,
        {"compose": {"cmk_atlas_iam_role_name": "'atlas-kms-' ~ inventory_hostname", "cmk_atlas_kms_key": "'alias/atlas-cmk'"}},
    )
    plays = [
        {
            "name": "Projects without encryption at rest",
            "hosts": "cmk_atlas_none",
            "connection": "local",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Check the host variables",
                    "ansible.builtin.assert": {
                        "that": [
                            "inventory_hostname == 'cmk-demo-plain'",
                            f"cmk_atlas_project_id == '{PLAIN}'",
                            "cmk_atlas_encryption_at_rest.access_method == 'none'",
                            "cmk_atlas_iam_role_name == 'atlas-kms-cmk-demo-plain'",
                            "'atlas_projects' in group_names",
                        ]
                    },
                },
                {
                    "name": "Read the project's encryption at rest with the module",
                    "cmk.atlas.encryption_at_rest_info": {"project_id": "{{ cmk_atlas_project_id }}"},
                    "register": "info",
                },
            ],
        },
        {
            "name": "Projects with an access key",
            "hosts": "cmk_atlas_credentials",
            "connection": "local",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Check the host variables",
                    "ansible.builtin.assert": {
                        "that": [
                            "ansible_play_hosts_all == ['cmk-demo-legacy']",
                            "cmk_atlas_encryption_at_rest.access_method == 'credentials'",
                            "cmk_atlas_encryption_at_rest.valid",
                        ]
                    },
                }
            ],
        },
    ]
    run = run_playbook(plays, env={**testbed_env, **ENABLED}, inventory=source).assert_ok()
    assert [r["host"] for r in run.results if r["task"] == "Check the host variables"] == ["cmk-demo-plain", "cmk-demo-legacy"]
    info = run.task("Read the project's encryption at rest with the module", host="cmk-demo-plain")
    assert "failed" not in info or not info["failed"]
