"""cmk.atlas.enable end to end: ansible-playbook against the Atlas emulator and moto."""

import json

import pytest

from .conftest import SUMMARY_TASK, UNKNOWN, matches_prediction, successful_writes

pytestmark = pytest.mark.integration

PLAYBOOK = "cmk.atlas.enable"
# cmk.atlas.key_management: reads every resource once, judges the planned state, then writes the Atlas role,
# the IAM role, the key policy where needed, the authorization, encryption at rest and the clusters, in one task.
TASK = "cmk.atlas.enable : Plan and apply customer key management for the project"
SOURCES_TASK = "cmk.atlas.enable : Collect the addresses Atlas reaches KMS from"
# Small bounds, so that faults do not make a test wait.
FAST = {
    "cmk_atlas_connection": {"retries": 1, "timeout": 10},
    "cmk_atlas_authorize_timeout": 5,
    "cmk_atlas_valid_timeout": 5,
    "cmk_atlas_cluster_timeout": 60,
}


def project(bed, name, role_name, **variables):
    return {"cmk_atlas_project_id": bed.projects[name], "cmk_atlas_iam_role_name": role_name, **FAST, **variables}


def first_run_changes(group, role_name, key_statement=None, clusters=None):
    """What the first run writes on a project where nothing exists yet, in this order (the new Atlas role's id
    is known only after it is made). Each entry is how the change's description starts."""
    role_arn = f"arn:aws:iam::111111111111:role/{role_name}"
    return [
        f"create an Atlas cloud provider access role in project {group}",
        f"create IAM role {role_name} (",
        *([key_statement] if key_statement else []),
        f"authorize Atlas role {UNKNOWN} for {role_arn}",
        f"set encryption at rest of project {group} (",
        *([f"set encryptionAtRestProvider AWS on {clusters} and wait for IDLE"] if clusters else []),
    ]


def assert_changes(changes, expected):
    """``changes`` are the writes ``expected`` names, in order (each starts with its text)."""
    assert len(changes) == len(expected), (changes, expected)
    for change, start in zip(changes, expected):
        assert change.startswith(start), (change, start, changes)


def iam_roles(bed, account="R"):
    return sorted(role["RoleName"] for role in bed.aws_client("iam", account=account).list_roles()["Roles"])


def atlas_roles(bed, group):
    return bed.atlas.project_state(group)["roles"]


def atlas_reads(bed):
    return [entry["operation_id"] for entry in bed.atlas.request_log() if entry["status"] != 401]


def assert_enabled(bed, group, role_name, key_id, region="US_EAST_1"):
    """One Atlas role, authorized for the IAM role and used by encryption at rest with the key."""
    state = bed.atlas.project_state(group)
    (role,) = state["roles"]
    assert role["authorized"] and role["inUse"]
    assert role["iamAssumedRoleArn"] == f"arn:aws:iam::{bed.accounts['R']}:role/{role_name}"
    ear = state["encryptionAtRest"]
    assert (ear["enabled"], ear["roleId"], ear["customerMasterKeyID"], ear["region"]) == (True, role["roleId"], key_id, region)
    assert not ear["credentialsStored"]
    return role


def diff_named(result, header):
    (diff,) = [diff for diff in result["diff"] if diff.get("before_header") == header]
    return diff


# -- from scratch ------------------------------------------------------------------------------------


def test_enable_from_scratch_check_mode_predicts_the_run_which_then_converges(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    group = bed.projects["empty"]
    key = bed.keys["main"]
    inventory = write_inventory({"empty": project(bed, "empty", "atlas-kms-empty", cmk_atlas_kms_key=key["alias"])})
    expected_changes = first_run_changes(group, "atlas-kms-empty")

    # Nothing exists yet: check mode runs to the end, writes nothing and shows every change.
    bed.clear_logs()
    check = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory, check=True, diff=True).assert_ok()
    assert check.changed_tasks() == [TASK]
    assert [r["status"] for r in check.results if r["task"] == SOURCES_TASK] == ["skipped"]
    assert successful_writes(bed) == []
    assert atlas_roles(bed, group) == [] and iam_roles(bed) == []
    predicted = check.task(SUMMARY_TASK)["msg"]
    assert_changes(predicted["changes"], expected_changes)
    assert predicted["atlas_role_id"] == predicted["external_id"] == UNKNOWN
    assert predicted["iam_role_arn"] == "arn:aws:iam::111111111111:role/atlas-kms-empty"
    assert (predicted["key"], predicted["region"], predicted["access_method"], predicted["valid"]) == (key["arn"], "us-east-1", "role", None)
    assert (predicted["switched"], predicted["deactivated_access_key"], predicted["clusters"]) == (False, None, {})
    access = check.task(TASK)
    assert (access["reused_by"], access["created_atlas_role"]) == ("created", True)
    assert (access["role_id"], access["external_id"]) == (UNKNOWN, UNKNOWN)
    assert access["encryption_at_rest_before"]["access_method"] == "none" and not access["encryption_at_rest_before"]["enabled"]
    assert access["encryption_at_rest"]["enabled"] is True
    assert '-    "access_method": "none",' in check.output and '+    "access_method": "role",' in check.output

    bed.clear_logs()
    run = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory, diff=True).assert_ok()
    assert run.changed_tasks() == check.changed_tasks()
    applied = run.task(SUMMARY_TASK)["msg"]
    assert matches_prediction(dict(predicted, check_mode=False, valid=True), applied), (predicted, applied)
    assert applied["valid"] is True
    # The writes made are the ones check mode named, and there is one diff per resource, as predicted.
    assert applied["changes"] == predicted["changes"]
    assert matches_prediction(check.task(TASK)["diff"], run.task(TASK)["diff"])
    assert [diff["before_header"] for diff in run.task(TASK)["diff"]] == [
        f"Atlas cloud provider access role (project {group})",
        "IAM role atlas-kms-empty",
        f"key policy of {key['arn']}",
        f"encryption at rest (project {group})",
    ]
    assert [call for call in successful_writes(bed) if call[0] == "atlas"] == [
        ("atlas", "createGroupCloudProviderAccess"),
        ("atlas", "authorizeGroupCloudProviderAccessRole"),
        ("atlas", "updateGroupEncryptionAtRest"),
    ]
    role = assert_enabled(bed, group, "atlas-kms-empty", key["arn"])
    assert (applied["atlas_role_id"], applied["external_id"]) == (role["roleId"], role["atlasAssumedRoleExternalId"])
    assert iam_roles(bed) == ["atlas-kms-empty"]
    iam = bed.aws_client("iam")
    tags = {tag["Key"]: tag["Value"] for tag in iam.list_role_tags(RoleName="atlas-kms-empty")["Tags"]}
    assert tags == {"cmk-atlas:project-id": group, "cmk-atlas:role-id": role["roleId"]}
    inline = iam.get_role_policy(RoleName="atlas-kms-empty", PolicyName="cmk-atlas-kms-access")["PolicyDocument"]
    assert inline["Statement"][0]["Resource"] == key["arn"]
    assert "Condition" not in inline["Statement"][0]
    # The key policy already lets account R's IAM policies grant the key: it is left as it is.
    assert (run.task(TASK)["key_policy_statement_needed"], run.task(TASK)["key_policy_statement"]) == (False, None)
    assert applied["key_policy_statement"] is False
    assert not [call for call in successful_writes(bed) if call == ("aws", "PutKeyPolicy")]

    # Converged: neither a real nor a check-mode re-run changes or writes anything, at any verbosity without secrets.
    for check_mode in (False, True):
        bed.clear_logs()
        rerun = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory, check=check_mode, diff=True, verbosity=3).assert_ok()
        assert rerun.changed_tasks() == []
        assert bed.write_calls() == []
        access = rerun.task(TASK)
        assert (access["changes"], access["reused_by"], access["created_atlas_role"]) == ([], "iam_role_arn", False)
        assert access["encryption_at_rest"] == access["encryption_at_rest_before"]
        assert access["encryption_at_rest"]["valid"] is True
        # One read of each resource: the project's Atlas roles, encryption at rest and clusters, the IAM role with its
        # inline and attached policies, the key and its policy.
        assert sorted(atlas_reads(bed)) == ["getGroupEncryptionAtRest", "listGroupCloudProviderAccess", "listGroupClusters"]
        assert sorted(entry["operation"] for entry in bed.proxy.request_log()) == [
            "DescribeKey",
            "GetKeyPolicy",
            "GetRole",
            "GetRolePolicy",
            "ListAttachedRolePolicies",
            "ListRolePolicies",
        ]
        assert rerun.task(SUMMARY_TASK)["msg"] == dict(applied, check_mode=check_mode, changes=[])
        for secret in (bed.api_key["private_key"], bed.operator["secret_access_key"]):
            assert secret not in rerun.output
            assert secret not in json.dumps(rerun.results)
    assert [r["roleId"] for r in atlas_roles(bed, group)] == [role["roleId"]]


@pytest.mark.scenario("demo")
def test_check_mode_predicts_the_clusters_of_a_project_not_set_up_yet(run_playbook, clean_testbed, testbed_env, write_inventory):
    """The clusters' step is predicted although the project's encryption at rest exists only as a prediction."""
    bed = clean_testbed
    group = bed.projects["plain"]
    egress = ["198.51.100.10", "198.51.100.11"]
    variables = project(bed, "plain", "atlas-kms-plain", cmk_atlas_kms_key=bed.keys["main"]["key_id"], cmk_atlas_region="us-east-1")
    variables.update(cmk_atlas_clusters="all", cmk_atlas_source_ips=[*egress, "203.0.113.0/28"])
    inventory = write_inventory({"plain": variables})

    bed.clear_logs()
    check = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory, check=True, diff=True).assert_ok()
    assert check.changed_tasks() == [TASK]
    predicted = check.task(SUMMARY_TASK)["msg"]
    assert_changes(predicted["changes"], first_run_changes(group, "atlas-kms-plain", clusters="Cluster0"))
    assert predicted["clusters"] == {"Cluster0": "AWS"}
    assert diff_named(check.task(TASK), f"clusters' encryptionAtRestProvider (project {group})")["before"] == {"Cluster0": "NONE"}
    assert '-    "Cluster0": "NONE"' in check.output and '+    "Cluster0": "AWS"' in check.output
    assert successful_writes(bed) == []

    run = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory, diff=True).assert_ok()
    assert run.changed_tasks() == check.changed_tasks()
    assert matches_prediction(dict(predicted, check_mode=False, valid=True), run.task(SUMMARY_TASK)["msg"])
    assert bed.atlas.project_state(group)["clusters"]["Cluster0"]["encryptionAtRestProvider"] == "AWS"
    # Atlas is given the key's ARN, whatever form the key was given in.
    assert_enabled(bed, group, "atlas-kms-plain", bed.keys["main"]["arn"])
    # The IAM policy carries the source-address condition, written once as given: the control plane and the cluster's nodes (203.0.113.11-13).
    inline = bed.aws_client("iam").get_role_policy(RoleName="atlas-kms-plain", PolicyName="cmk-atlas-kms-access")["PolicyDocument"]
    assert sorted(inline["Statement"][0]["Condition"]["IpAddress"]["aws:SourceIp"]) == ["198.51.100.10/32", "198.51.100.11/32", "203.0.113.0/28"]
    assert [call for call in successful_writes(bed) if call[0] == "aws"].count(("aws", "PutRolePolicy")) == 1

    bed.clear_logs()
    rerun = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory).assert_ok()
    assert rerun.changed_tasks() == []
    assert rerun.task(TASK)["changes"] == []
    assert rerun.task(SUMMARY_TASK)["msg"]["valid"] is True
    assert rerun.task(SUMMARY_TASK)["msg"]["clusters"] == {"Cluster0": "AWS"}
    assert bed.write_calls() == []


# -- refusals before any write -----------------------------------------------------------------------


@pytest.mark.scenario("demo")
def test_enable_on_a_credentials_project_stops_and_names_switch(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    group = bed.projects["legacy"]
    inventory = write_inventory({"legacy": project(bed, "legacy", "atlas-kms-legacy-role", cmk_atlas_kms_key=bed.keys["main"]["arn"])})
    for check in (True, False):
        bed.clear_logs()
        run = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory, check=check)
        assert run.rc != 0
        # cmk.atlas.key_management (procedure enable) refuses the project before it writes anything; the summary does not run.
        assert run.failed_tasks() == [TASK]
        message = run.task(TASK)["msg"]
        assert message.startswith(f"cmk.atlas.enable of project {group}: 1 problem found before any write, so nothing was written."), message
        assert f"project {group}: it encrypts at rest with key" in message and "(credentials-based access)" in message
        assert "cmk.atlas.switch" in message and "cannot be undone" in message
        assert bed.legacy_access_key_id in message
        assert SUMMARY_TASK not in [r["task"] for r in run.results]
        assert successful_writes(bed) == []
        # Each Atlas resource read once (the project's settings first: a wrong project id stops there), then judged.
        assert atlas_reads(bed) == ["getGroupEncryptionAtRest", "listGroupCloudProviderAccess", "listGroupClusters"]
        assert all(not entry["write"] for entry in bed.proxy.request_log())
    assert iam_roles(bed) == []
    state = bed.atlas.project_state(group)
    assert state["roles"] == [] and state["encryptionAtRest"]["credentialsStored"]


def test_argument_validation_reports_every_wrong_variable_at_once(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    wrong = {
        "cmk_atlas_project_id": "not-a-project",
        "cmk_atlas_iam_role_name": "atlas kms",
        "cmk_atlas_iam_role_path": "atlas",
        "cmk_atlas_region": "Europe",
        "cmk_atlas_key_owner_role_arn": "arn:aws:iam::222222222222:user/admin",
        "cmk_atlas_source_ips": ["198.51.100.10", "everywhere"],
        "cmk_atlas_clusters": "some",
        "cmk_atlas_confirm_switch": "perhaps",
        "cmk_atlas_conection": {"retries": 1},
    }
    # Two projects sharing one IAM role would take its trust policy from each other.
    twin = {"cmk_atlas_project_id": bed.projects["empty"], "cmk_atlas_iam_role_name": "atlas-kms-shared", "cmk_atlas_kms_key": "alias/atlas-cmk"}
    inventory = write_inventory({"broken": wrong, "first": twin, "second": dict(twin, cmk_atlas_project_id="660000000000000000000002")})
    bed.clear_logs()
    run = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory)
    assert run.rc != 0
    assert run.failed_tasks() == ["cmk.atlas.enable : Stop on wrong variables, naming every one"] * 3
    for host, other in (("first", "second"), ("second", "first")):
        shared = run.task("cmk.atlas.enable : Stop on wrong variables, naming every one", host=host)["msg"]
        assert f"cmk.atlas.enable: 1 wrong variable(s) for {host}" in shared
        assert f"cmk_atlas_iam_role_name 'atlas-kms-shared' is also the IAM role of {other} in the same AWS account" in shared
    message = run.task("cmk.atlas.enable : Stop on wrong variables, naming every one", host="broken")["msg"]
    assert message.startswith("cmk.atlas.enable: 10 wrong variable(s) for broken; nothing was read or written.")
    for expected in (
        "missing required arguments: cmk_atlas_kms_key",
        "cmk_atlas_confirm_switch",
        "cmk_atlas_project_id 'not-a-project' is not an Atlas project id",
        "cmk_atlas_iam_role_name 'atlas kms' is not an IAM role name",
        "cmk_atlas_iam_role_path 'atlas' is not an IAM path",
        "cmk_atlas_region 'Europe' is not an AWS region",
        "cmk_atlas_key_owner_role_arn 'arn:aws:iam::222222222222:user/admin' is not an IAM role ARN",
        'cmk_atlas_source_ips must list IP addresses or CIDR blocks, such as [198.51.100.10, 203.0.113.0/24]; got ["198.51.100.10", "everywhere"]',
        'cmk_atlas_clusters must be a list of cluster names, such as [Cluster0], or the string all; got "some"',
        "cmk_atlas_conection is not a variable of this playbook",
    ):
        assert expected in message, (expected, message)
    assert [r["task"] for r in run.results if r["task"] in (SOURCES_TASK, TASK, SUMMARY_TASK)] == []
    assert bed.atlas.request_log() == []
    assert bed.proxy.request_log() == []


def test_the_module_validates_its_own_arguments_before_any_call(run_playbook, clean_testbed, testbed_env):
    """cmk.atlas.key_management run by itself: its argument spec refuses wrong options before it reads anything."""
    bed = clean_testbed
    plays = [
        {
            "name": "the module with wrong arguments",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "tasks": [
                {
                    "name": name,
                    "block": [{"name": f"run {name}", "cmk.atlas.key_management": arguments}],
                    "rescue": [{"name": f"after {name}", "ansible.builtin.debug": {"msg": "validation failed"}}],
                }
                for name, arguments in (
                    ("missing", {"procedure": "enable"}),
                    ("choice", {"procedure": "rekey", "project_id": bed.projects["empty"], "iam_role_name": "atlas-kms-empty"}),
                    ("type", {"procedure": "enable", "project_id": bed.projects["empty"], "iam_role_name": "atlas-kms-empty", "authorize_timeout": "soon"}),
                )
            ],
        }
    ]
    bed.clear_logs()
    run = run_playbook(plays, env=testbed_env)
    messages = {r["task"]: r["result"]["msg"] for r in run.results if r["status"] == "failed"}
    assert sorted(messages) == ["run choice", "run missing", "run type"], run.output[-3000:]
    assert "missing required arguments: project_id" in messages["run missing"]
    assert "value of procedure must be one of: enable, switch" in messages["run choice"] and "got: rekey" in messages["run choice"]
    assert "authorize_timeout" in messages["run type"] and "cannot be converted to an int" in messages["run type"]
    assert [r["task"] for r in run.results if r["task"].startswith("after ")] == ["after missing", "after choice", "after type"]
    assert bed.atlas.request_log() == []
    assert bed.proxy.request_log() == []


# -- a key in another account ------------------------------------------------------------------------


@pytest.mark.scenario("cross_account")
def test_cross_account_key_gets_a_key_policy_statement_from_its_owner_and_atlas_the_full_arn(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    group = bed.projects["cross"]
    key = bed.keys["main"]
    role_arn = f"arn:aws:iam::{bed.accounts['R']}:role/atlas-kms-cross"
    owner = bed.roles["key_admin"]["arn"]
    inventory = write_inventory(
        {"cross": project(bed, "cross", "atlas-kms-cross", cmk_atlas_kms_key=key["arn"], cmk_atlas_key_owner_role_arn=owner, cmk_atlas_clusters=["Cluster0"])}
    )
    sid = "MongoDBAtlasKeyAccessaws111111111111X2FatlasX2DkmsX2Dcross"  # the role ARN, injectively
    bed.clear_logs()
    check = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory, check=True, diff=True).assert_ok()
    assert check.changed_tasks() == [TASK]
    assert successful_writes(bed) == []
    # The key policy in K does not let the IAM role use the key: the run adds a statement naming the role, as its diff shows.
    predicted = check.task(TASK)
    expected = first_run_changes(group, "atlas-kms-cross", key_statement=f"put key-policy statement {sid} on {key['arn']}", clusters="Cluster0")
    assert_changes(predicted["changes"], expected)
    assert (predicted["key_policy_statement_needed"], predicted["key_policy_statement"]["Sid"]) == (True, sid)
    key_diff = diff_named(predicted, f"key policy of {key['arn']}")
    assert [s["Sid"] for s in key_diff["after"]["Statement"] if s.get("Sid") == sid] == [sid]
    assert [s for s in key_diff["before"]["Statement"] if s.get("Sid") == sid] == []

    run = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory, diff=True).assert_ok()
    assert run.changed_tasks() == check.changed_tasks()
    assert run.task(TASK)["changes"] == predicted["changes"]
    assert matches_prediction(dict(check.task(SUMMARY_TASK)["msg"], check_mode=False, valid=True), run.task(SUMMARY_TASK)["msg"])
    # The key policy is written in K (with the key owner's role), the IAM role in R; Atlas has the full key ARN.
    writes = [(call["operation"], call["account"]) for call in bed.write_calls() if call["system"] == "aws"]
    assert ("PutKeyPolicy", bed.accounts["K"]) in writes
    assert all(account == bed.accounts["R"] for operation, account in writes if operation != "PutKeyPolicy")
    assert_enabled(bed, group, "atlas-kms-cross", key["arn"])
    kms = bed.aws_client("kms", account="K")
    policy = json.loads(kms.get_key_policy(KeyId=key["key_id"], PolicyName="default")["Policy"])
    (statement,) = [s for s in policy["Statement"] if s.get("Sid") == sid]
    assert statement["Principal"] == {"AWS": role_arn}
    assert run.task(TASK)["key_policy_statement"] == predicted["key_policy_statement"]
    assert iam_roles(bed) == ["atlas-kms-cross"]
    assert run.task(SUMMARY_TASK)["msg"]["clusters"] == {"Cluster0": "AWS"}

    bed.clear_logs()
    rerun = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory).assert_ok()
    assert rerun.changed_tasks() == []
    assert bed.write_calls() == []
    # The statement is still needed (the key policy does not delegate to R's IAM), and it is there as written.
    access = rerun.task(TASK)
    assert (access["changes"], access["key_policy_statement_needed"], access["key_policy_statement"]["Sid"]) == ([], True, sid)
    assert access["encryption_at_rest"] == access["encryption_at_rest_before"]


@pytest.mark.scenario("cross_account")
def test_cross_account_key_without_its_owner_leaves_the_key_policy_and_says_what_it_needs(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    key = bed.keys["main"]
    inventory = write_inventory({"cross": project(bed, "cross", "atlas-kms-cross", cmk_atlas_kms_key=key["arn"])})

    def assert_warns(access):
        (warning,) = [text for text in access.get("warnings", []) if "was not checked" in text]
        assert (
            f"The key policy of {key['arn']} (account {key['arn'].split(':')[4]}) was not checked: the AWS credentials act in account 111111111111" in warning
        )
        assert "arn:aws:iam::111111111111:role/atlas-kms-cross" in warning
        assert "cmk_atlas_key_owner_role_arn" in warning

    # Check mode cannot judge a key policy it may not read: it plans the writes and says what the key policy must allow.
    bed.clear_logs()
    check = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory, check=True).assert_ok()
    assert_warns(check.task(TASK))
    assert (check.task(TASK)["key_policy_statement_needed"], check.task(TASK)["key_policy_statement"], check.task(TASK)["key_state"]) == (None, None, None)
    assert successful_writes(bed) == []

    run = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory)
    # Atlas cannot use the key while K's key policy does not name the role: the step that would fail fails, nothing is written in K,
    # and the failure still says what the key policy needs.
    assert run.rc != 0
    assert run.failed_tasks() == [TASK]
    access = run.task(TASK)
    assert_warns(access)
    message = access["msg"]
    assert message.startswith(f"set encryption at rest of project {bed.projects['cross']}"), message
    assert "key_policy" in message or "key policy" in message
    assert "Writes made before it in this run: create an Atlas cloud provider access role" in message and "Run again to continue" in message
    assert not [call for call in bed.write_calls() if call["system"] == "aws" and call["account"] == bed.accounts["K"]]
    assert not bed.atlas.project_state(bed.projects["cross"])["encryptionAtRest"]["enabled"]


# -- several projects ---------------------------------------------------------------------------------


def test_several_projects_in_one_inventory_run_in_parallel(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    groups = {"empty": bed.projects["empty"], "orders": "660000000000000000000002", "billing": "660000000000000000000003"}
    for name in ("orders", "billing"):
        bed.atlas.add_project(groups[name], f"cmk-{name}")
    hosts = {
        name: {"cmk_atlas_project_id": group, "cmk_atlas_iam_role_name": f"atlas-kms-{name}", "cmk_atlas_kms_key": bed.keys["main"]["alias"], **FAST}
        for name, group in groups.items()
    }
    inventory = write_inventory(hosts)
    check = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory, check=True, forks=3).assert_ok()
    run = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory, forks=3).assert_ok()
    for name, group in groups.items():
        changed = [r["task"] for r in run.results if r["host"] == name and r["result"].get("changed")]
        assert changed == [TASK]
        assert changed == [r["task"] for r in check.results if r["host"] == name and r["result"].get("changed")]
        assert run.task(TASK, host=name)["changes"] == check.task(TASK, host=name)["changes"]
        assert_changes(run.task(TASK, host=name)["changes"], first_run_changes(group, f"atlas-kms-{name}"))
        assert_enabled(bed, group, f"atlas-kms-{name}", bed.keys["main"]["arn"])
        assert run.task(SUMMARY_TASK, host=name)["msg"]["project_id"] == group
    assert iam_roles(bed) == ["atlas-kms-billing", "atlas-kms-empty", "atlas-kms-orders"]

    bed.clear_logs()
    rerun = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory, forks=3).assert_ok()
    assert rerun.changed_tasks() == []
    assert bed.write_calls() == []


# -- connection options -------------------------------------------------------------------------------


def test_connection_options_given_once_reach_every_module_and_no_secret_is_shown(run_playbook, clean_testbed, testbed_env, write_inventory):
    """Credentials only in cmk_atlas_connection (module_defaults for group/cmk.atlas.atlas), none in the environment."""
    bed = clean_testbed
    secrets = {
        "public_key": testbed_env["MONGODB_ATLAS_PUBLIC_KEY"],
        "private_key": testbed_env["MONGODB_ATLAS_PRIVATE_KEY"],
        "access_key": testbed_env["AWS_ACCESS_KEY_ID"],
        "secret_key": testbed_env["AWS_SECRET_ACCESS_KEY"],
    }
    from_env = ("MONGODB_ATLAS_PUBLIC_KEY", "MONGODB_ATLAS_PRIVATE_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    env = {name: value for name, value in testbed_env.items() if name not in from_env}
    connection = dict(secrets, base_url=bed.atlas_url, endpoint_url=bed.aws_endpoint_url, region="us-east-1", retries=1)
    variables = project(bed, "empty", "atlas-kms-empty", cmk_atlas_kms_key=bed.keys["main"]["alias"])
    inventory = write_inventory({"empty": dict(variables, cmk_atlas_connection=connection)})
    for check in (True, False):
        run = run_playbook(PLAYBOOK, env=env, inventory=inventory, check=check, diff=True, verbosity=3).assert_ok()
        assert run.changed_tasks() == [TASK]
        assert_changes(run.task(TASK)["changes"], first_run_changes(bed.projects["empty"], "atlas-kms-empty"))
        for secret in (secrets["private_key"], secrets["secret_key"]):
            assert secret not in run.output
            assert secret not in json.dumps(run.results)
    assert_enabled(bed, bed.projects["empty"], "atlas-kms-empty", bed.keys["main"]["arn"])
