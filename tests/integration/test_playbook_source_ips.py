"""The aws:SourceIp list from Atlas in cmk.atlas.enable (kms_access switch), and drift found by cmk.atlas.verify."""

import pytest

pytestmark = pytest.mark.integration

PLAIN = "660000000000000000000011"
POLICY = "cmk-atlas-kms-access"
ROLE = "atlas-kms-plain"
SHOW_TASK = "cmk.atlas.kms_access : Show the source-IP change"
CONFIRM_TASK = "cmk.atlas.kms_access : Confirm that Atlas reports the key valid before any address is removed"
WIDEN_GRANT_TASK = "cmk.atlas.kms_access : Ensure the IAM role's inline policy grants the key"
REPORT_TASK = "Report the project"
FAST = {
    "cmk_atlas_connection": {"retries": 1, "timeout": 10},
    "iam_access_authorize_timeout": 5,
    "encryption_at_rest_valid_timeout": 5,
    "encryption_at_rest_cluster_poll_interval": 0.1,
    "encryption_at_rest_cluster_wait_timeout": 60,
}
# The playbook does not pass these on yet; extra vars reach the role all the same.
# The playbook-level switch; the short waits keep the add-then-remove step quick on the test bed.
SWITCH = {"cmk_atlas_manage_source_ips": True, "kms_access_valid_retries": 3, "kms_access_valid_delay": 1}


def policy_ips(bed):
    document = bed.aws_client("iam").get_role_policy(RoleName=ROLE, PolicyName=POLICY)["PolicyDocument"]
    (statement,) = document["Statement"]
    value = statement["Condition"]["IpAddress"]["aws:SourceIp"]
    return sorted([value] if isinstance(value, str) else value)


def valid(bed):
    from emulators.atlas.testing import AtlasClient

    api = AtlasClient(bed.atlas_url, bed.api_key["public_key"], bed.api_key["private_key"])
    return api.get(f"/groups/{PLAIN}/encryptionAtRest").json()["awsKms"]["valid"]


@pytest.mark.scenario("demo")
def test_atlas_addresses_in_the_policy_drift_found_previewed_and_fixed_without_losing_the_key(
    run_playbook, clean_testbed, testbed_env, write_inventory, tmp_path
):
    bed = clean_testbed
    hosts_file = bed.write_hosts_file(str(tmp_path / "nodes.hosts"))
    env = {**testbed_env, "CMK_ATLAS_HOSTS_FILE": hosts_file}
    inventory = write_inventory(
        {
            "plain": {
                "cmk_atlas_project_id": PLAIN,
                "cmk_atlas_iam_role_name": ROLE,
                "cmk_atlas_kms_key": "alias/atlas-cmk",
                "cmk_atlas_clusters": ["Cluster0"],
                "cmk_atlas_source_ips": ["192.0.2.7"],
                **FAST,
            }
        }
    )
    nodes = {n["hostname"]: n["public_ip"] for n in bed.atlas.project_state(PLAIN)["clusters"]["Cluster0"]["nodes"]}
    egress = [f"{ip}/32" for ip in bed.atlas_egress_ips]
    expected = sorted([*egress, "192.0.2.7/32", *(f"{ip}/32" for ip in nodes.values())])

    # Enable with the switch: control-plane and node addresses, plus the extra one, end up in the policy,
    # and the emulator's key check (which evaluates aws:SourceIp from all of them) passes.
    run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars=SWITCH).assert_ok()
    assert policy_ips(bed) == expected
    assert bed.atlas.project_state(PLAIN)["clusters"]["Cluster0"]["encryptionAtRestProvider"] == "AWS"
    assert valid(bed) is True

    verify_vars = {"cmk_atlas_manage_source_ips": True}
    report = run_playbook("cmk.atlas.verify", env=env, inventory=inventory, extra_vars=verify_vars).assert_ok().task(REPORT_TASK)["msg"]
    assert report["in_sync"] is True, report
    assert report["checks"] == dict.fromkeys(("role", "trust_policy", "kms_permissions", "key_state", "key_policy", "valid", "source_ips"), True)

    # Atlas replaces a node: it gets a new public address.
    moved = sorted(nodes)[0]
    old_cidr = f"{nodes[moved]}/32"
    bed.atlas.set_node_public_ip(PLAIN, "Cluster0", moved, "203.0.113.250")
    bed.write_hosts_file(hosts_file)
    assert valid(bed) is False  # the node can no longer use the key

    bed.clear_logs()
    run = run_playbook("cmk.atlas.verify", env=env, inventory=inventory, extra_vars=verify_vars)
    assert run.rc != 0
    report = run.task(REPORT_TASK)["msg"]
    assert report["drifted"] == ["valid", "source_ips"]
    assert report["source_ips"]["to_add"] == ["203.0.113.250/32"]
    assert report["source_ips"]["to_remove"] == [old_cidr]
    assert "203.0.113.250/32" in run.task("Fail on drift")["msg"]
    assert bed.write_calls() == []

    # Check mode shows what would be added and removed, and writes nothing. Atlas's `valid` is false until
    # the policy follows the node; the preview reports that as a warning, since its own change fixes it.
    preview = run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars=SWITCH, check=True, diff=True).assert_ok()
    assert "an earlier task would change its permissions first" in preview.output
    change = preview.task(SHOW_TASK)["msg"]
    assert (change["added"], change["removed"]) == (["203.0.113.250/32"], [old_cidr])
    assert bed.write_calls() == []
    assert policy_ips(bed) == expected

    # The re-run adds first (valid again), confirms valid, then removes the old address.
    run = run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars=SWITCH).assert_ok()
    widened = [r["result"] for r in run.results if r["task"] == WIDEN_GRANT_TASK]
    assert len(widened) == 2
    assert "203.0.113.250/32" in widened[0]["inline_policy"]["Statement"][0]["Condition"]["IpAddress"]["aws:SourceIp"]
    assert old_cidr in widened[0]["inline_policy"]["Statement"][0]["Condition"]["IpAddress"]["aws:SourceIp"]
    confirm = run.task(CONFIRM_TASK)
    assert confirm["encryption_at_rest"]["valid"] is True
    assert confirm.get("attempts", 1) == 1  # valid from the first read after widening: no window without the key
    new_expected = sorted(c for c in [*expected, "203.0.113.250/32"] if c != old_cidr)
    assert policy_ips(bed) == new_expected
    assert valid(bed) is True

    report = run_playbook("cmk.atlas.verify", env=env, inventory=inventory, extra_vars=verify_vars).assert_ok().task(REPORT_TASK)["msg"]
    assert report["in_sync"] is True, report


@pytest.mark.scenario("demo")
def test_without_the_node_addresses_the_key_check_fails(run_playbook, clean_testbed, testbed_env, write_inventory, tmp_path):
    bed = clean_testbed
    env = {**testbed_env, "CMK_ATLAS_HOSTS_FILE": bed.write_hosts_file(str(tmp_path / "nodes.hosts"))}
    inventory = write_inventory(
        {"plain": {"cmk_atlas_project_id": PLAIN, "cmk_atlas_iam_role_name": ROLE, "cmk_atlas_kms_key": "alias/atlas-cmk", "cmk_atlas_clusters": [], **FAST}}
    )
    run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars=SWITCH).assert_ok()
    assert valid(bed) is True
    # Only the control plane's addresses: the project's own check passes, the cluster's nodes are refused.
    control_plane_only = {**SWITCH, "kms_access_atlas_source_ips": False, "kms_access_source_ips": [f"{ip}/32" for ip in bed.atlas_egress_ips]}
    run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars=control_plane_only).assert_ok()
    run = run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars={"cmk_atlas_clusters": ["Cluster0"], **control_plane_only})
    assert run.rc != 0
    assert "INVALID_AWS_CREDENTIALS" in run.output
