"""cmk.atlas.enable with input users got wrong: each run stops with a message naming the variable or
option and the fix, and nothing is written to Atlas or AWS."""

import pytest

from .test_playbook_enable import FAST, PLAYBOOK, project

pytestmark = pytest.mark.integration

VALIDATE_TASK = "cmk.atlas.enable : Stop on wrong variables, naming every one"
UNKNOWN_PROJECT = "0123456789abcdef01234567"


def failure(run, host):
    """The message of the one task that failed on ``host`` (after the variable check: the procedure's module)."""
    failed = [r for r in run.results if r["status"] == "failed" and r["host"] == host]
    assert len(failed) == 1, [r["task"] for r in failed]
    assert failed[0]["task"] != VALIDATE_TASK
    return failed[0]["result"]["msg"]


def test_wrong_list_and_region_variables_stop_before_any_call(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    key = bed.keys["main"]
    unknown_region_arn = key["arn"].replace(":us-east-1:", ":eu-west-9:")
    # One wrong variable per project, so each message is the only one for its host.
    cases = {
        "any_ipv4": (
            {"cmk_atlas_source_ips": ["198.51.100.10", "0.0.0.0/0"]},
            "cmk_atlas_source_ips lists 0.0.0.0/0: a /0 admits every address, so it restricts nothing",
        ),
        "any_ipv6": ({"cmk_atlas_source_ips": ["::/0"]}, "cmk_atlas_source_ips lists ::/0: a /0 admits every address"),
        "ips_string": (
            {"cmk_atlas_source_ips": "10.0.0.0/8"},
            'cmk_atlas_source_ips must be a list of addresses or CIDR blocks, e.g. [203.0.113.10/32]; got "10.0.0.0/8".',
        ),
        "regions_string": (
            {"cmk_atlas_manage_source_ips": True, "cmk_atlas_source_ip_regions": "us-east-1"},
            'cmk_atlas_source_ip_regions must be a list of AWS regions, e.g. [us-east-1, eu-west-1]; got "us-east-1".',
        ),
        "region": ({"cmk_atlas_region": "eu-west-9"}, "cmk_atlas_region 'eu-west-9' is not an AWS region Atlas supports for AWS KMS"),
        "key_region": (
            {"cmk_atlas_kms_key": unknown_region_arn},
            f"cmk_atlas_kms_key '{unknown_region_arn}' is in region eu-west-9, which is not an AWS region Atlas supports for AWS KMS",
        ),
    }
    hosts = {}
    for index, (host, (variables, _message)) in enumerate(cases.items()):
        hosts[host] = {**project(bed, "empty", f"atlas-kms-{index}", cmk_atlas_kms_key=key["alias"]), **variables}
    inventory = write_inventory(hosts)
    bed.clear_logs()
    run = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory)
    assert run.rc != 0
    assert run.failed_tasks() == [VALIDATE_TASK] * len(cases)
    for host, (_variables, expected) in cases.items():
        message = run.task(VALIDATE_TASK, host=host)["msg"]
        assert message.startswith(f"cmk.atlas.enable: 1 wrong variable(s) for {host}; nothing was read or written."), message
        assert expected in message, (expected, message)
    for host in ("any_ipv4", "any_ipv6"):
        message = run.task(VALIDATE_TASK, host=host)["msg"]
        assert "no source-IP condition is the same as allowing every address: leave cmk_atlas_source_ips unset instead" in message
    for host in ("region", "key_region"):
        assert "known AWS regions: af-south-1, ap-east-1," in run.task(VALIDATE_TASK, host=host)["msg"]
    assert "Jinja" not in run.output and "unsupported operand" not in run.output
    assert bed.atlas.request_log() == []
    assert bed.proxy.request_log() == []


def test_a_module_refuses_a_source_ip_block_that_admits_every_address(run_playbook, clean_testbed, testbed_env):
    """The modules' own check (normalize_source_ips), for users of the modules outside the playbooks."""
    bed = clean_testbed
    task = {
        "name": "IAM role",
        "cmk.atlas.aws_iam_role": {
            "name": "atlas-kms-any",
            "atlas_aws_account_arn": "arn:aws:iam::536727724300:root",
            "external_id": "3c2f4a1e-5b6d-4e7f-8a9b-0c1d2e3f4a5b",
            "kms_key_arns": [bed.keys["main"]["arn"]],
            "source_ips": ["203.0.113.10/32", "0.0.0.0/0"],
        },
    }
    bed.clear_logs()
    run = run_playbook([{"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [task]}], env=testbed_env)
    assert run.rc != 0
    assert run.task("IAM role")["msg"] == (
        "source_ips entry '0.0.0.0/0' admits every IPv4 address, so it restricts nothing; "
        "no aws:SourceIp condition is the same as allowing every address: leave source_ips unset instead"
    )
    assert bed.atlas.request_log() == []
    assert bed.proxy.request_log() == []


def test_unknown_project_says_to_check_the_project_id_and_the_credentials_access(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    variables = dict(project(bed, "empty", "atlas-kms-lost", cmk_atlas_kms_key=bed.keys["main"]["alias"]), cmk_atlas_project_id=UNKNOWN_PROJECT)
    inventory = write_inventory({"lost": variables})
    bed.clear_logs()
    run = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory)
    assert run.rc != 0
    message = failure(run, "lost")
    assert "failed with HTTP 404 GROUP_NOT_FOUND" in message
    assert "project_id (cmk_atlas_project_id in the cmk.atlas playbooks)" in message
    assert "project's id of 24 hexadecimal digits as the Atlas UI shows it under Project Settings" in message
    assert "the API key or service account must have access to that project." in message
    assert bed.write_calls() == []
    # Atlas is asked first: AWS is not called for a project that does not answer.
    assert bed.proxy.request_log() == []


def test_base_url_with_the_api_path_is_refused_before_any_call(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    key = bed.keys["main"]["alias"]
    env = dict(testbed_env, MONGODB_ATLAS_BASE_URL=bed.atlas_url + "/api/atlas/v2")
    inventory = write_inventory(
        {
            # From the environment, and from cmk_atlas_connection (module_defaults) with a trailing slash and the old version.
            "from_env": project(bed, "empty", "atlas-kms-env", cmk_atlas_kms_key=key),
            "from_connection": project(
                bed,
                "empty",
                "atlas-kms-connection",
                cmk_atlas_kms_key=key,
                cmk_atlas_connection=dict(FAST["cmk_atlas_connection"], base_url=bed.atlas_url + "/api/atlas/v1.0/"),
            ),
        }
    )
    bed.clear_logs()
    run = run_playbook(PLAYBOOK, env=env, inventory=inventory)
    assert run.rc != 0
    for host, suffix in (("from_env", "/api/atlas/v2"), ("from_connection", "/api/atlas/v1.0/")):
        assert failure(run, host) == (
            f"base_url (or environment variable MONGODB_ATLAS_BASE_URL) is '{bed.atlas_url}{suffix}'; "
            f"base_url is the Atlas host without the API path, e.g. https://cloud.mongodb.com: set it to {bed.atlas_url}."
        )
    assert bed.atlas.request_log() == []
    assert bed.proxy.request_log() == []
