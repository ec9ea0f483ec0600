"""The aws:SourceIp list from Atlas in cmk.atlas.enable (cmk_atlas_manage_source_ips), and drift found by cmk.atlas.verify.

cmk.atlas.key_management judges the planned list before any write, against Atlas's control-plane outbound
addresses and (with cmk_atlas_manage_source_ips) the nodes' addresses from cmk.atlas.source_ip_info, and
writes it once: a list that loses addresses is one write of the inline policy, a list that lacks Atlas's
addresses is refused with no write at all."""

import pytest

from .conftest import SUMMARY_TASK, successful_writes

pytestmark = pytest.mark.integration

PLAIN = "660000000000000000000011"
POLICY = "cmk-atlas-kms-access"
ROLE = "atlas-kms-plain"
TASK = "cmk.atlas.enable : Plan and apply customer key management for the project"
SOURCES_TASK = "cmk.atlas.enable : Collect the addresses Atlas reaches KMS from"
REPORT_TASK = "cmk.atlas.verify : Report the project"
FAST = {
    "cmk_atlas_connection": {"retries": 1, "timeout": 10},
    "cmk_atlas_authorize_timeout": 5,
    "cmk_atlas_valid_timeout": 5,
    "cmk_atlas_cluster_timeout": 60,
}
# The playbook-level switch: the aws:SourceIp list comes from Atlas (plus cmk_atlas_source_ips).
SWITCH = {"cmk_atlas_manage_source_ips": True}
# The one write of a run that changes the list: the inline policy, with the final list.
ONE_WRITE = [("aws", "PutRolePolicy")]
# What the module reads before it plans (AWS side); every one of them comes before the first write.
AWS_READS = {"GetRole", "GetRolePolicy", "DescribeKey", "GetKeyPolicy"}


def policy_ips(bed):
    document = bed.aws_client("iam").get_role_policy(RoleName=ROLE, PolicyName=POLICY)["PolicyDocument"]
    (statement,) = document["Statement"]
    value = statement["Condition"]["IpAddress"]["aws:SourceIp"]
    return sorted([value] if isinstance(value, str) else value)


def aws_operations(bed):
    """The AWS operations since the last clear_logs(), oldest first (the proxy logs them in the order they arrive)."""
    return [entry["operation"] for entry in bed.proxy.request_log() if entry["status"] < 400]


def assert_judged_then_written_once(bed):
    """One write of the inline policy, after every read the plan is judged on, and Atlas's addresses were read."""
    operations = aws_operations(bed)
    assert [op for op in operations if op == "PutRolePolicy"] == ["PutRolePolicy"], operations
    first_write = operations.index("PutRolePolicy")
    assert set(operations[:first_write]) >= AWS_READS, operations
    assert not AWS_READS & set(operations[first_write + 1 :]), operations
    assert "listControlPlaneIpAddresses" in [entry["operation_id"] for entry in bed.atlas.request_log()]


def valid(bed):
    from emulators.atlas.testing import AtlasClient

    api = AtlasClient(bed.atlas_url, bed.api_key["public_key"], bed.api_key["private_key"])
    return api.get(f"/groups/{PLAIN}/encryptionAtRest").json()["awsKms"]["valid"]


def plain(**variables):
    return {"plain": {"cmk_atlas_project_id": PLAIN, "cmk_atlas_iam_role_name": ROLE, "cmk_atlas_kms_key": "alias/atlas-cmk", **FAST, **variables}}


@pytest.mark.scenario("demo")
def test_atlas_addresses_in_the_policy_drift_found_previewed_and_fixed_in_one_write(run_playbook, clean_testbed, testbed_env, write_inventory, tmp_path):
    bed = clean_testbed
    hosts_file = bed.write_hosts_file(str(tmp_path / "nodes.hosts"))
    env = {**testbed_env, "CMK_ATLAS_HOSTS_FILE": hosts_file}
    inventory = write_inventory(plain(cmk_atlas_clusters=["Cluster0"], cmk_atlas_source_ips=["192.0.2.7"]))
    nodes = {n["hostname"]: n["public_ip"] for n in bed.atlas.project_state(PLAIN)["clusters"]["Cluster0"]["nodes"]}
    egress = [f"{ip}/32" for ip in bed.atlas_egress_ips]
    expected = sorted([*egress, "192.0.2.7/32", *(f"{ip}/32" for ip in nodes.values())])

    # Enable with the switch: control-plane and node addresses, plus the extra one, end up in the policy,
    # and the emulator's key check (which evaluates aws:SourceIp from all of them) passes.
    enabled = run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars=SWITCH).assert_ok()
    assert sorted(enabled.task(SOURCES_TASK)["cidrs"]) == sorted([*egress, *(f"{ip}/32" for ip in nodes.values())])
    assert enabled.task(TASK)["source_ips"] == expected
    assert enabled.task(SUMMARY_TASK)["msg"]["source_ips"] == expected
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
    assert "203.0.113.250/32" in run.task("cmk.atlas.verify : Fail on drift")["msg"]
    assert bed.write_calls() == []

    # Check mode shows the list that replaces the old one (the address added and the one removed) and writes nothing.
    new_expected = sorted(c for c in [*expected, "203.0.113.250/32"] if c != old_cidr)
    bed.clear_logs()
    preview = run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars=SWITCH, check=True, diff=True).assert_ok()
    assert preview.changed_tasks() == [TASK]
    planned = preview.task(TASK)
    assert planned["source_ips"] == new_expected
    # One write of the inline policy, then (the settings stay) the check that Atlas reports the key valid.
    put_then_confirm = [f"update IAM role {ROLE} (put inline policy {POLICY} on {ROLE})", f"confirm that Atlas reports the key of project {PLAIN} valid"]
    assert planned["changes"] == put_then_confirm
    # The diff of the IAM role shows the address that goes and the one that comes.
    compact = {line.replace(" ", "").rstrip(",") for line in preview.output.splitlines()}
    assert f'-"{old_cidr}"' in compact and '+"203.0.113.250/32"' in compact, preview.output[-4000:]
    assert bed.write_calls() == []
    assert policy_ips(bed) == expected

    # The real run writes the judged list once: the new address in, the old one out, and nothing else is written.
    bed.clear_logs()
    run = run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars=SWITCH).assert_ok()
    assert run.changed_tasks() == [TASK]
    result = run.task(TASK)
    assert result["source_ips"] == new_expected
    assert result["changes"] == planned["changes"]
    assert successful_writes(bed) == ONE_WRITE
    assert_judged_then_written_once(bed)
    assert policy_ips(bed) == new_expected
    assert valid(bed) is True
    assert run.task(SUMMARY_TASK)["msg"]["valid"] is True

    # Converged: a re-run writes nothing and keeps the list.
    bed.clear_logs()
    rerun = run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars=SWITCH).assert_ok()
    assert rerun.changed_tasks() == []
    assert (rerun.task(TASK)["changes"], rerun.task(TASK)["source_ips"]) == ([], new_expected)
    assert bed.write_calls() == []
    assert policy_ips(bed) == new_expected

    report = run_playbook("cmk.atlas.verify", env=env, inventory=inventory, extra_vars=verify_vars).assert_ok().task(REPORT_TASK)["msg"]
    assert report["in_sync"] is True, report


@pytest.mark.scenario("demo")
def test_without_the_node_addresses_the_key_check_fails(run_playbook, clean_testbed, testbed_env, write_inventory, tmp_path):
    bed = clean_testbed
    env = {**testbed_env, "CMK_ATLAS_HOSTS_FILE": bed.write_hosts_file(str(tmp_path / "nodes.hosts"))}
    inventory = write_inventory(plain(cmk_atlas_clusters=[]))
    run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars=SWITCH).assert_ok()
    assert valid(bed) is True
    nodes = sorted(f"{n['public_ip']}/32" for n in bed.atlas.project_state(PLAIN)["clusters"]["Cluster0"]["nodes"])
    assert len(nodes) == 3
    assert set(nodes) <= set(policy_ips(bed))
    # Only the control plane's addresses, without the switch: the plan is judged against the control plane alone,
    # so the list that loses the nodes' addresses is written, once; the project's own check passes.
    egress = [f"{ip}/32" for ip in bed.atlas_egress_ips]
    control_plane_only = {"cmk_atlas_manage_source_ips": False, "cmk_atlas_source_ips": egress}
    bed.clear_logs()
    narrowed = run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars=control_plane_only).assert_ok()
    assert narrowed.task(TASK)["source_ips"] == sorted(egress)
    assert policy_ips(bed) == sorted(egress)
    assert successful_writes(bed) == ONE_WRITE
    assert_judged_then_written_once(bed)
    assert valid(bed) is True
    # Encrypting the cluster then fails at Atlas: its nodes may not use the key, and the message names the writes made.
    bed.clear_logs()
    run = run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars={"cmk_atlas_clusters": ["Cluster0"], **control_plane_only})
    assert run.rc != 0
    assert run.failed_tasks() == [TASK]
    assert "INVALID_AWS_CREDENTIALS" in run.output
    assert "set encryptionAtRestProvider AWS on Cluster0" in run.task(TASK)["msg"]
    assert bed.atlas.project_state(PLAIN)["clusters"]["Cluster0"]["encryptionAtRestProvider"] != "AWS"

    # With the switch, the nodes' addresses are back in the list (one write) and the cluster is encrypted.
    bed.clear_logs()
    fixed = run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars={"cmk_atlas_clusters": ["Cluster0"], **SWITCH}).assert_ok()
    assert set(nodes) <= set(fixed.task(TASK)["source_ips"])
    assert [call for call in successful_writes(bed) if call[0] == "aws"] == ONE_WRITE
    assert bed.atlas.project_state(PLAIN)["clusters"]["Cluster0"]["encryptionAtRestProvider"] == "AWS"
    assert valid(bed) is True


@pytest.mark.scenario("demo")
def test_a_list_that_lacks_atlas_addresses_is_refused_with_no_write(run_playbook, clean_testbed, testbed_env, write_inventory, tmp_path):
    """Narrowing the list so that it drops Atlas's control-plane addresses is refused before any write, in check mode too."""
    bed = clean_testbed
    env = {**testbed_env, "CMK_ATLAS_HOSTS_FILE": bed.write_hosts_file(str(tmp_path / "nodes.hosts"))}
    inventory = write_inventory(plain(cmk_atlas_clusters=["Cluster0"]))
    run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars=SWITCH).assert_ok()
    before = policy_ips(bed)
    egress = sorted(f"{ip}/32" for ip in bed.atlas_egress_ips)
    nodes = sorted(f"{n['public_ip']}/32" for n in bed.atlas.project_state(PLAIN)["clusters"]["Cluster0"]["nodes"])
    assert before == sorted([*egress, *nodes])

    # Only the nodes' addresses: the list loses every control-plane address, so Atlas could not check the key.
    nodes_only = {"cmk_atlas_manage_source_ips": False, "cmk_atlas_source_ips": nodes}
    for check in (True, False):
        bed.clear_logs()
        run = run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars=nodes_only, check=check)
        assert run.rc != 0
        assert run.failed_tasks() == [TASK]
        message = run.task(TASK)["msg"]
        # One problem, about the list, naming Atlas's addresses (not a second one about the policy with another fix).
        assert message.startswith(f"cmk.atlas.enable of project {PLAIN}: 1 problem found before any write, so nothing was written. (1) cmk_atlas_source_ips:")
        assert all(cidr in message for cidr in egress), message
        assert "cmk_atlas_manage_source_ips: true" in message
        assert successful_writes(bed) == []
        assert policy_ips(bed) == before
    assert valid(bed) is True

    # With the switch on, the same extra list is added to Atlas's addresses, not put in their place: nothing to write.
    bed.clear_logs()
    run = run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars={**nodes_only, **SWITCH}).assert_ok()
    assert run.changed_tasks() == []
    assert (run.task(TASK)["source_ips"], policy_ips(bed)) == (before, before)
    assert bed.write_calls() == []


@pytest.mark.scenario("demo")
def test_a_stale_node_address_is_written_once_and_the_failure_names_the_write(run_playbook, clean_testbed, testbed_env, write_inventory, tmp_path):
    """The module judges the list against the addresses it is given; when those are stale, Atlas's own check catches it
    after the one write, the failure says which write was made, and the run with the right addresses fixes it."""
    bed = clean_testbed
    hosts_file = bed.write_hosts_file(str(tmp_path / "nodes.hosts"))
    env = {**testbed_env, "CMK_ATLAS_HOSTS_FILE": hosts_file}
    inventory = write_inventory(plain(cmk_atlas_clusters=["Cluster0"]))
    run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars=SWITCH).assert_ok()
    before = policy_ips(bed)
    nodes = {n["hostname"]: n["public_ip"] for n in bed.atlas.project_state(PLAIN)["clusters"]["Cluster0"]["nodes"]}
    moved = sorted(nodes)[0]
    old_cidr = f"{nodes[moved]}/32"
    assert old_cidr in before

    # Atlas moves a node to 203.0.113.250, but the name still resolves to a stale 203.0.113.251: the list judged
    # (with .251) is written once, and Atlas does not report the key valid, since the node's real address is missing.
    bed.atlas.set_node_public_ip(PLAIN, "Cluster0", moved, "203.0.113.250")
    with open(hosts_file, "w", encoding="utf-8") as handle:
        handle.write("".join(f"{'203.0.113.251' if name == moved else ip} {name}\n" for name, ip in sorted(nodes.items())))
    stale = sorted([*(c for c in before if c != old_cidr), "203.0.113.251/32"])
    bed.clear_logs()
    run = run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars=SWITCH)
    assert run.rc != 0
    assert run.failed_tasks() == [TASK]
    message = run.task(TASK)["msg"]
    assert "valid" in message and "cmk.atlas.verify" in message
    assert f"Writes made before it in this run: update IAM role {ROLE}" in message and "Run again to continue" in message
    assert successful_writes(bed) == ONE_WRITE
    assert_judged_then_written_once(bed)
    assert policy_ips(bed) == stale
    assert valid(bed) is False

    # With the right address the next run writes the list once more (.250 in, .251 out) and Atlas reports the key valid.
    bed.write_hosts_file(hosts_file)
    bed.clear_logs()
    fixed = run_playbook("cmk.atlas.enable", env=env, inventory=inventory, extra_vars=SWITCH).assert_ok()
    fixed_list = sorted([*(c for c in before if c != old_cidr), "203.0.113.250/32"])
    assert fixed.task(TASK)["source_ips"] == fixed_list
    assert successful_writes(bed) == ONE_WRITE
    assert_judged_then_written_once(bed)
    assert policy_ips(bed) == fixed_list
    assert valid(bed) is True
