"""Private networking against the test bed: cmk.atlas.enable sets requirePrivateNetworking first, then creates an
encryption-at-rest private endpoint per region and waits until they are ACTIVE, then waits for valid; unlisted regions
go, turning it off deletes every endpoint before the flag; every refusal comes before any write."""

import pytest

from .conftest import SUMMARY_TASK, assert_refused, successful_writes

pytestmark = [pytest.mark.integration, pytest.mark.scenario("demo")]

ENABLE = "cmk.atlas.enable"
VERIFY = "cmk.atlas.verify"
VERIFY_REPORT = "cmk.atlas.verify : Report the project"
TASK = "cmk.atlas.enable : Plan and apply customer key management for the project"
ROLE_NAME = "atlas-kms-private"
FAST = {"cmk_atlas_connection": {"retries": 1, "timeout": 10}, "cmk_atlas_authorize_timeout": 5, "cmk_atlas_valid_timeout": 5, "cmk_atlas_endpoint_timeout": 30}
PATCH, CREATE, DELETE = "updateGroupEncryptionAtRest", "createGroupEncryptionAtRestPrivateEndpoint", "requestGroupEncryptionAtRestPrivateEndpointDeletion"


def inventory(bed, write_inventory, **more):
    variables = {"cmk_atlas_project_id": bed.projects["plain"], "cmk_atlas_iam_role_name": ROLE_NAME, "cmk_atlas_kms_key": bed.keys["main"]["arn"], **FAST}
    return write_inventory({"plain": {**variables, **more}})


def atlas_writes(bed):
    """The successful Atlas writes since clear_logs(), in order."""
    return [entry["operation_id"] for entry in bed.atlas.request_log() if entry["write"] and entry["status"] < 400]


def state(bed):
    return bed.atlas.project_state(bed.projects["plain"])


def endpoints_by_region(bed):
    return {endpoint["regionName"]: endpoint["status"] for endpoint in state(bed)["privateEndpoints"]}


def test_check_mode_predicts_the_flag_then_the_endpoints_the_run_does_it_in_that_order_and_a_rerun_writes_nothing(
    run_playbook, clean_testbed, testbed_env, write_inventory
):
    bed = clean_testbed
    hosts = inventory(bed, write_inventory, cmk_atlas_private_endpoint_regions=["eu-west-2"])

    bed.clear_logs()
    check = run_playbook(ENABLE, env=testbed_env, inventory=hosts, check=True, diff=True).assert_ok()
    assert successful_writes(bed) == []
    predicted = check.task(TASK)
    assert predicted["changes"][-3:] == [
        f"set encryption at rest of project {bed.projects['plain']} (customerMasterKeyID, enabled, region, requirePrivateNetworking, roleId, "
        "implied by cmk_atlas_private_endpoint_regions)",
        "create encryption-at-rest private endpoints in eu-west-2 until they are ACTIVE",
        f"wait until Atlas reports the key of project {bed.projects['plain']} valid",
    ], predicted["changes"]
    (diff,) = [diff for diff in predicted["diff"] if diff["before_header"].startswith("encryption-at-rest private endpoints")]
    assert "implied by the regions listed" in diff["before_header"]
    assert diff["before"] == {"require_private_networking": False, "private_endpoints": {}}
    assert diff["after"] == {"require_private_networking": True, "private_endpoints": {"eu-west-2": "ACTIVE"}}
    assert check.task(SUMMARY_TASK)["msg"]["require_private_networking"] is True
    assert check.task(SUMMARY_TASK)["msg"]["private_endpoints"] == {"eu-west-2": "ACTIVE"}

    bed.clear_logs()
    run = run_playbook(ENABLE, env=testbed_env, inventory=hosts).assert_ok()
    result = run.task(TASK)
    assert result["changes"] == predicted["changes"]
    writes = atlas_writes(bed)
    assert writes[-2:] == [PATCH, CREATE], writes
    # Atlas is read for valid only once the endpoint is ACTIVE: after the create, never between the PATCH and it.
    log = [entry for entry in bed.atlas.request_log() if entry["status"] < 400]
    operations = [entry["operation_id"] for entry in log]
    assert "getGroupEncryptionAtRest" in operations[operations.index(CREATE) :]
    assert "getGroupEncryptionAtRest" not in operations[operations.index(PATCH) : operations.index(CREATE)]
    after = state(bed)
    assert after["encryptionAtRest"]["requirePrivateNetworking"] is True
    assert endpoints_by_region(bed) == {"EU_WEST_2": "ACTIVE"}
    summary = run.task(SUMMARY_TASK)["msg"]
    assert (summary["require_private_networking"], summary["private_endpoints"], summary["valid"]) == (True, {"eu-west-2": "ACTIVE"}, True)
    assert result["private_endpoints"][0]["id"] == after["privateEndpoints"][0]["id"]

    bed.clear_logs()
    again = run_playbook(ENABLE, env=testbed_env, inventory=hosts).assert_ok()
    assert again.task(TASK)["changed"] is False and again.task(TASK)["changes"] == []
    assert successful_writes(bed) == []

    # Verify shows the flag and the endpoints, in sync; another region and search nodes it should have are drift.
    report = run_playbook(VERIFY, env=testbed_env, inventory=hosts).assert_ok().task(VERIFY_REPORT)["msg"]
    assert (report["in_sync"], report["require_private_networking"], report["enabled_for_search_nodes"]) == (True, True, False), report
    assert [(endpoint["region"], endpoint["status"]) for endpoint in report["private_endpoints"]] == [("eu-west-2", "ACTIVE")]
    wanted = {"cmk_atlas_private_endpoint_regions": ["eu-west-2", "eu-west-1"], "cmk_atlas_enabled_for_search_nodes": True}
    more = inventory(bed, write_inventory, cmk_atlas_verify_fail_on_drift=False, **wanted)
    drift = run_playbook(VERIFY, env=testbed_env, inventory=more).assert_ok().task(VERIFY_REPORT)["msg"]
    assert drift["in_sync"] is False
    assert any("eu-west-1" in change for change in drift["changes"]) and any("enabledForSearchNodes" in change for change in drift["changes"]), drift
    assert successful_writes(bed) == []


def test_refusals_write_nothing_and_name_the_variables(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    hosts = inventory(bed, write_inventory, cmk_atlas_require_private_networking=False, cmk_atlas_private_endpoint_regions=["eu-west-2", "mars-north-1"])
    bed.clear_logs()
    run = run_playbook(ENABLE, env=testbed_env, inventory=hosts)
    assert_refused(run, TASK, "cmk_atlas_require_private_networking: it is false while cmk_atlas_private_endpoint_regions lists", "mars-north-1")
    assert successful_writes(bed) == []

    hosts = inventory(bed, write_inventory, cmk_atlas_private_endpoint_regions=["eu-west-2"], cmk_atlas_source_ips=["198.51.100.0/24"])
    run = run_playbook(ENABLE, env=testbed_env, inventory=hosts)
    assert_refused(run, TASK, "cmk_atlas_source_ips: aws:SourceIp conditions and private networking exclude each other", "no longer from public addresses")
    assert successful_writes(bed) == []


def test_a_failed_endpoint_is_reported_with_atlas_s_message_and_a_rerun_replaces_it(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    hosts = inventory(bed, write_inventory, cmk_atlas_private_endpoint_regions=["eu-west-2"])
    bed.atlas.fail_next_private_endpoint(bed.projects["plain"], "The AWS PrivateLink endpoint service for KMS is not available in the region.")
    failed = run_playbook(ENABLE, env=testbed_env, inventory=hosts)
    assert failed.rc != 0 and failed.failed_tasks() == [TASK], failed.output[-3000:]
    message = failed.task(TASK)["msg"]
    assert "is FAILED: The AWS PrivateLink endpoint service for KMS is not available in the region." in message, message
    assert "Run again to continue from there" in message
    assert endpoints_by_region(bed) == {"EU_WEST_2": "FAILED"}

    bed.clear_logs()
    resumed = run_playbook(ENABLE, env=testbed_env, inventory=hosts).assert_ok()
    assert [change.split(" ", 2)[:2] for change in resumed.task(TASK)["changes"]] == [["delete", "the"], ["create", "encryption-at-rest"], ["confirm", "that"]]
    assert atlas_writes(bed) == [DELETE, CREATE]
    assert endpoints_by_region(bed) == {"EU_WEST_2": "ACTIVE"}


def test_a_run_broken_after_the_flag_is_resumed_by_a_rerun(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    hosts = inventory(bed, write_inventory, cmk_atlas_private_endpoint_regions=["eu-west-2"])
    # More 503s than the one retry allowed: the create fails after the project's settings were written.
    bed.atlas.inject_fault(CREATE, status=503, count=2)
    broken = run_playbook(ENABLE, env=testbed_env, inventory=hosts)
    assert broken.rc != 0 and broken.failed_tasks() == [TASK], broken.output[-3000:]
    message = broken.task(TASK)["msg"]
    assert message.startswith("create encryption-at-rest private endpoints in eu-west-2"), message
    assert "requirePrivateNetworking" in message.split("Writes made before it in this run: ", 1)[1]
    assert state(bed)["encryptionAtRest"]["requirePrivateNetworking"] is True and state(bed)["privateEndpoints"] == []

    bed.clear_logs()
    resumed = run_playbook(ENABLE, env=testbed_env, inventory=hosts).assert_ok()
    assert resumed.task(TASK)["changes"] == [
        "create encryption-at-rest private endpoints in eu-west-2 until they are ACTIVE",
        f"confirm that Atlas reports the key of project {bed.projects['plain']} valid",
    ]
    assert atlas_writes(bed) == [CREATE]
    assert endpoints_by_region(bed) == {"EU_WEST_2": "ACTIVE"}


def test_an_unlisted_region_goes_and_turning_off_deletes_the_endpoints_before_the_flag(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    run_playbook(ENABLE, env=testbed_env, inventory=inventory(bed, write_inventory, cmk_atlas_private_endpoint_regions=["eu-west-2", "us-east-1"])).assert_ok()
    assert endpoints_by_region(bed) == {"EU_WEST_2": "ACTIVE", "US_EAST_1": "ACTIVE"}

    bed.clear_logs()
    run = run_playbook(ENABLE, env=testbed_env, inventory=inventory(bed, write_inventory, cmk_atlas_private_endpoint_regions=["eu-west-2"])).assert_ok()
    (change, confirm) = run.task(TASK)["changes"]
    assert change.startswith("delete encryption-at-rest private endpoints of regions no longer listed:") and "(us-east-1, ACTIVE)" in change
    assert confirm.startswith("confirm that Atlas reports the key")
    assert atlas_writes(bed) == [DELETE]
    assert endpoints_by_region(bed) == {"EU_WEST_2": "ACTIVE"}

    hosts = inventory(bed, write_inventory, cmk_atlas_require_private_networking=False)
    bed.clear_logs()
    check = run_playbook(ENABLE, env=testbed_env, inventory=hosts, check=True).assert_ok()
    assert successful_writes(bed) == []
    run = run_playbook(ENABLE, env=testbed_env, inventory=hosts).assert_ok()
    assert run.task(TASK)["changes"] == check.task(TASK)["changes"]
    assert [change.split(" ", 1)[0] for change in run.task(TASK)["changes"]] == ["delete", "set"]
    assert atlas_writes(bed) == [DELETE, PATCH]
    after = state(bed)
    assert after["encryptionAtRest"]["requirePrivateNetworking"] is False and after["privateEndpoints"] == []
    summary = run.task(SUMMARY_TASK)["msg"]
    assert (summary["require_private_networking"], summary["private_endpoints"], summary["valid"]) == (False, {}, True)
