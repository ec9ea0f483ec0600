"""cmk.atlas.key_access through real ansible-playbook runs against the test bed.

Each test looks at what the module wrote (the Atlas and AWS request logs), what it read (one read
per resource), the state it left behind in the Atlas emulator and in moto, and what it returned.
"""

import collections
import json
import re
import threading
import time

import pytest

pytestmark = pytest.mark.integration

GROUP = "660000000000000000000001"  # project "empty" of the empty scenario
PLAIN = "660000000000000000000011"  # demo: no encryption at rest
LEGACY = "660000000000000000000012"  # demo: credentials-based encryption at rest
CROSS = "660000000000000000000021"  # cross_account: the key is in account K
MODULE = "cmk.atlas.key_access"
ROLE_NAME = "atlas-kms"
ROLE_ARN = "arn:aws:iam::111111111111:role/atlas-kms"
POLICY_NAME = "cmk-atlas-kms-access"
ROLE_SID = "MongoDBAtlasKeyAccess111111111111atlaskms"
ATLAS_ACCOUNT_ARN = "arn:aws:iam::536727724300:root"
ACCESS_ACTIONS = {"kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"}
UNKNOWN = "(known after apply)"
HEX24 = re.compile(r"^[a-f0-9]{24}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
EGRESS = ["198.51.100.10/32", "198.51.100.11/32"]  # Atlas's control-plane addresses in the emulator


def play(*tasks):
    return [{"name": "key access", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": list(tasks)}]


def task(name, register=None, ignore_errors=False, check_mode=None, **args):
    """A key_access task; project_id and iam_role_name default to the empty project and atlas-kms."""
    entry = {"name": name, MODULE: {"project_id": GROUP, "iam_role_name": ROLE_NAME, **args}}
    if register:
        entry["register"] = register
    if ignore_errors:
        entry["ignore_errors"] = True
    if check_mode is not None:
        entry["check_mode"] = check_mode
    return entry


def encrypt_task(project_id, access="access"):
    """The step after key_access in the procedures: encryption at rest with its role and key, unless in place."""
    return {
        "name": "encrypt at rest",
        "cmk.atlas.encryption_at_rest": {
            "project_id": project_id,
            "role_id": f"{{{{ {access}.role_id }}}}",
            "customer_master_key_id": f"{{{{ {access}.key_arn }}}}",
            "region": f"{{{{ {access}.key_region }}}}",
        },
        "when": f"not {access}.encryption_at_rest_in_place",
    }


# -- reading the test bed ------------------------------------------------------------------------


def writes(bed):
    """(system, operation, account or None) of every successful or failed write, without digest challenges."""
    return [(call["system"], call["operation"], call.get("account")) for call in bed.write_calls() if call["status"] != 401]


def atlas_gets(bed):
    """How often each Atlas path was read (GET), without HTTP digest challenges."""
    return collections.Counter(entry["path"] for entry in bed.atlas.request_log() if entry["method"] == "GET" and entry["status"] != 401)


def aws_reads(bed):
    """How often each AWS read operation was called, per account."""
    return collections.Counter((entry["operation"], entry["account"]) for entry in bed.proxy.request_log() if not entry["write"])


def atlas_roles(bed, project_id=GROUP):
    return bed.atlas.project_state(project_id)["roles"]


def encryption_state(bed, project_id=GROUP):
    return bed.atlas.project_state(project_id)["encryptionAtRest"]


def iam_role(bed, name=ROLE_NAME):
    """(trust policy, tags, inline policies) of the IAM role in account R, read straight from moto; None when missing."""
    iam = bed.aws_client("iam")
    try:
        role = iam.get_role(RoleName=name)["Role"]
    except iam.exceptions.NoSuchEntityException:
        return None
    tags = {tag["Key"]: tag["Value"] for tag in iam.list_role_tags(RoleName=name)["Tags"]}
    policies = {
        policy: iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"] for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]
    }
    return {"arn": role["Arn"], "trust": role["AssumeRolePolicyDocument"], "tags": tags, "policies": policies}


def as_list(value):
    return [value] if isinstance(value, str) else list(value)


def inline_source_ips(bed):
    """The aws:SourceIp list of the inline policy, sorted; None without the condition."""
    (statement,) = iam_role(bed)["policies"][POLICY_NAME]["Statement"]
    condition = statement.get("Condition")
    return sorted(as_list(condition["IpAddress"]["aws:SourceIp"])) if condition else None


def key_policy(bed, name="main"):
    key = bed.keys[name]
    kms = bed.aws_client("kms", account=key["account"], region=key["region"])
    return json.loads(kms.get_key_policy(KeyId=key["key_id"], PolicyName="default")["Policy"])


def statement_by_sid(policy, sid):
    matches = [statement for statement in policy["Statement"] if statement.get("Sid") == sid]
    assert len(matches) == 1, policy
    return matches[0]


def assert_trusts_atlas(role, external_id):
    (statement,) = role["trust"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "sts:AssumeRole"
    assert statement["Principal"]["AWS"] in (ATLAS_ACCOUNT_ARN, "536727724300")
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId": external_id}}


def assert_grants_key(role, key_arn):
    (statement,) = role["policies"][POLICY_NAME]["Statement"]
    assert statement["Effect"] == "Allow"
    assert set(as_list(statement["Action"])) == ACCESS_ACTIONS
    assert statement["Resource"] == key_arn


class PolicyWatcher:
    """Reads the inline policy's aws:SourceIp list from moto every few milliseconds while a run goes on;
    ``seen`` holds each different list in the order it appeared (moto directly: nothing enters the proxy log)."""

    def __init__(self, bed):
        self.bed = bed
        self.seen = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        iam = self.bed.aws_client("iam")
        while not self._stop.is_set():
            document = iam.get_role_policy(RoleName=ROLE_NAME, PolicyName=POLICY_NAME)["PolicyDocument"]
            (statement,) = document["Statement"]
            ips = sorted(as_list(statement["Condition"]["IpAddress"]["aws:SourceIp"])) if statement.get("Condition") else None
            if not self.seen or self.seen[-1] != ips:
                self.seen.append(ips)
            time.sleep(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)


# -- check mode, fresh setup, converged re-run ------------------------------------------------------


def test_fresh_setup_check_mode_apply_and_converged_rerun(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    key = bed.keys["main"]
    original_key_policy = key_policy(bed)
    access = task("ensure key access", register="access", kms_key=key["alias"], procedure="enable", authorize_timeout=30)
    plays = play(access, encrypt_task(GROUP))

    # Check mode on the empty project: every write predicted, none made; Atlas has not chosen the role yet.
    bed.clear_logs()
    check = run_playbook(play(access), env=testbed_env, check=True, diff=True).assert_ok()
    predicted = check.task("ensure key access")
    assert predicted["changed"] is True
    assert (predicted["role_id"], predicted["external_id"], predicted["reused_by"]) == (UNKNOWN, UNKNOWN, "created")
    assert predicted["iam_role_arn"] == ROLE_ARN  # from the caller's account
    assert predicted["authorized"] is True
    assert (predicted["key_arn"], predicted["key_region"], predicted["key_state"]) == (key["arn"], "us-east-1", "Enabled")
    assert predicted["key_policy_statement_needed"] is False
    assert predicted["encryption_at_rest"]["access_method"] == "none"
    assert predicted["encryption_at_rest_in_place"] is False
    assert [d["before_header"] for d in predicted["diff"]] == [
        f"Atlas cloud provider access role (project {GROUP})",
        f"IAM role {ROLE_NAME}",
        f"key policy of {key['arn']}",
    ]
    assert predicted["diff"][0]["before"] == {} and predicted["diff"][1]["before"] == {}
    assert predicted["diff"][1]["after"]["tags"] == {"cmk-atlas:project-id": GROUP, "cmk-atlas:role-id": UNKNOWN}
    assert writes(bed) == []
    assert atlas_roles(bed) == []
    assert iam_role(bed) is None

    # The real run: Atlas role, IAM role, authorization, then encryption at rest in the next task. Atlas cannot
    # assume the new IAM role for a few seconds (IAM propagation): the authorization is retried meanwhile.
    bed.atlas.set_propagation_delay(3)
    bed.clear_logs()
    run = run_playbook(plays, env=testbed_env, diff=True).assert_ok()
    assert run.changed_tasks() == ["ensure key access", "encrypt at rest"]
    applied = run.task("ensure key access")
    assert applied["reused_by"] == "created"
    assert HEX24.match(applied["role_id"])
    assert UUID.match(applied["external_id"])
    assert applied["atlas_aws_account_arn"] == ATLAS_ACCOUNT_ARN
    assert (applied["authorized"], applied["iam_role_arn"], applied["key_arn"]) == (True, ROLE_ARN, key["arn"])
    assert applied["key_policy_statement_needed"] is False and applied["key_policy_statement"] is None
    assert applied["source_ips"] is None
    assert applied["encryption_at_rest_in_place"] is False
    for name in ("iam_role_arn", "iam_role_name", "policy_name", "key_arn", "key_region", "key_state", "authorized", "reused_by", "source_ips"):
        assert applied[name] == predicted[name], name
    tries = [(entry["status"], entry["error_code"]) for entry in bed.atlas.request_log() if entry["operation_id"] == "authorizeGroupCloudProviderAccessRole"]
    assert tries[0] == (400, "CANNOT_ASSUME_ROLE") and tries[-1] == (200, None)
    assert set(tries[:-1]) == {(400, "CANNOT_ASSUME_ROLE")}
    assert [call for call in writes(bed) if call[1] != "authorizeGroupCloudProviderAccessRole"] == [
        ("atlas", "createGroupCloudProviderAccess", None),
        ("atlas", "updateGroupEncryptionAtRest", None),
        ("aws", "CreateRole", "111111111111"),
        ("aws", "PutRolePolicy", "111111111111"),
    ]

    # What Atlas and AWS hold now.
    assert atlas_roles(bed) == [
        {"roleId": applied["role_id"], "atlasAssumedRoleExternalId": applied["external_id"], "iamAssumedRoleArn": ROLE_ARN, "authorized": True, "inUse": True}
    ]
    role = iam_role(bed)
    assert role["arn"] == ROLE_ARN
    assert_trusts_atlas(role, applied["external_id"])
    assert list(role["policies"]) == [POLICY_NAME]
    assert_grants_key(role, key["arn"])
    assert "Condition" not in role["policies"][POLICY_NAME]["Statement"][0]
    assert role["tags"] == {"cmk-atlas:project-id": GROUP, "cmk-atlas:role-id": applied["role_id"]}
    assert key_policy(bed) == original_key_policy  # the default key policy lets the account's IAM policies grant the key
    state = encryption_state(bed)
    assert (state["enabled"], state["roleId"], state["customerMasterKeyID"]) == (True, applied["role_id"], key["arn"])

    # Converged: no write, each resource read once, and encryption at rest is in place (its task is skipped).
    bed.clear_logs()
    rerun = run_playbook(plays, env=testbed_env).assert_ok()
    assert rerun.changed_tasks() == []
    again = rerun.task("ensure key access")
    assert again["encryption_at_rest_in_place"] is True
    assert again["encryption_at_rest"]["valid"] is True
    assert (again["reused_by"], again["role_id"], again["external_id"]) == ("iam_role_arn", applied["role_id"], applied["external_id"])
    assert [r["status"] for r in rerun.results if r["task"] == "encrypt at rest"] == ["skipped"]
    assert writes(bed) == []
    gets = atlas_gets(bed)
    assert gets == {f"/api/atlas/v2/groups/{GROUP}/cloudProviderAccess": 1, f"/api/atlas/v2/groups/{GROUP}/encryptionAtRest": 1}
    reads = aws_reads(bed)
    assert max(reads.values()) == 1, reads
    assert {operation for operation, _account in reads} == {"GetRole", "ListRolePolicies", "GetRolePolicy", "DescribeKey", "GetKeyPolicy"}

    # Check mode on the converged project: nothing to change, before and after the same.
    bed.clear_logs()
    preview = run_playbook(play(access), env=testbed_env, check=True, diff=True).assert_ok().task("ensure key access")
    assert preview["changed"] is False
    assert preview["encryption_at_rest_in_place"] is True
    assert all(d["before"] == d["after"] for d in preview["diff"])
    assert writes(bed) == []


# -- refusals and bad input: a clear error, nothing written -------------------------------------------


@pytest.mark.scenario("demo")
def test_procedure_guards_and_bad_input_fail_clearly_and_write_nothing(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    key = bed.keys["main"]
    ok = {"project_id": PLAIN, "kms_key": key["alias"]}
    cases = {
        "enable on a credentials-based project": (
            {"project_id": LEGACY, "kms_key": key["alias"], "procedure": "enable"},
            f"Project {LEGACY} encrypts at rest with key {key['key_id']} reached with access key {bed.legacy_access_key_id} "
            "(credentials-based access). Enable does not change such a project: switch it to the IAM role with cmk.atlas.switch",
        ),
        "switch without encryption at rest": (
            {"project_id": PLAIN, "procedure": "switch"},
            f"Project {PLAIN} has no encryption at rest with AWS KMS, so there is nothing to switch",
        ),
        "no key to keep": ({"project_id": PLAIN}, f"kms_key is not set and project {PLAIN} has no encryption at rest whose key could be kept"),
        "malformed key": (dict(ok, kms_key="not-a-key"), "kms_key 'not-a-key' is not a KMS key reference"),
        "role name with a space": (dict(ok, iam_role_name="atlas kms!"), "iam_role_name 'atlas kms!' is not a valid IAM role name"),
        "negative authorize timeout": (dict(ok, authorize_timeout=-1), "authorize_timeout is -1; it must be 0 (try once) or more seconds"),
        "negative valid timeout": (dict(ok, valid_timeout=-5), "valid_timeout is -5; it must be 0 (try once) or more seconds"),
        "bad source IP": (dict(ok, source_ips=["10.0.0.300"]), "source_ips entry '10.0.0.300' is not an IP address or CIDR block"),
        "key owner is a user": (
            dict(ok, key_owner_assume_role_arn="arn:aws:iam::222222222222:user/admin"),
            "key_owner_assume_role_arn 'arn:aws:iam::222222222222:user/admin' is not an IAM role ARN",
        ),
        "project id not hex": (dict(ok, project_id="my-project"), "project_id 'my-project' is not an Atlas project id"),
        "unknown procedure": (dict(ok, procedure="disable"), "value of procedure must be one of: enable, switch"),
    }
    bed.aws_client("iam").create_role(
        RoleName="atlas-kms-service", Path="/service/", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
    )
    cases["IAM role under another path"] = (
        dict(ok, iam_role_name="atlas-kms-service"),
        "IAM role atlas-kms-service exists with path /service/, not /; IAM cannot move a role to another path: set iam_role_path: /service/",
    )
    tasks = [task(name, ignore_errors=True, **args) for name, (args, _message) in cases.items()]
    # Switch without kms_key keeps the project's key (previewed, so nothing is written).
    tasks.append(task("preview the switch", register="switch", check_mode=True, project_id=LEGACY, procedure="switch"))
    bed.clear_logs()
    run = run_playbook(play(*tasks), env=testbed_env)
    assert run.failed_tasks() == list(cases)
    for name, (_args, message) in cases.items():
        assert message in run.task(name)["msg"], name
    assert run.task("enable on a credentials-based project")["msg"].endswith("Nothing was written.")
    assert run.task("switch without encryption at rest")["msg"].endswith("Nothing was written.")

    switch = run.task("preview the switch")
    assert switch["changed"] is True
    assert (switch["key_arn"], switch["key_region"]) == (key["arn"], "us-east-1")
    assert switch["encryption_at_rest"]["access_method"] == "credentials"
    assert switch["encryption_at_rest_in_place"] is False
    assert switch["role_id"] == UNKNOWN

    assert writes(bed) == []
    assert iam_role(bed) is None
    assert atlas_roles(bed, PLAIN) == atlas_roles(bed, LEGACY) == []


@pytest.mark.scenario("demo")
def test_the_procedure_guard_refuses_before_any_aws_call(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    tasks = [
        task("enable", ignore_errors=True, project_id=LEGACY, kms_key="alias/atlas-cmk", procedure="enable"),
        task("switch", ignore_errors=True, project_id=PLAIN, procedure="switch"),
    ]
    bed.clear_logs()
    run = run_playbook(play(*tasks), env=testbed_env)
    assert run.failed_tasks() == ["enable", "switch"]
    assert bed.proxy.request_log() == []
    # Only the reads the guard needs: the roles and the encryption at rest of each project.
    assert {path.rsplit("/", 1)[-1] for path in atlas_gets(bed)} == {"cloudProviderAccess", "encryptionAtRest"}
    assert writes(bed) == []


# -- a key in another account --------------------------------------------------------------------------


@pytest.mark.scenario("cross_account")
def test_cross_account_key_gets_its_statement_through_the_key_owner(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    key = bed.keys["main"]
    account_k = bed.accounts["K"]
    original = key_policy(bed)
    key_admin = bed.roles["key_admin"]["arn"]
    alias_of_k = f"arn:aws:kms:us-east-1:{account_k}:{key['alias']}"
    unresolvable = task("alias of another account", ignore_errors=True, project_id=CROSS, kms_key=alias_of_k)
    unread = task("without the key owner", register="unread", project_id=CROSS, kms_key=key["arn"])
    access = task("with the key owner", register="access", project_id=CROSS, kms_key=key["arn"], key_owner_assume_role_arn=key_admin, source_ips=EGRESS)
    run = run_playbook(play(unresolvable, unread, access, encrypt_task(CROSS)), env=testbed_env, diff=True).assert_ok()
    assert run.failed_tasks() == ["alias of another account"]
    assert f"kms_key '{alias_of_k}' is an alias of another AWS account" in run.task("alias of another account")["msg"]

    # The operator's credentials cannot read a key policy in K: a warning, and the key policy is left alone.
    first = run.task("without the key owner")
    assert (first["key_policy_statement_needed"], first["key_policy_statement"], first["key_state"]) == (None, None, None)
    assert any(f"The key policy of {key['arn']} (account " in warning and "was not checked" in warning for warning in first["warnings"])
    assert len(first["diff"]) == 2  # no key-policy diff without the key policy

    result = run.task("with the key owner")
    assert result["changed"] is True
    assert result["key_policy_statement_needed"] is True
    assert (result["key_arn"], result["key_state"], result["iam_role_arn"]) == (key["arn"], "Enabled", ROLE_ARN)
    assert result["source_ips"] == EGRESS
    assert result["role_id"] == first["role_id"]
    stored = key_policy(bed)
    assert stored["Statement"][0] == original["Statement"][0]  # every other statement stays
    statement = statement_by_sid(stored, ROLE_SID)
    assert statement == result["key_policy_statement"]
    assert statement["Principal"] == {"AWS": ROLE_ARN}
    assert set(statement["Action"]) == ACCESS_ACTIONS
    assert statement["Condition"] == {"IpAddress": {"aws:SourceIp": EGRESS}}
    assert [call for call in writes(bed) if call[1] == "PutKeyPolicy"] == [("aws", "PutKeyPolicy", account_k)]
    assert {call[2] for call in writes(bed) if call[0] == "aws" and call[1] != "PutKeyPolicy"} == {bed.accounts["R"]}
    role = iam_role(bed)
    assert_trusts_atlas(role, result["external_id"])
    assert_grants_key(role, key["arn"])
    assert inline_source_ips(bed) == EGRESS
    # Atlas can use the key across accounts: encryption at rest was accepted and is valid.
    assert run.task("encrypt at rest")["changed"] is True
    assert run.task("encrypt at rest")["encryption_at_rest"]["valid"] is True

    bed.clear_logs()
    rerun = run_playbook(play(access, encrypt_task(CROSS)), env=testbed_env).assert_ok()
    assert rerun.changed_tasks() == []
    assert rerun.task("with the key owner")["encryption_at_rest_in_place"] is True
    assert writes(bed) == []
    reads = aws_reads(bed)
    assert max(reads.values()) == 1, reads
    assert reads[("GetKeyPolicy", account_k)] == 1
    assert reads[("DescribeKey", account_k)] == 1
    assert max(atlas_gets(bed).values()) == 1
    assert key_policy(bed) == stored


# -- source IPs: widen, wait for valid, narrow ----------------------------------------------------------


def test_source_ips_are_widened_then_narrowed_once_atlas_reports_the_key_valid(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    key = bed.keys["main"]
    first = ["192.0.2.10", "198.51.100.10", "198.51.100.11"]
    second = ["198.51.100.0/24", "203.0.113.7"]  # no entry in common with the first list; still covers Atlas's addresses
    first_cidrs = ["192.0.2.10/32", *EGRESS]
    second_cidrs = ["198.51.100.0/24", "203.0.113.7/32"]
    union = sorted({*first_cidrs, *second_cidrs})

    def access(ips, **extra):
        return task("ensure key access", register="access", kms_key=key["alias"], source_ips=ips, valid_timeout=1, **extra)

    run_playbook(play(access(first), encrypt_task(GROUP)), env=testbed_env).assert_ok()
    assert inline_source_ips(bed) == sorted(first_cidrs)
    assert encryption_state(bed)["enabled"] is True

    # Check mode shows where the run ends (the new list only) and writes nothing.
    bed.clear_logs()
    preview = run_playbook(play(access(second)), env=testbed_env, check=True, diff=True).assert_ok().task("ensure key access")
    assert preview["changed"] is True
    assert (preview["source_ips_added"], preview["source_ips_removed"], preview["source_ips"]) == (second_cidrs, sorted(first_cidrs), second_cidrs)
    (preview_statement,) = preview["diff"][1]["after"]["inline_policy"]["Statement"]
    assert preview_statement["Condition"] == {"IpAddress": {"aws:SourceIp": second_cidrs}}
    assert writes(bed) == []

    # Both reads of encryption at rest answer slowly, so the widened policy stays long enough to be seen.
    bed.atlas.inject_fault("getGroupEncryptionAtRest", status=None, delay=1.0, count=2)
    bed.clear_logs()
    with PolicyWatcher(bed) as watcher:
        run = run_playbook(play(access(second)), env=testbed_env).assert_ok()
    result = run.task("ensure key access")
    assert result["changed"] is True
    assert (result["source_ips_added"], result["source_ips_removed"], result["source_ips"]) == (second_cidrs, sorted(first_cidrs), second_cidrs)
    assert writes(bed) == [("aws", "PutRolePolicy", "111111111111")] * 2
    assert watcher.seen == [sorted(first_cidrs), union, second_cidrs]
    # Atlas was asked whether the key is valid between the two writes: encryption at rest is read twice.
    assert atlas_gets(bed)[f"/api/atlas/v2/groups/{GROUP}/encryptionAtRest"] == 2
    assert inline_source_ips(bed) == second_cidrs
    assert result["encryption_at_rest_in_place"] is False  # the run changed the policy

    # When Atlas does not report the key valid, the old addresses stay: only the widening is written.
    bed.aws_client("kms").disable_key(KeyId=key["key_id"])
    bed.clear_logs()
    refused = run_playbook(play(access(first, ignore_errors=True)), env=testbed_env)
    message = refused.task("ensure key access")["msg"]
    assert refused.failed_tasks() == ["ensure key access"]
    assert f"Project {GROUP}: Atlas reports the key not valid with the old and the new addresses allowed ({', '.join(union)})" in message
    assert f"so no address was removed (it would remove {', '.join(second_cidrs)})" in message
    assert writes(bed) == [("aws", "PutRolePolicy", "111111111111")]
    assert inline_source_ips(bed) == union


def test_removing_addresses_alone_waits_for_atlas_before_narrowing(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    key = bed.keys["main"]
    first = ["192.0.2.10/32", *EGRESS]

    def access(ips, **extra):
        return task("ensure key access", register="access", kms_key=key["alias"], source_ips=ips, valid_timeout=1, **extra)

    run_playbook(play(access(first), encrypt_task(GROUP)), env=testbed_env).assert_ok()
    assert inline_source_ips(bed) == first

    # Nothing added, 192.0.2.10 removed: the policy already holds the old and the new addresses, and Atlas must
    # report the key valid with it before the address goes. With the key disabled it does not: nothing is written.
    kms = bed.aws_client("kms")
    kms.disable_key(KeyId=key["key_id"])
    bed.clear_logs()
    refused = run_playbook(play(access(EGRESS, ignore_errors=True)), env=testbed_env)
    assert refused.failed_tasks() == ["ensure key access"]
    message = refused.task("ensure key access")["msg"]
    assert f"with the old and the new addresses allowed ({', '.join(first)}), so no address was removed (it would remove 192.0.2.10/32)" in message
    assert writes(bed) == []
    assert inline_source_ips(bed) == first

    # Once Atlas can use the key again, the same task removes the address with a single write.
    kms.enable_key(KeyId=key["key_id"])
    bed.clear_logs()
    result = run_playbook(play(access(EGRESS)), env=testbed_env).assert_ok().task("ensure key access")
    assert (result["changed"], result["source_ips_added"], result["source_ips_removed"]) == (True, [], ["192.0.2.10/32"])
    assert writes(bed) == [("aws", "PutRolePolicy", "111111111111")]
    assert inline_source_ips(bed) == EGRESS


# -- a failure after the Atlas role was created ----------------------------------------------------------


def test_a_failure_after_creating_the_atlas_role_names_it_and_the_rerun_reuses_it(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    key = bed.keys["main"]
    plays = play(task("ensure key access", kms_key=key["alias"], retries=1, authorize_timeout=5))
    # Both tries of the authorization fail: the run stops after the Atlas role and the IAM role were made.
    bed.atlas.inject_fault("authorizeGroupCloudProviderAccessRole", status=503, count=2)
    crashed = run_playbook(plays, env=testbed_env)
    assert crashed.failed_tasks() == ["ensure key access"]
    failed = crashed.task("ensure key access")
    assert "HTTP 503" in failed["msg"]
    assert HEX24.match(failed["role_id"])
    assert UUID.match(failed["external_id"])
    assert failed["project_id"] == GROUP
    assert [(role["roleId"], role["authorized"]) for role in atlas_roles(bed)] == [(failed["role_id"], False)]
    assert_trusts_atlas(iam_role(bed), failed["external_id"])

    # The same task again takes that role (unused) and only authorizes it.
    bed.clear_logs()
    result = run_playbook(plays, env=testbed_env).assert_ok().task("ensure key access")
    assert (result["reused_by"], result["role_id"], result["authorized"]) == ("unused_role", failed["role_id"], True)
    assert writes(bed) == [("atlas", "authorizeGroupCloudProviderAccessRole", None)]
    assert [(role["roleId"], role["authorized"], role["iamAssumedRoleArn"]) for role in atlas_roles(bed)] == [(failed["role_id"], True, ROLE_ARN)]
