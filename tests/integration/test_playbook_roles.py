"""The playbooks as a new user meets them: the modules' Python, a host pattern that selects nothing, and the
roles cmk.atlas.enable, cmk.atlas.switch and cmk.atlas.verify included from the user's own play."""

import os
import stat
import sys

import pytest

from .conftest import SUMMARY_TASK, successful_writes
from .test_playbook_enable import FAST, assert_changes, first_run_changes, project

pytestmark = pytest.mark.integration

ENABLE, SWITCH, VERIFY = "cmk.atlas.enable", "cmk.atlas.switch", "cmk.atlas.verify"
SWITCH_SUMMARY_TASK = "cmk.atlas.switch : Summarize the project"
REPORT_TASK = "cmk.atlas.verify : Report the project"
PATTERN_TASK = "Stop when no Atlas project of the inventory is selected"


def without_the_venv(tmp_path, testbed_env):
    """The environment of a user who installed ansible in a virtual environment but calls it without activating it:
    no ANSIBLE_PYTHON_INTERPRETER, and the python3 on PATH is the system's, without requests and boto3."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to("/usr/bin/python3")
    return {**testbed_env, "ANSIBLE_PYTHON_INTERPRETER": "auto", "PATH": os.pathsep.join([str(bin_dir), "/usr/bin", "/bin"])}


# -- the modules' Python ------------------------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="needs a system python3 beside the virtual environment")
def test_the_modules_run_with_the_python_that_runs_ansible_playbook(run_playbook, clean_testbed, testbed_env, write_inventory, tmp_path):
    bed = clean_testbed
    env = without_the_venv(tmp_path, testbed_env)
    inventory = write_inventory({"empty": project(bed, "empty", "atlas-kms-empty", cmk_atlas_kms_key=bed.keys["main"]["alias"])})
    run = run_playbook(ENABLE, env=env, inventory=inventory)
    assert "Failed to import" not in run.output, run.output[-3000:]
    assert run.assert_ok().task(SUMMARY_TASK)["msg"]["valid"] is True
    report = run_playbook(VERIFY, env=env, inventory=inventory).assert_ok().task(REPORT_TASK)["msg"]
    assert report["in_sync"] is True, report


def test_an_inventory_python_interpreter_still_wins(run_playbook, clean_testbed, testbed_env, write_inventory, tmp_path):
    bed = clean_testbed
    used = tmp_path / "used"
    wrapper = tmp_path / "python-of-the-inventory"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {used}\nexec {sys.executable} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    variables = project(bed, "empty", "atlas-kms-empty", cmk_atlas_kms_key=bed.keys["main"]["alias"], ansible_python_interpreter=str(wrapper))
    run = run_playbook(ENABLE, env=without_the_venv(tmp_path, testbed_env), inventory=write_inventory({"empty": variables}), check=True)
    run.assert_ok()
    assert used.exists() and used.read_text().strip(), "the inventory's ansible_python_interpreter was not used"


# -- a host pattern that selects nothing --------------------------------------------------------------


@pytest.mark.parametrize("playbook", [ENABLE, SWITCH, VERIFY])
def test_a_pattern_that_matches_no_host_fails_and_names_it(run_playbook, write_inventory, playbook):
    # The projects are in a group of another name: today's default pattern atlas_projects matches nothing.
    # A wrong project id: where the pattern does match, the variable check stops the project before any call.
    hosts = {"orders": {"cmk_atlas_project_id": "not-a-project", "cmk_atlas_iam_role_name": "atlas-kms-orders", "cmk_atlas_kms_key": "alias/a"}}
    inventory = write_inventory(hosts, group="kms_projects")
    run = run_playbook(playbook, inventory=inventory)
    assert run.rc != 0, run.output[-3000:]
    assert run.failed_tasks() == [PATTERN_TASK], run.failed_tasks()
    message = run.task(PATTERN_TASK)["msg"]
    assert message.startswith(f"{playbook} runs on the inventory hosts of atlas_projects"), message
    assert "the group atlas_projects" in message and "cmk_atlas_hosts" in message and "nothing was read or written" in message

    # A cmk_atlas_hosts that matches nothing is named too; one that matches runs the procedure's play.
    run = run_playbook(playbook, inventory=inventory, extra_vars={"cmk_atlas_hosts": "kms_project"})
    assert run.rc != 0 and run.failed_tasks() == [PATTERN_TASK], run.output[-3000:]
    assert run.task(PATTERN_TASK)["msg"].startswith(f"{playbook} runs on the inventory hosts of kms_project (cmk_atlas_hosts)")
    run = run_playbook(playbook, inventory=inventory, extra_vars={"cmk_atlas_hosts": "kms_projects"})
    assert run.failed_tasks() == [f"{playbook} : Stop on wrong variables, naming every one"], run.output[-3000:]
    assert "cmk_atlas_project_id 'not-a-project' is not an Atlas project id" in run.task(f"{playbook} : Stop on wrong variables, naming every one")["msg"]


# -- the roles in the user's own play ------------------------------------------------------------------


def users_play(role, hosts, variables):
    """A play as a user writes it: their own group, module_defaults and variable names, mapped to the role's."""
    return {
        "name": f"My {role}",
        "hosts": hosts,
        "connection": "local",
        "gather_facts": False,
        "module_defaults": {"group/cmk.atlas.atlas": "{{ my_atlas_connection }}"},
        "tasks": [{"name": f"Run {role}", "ansible.builtin.include_role": {"name": role}, "vars": variables}],
    }


MAPPED = {
    "cmk_atlas_project_id": "{{ my_project }}",
    "cmk_atlas_iam_role_name": "{{ my_role }}",
    "cmk_atlas_kms_key": "{{ my_key }}",
    "cmk_atlas_authorize_timeout": 5,
    "cmk_atlas_valid_timeout": 5,
}


@pytest.mark.scenario("demo")
def test_the_roles_included_from_a_users_play_do_what_the_playbooks_do(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    group, legacy = bed.projects["plain"], bed.projects["legacy"]
    key = bed.keys["main"]["arn"]
    mine = write_inventory(
        {
            "orders": {"my_project": group, "my_role": "atlas-kms-plain", "my_key": key},
            "search": {"my_project": legacy, "my_role": "atlas-kms-legacy-role", "my_key": key},
        },
        group="kms_projects",
        group_vars={"my_atlas_connection": FAST["cmk_atlas_connection"]},
    )
    theirs = write_inventory(
        {
            "orders": project(bed, "plain", "atlas-kms-plain", cmk_atlas_kms_key=key),
            "search": project(bed, "legacy", "atlas-kms-legacy-role", cmk_atlas_kms_key=key, cmk_atlas_confirm_switch=True),
        }
    )

    # enable, on the project without encryption at rest.
    plays = [users_play("cmk.atlas.enable", "kms_projects:&orders", MAPPED)]
    enabled = run_playbook(plays, env=testbed_env, inventory=mine).assert_ok()
    summary = enabled.task(SUMMARY_TASK, host="orders")["msg"]
    assert_changes(summary["changes"], first_run_changes(group, "atlas-kms-plain"))
    assert summary["valid"] is True
    # The playbook finds the project as it would have left it: nothing to do, the same summary.
    bed.clear_logs()
    again = run_playbook(ENABLE, env=testbed_env, inventory=theirs, extra_vars={"cmk_atlas_hosts": "orders"}).assert_ok()
    assert successful_writes(bed) == [] and again.changed_tasks() == []
    assert again.task(SUMMARY_TASK)["msg"] == dict(summary, changes=[])

    # switch, on the project that reaches its key with an access key.
    plays = [users_play("cmk.atlas.switch", "kms_projects:&search", {**MAPPED, "cmk_atlas_confirm_switch": True})]
    switched = run_playbook(plays, env=testbed_env, inventory=mine).assert_ok()
    summary = switched.task(SWITCH_SUMMARY_TASK, host="search")["msg"]
    assert (summary["switched"], summary["access_method"], summary["valid"]) == (True, "role", True)
    assert bed.atlas.project_state(legacy)["encryptionAtRest"]["credentialsStored"] is False
    bed.clear_logs()
    again = run_playbook(SWITCH, env=testbed_env, inventory=theirs, extra_vars={"cmk_atlas_hosts": "search"}).assert_ok()
    assert successful_writes(bed) == [] and again.changed_tasks() == []
    assert again.task(SWITCH_SUMMARY_TASK)["msg"] == dict(summary, changes=[], switched=False)

    # verify, on both: the same report as the playbook's.
    plays = [users_play("cmk.atlas.verify", "kms_projects", MAPPED)]
    mine_reports = run_playbook(plays, env=testbed_env, inventory=mine).assert_ok()
    playbook_reports = run_playbook(VERIFY, env=testbed_env, inventory=theirs).assert_ok()
    for host in ("orders", "search"):
        report = mine_reports.task(REPORT_TASK, host=host)["msg"]
        assert report["in_sync"] is True, report
        assert report == playbook_reports.task(REPORT_TASK, host=host)["msg"]
    assert successful_writes(bed) == []
