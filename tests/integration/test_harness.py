"""The harness itself: the built collection is what ansible-playbook loads, and results are recorded."""

import os

import yaml

from .conftest import REPO_ROOT


def test_playbook_sees_the_built_collection(run_playbook, installed_collection):
    with open(os.path.join(REPO_ROOT, "galaxy.yml")) as handle:
        version = yaml.safe_load(handle)["version"]
    manifest = installed_collection / "ansible_collections" / "cmk" / "atlas" / "MANIFEST.json"
    assert manifest.exists()
    plays = [
        {
            "name": "harness",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "read the installed collection version",
                    "ansible.builtin.set_fact": {"installed": "{{ lookup('ansible.builtin.file', manifest) | from_json }}"},
                    "vars": {"manifest": str(manifest)},
                },
                {"name": "report", "ansible.builtin.debug": {"msg": "{{ installed.collection_info.version }}"}},
            ],
        }
    ]
    run = run_playbook(plays).assert_ok()
    assert run.task("report")["msg"] == version
    assert run.failed_tasks() == []
