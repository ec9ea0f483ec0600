"""The aws:SourceIp list from Atlas in cmk.atlas.enable (cmk_atlas_manage_source_ips), and drift found by cmk.atlas.verify."""

import pytest

from .conftest import SUMMARY_TASK, successful_writes

pytestmark = pytest.mark.integration

PLAIN = "660000000000000000000011"
POLICY = "cmk-atlas-kms-access"
ROLE = "atlas-kms-plain"
SHOW_TASK = "Show the source-IP change"
# cmk.atlas.key_access: widens the condition to old and new addresses, waits for Atlas to report the key valid,
# then narrows it, all in this one task.
ACCESS_TASK = "Let Atlas reach the key through the IAM role"
CLUSTER_TASK = "cmk.atlas.encryption_at_rest : Encrypt the clusters with the key"
REPORT_TASK = "Report the project"
# Short waits (cmk_atlas_valid_timeout bounds the wait for `valid` before addresses are removed) keep the test bed quick.
FAST = {
    "cmk_atlas_connection": {"retries": 1, "timeout": 10},
    "cmk_atlas_authorize_timeout": 5,
    "cmk_atlas_valid_timeout": 5,
    "encryption_at_rest_cluster_poll_interval": 0.1,
    "encryption_at_rest_cluster_wait_timeout": 60,
}
# The playbook-level switch: the aws:SourceIp list comes from Atlas (plus cmk_atlas_source_ips).
SWITCH = {"cmk_atlas_manage_source_ips": True}
# The two writes of a run that adds and removes addresses: the widening one (old and new), then the narrowing one.
WIDEN_THEN_NARROW = [("aws", "PutRolePolicy"), ("aws", "PutRolePolicy")]


def policy_ips(bed):
    document = bed.aws_client("iam").get_role_policy(RoleName=ROLE, PolicyName=POLICY)["PolicyDocument"]
    (statement,) = document["Statement"]
    value = statement["Condition"]["IpAddress"]["aws:SourceIp"]
    return sorted([value] if isinstance(value, str) else value)


def access_step_atlas_calls(bed):
    """The Atlas operations cmk.atlas.key_access called, from its first (the project's roles) to the next module's
    HTTP digest challenge (each module run starts with one); the challenges themselves left out."""
    log = bed.atlas.request_log()
    start = next(i for i, entry in enumerate(log) if entry["operation_id"] == "listGroupCloudProviderAccess")
    end = next((i for i in range(start + 1, len(log)) if log[i]["status"] == 401), len(log))
    return [entry["operation_id"] for entry in log[start:end] if entry["status"] != 401]


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
    enabled = run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars=SWITCH).assert_ok()
    assert enabled.task(ACCESS_TASK)["source_ips"] == expected
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
    new_expected = sorted(c for c in [*expected, "203.0.113.250/32"] if c != old_cidr)
    preview = run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars=SWITCH, check=True, diff=True).assert_ok()
    assert "an earlier task would change its permissions first" in preview.output
    assert preview.changed_tasks() == [ACCESS_TASK]
    change = preview.task(SHOW_TASK)["msg"]
    assert (change["added"], change["removed"]) == (["203.0.113.250/32"], [old_cidr])
    assert change["source_ips"] == new_expected
    assert bed.write_calls() == []
    assert policy_ips(bed) == expected

    # The re-run adds first (valid again), confirms valid, then removes the old address: two writes of the
    # inline policy in the one key_access run, and nothing else is written.
    bed.clear_logs()
    run = run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars=SWITCH).assert_ok()
    assert run.changed_tasks() == [ACCESS_TASK]
    access = run.task(ACCESS_TASK)
    assert (access["source_ips_added"], access["source_ips_removed"]) == (["203.0.113.250/32"], [old_cidr])
    assert access["source_ips"] == new_expected
    assert successful_writes(bed) == WIDEN_THEN_NARROW
    # Atlas is read at the start (roles, encryption at rest) and once after widening, where it already reports the
    # key valid: no further read, so no window without the key.
    assert access_step_atlas_calls(bed) == ["listGroupCloudProviderAccess", "getGroupEncryptionAtRest", "getGroupEncryptionAtRest"]
    assert policy_ips(bed) == new_expected
    assert valid(bed) is True
    assert run.task(SUMMARY_TASK)["msg"]["valid"] is True

    # Converged: a re-run neither widens nor narrows again, and writes nothing.
    bed.clear_logs()
    rerun = run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars=SWITCH).assert_ok()
    assert rerun.changed_tasks() == []
    assert (rerun.task(SHOW_TASK)["msg"]["added"], rerun.task(SHOW_TASK)["msg"]["removed"]) == ([], [])
    assert bed.write_calls() == []
    assert policy_ips(bed) == new_expected

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
    nodes = sorted(f"{n['public_ip']}/32" for n in bed.atlas.project_state(PLAIN)["clusters"]["Cluster0"]["nodes"])
    assert len(nodes) == 3
    # Only the control plane's addresses: the project's own check passes, the cluster's nodes are refused.
    egress = [f"{ip}/32" for ip in bed.atlas_egress_ips]
    control_plane_only = {"cmk_atlas_manage_source_ips": False, "cmk_atlas_source_ips": egress}
    bed.clear_logs()
    narrowed = run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars=control_plane_only).assert_ok()
    access = narrowed.task(ACCESS_TASK)
    assert (access["source_ips_added"], access["source_ips_removed"]) == ([], nodes)
    assert policy_ips(bed) == sorted(egress)
    # Nothing added, so the old list already holds old and new: the one write is the narrowing one.
    assert successful_writes(bed) == [("aws", "PutRolePolicy")]
    run = run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars={"cmk_atlas_clusters": ["Cluster0"], **control_plane_only})
    assert run.rc != 0
    assert run.failed_tasks() == [CLUSTER_TASK]
    assert "INVALID_AWS_CREDENTIALS" in run.output


@pytest.mark.scenario("demo")
def test_no_address_is_removed_until_atlas_reports_the_key_valid_with_the_old_and_the_new(run_playbook, clean_testbed, testbed_env, write_inventory, tmp_path):
    """The widening write holds the old and the new addresses; while Atlas cannot use the key, the narrowing one never comes."""
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
                **FAST,
            }
        }
    )
    run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars=SWITCH).assert_ok()
    before = policy_ips(bed)
    nodes = {n["hostname"]: n["public_ip"] for n in bed.atlas.project_state(PLAIN)["clusters"]["Cluster0"]["nodes"]}
    moved = sorted(nodes)[0]
    old_cidr = f"{nodes[moved]}/32"
    assert old_cidr in before

    # Atlas moves a node to 203.0.113.250, but the name still resolves to a stale 203.0.113.251: the widened
    # policy (old addresses and .251) does not let the node use the key, so Atlas never reports it valid.
    bed.atlas.set_node_public_ip(PLAIN, "Cluster0", moved, "203.0.113.250")
    with open(hosts_file, "w", encoding="utf-8") as handle:
        handle.write("".join(f"{'203.0.113.251' if name == moved else ip} {name}\n" for name, ip in sorted(nodes.items())))
    bed.clear_logs()
    run = run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars=SWITCH)
    assert run.rc != 0
    assert run.failed_tasks() == [ACCESS_TASK]
    message = run.task(ACCESS_TASK)["msg"]
    assert "Atlas reports the key not valid" in message and "no address was removed" in message
    assert f"it would remove {old_cidr}" in message
    # Only the widening write happened: every old address is still allowed, next to the new one.
    assert successful_writes(bed) == [("aws", "PutRolePolicy")]
    assert policy_ips(bed) == sorted([*before, "203.0.113.251/32"])
    assert valid(bed) is False

    # Only removing (the stale .251, nothing added) waits for Atlas's valid flag too: no write at all while it is false.
    bed.clear_logs()
    remove_only = run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars={"cmk_atlas_source_ips": before})
    assert remove_only.rc != 0
    assert remove_only.failed_tasks() == [ACCESS_TASK]
    assert "it would remove 203.0.113.251/32" in remove_only.task(ACCESS_TASK)["msg"]
    assert successful_writes(bed) == []
    assert policy_ips(bed) == sorted([*before, "203.0.113.251/32"])

    # With the right address the next run widens again (adding .250), Atlas reports the key valid, and both the
    # address the node left and the stale one are removed.
    bed.write_hosts_file(hosts_file)
    bed.clear_logs()
    fixed = run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars=SWITCH).assert_ok()
    access = fixed.task(ACCESS_TASK)
    assert (access["source_ips_added"], access["source_ips_removed"]) == (["203.0.113.250/32"], sorted([old_cidr, "203.0.113.251/32"]))
    assert successful_writes(bed) == WIDEN_THEN_NARROW
    assert policy_ips(bed) == sorted([*(c for c in before if c != old_cidr), "203.0.113.250/32"])
    assert valid(bed) is True
