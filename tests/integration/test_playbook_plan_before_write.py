"""The plan is judged before the first write, and nothing that belongs to someone else is taken.

Each case was reported against an Atlas that behaves like the real one; each refusal writes nothing."""

import json

import pytest

from .conftest import SUMMARY_TASK, assert_refused, successful_writes

pytestmark = pytest.mark.integration

ENABLE = "cmk.atlas.enable"
TASK = "cmk.atlas.enable : Plan and apply customer key management for the project"
FAST = {"cmk_atlas_connection": {"retries": 1, "timeout": 10}, "cmk_atlas_authorize_timeout": 5, "cmk_atlas_valid_timeout": 5}
ATLAS_ACCOUNT_ARN = "arn:aws:iam::536727724300:root"


def project(bed, name, role_name, **variables):
    return {"cmk_atlas_project_id": bed.projects[name], "cmk_atlas_iam_role_name": role_name, "cmk_atlas_kms_key": bed.keys["main"]["arn"], **FAST, **variables}


def trust(principal, external_id=None):
    statement = {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}
    if external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def refused(run, *texts):
    return assert_refused(run, TASK, *texts)


def assert_nothing_written(bed):
    assert successful_writes(bed) == []


# -- ownership of the IAM role ------------------------------------------------------------------------


@pytest.mark.scenario("demo")
def test_a_role_paired_with_another_project_is_never_changed(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    other = "5f0000000000000000000abc"
    iam = bed.aws_client("iam")
    iam.create_role(
        RoleName="atlas-kms-shared",
        AssumeRolePolicyDocument=trust({"AWS": ATLAS_ACCOUNT_ARN}, "11111111-2222-3333-4444-555555555555"),
        Tags=[{"Key": "cmk-atlas:project-id", "Value": other}, {"Key": "cmk-atlas:role-id", "Value": "5f0000000000000000000def"}],
    )
    before = iam.get_role(RoleName="atlas-kms-shared")["Role"]
    inventory = write_inventory({"plain": project(bed, "plain", "atlas-kms-shared")})
    for check in (True, False):
        bed.clear_logs()
        run = run_playbook(ENABLE, env=testbed_env, inventory=inventory, check=check)
        refused(run, "cmk_atlas_iam_role_name", other, "never changed for another project")
        assert_nothing_written(bed)
    after = iam.get_role(RoleName="atlas-kms-shared")["Role"]
    assert after["AssumeRolePolicyDocument"] == before["AssumeRolePolicyDocument"]
    assert bed.atlas.project_state(bed.projects["plain"])["roles"] == []


@pytest.mark.scenario("demo")
def test_a_role_that_trusts_atlas_for_another_external_id_is_refused(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    bed.aws_client("iam").create_role(
        RoleName="atlas-kms-elsewhere", AssumeRolePolicyDocument=trust({"AWS": ATLAS_ACCOUNT_ARN}, "99999999-2222-3333-4444-555555555555")
    )
    inventory = write_inventory({"plain": project(bed, "plain", "atlas-kms-elsewhere")})
    bed.clear_logs()
    refused(run_playbook(ENABLE, env=testbed_env, inventory=inventory), "cmk_atlas_iam_role_name", "serves another party")
    assert_nothing_written(bed)


@pytest.mark.scenario("demo")
def test_a_foreign_role_is_taken_over_only_on_the_users_word(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    iam = bed.aws_client("iam")
    iam.create_role(RoleName="app-server", AssumeRolePolicyDocument=trust({"Service": "ec2.amazonaws.com"}))
    s3 = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::orders/*"}]}
    iam.put_role_policy(RoleName="app-server", PolicyName="s3-read", PolicyDocument=json.dumps(s3))
    variables = project(bed, "plain", "app-server")
    bed.clear_logs()
    refused(run_playbook(ENABLE, env=testbed_env, inventory=write_inventory({"plain": variables})), "cmk_atlas_adopt_iam_role", "app-server")
    assert_nothing_written(bed)
    assert "ec2.amazonaws.com" in json.dumps(iam.get_role(RoleName="app-server")["Role"]["AssumeRolePolicyDocument"])

    # With the user's word: adopted, the diff shows the trust it loses, and the S3 permission it keeps is a warning.
    variables["cmk_atlas_adopt_iam_role"] = True
    inventory = write_inventory({"plain": variables})
    check = run_playbook(ENABLE, env=testbed_env, inventory=inventory, check=True, diff=True).assert_ok()
    assert '-                    "Service": "ec2.amazonaws.com"' in check.output or "ec2.amazonaws.com" in json.dumps(check.task(TASK)["diff"])
    run = run_playbook(ENABLE, env=testbed_env, inventory=inventory).assert_ok()
    assert "s3-read" in " ".join(run.task(TASK).get("warnings", []))
    assert run.task(SUMMARY_TASK)["msg"]["valid"] is True


@pytest.mark.scenario("demo")
def test_a_role_that_trusts_atlas_with_this_projects_external_id_is_adopted(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    from emulators.atlas.testing import AtlasClient

    api = AtlasClient(bed.atlas_url, bed.api_key["public_key"], bed.api_key["private_key"])
    group = bed.projects["plain"]
    atlas_role = api.post(f"/groups/{group}/cloudProviderAccess", {"providerName": "AWS"}).json()
    iam = bed.aws_client("iam")
    iam.create_role(RoleName="made-by-hand", AssumeRolePolicyDocument=trust({"AWS": ATLAS_ACCOUNT_ARN}, atlas_role["atlasAssumedRoleExternalId"]))
    inventory = write_inventory({"plain": project(bed, "plain", "made-by-hand")})
    run = run_playbook(ENABLE, env=testbed_env, inventory=inventory).assert_ok()
    result = run.task(TASK)
    assert (result["role_id"], result["reused_by"]) == (atlas_role["roleId"], "external_id")
    tags = {tag["Key"]: tag["Value"] for tag in iam.list_role_tags(RoleName="made-by-hand")["Tags"]}
    assert tags["cmk-atlas:project-id"] == group


# -- safety judged on the planned state ---------------------------------------------------------------


@pytest.mark.scenario("demo")
def test_a_source_ip_list_without_atlas_addresses_is_refused_before_any_write(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    variables = project(bed, "plain", "atlas-kms-plain")
    inventory = write_inventory({"plain": variables})
    run_playbook(ENABLE, env=testbed_env, inventory=inventory).assert_ok()
    # The policy has no aws:SourceIp condition now, which admits every address; a list without Atlas's would cut it off.
    variables["cmk_atlas_source_ips"] = ["10.0.0.0/8"]
    inventory = write_inventory({"plain": variables})
    for check in (True, False):
        bed.clear_logs()
        run = run_playbook(ENABLE, env=testbed_env, inventory=inventory, check=check)
        refused(run, "cmk_atlas_source_ips", "198.51.100.10/32")
        assert_nothing_written(bed)
    inline = bed.aws_client("iam").get_role_policy(RoleName="atlas-kms-plain", PolicyName="cmk-atlas-kms-access")["PolicyDocument"]
    assert "Condition" not in inline["Statement"][0]


@pytest.mark.scenario("demo")
def test_a_narrowed_list_that_drops_node_addresses_is_refused(run_playbook, clean_testbed, testbed_env, write_inventory, tmp_path):
    bed = clean_testbed
    hosts_file = bed.write_hosts_file(str(tmp_path / "nodes.hosts"))
    variables = project(bed, "plain", "atlas-kms-plain", cmk_atlas_manage_source_ips=True, cmk_atlas_hosts_file=hosts_file, cmk_atlas_clusters=["Cluster0"])
    inventory = write_inventory({"plain": variables})
    run_playbook(ENABLE, env=testbed_env, inventory=inventory).assert_ok()
    # A node's address changes: the list from Atlas follows it, and the added address is judged against the nodes'.
    bed.atlas.set_node_public_ip(bed.projects["plain"], "Cluster0", "cluster0-shard-00-00.pl4in.mongodb.net", "203.0.113.99")
    hosts_file = bed.write_hosts_file(str(tmp_path / "nodes.hosts"))
    bed.clear_logs()
    run = run_playbook(ENABLE, env=testbed_env, inventory=inventory).assert_ok()
    assert "203.0.113.99/32" in run.task(TASK)["source_ips"]
    assert bed.atlas.project_state(bed.projects["plain"])["encryptionAtRest"]["enabled"]


@pytest.mark.scenario("demo")
@pytest.mark.parametrize("case", ["disabled_key", "missing_cluster", "paused_cluster", "region", "key_policy_unreadable"])
def test_bad_state_is_refused_before_the_first_write(run_playbook, clean_testbed, testbed_env, write_inventory, case):
    bed = clean_testbed
    key = bed.keys["main"]
    variables = project(bed, "plain", "atlas-kms-plain")
    expected = []
    if case == "disabled_key":
        bed.aws_client("kms").disable_key(KeyId=key["arn"].rsplit("/", 1)[1])
        expected = [key["arn"], "enable-key"]
    elif case == "missing_cluster":
        variables["cmk_atlas_clusters"] = ["Cluster9"]
        expected = ["cmk_atlas_clusters", "Cluster9"]
    elif case == "paused_cluster":
        bed.atlas.add_cluster(bed.projects["plain"], "Paused1", paused=True)
        variables["cmk_atlas_clusters"] = ["Cluster0", "Paused1"]
        expected = ["cmk_atlas_clusters", "Paused1", "paused"]
    elif case == "region":
        variables["cmk_atlas_region"] = "eu-west-2"
        expected = ["cmk_atlas_region", "eu-west-2", "us-east-1"]
    else:
        bed.proxy.fail("GetKeyPolicy", error="AccessDeniedException", count=10)
        expected = ["kms:GetKeyPolicy", "cmk_atlas_key_owner_role_arn"]
    inventory = write_inventory({"plain": variables})
    bed.clear_logs()
    refused(run_playbook(ENABLE, env=testbed_env, inventory=inventory), *expected)
    assert_nothing_written(bed)
    state = bed.atlas.project_state(bed.projects["plain"])
    assert state["roles"] == [] and not state["encryptionAtRest"]["enabled"]
    assert bed.aws_client("iam").list_roles()["Roles"] == []


@pytest.mark.scenario("demo")
def test_every_problem_is_reported_at_once(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    bed.aws_client("kms").disable_key(KeyId=bed.keys["main"]["arn"].rsplit("/", 1)[1])
    inventory = write_inventory({"plain": project(bed, "plain", "atlas-kms-plain", cmk_atlas_clusters=["Cluster9"], cmk_atlas_region="eu-west-2")})
    bed.clear_logs()
    message = refused(run_playbook(ENABLE, env=testbed_env, inventory=inventory), "3 problems", "Cluster9", "enable-key", "cmk_atlas_region")
    assert "(1)" in message and "(3)" in message
    assert_nothing_written(bed)


@pytest.mark.scenario("demo")
def test_a_failure_part_way_names_the_writes_made_and_a_rerun_continues(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    inventory = write_inventory({"plain": project(bed, "plain", "atlas-kms-plain")})
    bed.atlas.inject_fault("updateGroupEncryptionAtRest", status=409, count=1, error_code="CONFLICTING_UPDATE")
    run = run_playbook(ENABLE, env=testbed_env, inventory=inventory)
    assert run.rc != 0
    message = run.task(TASK)["msg"]
    assert "Writes made before it in this run: create an Atlas cloud provider access role" in message
    assert "create IAM role atlas-kms-plain" in message and "authorize Atlas role" in message
    assert "Run again to continue" in message and "Nothing was written" not in message

    bed.clear_logs()
    rerun = run_playbook(ENABLE, env=testbed_env, inventory=inventory).assert_ok()
    writes = successful_writes(bed)
    assert writes == [("atlas", "updateGroupEncryptionAtRest")], writes
    assert rerun.task(SUMMARY_TASK)["msg"]["valid"] is True
    assert len(bed.atlas.project_state(bed.projects["plain"])["roles"]) == 1


@pytest.mark.scenario("demo")
def test_enable_does_not_rotate_a_project_to_another_key(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    variables = project(bed, "plain", "atlas-kms-plain")
    run_playbook(ENABLE, env=testbed_env, inventory=write_inventory({"plain": variables})).assert_ok()
    other = bed.aws_client("kms").create_key(Description="another key")["KeyMetadata"]["Arn"]
    variables["cmk_atlas_kms_key"] = other
    bed.clear_logs()
    refused(run_playbook(ENABLE, env=testbed_env, inventory=write_inventory({"plain": variables})), "cmk.atlas.rotate", other)
    assert_nothing_written(bed)


# -- a shared key: one statement per role --------------------------------------------------------------


@pytest.mark.scenario("cross_account")
def test_roles_whose_names_differ_only_in_punctuation_keep_their_own_key_policy_statements(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    key = bed.keys["main"]
    second = bed.atlas.add_project("660000000000000000000022", "cmk-cross-second")
    owner = bed.roles["key_admin"]["arn"]
    shared = {"cmk_atlas_kms_key": key["arn"], "cmk_atlas_key_owner_role_arn": owner, **FAST}
    hosts = {
        "first": {"cmk_atlas_project_id": bed.projects["cross"], "cmk_atlas_iam_role_name": "atlas-kms-ab", **shared},
        "second": {"cmk_atlas_project_id": second, "cmk_atlas_iam_role_name": "atlas_kms_ab", **shared},
    }
    for name, variables in hosts.items():
        run_playbook(ENABLE, env=testbed_env, inventory=write_inventory({name: variables})).assert_ok()
    kms = bed.aws_client("kms", account="K")
    policy = json.loads(kms.get_key_policy(KeyId=key["arn"].rsplit("/", 1)[1], PolicyName="default")["Policy"])
    ours = {s["Sid"]: s["Principal"]["AWS"] for s in policy["Statement"] if s.get("Sid", "").startswith("MongoDBAtlasKeyAccess")}
    assert ours == {
        "MongoDBAtlasKeyAccessaws111111111111X2FatlasX2DkmsX2Dab": "arn:aws:iam::111111111111:role/atlas-kms-ab",
        "MongoDBAtlasKeyAccessaws111111111111X2FatlasX5FkmsX5Fab": "arn:aws:iam::111111111111:role/atlas_kms_ab",
    }
    # Both projects keep their key: a converged re-run of the first changes nothing, and Atlas reports both valid.
    bed.clear_logs()
    rerun = run_playbook(ENABLE, env=testbed_env, inventory=write_inventory({"first": hosts["first"]})).assert_ok()
    assert rerun.changed_tasks() == [] and bed.write_calls() == []
    for group in (bed.projects["cross"], second):
        assert bed.atlas.project_state(group)["encryptionAtRest"]["enabled"]
    assert rerun.task(SUMMARY_TASK)["msg"]["valid"] is True


# -- two runs at once ----------------------------------------------------------------------------------


@pytest.mark.scenario("demo")
def test_two_runs_at_once_leave_one_atlas_role_authorized_for_the_iam_role(run_playbook, clean_testbed, testbed_env, write_inventory):
    import concurrent.futures

    bed = clean_testbed
    group = bed.projects["plain"]
    inventory = write_inventory({"plain": project(bed, "plain", "atlas-kms-plain")})
    # Both runs read at the same moment: neither sees the other's Atlas role before it plans its own.
    bed.atlas.inject_fault("listGroupCloudProviderAccess", status=None, delay=1.5, count=2)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda _n: run_playbook(ENABLE, env=testbed_env, inventory=inventory), range(2)))
    # Whatever the interleaving, a run that fails says what it wrote, and a re-run converges.
    for run in runs:
        if run.rc != 0:
            assert "Writes made before it" in run.task(TASK)["msg"] or "found before any write" in run.task(TASK)["msg"], run.task(TASK)["msg"]
    run_playbook(ENABLE, env=testbed_env, inventory=inventory).assert_ok()
    roles = bed.atlas.project_state(group)["roles"]
    role_arn = f"arn:aws:iam::{bed.accounts['R']}:role/atlas-kms-plain"
    authorized = [role for role in roles if role["authorized"] and role["iamAssumedRoleArn"] == role_arn]
    assert len(authorized) == 1, roles
    assert [role for role in roles if not role["authorized"]] == [], roles
    assert bed.atlas.project_state(group)["encryptionAtRest"]["roleId"] == authorized[0]["roleId"]


# -- search nodes --------------------------------------------------------------------------------------


@pytest.mark.scenario("demo")
def test_search_nodes_are_left_alone_unless_set_and_a_change_is_previewed(run_playbook, clean_testbed, testbed_env, write_inventory):
    from emulators.atlas.testing import AtlasClient

    bed = clean_testbed
    api = AtlasClient(bed.atlas_url, bed.api_key["public_key"], bed.api_key["private_key"])
    group = bed.projects["plain"]

    def search_nodes():
        return api.get(f"/groups/{group}/encryptionAtRest").json()["enabledForSearchNodes"]

    variables = project(bed, "plain", "atlas-kms-plain")
    run = run_playbook(ENABLE, env=testbed_env, inventory=write_inventory({"plain": variables})).assert_ok()
    updates = [entry for entry in bed.atlas.request_log() if entry["operation_id"] == "updateGroupEncryptionAtRest" and entry["status"] == 200]
    assert len(updates) == 1 and search_nodes() is False
    assert run.task(SUMMARY_TASK)["msg"]["enabled_for_search_nodes"] is False

    variables["cmk_atlas_enabled_for_search_nodes"] = True
    inventory = write_inventory({"plain": variables})
    bed.clear_logs()
    check = run_playbook(ENABLE, env=testbed_env, inventory=inventory, check=True, diff=True).assert_ok()
    assert check.task(TASK)["changes"] == [f"set encryption at rest of project {group} (enabledForSearchNodes) and wait for valid"]
    assert "rebuilds their indexes" in check.output
    assert successful_writes(bed) == []

    run = run_playbook(ENABLE, env=testbed_env, inventory=inventory).assert_ok()
    assert search_nodes() is True
    assert run.task(SUMMARY_TASK)["msg"]["enabled_for_search_nodes"] is True
    bed.clear_logs()
    assert run_playbook(ENABLE, env=testbed_env, inventory=inventory).assert_ok().changed_tasks() == []
    assert bed.write_calls() == []


@pytest.mark.scenario("demo")
def test_a_clean_preview_prints_no_warning(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    inventory = write_inventory({"plain": project(bed, "plain", "atlas-kms-plain", cmk_atlas_clusters=["Cluster0"])})
    check = run_playbook(ENABLE, env=testbed_env, inventory=inventory, check=True, diff=True).assert_ok()
    assert check.task(TASK).get("warnings", []) == []
    assert "[WARNING]" not in check.output, check.output[-3000:]
    assert check.task(SUMMARY_TASK)["msg"]["clusters"] == {"Cluster0": "AWS"}
