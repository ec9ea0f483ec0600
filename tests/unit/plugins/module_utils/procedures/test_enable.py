"""RoleBasedAccess judged offline: the attributes ``read()`` sets are given, ``plan_all()`` is driven, nothing is written."""

import pytest
from unit.fakes import NoAtlas, PlanningAws

from ansible_collections.cmk.atlas.plugins.module_utils._module import UNKNOWN, ModuleInputError
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.cloud_provider_access import normalize_role
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.clusters import normalize_cluster
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.encryption_at_rest import normalize
from ansible_collections.cmk.atlas.plugins.module_utils.aws.iam_role import build_inline_policy, build_trust_policy
from ansible_collections.cmk.atlas.plugins.module_utils.aws.kms import key_metadata
from ansible_collections.cmk.atlas.plugins.module_utils.procedures import enable as pka
from ansible_collections.cmk.atlas.plugins.module_utils.procedures.engine import PlanRefusedError
from ansible_collections.cmk.atlas.plugins.modules.key_management import ARGUMENT_SPEC

PROJECT = "5f1a2b3c4d5e6f7a8b9c0d1e"
OTHER_PROJECT = "6f1a2b3c4d5e6f7a8b9c0d1f"
ROLE_ID = "32b6e34b3d91647abb20e7b8"
OTHER_ROLE_ID = "42b6e34b3d91647abb20e7b9"
ACCOUNT = "111111111111"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{KEY_ID}"
OTHER_KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/aaaaaaaa-12ab-34cd-56ef-1234567890ab"
ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ATLAS_ARN = "arn:aws:iam::536727724300:root"
EXTERNAL_ID = "24a1c5f2-8d3e-4b6a-9f70-1e2d3c4b5a69"
OTHER_EXTERNAL_ID = "99a1c5f2-8d3e-4b6a-9f70-1e2d3c4b5a00"
ROLE_NAME = "atlas-kms"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"


# -- fakes and builders ---------------------------------------------------------------------------


def module_params(**overrides):
    """The module's options as Ansible hands them over: the argument spec's defaults, then the values of these tests."""
    params = {name: option.get("default") for name, option in ARGUMENT_SPEC.items()}
    params.update(project_id=PROJECT, procedure="enable", iam_role_name=ROLE_NAME, kms_key=KEY_ARN, authorize_timeout=0, valid_timeout=0, cluster_timeout=0)
    params.update(overrides)
    return params


def atlas_role(role_id=ROLE_ID, external_id=EXTERNAL_ID, iam_role_arn=None, used=False):
    raw = {
        "providerName": "AWS",
        "roleId": role_id,
        "atlasAWSAccountArn": ATLAS_ARN,
        "atlasAssumedRoleExternalId": external_id,
        "createdDate": "2025-01-01T00:00:00Z",
        "featureUsages": [{"featureType": "ENCRYPTION_AT_REST", "featureId": None}] if used else [],
    }
    if iam_role_arn:
        raw["iamAssumedRoleArn"] = iam_role_arn
        raw["authorizedDate"] = "2025-01-02T00:00:00Z"
    return normalize_role(raw)


def none_config():
    return normalize({"enabled": False, "valid": False})


def credentials_config(key=KEY_ID):
    return normalize(
        {"enabled": True, "customerMasterKeyID": key, "region": "US_EAST_1", "accessKeyID": ACCESS_KEY_ID, "secretAccessKey": SECRET, "valid": True}
    )


def role_config(key=KEY_ARN, region="US_EAST_1", role_id=ROLE_ID, valid=True, roles=None):
    aws_kms = {"enabled": True, "customerMasterKeyID": key, "region": region, "roleId": role_id, "valid": valid}
    return normalize(aws_kms, [atlas_role(role_id, iam_role_arn=ROLE_ARN, used=True)] if roles is None else roles)


def iam_role(tags=None, trust_policy=None, key_arns=(KEY_ARN,)):
    """An IAM role as read_role returns it; by default the one this collection made for PROJECT."""
    return {
        "name": ROLE_NAME,
        "path": "/",
        "arn": ROLE_ARN,
        "role_id": "AROAEXAMPLE",
        "description": None,
        "max_session_duration": 3600,
        "tags": {"cmk-atlas:project-id": PROJECT, "cmk-atlas:role-id": ROLE_ID} if tags is None else tags,
        "trust_policy": build_trust_policy(ATLAS_ARN, EXTERNAL_ID) if trust_policy is None else trust_policy,
        "inline_policies": {"cmk-atlas-kms-access": build_inline_policy(list(key_arns))},
        "managed_policies": [],
    }


def trust(principal, external_id=None):
    statement = {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}
    if external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return {"Version": "2012-10-17", "Statement": [statement]}


def kms_key(arn=KEY_ARN, state="Enabled", **raw):
    return key_metadata(
        dict(
            {
                "KeyId": arn.rsplit("/", 1)[1],
                "Arn": arn,
                "KeyState": state,
                "Enabled": state == "Enabled",
                "KeyManager": "CUSTOMER",
                "KeySpec": "SYMMETRIC_DEFAULT",
                "KeyUsage": "ENCRYPT_DECRYPT",
            },
            **raw,
        )
    )


def default_key_policy():
    """The default key policy: the account may delegate the use of the key through IAM policies."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"}
        ],
    }


_DEFAULT = object()


def procedure(
    check_mode=False,
    roles=_DEFAULT,
    current=_DEFAULT,
    atlas_clusters=(),
    existing_role=None,
    key=_DEFAULT,
    key_policy=_DEFAULT,
    search_nodes=None,
    **params,
):
    """A RoleBasedAccess with what read() would have found: by default a fresh project with one unused Atlas role,
    no IAM role yet, and the key of KEY_ARN (enabled, default key policy)."""
    access = pka.RoleBasedAccess(module_params(**params), NoAtlas(), PlanningAws, lambda: None, check_mode=check_mode)
    access.roles = [atlas_role()] if roles is _DEFAULT else roles
    access.current = none_config() if current is _DEFAULT else current
    access.clusters = [normalize_cluster(cluster) for cluster in atlas_clusters]
    access.search_nodes = search_nodes
    access.iam_role = existing_role
    access.iam_role_arn = existing_role["arn"] if existing_role is not None else ROLE_ARN
    access.key = kms_key() if key is _DEFAULT else key
    access.key_policy = default_key_policy() if key_policy is _DEFAULT else key_policy
    access.key_connection = PlanningAws()
    access.foreign_key = None
    access.key_label = KEY_ARN
    return access


def planned(**kwargs):
    access = procedure(**kwargs)
    return access, access.plan_all()


def subjects(plan):
    return [problem.subject for problem in plan.problems]


def problem_about(plan, subject):
    found = [problem for problem in plan.problems if problem.subject == subject]
    assert len(found) == 1, plan.problems
    return found[0]


# -- the baseline every test below departs from -------------------------------------------------------


def test_a_fresh_enable_plans_the_writes_in_order_without_problems():
    _access, plan = planned()
    assert plan.problems == []
    assert plan.changes == [
        f"create IAM role {ROLE_NAME} (create role {ROLE_NAME}; put inline policy cmk-atlas-kms-access on {ROLE_NAME})",
        f"authorize Atlas role {ROLE_ID} for {ROLE_ARN}",
        f"set encryption at rest of project {PROJECT} (customerMasterKeyID, enabled, region, roleId) and wait for valid",
    ]
    assert plan.warnings == []


def test_a_rerun_on_a_project_that_is_in_place_plans_no_write():
    roles = [atlas_role(iam_role_arn=ROLE_ARN, used=True)]
    _access, plan = planned(roles=roles, current=role_config(roles=roles), existing_role=iam_role())
    assert plan.problems == []
    assert plan.changes == []


# -- Variables: the names messages speak of -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "module", "playbook"),
    [
        ("kms_key", "kms_key", "cmk_atlas_kms_key"),
        ("region", "key_region", "cmk_atlas_region"),
        ("iam_role_name", "iam_role_name", "cmk_atlas_iam_role_name"),
        ("adopt_iam_role", "adopt_iam_role", "cmk_atlas_adopt_iam_role"),
        ("key_owner_assume_role_arn", "key_owner_assume_role_arn", "cmk_atlas_key_owner_role_arn"),
        ("source_ips", "source_ips", "cmk_atlas_source_ips"),
        ("clusters", "clusters", "cmk_atlas_clusters"),
        ("confirm_switch", "confirm_switch", "cmk_atlas_confirm_switch"),
        ("project_id", "project_id", "cmk_atlas_project_id"),
    ],
)
def test_variables_name_module_options_or_playbook_variables(name, module, playbook):
    assert getattr(pka.Variables(False), name) == module
    assert getattr(pka.Variables(True), name) == playbook


def test_message_names_playbook_makes_the_procedure_speak_of_playbook_variables():
    assert procedure(message_names="playbook").var.kms_key == "cmk_atlas_kms_key"
    assert procedure().var.kms_key == "kms_key"
    with pytest.raises(ModuleInputError, match="cmk_atlas_project_id"):
        pka.RoleBasedAccess(module_params(project_id="abc", message_names="playbook"), NoAtlas(), PlanningAws, lambda: None)
    with pytest.raises(ModuleInputError, match="project_id") as caught:
        pka.RoleBasedAccess(module_params(project_id="abc"), NoAtlas(), PlanningAws, lambda: None)
    assert "cmk_atlas_" not in str(caught.value)


def test_a_negative_timeout_is_refused_before_anything_is_read():
    with pytest.raises(ModuleInputError, match=r"^valid_timeout is -1; it must be 0 \(try once\) or more seconds"):
        pka.RoleBasedAccess(module_params(valid_timeout=-1), NoAtlas(), PlanningAws, lambda: None)


# -- encryption_in_place -------------------------------------------------------------------------


def test_in_place_with_the_same_key_role_and_region_and_atlas_reporting_valid():
    assert pka.encryption_in_place(role_config(), ROLE_ID, KEY_ARN, "us-east-1", ACCOUNT) is True


def test_in_place_when_atlas_stores_the_bare_key_id_of_that_key():
    assert pka.encryption_in_place(role_config(key=KEY_ID), ROLE_ID, KEY_ARN, "us-east-1", ACCOUNT) is True


def test_in_place_for_a_key_in_another_account_stored_as_its_arn():
    key_arn = f"arn:aws:kms:us-east-1:222222222222:key/{KEY_ID}"
    assert pka.encryption_in_place(role_config(key=key_arn), ROLE_ID, key_arn, "us-east-1", ACCOUNT) is True


@pytest.mark.parametrize(
    ("config", "role_id", "key_arn", "region", "role_account"),
    [
        pytest.param(none_config(), ROLE_ID, KEY_ARN, "us-east-1", ACCOUNT, id="no encryption at rest"),
        pytest.param(credentials_config(), ROLE_ID, KEY_ARN, "us-east-1", ACCOUNT, id="credentials-based"),
        pytest.param(role_config(valid=False), ROLE_ID, KEY_ARN, "us-east-1", ACCOUNT, id="Atlas reports it not valid"),
        pytest.param(role_config(valid=None), ROLE_ID, KEY_ARN, "us-east-1", ACCOUNT, id="valid unknown"),
        pytest.param(role_config(role_id=OTHER_ROLE_ID), ROLE_ID, KEY_ARN, "us-east-1", ACCOUNT, id="through another Atlas role"),
        pytest.param(role_config(), UNKNOWN, KEY_ARN, "us-east-1", ACCOUNT, id="role still to be created (check mode)"),
        pytest.param(role_config(key=OTHER_KEY_ARN), ROLE_ID, KEY_ARN, "us-east-1", ACCOUNT, id="another key"),
        pytest.param(
            role_config(key=f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/{KEY_ID}", region="EU_WEST_1"), ROLE_ID, KEY_ARN, "us-east-1", ACCOUNT, id="other region"
        ),
        pytest.param(role_config(region="EU_WEST_1"), ROLE_ID, KEY_ARN, "us-east-1", ACCOUNT, id="region Atlas holds is not the key's"),
        pytest.param(
            role_config(key=KEY_ID), ROLE_ID, f"arn:aws:kms:us-east-1:222222222222:key/{KEY_ID}", "us-east-1", ACCOUNT, id="bare id, key in another account"
        ),
        pytest.param(role_config(key=KEY_ID), ROLE_ID, KEY_ARN, "us-east-1", "222222222222", id="bare id, role in another account than the key"),
    ],
)
def test_not_in_place(config, role_id, key_arn, region, role_account):
    assert pka.encryption_in_place(config, role_id, key_arn, region, role_account) is False


# -- the guard: the procedure must fit the project ------------------------------------------------------


def test_enable_on_a_credentials_project_is_a_problem_pointing_to_switch():
    _access, plan = planned(current=credentials_config())
    problem = problem_about(plan, f"project {PROJECT}")
    assert problem.message == (
        f"it encrypts at rest with key {KEY_ID} reached with access key {ACCESS_KEY_ID} (credentials-based access), which enable does not change"
    )
    assert "cmk.atlas.switch" in problem.fix
    assert "confirm_switch: true" in problem.fix
    assert all(SECRET not in text for found in plan.problems for text in found if text)


def test_switch_on_a_project_without_encryption_is_a_problem_pointing_to_enable():
    _access, plan = planned(procedure="switch", kms_key=None, key=None, key_policy=None)
    problem = problem_about(plan, f"project {PROJECT}")
    assert problem.message == "it has no encryption at rest with AWS KMS, so there is nothing to switch"
    assert problem.fix == "enable it with cmk.atlas.enable"
    # Switch keeps the project's key, so a missing kms_key is not a second problem.
    assert "kms_key" not in subjects(plan)


def test_enable_without_a_key_on_a_project_without_one_asks_for_the_key():
    _access, plan = planned(kms_key=None, key=None, key_policy=None)
    problem = problem_about(plan, "kms_key")
    assert problem.message == f"it is not set and project {PROJECT} has no key to keep"


def switch_from_credentials(**kwargs):
    return planned(procedure="switch", kms_key=None, current=credentials_config(), key=kms_key(), **kwargs)


def test_switch_without_confirm_switch_is_a_problem_in_a_real_run():
    _access, plan = switch_from_credentials()
    problem = problem_about(plan, "confirm_switch")
    assert ACCESS_KEY_ID in problem.message
    assert problem.fix == "preview the switch with --check --diff, then set confirm_switch: true"
    assert not any("The real run stops" in warning for warning in plan.warnings)


def test_switch_without_confirm_switch_is_a_warning_in_check_mode():
    _access, plan = switch_from_credentials(check_mode=True)
    assert "confirm_switch" not in subjects(plan)
    (warning,) = [warning for warning in plan.warnings if "The real run stops" in warning]
    assert warning.endswith("The real run stops before any write unless confirm_switch is true.")
    assert ACCESS_KEY_ID in warning


def test_switch_without_confirm_switch_speaks_of_the_playbook_variable():
    _access, plan = switch_from_credentials(message_names="playbook")
    problem = problem_about(plan, "cmk_atlas_confirm_switch")
    assert problem.fix.endswith("then set cmk_atlas_confirm_switch: true")


def test_a_confirmed_switch_plans_the_switch_without_problems():
    access, plan = switch_from_credentials(confirm_switch=True)
    assert plan.problems == []
    assert access.encryption_plan.switch is True
    assert plan.changes[-1].startswith(f"switch encryption at rest of project {PROJECT} (")


# -- ownership of the IAM role -------------------------------------------------------------------------


def test_a_role_paired_with_another_project_is_refused():
    role = iam_role(tags={"cmk-atlas:project-id": OTHER_PROJECT})
    _access, plan = planned(existing_role=role, adopt_iam_role=True)
    problem = problem_about(plan, "iam_role_name")
    assert problem.message.startswith(f"IAM role {ROLE_ARN} is paired with Atlas project {OTHER_PROJECT}")
    assert problem.message.endswith("; it is never changed for another project")
    assert problem.fix == "give this project its own iam_role_name"


def test_a_role_atlas_may_assume_with_another_projects_external_id_is_refused():
    role = iam_role(tags={}, trust_policy=build_trust_policy(ATLAS_ARN, OTHER_EXTERNAL_ID))
    _access, plan = planned(existing_role=role, adopt_iam_role=True)
    problem = problem_about(plan, "iam_role_name")
    assert OTHER_EXTERNAL_ID in problem.message
    assert "it serves another Atlas project" in problem.message


def test_a_foreign_role_is_refused_unless_adopt_iam_role():
    role = iam_role(tags={}, trust_policy=trust({"Service": "ec2.amazonaws.com"}))
    _access, plan = planned(existing_role=role)
    problem = problem_about(plan, "iam_role_name")
    assert problem.message.startswith(f"IAM role {ROLE_ARN} is not paired with an Atlas project")
    assert "its trust policy would be replaced by Atlas's" in problem.message
    assert problem.fix == "give a role name that does not exist yet, or set adopt_iam_role: true to take this role over"


def test_a_foreign_role_is_adopted_with_adopt_iam_role_and_a_warning():
    role = iam_role(tags={}, trust_policy=trust({"Service": "ec2.amazonaws.com"}))
    _access, plan = planned(existing_role=role, adopt_iam_role=True)
    assert "iam_role_name" not in subjects(plan)
    (warning,) = [warning for warning in plan.warnings if "it is adopted" in warning]
    assert warning.endswith("; it is adopted (adopt_iam_role: true): the diff shows what it loses")
    assert plan.changes[0].startswith(f"update IAM role {ROLE_NAME} (")


def test_a_trust_with_an_external_id_serves_another_party_even_with_adopt_iam_role():
    role = iam_role(tags={}, trust_policy=trust({"AWS": "arn:aws:iam::999999999999:root"}, external_id="partner-42"))
    _access, plan = planned(existing_role=role, adopt_iam_role=True)
    problem = problem_about(plan, "iam_role_name")
    assert "its trust requires an external ID, so it serves another party" in problem.message
    assert problem.message.endswith("; it is never changed for another project")
    assert not any("it is adopted" in warning for warning in plan.warnings)


def test_a_role_of_this_project_is_updated_without_ownership_problems():
    role = iam_role(key_arns=(OTHER_KEY_ARN,))
    _access, plan = planned(existing_role=role)
    assert plan.problems == []
    assert plan.changes[0] == f"update IAM role {ROLE_NAME} (put inline policy cmk-atlas-kms-access on {ROLE_NAME})"


# -- the key ---------------------------------------------------------------------------------------------


def test_a_region_contradicting_the_key_arn_is_a_problem():
    _access, plan = planned(key_region="eu-west-1")
    problem = problem_about(plan, "key_region")
    assert problem.message == f"it is eu-west-1, but kms_key {KEY_ARN} is in region us-east-1; Atlas would not find the key"
    assert problem.fix == "leave key_region unset (a key ARN names its own region) or set it to us-east-1"


def test_a_region_that_agrees_with_the_key_arn_is_no_problem():
    _access, plan = planned(key_region="us-east-1")
    assert plan.problems == []


@pytest.mark.parametrize(
    ("key", "text"),
    [
        pytest.param(kms_key(state="PendingDeletion"), "is PendingDeletion", id="pending deletion"),
        pytest.param(kms_key(state="Disabled"), "is disabled", id="disabled"),
        pytest.param(kms_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT"), "has key spec RSA_2048", id="asymmetric"),
        pytest.param(kms_key(KeyManager="AWS"), "is an AWS managed key", id="AWS managed"),
    ],
)
def test_a_key_atlas_cannot_use_is_a_problem(key, text):
    _access, plan = planned(key=key)
    problem = problem_about(plan, f"KMS key {KEY_ARN}")
    assert text in problem.message
    assert problem.fix == "enable the key, cancel its deletion, or choose another key"


def test_an_unreadable_key_policy_adds_no_statement_and_no_judgement():
    # read() records the problem of the unreadable policy itself; planning neither judges nor changes a policy it has not seen.
    access, plan = planned(key_policy=False)
    assert plan.problems == []
    assert access.key_statement_needed is None
    assert not any(step.startswith("put key-policy statement") for step in plan.changes)


def test_a_key_policy_that_does_not_delegate_to_iam_gets_the_statement():
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "Owner", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/admin"}, "Action": "kms:*", "Resource": "*"}],
    }
    access, plan = planned(key_policy=policy)
    assert plan.problems == []
    assert access.key_statement_needed is True
    assert any(step.startswith("put key-policy statement") and step.endswith(f"on {KEY_ARN}") for step in plan.changes)


def test_a_key_policy_deny_on_the_role_is_a_problem():
    policy = default_key_policy()
    policy["Statement"].append({"Sid": "NoAtlas", "Effect": "Deny", "Principal": {"AWS": ROLE_ARN}, "Action": "kms:Decrypt", "Resource": "*"})
    _access, plan = planned(key_policy=policy)
    problem = problem_about(plan, f"the planned key policy of {KEY_ARN}")
    assert problem.fix == "remove the Deny that matches, or let the collection add its statement"


# -- enable on a project that uses another key --------------------------------------------------------------


def test_enable_with_another_key_than_the_project_uses_points_to_rotate():
    roles = [atlas_role(iam_role_arn=ROLE_ARN, used=True)]
    _access, plan = planned(roles=roles, current=role_config(key=OTHER_KEY_ARN, roles=roles), existing_role=iam_role(key_arns=(OTHER_KEY_ARN,)))
    problem = problem_about(plan, "kms_key")
    assert problem.message == f"project {PROJECT} already encrypts at rest with key {OTHER_KEY_ARN}; enable does not move it to {KEY_ARN}"
    assert "cmk.atlas.rotate" in problem.fix


def test_enable_with_the_key_the_project_uses_is_no_problem_even_stored_as_the_bare_id():
    roles = [atlas_role(iam_role_arn=ROLE_ARN, used=True)]
    _access, plan = planned(roles=roles, current=role_config(key=KEY_ID, roles=roles), existing_role=iam_role())
    assert plan.problems == []


# -- clusters --------------------------------------------------------------------------------------------

CLUSTERS = (
    {"name": "c1", "stateName": "IDLE"},
    {"name": "c2", "stateName": "IDLE", "encryptionAtRestProvider": "AWS"},
    {"name": "paused", "stateName": "IDLE", "paused": True},
)


def test_named_clusters_get_the_provider_after_the_project_settings():
    access, plan = planned(atlas_clusters=CLUSTERS, clusters=["c1", "c2"])
    assert plan.problems == []
    assert plan.changes[-1] == "set encryptionAtRestProvider AWS on c1 and wait for IDLE"
    assert plan.changes[-2].startswith(f"set encryption at rest of project {PROJECT}")
    assert access.cluster_plan.to_change == ["c1"]


def test_clusters_and_all_clusters_together_are_a_problem():
    _access, plan = planned(atlas_clusters=CLUSTERS, clusters=["c1"], all_clusters=True)
    problem = problem_about(plan, "clusters")
    assert problem.message == "it names clusters and asks for all clusters at once"


def test_an_unknown_cluster_is_a_problem():
    _access, plan = planned(atlas_clusters=CLUSTERS, clusters=["c1", "nope"])
    assert "nope" in problem_about(plan, "clusters").message
    assert not any("encryptionAtRestProvider" in step for step in plan.changes)


def test_a_paused_cluster_that_needs_the_provider_is_a_problem():
    _access, plan = planned(atlas_clusters=CLUSTERS, all_clusters=True)
    assert "paused" in problem_about(plan, "clusters").message


def test_cluster_problems_speak_of_the_playbook_variable():
    _access, plan = planned(atlas_clusters=CLUSTERS, clusters=["nope"], message_names="playbook")
    assert subjects(plan) == ["cmk_atlas_clusters"]


# -- every problem at once, before any write ---------------------------------------------------------------


def test_run_refuses_with_every_problem_and_reaches_no_write(monkeypatch):
    role = iam_role(tags={"cmk-atlas:project-id": OTHER_PROJECT})
    access = procedure(existing_role=role, key_region="eu-west-1", key=kms_key(state="PendingDeletion"), atlas_clusters=CLUSTERS, clusters=["nope"])
    monkeypatch.setattr(access, "read", lambda: None)
    with pytest.raises(PlanRefusedError) as caught:
        access.run()
    assert [problem.subject for problem in caught.value.problems] == ["iam_role_name", "key_region", f"KMS key {KEY_ARN}", "clusters"]
    assert "4 problems found before any write, so nothing was written" in str(caught.value)


def test_check_mode_run_returns_the_planned_changes_and_writes_nothing(monkeypatch):
    access = procedure(check_mode=True)
    monkeypatch.setattr(access, "read", lambda: None)
    outcome = access.run()
    assert outcome.changed is True
    assert outcome.result["changes"] == access.plan.changes
    assert outcome.result["iam_role_arn"] == ROLE_ARN
    assert outcome.result["key_arn"] == KEY_ARN
    assert outcome.result["encryption_at_rest"]["customer_master_key_id"] == KEY_ARN
    assert access.key_connection.calls == []


# -- concurrent runs -------------------------------------------------------------------------------------


def test_other_atlas_roles_authorized_for_the_same_iam_role_are_reported():
    roles = [atlas_role(iam_role_arn=ROLE_ARN, used=True), atlas_role(role_id="b" * 24, external_id="other-external-id", iam_role_arn=ROLE_ARN)]
    _access, plan = planned(roles=roles, existing_role=iam_role())
    (warning,) = [text for text in plan.warnings if "also authorized" in text]
    assert "b" * 24 in warning and ROLE_ARN in warning and ROLE_ID in warning


class RecordingRoles:
    def __init__(self, roles):
        self._roles = roles
        self.deauthorized = []

    def roles(self):
        return list(self._roles)

    def deauthorize(self, role_id):
        self.deauthorized.append(role_id)


def test_a_role_created_by_a_concurrent_run_is_used_and_ours_is_removed():
    access = procedure(roles=[])
    mine = atlas_role(role_id="c" * 24, external_id="mine")
    theirs = atlas_role(role_id="d" * 24, external_id="theirs")
    access.atlas_role = access.created_atlas_role = mine
    access.roles = [mine, theirs]
    access.atlas_roles = RecordingRoles(access.roles)
    access._adopt_concurrent_atlas_role("theirs")
    assert access.atlas_role == theirs and access.authorized_role == theirs
    assert access.atlas_roles.deauthorized == ["c" * 24]
    assert access.created_atlas_role is None


def test_a_concurrent_trust_naming_our_own_role_changes_nothing():
    access = procedure(roles=[])
    mine = atlas_role(role_id="c" * 24, external_id="mine")
    access.atlas_role = access.created_atlas_role = mine
    access.roles = [mine]
    access.atlas_roles = RecordingRoles(access.roles)
    access._adopt_concurrent_atlas_role("mine")
    assert access.atlas_role == mine and access.atlas_roles.deauthorized == []


def test_a_role_paired_by_tag_keeps_the_atlas_role_its_trust_names():
    unused = atlas_role(role_id="e" * 24, external_id="unused-external-id")
    paired = atlas_role(role_id=ROLE_ID, external_id=EXTERNAL_ID)
    access, _plan = planned(roles=[unused, paired], existing_role=iam_role())
    assert (access.selection.reused_by, access.atlas_role["role_id"]) == ("external_id", ROLE_ID)


# -- search nodes --------------------------------------------------------------------------------------


def test_search_nodes_unset_is_never_planned():
    _access, plan = planned(roles=[atlas_role(iam_role_arn=ROLE_ARN, used=True)], existing_role=iam_role(), current=role_config(), search_nodes=True)
    assert plan.changes == [] and not [text for text in plan.warnings if "enabledForSearchNodes" in text]


def test_changing_search_nodes_is_one_patch_and_says_that_indexes_are_rebuilt():
    access, plan = planned(
        roles=[atlas_role(iam_role_arn=ROLE_ARN, used=True)], existing_role=iam_role(), current=role_config(), search_nodes=False, enabled_for_search_nodes=True
    )
    assert plan.changes == [f"set encryption at rest of project {PROJECT} (enabledForSearchNodes) and wait for valid"]
    assert any("rebuilds their indexes" in text for text in plan.warnings)
    (diff,) = [diff for diff in plan.diffs if diff["before_header"].startswith("encryption at rest")]
    assert (diff["before"]["enabled_for_search_nodes"], diff["after"]["enabled_for_search_nodes"]) == (False, True)
    assert "rebuilds their indexes" in diff["after_header"]
    assert access.search_nodes_change is True


def test_search_nodes_already_as_wanted_changes_nothing():
    _access, plan = planned(
        roles=[atlas_role(iam_role_arn=ROLE_ARN, used=True)], existing_role=iam_role(), current=role_config(), search_nodes=True, enabled_for_search_nodes=True
    )
    assert plan.changes == []
