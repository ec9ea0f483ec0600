"""cmk.atlas.enable as AWX runs it: ansible-runner on a private data directory laid out the way AWX writes it.

AWX (and Ansible Automation Platform) copies the project into ``project/``, writes the inventory as an
executable script into ``inventory/``, the environment its credentials inject into ``env/envvars`` and
the job's extra variables into ``env/extravars``, then starts ansible-runner inside the execution
environment. The job template points at a one-line wrapper playbook in the project (docs/awx.md)."""

import json
import os
import stat
import sys

import pytest
import yaml

from .conftest import successful_writes

pytestmark = pytest.mark.integration

WRAPPER = "enable.yml"
FAST = {"cmk_atlas_connection": {"retries": 1, "timeout": 10}, "cmk_atlas_authorize_timeout": 5, "cmk_atlas_valid_timeout": 5}
# What the credentials of the job template inject: the custom credential type of extensions/awx (MONGODB_ATLAS_*)
# and AWX's built-in Amazon Web Services type (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY); the test bed adds its
# endpoints (MONGODB_ATLAS_BASE_URL is a field of the credential type, AWS_ENDPOINT_URL stands for real AWS).
INJECTED = (
    "MONGODB_ATLAS_PUBLIC_KEY",
    "MONGODB_ATLAS_PRIVATE_KEY",
    "MONGODB_ATLAS_BASE_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_EC2_METADATA_DISABLED",
)


def inventory_script(groups, hostvars):
    """An inventory as AWX writes it: a script that prints the hosts, groups and host variables as JSON."""
    text = json.dumps(dict(groups, _meta={"hostvars": hostvars}))
    return f"#!{sys.executable}\nprint({text!r})\n"


def private_data_dir(root, bed, testbed_env, installed_collection):
    project = root / "project"
    project.mkdir(parents=True)
    (project / WRAPPER).write_text("---\n- ansible.builtin.import_playbook: cmk.atlas.enable\n")

    inventory = root / "inventory"
    inventory.mkdir()
    hostvars = {
        "plain": {"cmk_atlas_project_id": bed.projects["plain"], "cmk_atlas_iam_role_name": "atlas-kms-plain", "cmk_atlas_kms_key": bed.keys["main"]["arn"]}
    }
    script = inventory / "hosts"
    script.write_text(inventory_script({"all": {"children": ["atlas_projects"]}, "atlas_projects": {"hosts": ["plain"]}}, hostvars))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)

    env = root / "env"
    env.mkdir()
    envvars = {name: testbed_env[name] for name in INJECTED if name in testbed_env}
    envvars.update(
        {
            # Set by the execution environment image (execution-environment.yml) and by AWX for the job.
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
            "ANSIBLE_COLLECTIONS_PATH": str(installed_collection),
            "ANSIBLE_HOME": str(root / "ansible_home"),
            "ANSIBLE_LOCAL_TEMP": str(root / "tmp"),
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
        }
    )
    (env / "envvars").write_text(yaml.safe_dump(envvars))
    # The job template's extra variables, and those AWX adds to every job.
    (env / "extravars").write_text(yaml.safe_dump({**FAST, "awx_job_id": 42, "awx_job_template_name": "Atlas CMK enable"}))
    return root


def run_job(ansible_runner, root):
    return ansible_runner.run(private_data_dir=str(root), playbook=WRAPPER, quiet=True, timeout=600)


@pytest.fixture
def runner_environment(monkeypatch):
    """The runner's own environment: only what an execution environment has, not the developer's settings."""
    for name in list(os.environ):
        if name.startswith(("ANSIBLE_", "AWS_", "MONGODB_ATLAS_", "CMK_ATLAS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))


@pytest.mark.scenario("demo")
def test_the_wrapper_playbook_enables_the_project_through_ansible_runner(installed_collection, clean_testbed, testbed_env, runner_environment, tmp_path):
    import ansible_runner

    bed = clean_testbed
    group = bed.projects["plain"]
    root = private_data_dir(tmp_path / "job", bed, testbed_env, installed_collection)
    assert bed.atlas.project_state(group)["encryptionAtRest"]["enabled"] is False

    first = run_job(ansible_runner, root)
    output = first.stdout.read()
    assert (first.status, first.rc) == ("successful", 0), output[-6000:]
    assert first.stats["changed"].get("plain", 0) > 0, first.stats
    assert not first.stats["failures"] and not first.stats["dark"], first.stats

    state = bed.atlas.project_state(group)
    (role,) = state["roles"]
    assert role["authorized"] and role["inUse"]
    assert role["iamAssumedRoleArn"] == f"arn:aws:iam::{bed.accounts['R']}:role/atlas-kms-plain"
    ear = state["encryptionAtRest"]
    assert (ear["enabled"], ear["roleId"], ear["customerMasterKeyID"]) == (True, role["roleId"], bed.keys["main"]["arn"])
    assert not ear["credentialsStored"]
    ok = [event["event_data"] for event in first.events if event.get("event") == "runner_on_ok"]
    summary = [data for data in ok if data.get("task", "").endswith("Summarize the project")]
    assert summary and summary[-1]["res"]["msg"]["valid"] is True

    # The same job again, as a schedule would start it: nothing to change, no write call.
    bed.clear_logs()
    second = run_job(ansible_runner, root)
    assert (second.status, second.rc) == ("successful", 0), second.stdout.read()[-6000:]
    assert not second.stats["changed"], second.stats
    assert second.stats["ok"].get("plain", 0) > 0, second.stats
    assert successful_writes(bed) == []
    assert bed.atlas.project_state(group)["encryptionAtRest"] == ear
    # Each run left its artifacts where AWX reads them.
    assert len(list((root / "artifacts").iterdir())) == 2
