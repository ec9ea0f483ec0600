import pytest
from unit.fakes import Clock

from ansible_collections.cmk.atlas.plugins.module_utils._module import UNKNOWN, ModuleInputError, validate_project_id
from ansible_collections.cmk.atlas.plugins.module_utils.atlas import cloud_provider_access as cpa
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.client import AtlasApiError, AtlasConnectionError
from ansible_collections.cmk.atlas.plugins.module_utils.aws.arn import ArnError

GROUP = "660000000000000000000001"
ATLAS_ARN = "arn:aws:iam::536727724300:root"
IAM_ARN = "arn:aws:iam::111111111111:role/atlas-kms"
OTHER_ARN = "arn:aws:iam::111111111111:role/atlas-kms-old"


def raw_role(role_id, external_id, created="2025-01-01T00:00:00Z", iam_arn=None, usages=()):
    body = {
        "providerName": "AWS",
        "roleId": role_id,
        "atlasAWSAccountArn": ATLAS_ARN,
        "atlasAssumedRoleExternalId": external_id,
        "createdDate": created,
        "featureUsages": list(usages),
    }
    if iam_arn:
        body["iamAssumedRoleArn"] = iam_arn
        body["authorizedDate"] = "2025-01-02T00:00:00Z"
    return body


EAR = {"featureType": "ENCRYPTION_AT_REST", "featureId": None}


def role(*args, **kwargs):
    return cpa.normalize_role(raw_role(*args, **kwargs))


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("validator", "value", "message"),
    [
        (validate_project_id, "abc", "is not an Atlas project id"),
        (validate_project_id, "660000000000000000000001 ", "is not an Atlas project id"),
        (validate_project_id, "66000000000000000000000G", "is not an Atlas project id"),
        (cpa.validate_role_id, IAM_ARN, "not the IAM role ARN"),
        (cpa.validate_role_id, 123, "is not an Atlas cloud provider access role id"),
        (cpa.validate_external_id, "x", "is not an external id"),
        (cpa.validate_external_id, "has space", "is not an external id"),
    ],
)
def test_validators_name_the_option_and_the_expected_shape(validator, value, message):
    with pytest.raises(ModuleInputError, match=message):
        validator(value)


def test_validators_return_good_values():
    assert validate_project_id(GROUP) == GROUP
    assert cpa.validate_role_id("a" * 24) == "a" * 24
    assert cpa.validate_external_id("3c2f4a1e-5b6d-4e7f-8a9b-0c1d2e3f4a5b")
    assert cpa.validate_iam_role_arn("arn:aws:iam::111111111111:role/path/x") == "arn:aws:iam::111111111111:role/path/x"
    with pytest.raises(ArnError, match="iam_role_arn 'arn:aws:iam::111111111111:user/x' is not an IAM role ARN"):
        cpa.validate_iam_role_arn("arn:aws:iam::111111111111:user/x")


# -- normalising ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [("featureType", "feature_type"), ("atlasAWSAccountArn", "atlas_aws_account_arn"), ("bucketName", "bucket_name"), ("groupId", "group_id")],
)
def test_snake_case(name, expected):
    assert cpa.snake_case(name) == expected


def test_normalize_role_has_every_field_in_snake_case():
    raw = raw_role("a" * 24, "ext-1", iam_arn=IAM_ARN, usages=[EAR, {"featureType": "EXPORT_SNAPSHOT", "featureId": {"exportBucketId": "b1"}}])
    assert cpa.normalize_role(raw) == {
        "role_id": "a" * 24,
        "atlas_aws_account_arn": ATLAS_ARN,
        "external_id": "ext-1",
        "iam_assumed_role_arn": IAM_ARN,
        "authorized_date": "2025-01-02T00:00:00Z",
        "created_date": "2025-01-01T00:00:00Z",
        "feature_usages": [
            {"feature_type": "ENCRYPTION_AT_REST", "feature_id": None},
            {"feature_type": "EXPORT_SNAPSHOT", "feature_id": {"export_bucket_id": "b1"}},
        ],
        "authorized": True,
    }


def test_normalize_unauthorized_role():
    normalized = role("a" * 24, "ext-1")
    assert normalized["authorized"] is False
    assert normalized["iam_assumed_role_arn"] is None
    assert normalized["authorized_date"] is None
    assert normalized["feature_usages"] == []


def test_describe_usages_names_features_and_ids():
    normalized = role("a" * 24, "e1", usages=[EAR, {"featureType": "EXPORT_SNAPSHOT", "featureId": {"exportBucketId": "b1"}}])
    assert cpa.describe_usages(normalized) == "ENCRYPTION_AT_REST, EXPORT_SNAPSHOT (export_bucket_id=b1)"
    assert cpa.feature_types(normalized) == ["ENCRYPTION_AT_REST", "EXPORT_SNAPSHOT"]


# -- selection ------------------------------------------------------------------------------------

R1 = "1" * 24
R2 = "2" * 24
R3 = "3" * 24
R4 = "4" * 24


def project_roles():
    return [
        role(R1, "e1", created="2025-01-04T00:00:00Z"),  # unused, newest
        role(R2, "e2", created="2025-01-03T00:00:00Z"),  # unused, older
        role(R3, "e3", created="2025-01-02T00:00:00Z", iam_arn=IAM_ARN),
        role(R4, "e4", created="2025-01-01T00:00:00Z", iam_arn=OTHER_ARN, usages=[EAR]),
    ]


def test_rules_in_order():
    roles = project_roles()
    assert cpa.select_role(roles, role_id=R1, iam_role_arn=IAM_ARN, external_id="e2") == (roles[0], "role_id")
    assert cpa.select_role(roles, iam_role_arn=IAM_ARN, external_id="e2") == (roles[2], "iam_role_arn")
    assert cpa.select_role(roles, iam_role_arn="arn:aws:iam::111111111111:role/none", external_id="e1") == (roles[0], "external_id")
    assert cpa.select_role(roles, external_id="nope") == (roles[1], "unused_role")
    assert cpa.select_role(roles) == (roles[1], "unused_role")


def test_unused_rule_skips_authorized_and_used_roles():
    roles = [role(R3, "e3", iam_arn=IAM_ARN), role(R4, "e4", usages=[EAR])]
    assert cpa.select_role(roles) == (None, "created")
    assert cpa.select_role([]) == (None, "created")


def test_iam_role_arn_rule_prefers_the_role_in_use_then_the_oldest():
    roles = [
        role(R1, "e1", created="2025-01-01T00:00:00Z", iam_arn=IAM_ARN),
        role(R2, "e2", created="2025-01-02T00:00:00Z", iam_arn=IAM_ARN, usages=[EAR]),
        role(R3, "e3", created="2025-01-03T00:00:00Z", iam_arn=IAM_ARN),
    ]
    assert cpa.select_role(roles, iam_role_arn=IAM_ARN).role["role_id"] == R2
    assert cpa.select_role([roles[2], roles[0]], iam_role_arn=IAM_ARN).role["role_id"] == R1


def test_role_id_not_in_project_fails_listing_the_roles():
    with pytest.raises(
        cpa.RoleNotFoundError, match=rf"role_id {'9' * 24} is not an AWS cloud provider access role of project {GROUP} \(roles in the project: 1"
    ):
        cpa.select_role(project_roles(), role_id="9" * 24, project_id=GROUP)
    with pytest.raises(cpa.RoleNotFoundError, match="the project has none"):
        cpa.select_role([], role_id="9" * 24)


def test_placeholders_skip_their_rule_but_a_placeholder_role_id_stands_for_a_role_to_come():
    roles = project_roles()
    assert cpa.select_role(roles, iam_role_arn=UNKNOWN, external_id=UNKNOWN) == (roles[1], "unused_role")
    selected = cpa.select_role(roles, role_id=UNKNOWN)
    assert selected.reused_by == "role_id"
    assert selected.role["role_id"] == UNKNOWN
    assert selected.role["atlas_aws_account_arn"] == ATLAS_ARN


# -- planning present -----------------------------------------------------------------------------


def test_plan_on_an_empty_project_creates_with_unknowns():
    plan = cpa.plan_present([])
    assert plan.create and not plan.authorize
    assert plan.before is None
    assert plan.reused_by == "created"
    assert plan.after == {
        "role_id": UNKNOWN,
        "atlas_aws_account_arn": UNKNOWN,
        "external_id": UNKNOWN,
        "iam_assumed_role_arn": None,
        "authorized_date": None,
        "created_date": UNKNOWN,
        "feature_usages": [],
        "authorized": False,
    }
    assert plan.warnings == []


def test_plan_create_takes_the_account_arn_from_another_role_and_warns():
    roles = [role(R4, "e4", iam_arn=OTHER_ARN, usages=[EAR])]
    plan = cpa.plan_present(roles)
    assert plan.create
    assert plan.after["atlas_aws_account_arn"] == ATLAS_ARN
    assert len(plan.warnings) == 1
    assert "pass role_id, iam_role_arn or external_id" in plan.warnings[0]


def test_plan_create_and_authorize_with_unknown_arn():
    plan = cpa.plan_present([], iam_role_arn=UNKNOWN)
    assert plan.create and plan.authorize
    assert plan.after["iam_assumed_role_arn"] == UNKNOWN
    assert plan.after["authorized"] is True
    assert plan.after["authorized_date"] == UNKNOWN


def test_plan_converged_role_writes_nothing():
    roles = project_roles()
    plan = cpa.plan_present(roles, role_id=R3, iam_role_arn=IAM_ARN)
    assert not plan.create and not plan.authorize
    assert plan.before == plan.after == roles[2]
    plan = cpa.plan_present(roles, iam_role_arn=IAM_ARN)
    assert (plan.create, plan.authorize, plan.reused_by) == (False, False, "iam_role_arn")
    plan = cpa.plan_present(roles, external_id="e1")
    assert (plan.create, plan.authorize, plan.reused_by) == (False, False, "external_id")


def test_plan_authorizes_an_unauthorized_role():
    roles = project_roles()
    plan = cpa.plan_present(roles, role_id=R2, iam_role_arn="arn:aws:iam::111111111111:role/new")
    assert plan.authorize and not plan.create
    assert plan.previous_iam_assumed_role_arn is None
    assert plan.after["iam_assumed_role_arn"] == "arn:aws:iam::111111111111:role/new"
    assert plan.before["authorized"] is False


def test_plan_moves_an_unused_authorized_role_and_says_so():
    plan = cpa.plan_present(project_roles(), role_id=R3, iam_role_arn="arn:aws:iam::111111111111:role/new")
    assert plan.authorize
    assert plan.previous_iam_assumed_role_arn == IAM_ARN
    assert "was authorized for" in plan.warnings[0]


def test_plan_refuses_to_move_a_role_in_use():
    with pytest.raises(cpa.RoleInUseError, match=r"used by ENCRYPTION_AT_REST.*To keep it, pass iam_role_arn " + OTHER_ARN):
        cpa.plan_present(project_roles(), role_id=R4, iam_role_arn=IAM_ARN)
    with pytest.raises(cpa.RoleInUseError):
        cpa.plan_present(project_roles(), role_id=R4, iam_role_arn=UNKNOWN)


def test_plan_refuses_an_external_id_that_contradicts_the_chosen_role():
    with pytest.raises(ModuleInputError, match=f"external_id e9 is not the external id of Atlas role {R3} .chosen by iam_role_arn., which is e3"):
        cpa.plan_present(project_roles(), iam_role_arn=IAM_ARN, external_id="e9")
    with pytest.raises(ModuleInputError, match="chosen by role_id"):
        cpa.plan_present(project_roles(), role_id=R1, external_id="e2")


def test_plan_refuses_to_authorize_when_no_role_has_the_trusted_external_id():
    # The trust policy names an external id no role has: Atlas could never assume the IAM role.
    with pytest.raises(ModuleInputError, match="belongs to no AWS cloud provider access role"):
        cpa.plan_present([], iam_role_arn=IAM_ARN, external_id="gone")
    with pytest.raises(ModuleInputError, match="belongs to no AWS cloud provider access role"):
        cpa.plan_present(project_roles(), iam_role_arn="arn:aws:iam::111111111111:role/new", external_id="gone")
    # Without iam_role_arn the new role's external id goes into the trust policy next: fine.
    assert cpa.plan_present([], external_id="gone").create


def test_plan_with_placeholder_role_id_predicts_the_authorization_of_the_role_to_come():
    plan = cpa.plan_present([], role_id=UNKNOWN, iam_role_arn=UNKNOWN, external_id=UNKNOWN)
    assert not plan.create and plan.authorize
    assert plan.before["role_id"] == UNKNOWN
    assert plan.after["iam_assumed_role_arn"] == UNKNOWN


def test_plan_without_authorizing_reuses_the_role_authorized_for_the_iam_role():
    # Every role of the project authorized: the IAM role ARN finds the one to reuse, nothing is written.
    roles = [role(R3, "e3", iam_arn=IAM_ARN, usages=[EAR]), role(R4, "e4", iam_arn=OTHER_ARN)]
    plan = cpa.plan_present(roles, iam_role_arn=IAM_ARN, authorize=False)
    assert (plan.create, plan.authorize, plan.reused_by) == (False, False, "iam_role_arn")
    assert plan.before == plan.after == roles[0]
    assert plan.warnings == []


def test_plan_without_authorizing_falls_back_to_the_other_rules_and_authorizes_nothing():
    plan = cpa.plan_present(project_roles(), iam_role_arn="arn:aws:iam::111111111111:role/new", authorize=False)
    assert (plan.create, plan.authorize, plan.reused_by) == (False, False, "unused_role")
    assert plan.after["role_id"] == R2 and plan.after["authorized"] is False
    plan = cpa.plan_present([], iam_role_arn=IAM_ARN, authorize=False)
    assert (plan.create, plan.authorize, plan.reused_by) == (True, False, "created")
    assert plan.after["iam_assumed_role_arn"] is None
    # A role in use by another IAM role is neither chosen nor moved.
    plan = cpa.plan_present([role(R4, "e4", iam_arn=OTHER_ARN, usages=[EAR])], iam_role_arn=IAM_ARN, authorize=False)
    assert (plan.create, plan.authorize) == (True, False)


def test_plan_without_authorizing_does_not_need_a_role_for_the_trusted_external_id():
    # The external id check that guards an authorization has nothing to guard.
    assert cpa.plan_present([], iam_role_arn=IAM_ARN, external_id="gone", authorize=False).create


# -- planning absent ------------------------------------------------------------------------------


def test_plan_absent_needs_a_selector():
    with pytest.raises(ModuleInputError, match="state=absent needs role_id, iam_role_arn or external_id"):
        cpa.plan_absent(project_roles())


def test_plan_absent_by_each_selector():
    roles = project_roles()
    assert [r["role_id"] for r in cpa.plan_absent(roles, role_id=R1).roles] == [R1]
    assert [r["role_id"] for r in cpa.plan_absent(roles, iam_role_arn=IAM_ARN).roles] == [R3]
    assert [r["role_id"] for r in cpa.plan_absent(roles, external_id="e2").roles] == [R2]
    assert cpa.plan_absent(roles, role_id="9" * 24).roles == []


def test_plan_absent_with_a_placeholder_deauthorizes_the_role_an_earlier_task_makes():
    roles = project_roles()
    (placeholder,) = cpa.plan_absent(roles, role_id=UNKNOWN).roles
    assert placeholder["role_id"] == UNKNOWN
    (placeholder,) = cpa.plan_absent(roles, iam_role_arn=UNKNOWN).roles
    assert (placeholder["iam_assumed_role_arn"], placeholder["authorized"]) == (UNKNOWN, True)


def test_plan_absent_refuses_a_role_in_use_naming_the_feature():
    with pytest.raises(cpa.RoleInUseError, match=f"Atlas role {R4} is used by ENCRYPTION_AT_REST; deauthorizing it would cut"):
        cpa.plan_absent(project_roles(), iam_role_arn=OTHER_ARN)


# -- against a scripted Atlas ---------------------------------------------------------------------


class FakeAtlas:
    """Answers ``call`` from per-operation scripts: a value, an exception to raise, or a callable that gives either."""

    def __init__(self, roles=(), **scripts):
        self.roles = [dict(r) for r in roles]
        self.scripts = {name: list(items) for name, items in scripts.items()}
        self.calls = []

    def call(self, operation_id, body=None, query=None, **path):
        self.calls.append((operation_id, body, path))
        script = self.scripts.get(operation_id)
        if script:
            item = script.pop(0)
            if callable(item):
                item = item()
            if isinstance(item, Exception):
                raise item
            return item
        if operation_id == "listGroupCloudProviderAccess":
            return {"awsIamRoles": self.roles, "azureServicePrincipals": [], "gcpServiceAccounts": []}
        if operation_id == "createGroupCloudProviderAccess":
            created = raw_role("c" * 24, "new-ext", created="2025-02-01T00:00:00Z")
            self.roles.append(created)
            return created
        if operation_id == "authorizeGroupCloudProviderAccessRole":
            found = next(r for r in self.roles if r["roleId"] == path["roleId"])
            found["iamAssumedRoleArn"] = body["iamAssumedRoleArn"]
            found["authorizedDate"] = "2025-02-01T00:01:00Z"
            return found
        if operation_id == "deauthorizeGroupCloudProviderAccessRole":
            self.roles = [r for r in self.roles if r["roleId"] != path["roleId"]]
            return None
        raise AssertionError(operation_id)

    def operations(self):
        return [name for name, _body, _path in self.calls]


def cannot_assume():
    return AtlasApiError(
        400,
        operation="authorizeGroupCloudProviderAccessRole",
        method="PATCH",
        path="/x",
        error_code="CANNOT_ASSUME_ROLE",
        detail="Atlas cannot assume the specified role.",
    )


def test_ensure_creates_then_authorizes_with_the_right_calls():
    atlas = FakeAtlas()
    outcome = cpa.CloudProviderAccess(atlas, GROUP).ensure(iam_role_arn=UNKNOWN, check_mode=True)
    assert outcome.changed
    assert atlas.operations() == ["listGroupCloudProviderAccess"]

    outcome = cpa.CloudProviderAccess(atlas, GROUP).ensure()
    assert outcome.changed and outcome.reused_by == "created"
    assert atlas.calls[-1] == ("createGroupCloudProviderAccess", {"providerName": "AWS"}, {"groupId": GROUP})

    atlas.calls.clear()
    outcome = cpa.CloudProviderAccess(atlas, GROUP).ensure(role_id="c" * 24, iam_role_arn=IAM_ARN)
    assert outcome.changed
    assert outcome.after["iam_assumed_role_arn"] == IAM_ARN
    assert atlas.calls[-1] == (
        "authorizeGroupCloudProviderAccessRole",
        {"providerName": "AWS", "iamAssumedRoleArn": IAM_ARN},
        {"groupId": GROUP, "roleId": "c" * 24},
    )

    atlas.calls.clear()
    outcome = cpa.CloudProviderAccess(atlas, GROUP).ensure(iam_role_arn=IAM_ARN)
    assert not outcome.changed and outcome.reused_by == "iam_role_arn"
    assert atlas.operations() == ["listGroupCloudProviderAccess"]


def test_ensure_without_authorizing_creates_once_and_then_finds_the_authorized_role():
    atlas = FakeAtlas()
    first = cpa.CloudProviderAccess(atlas, GROUP).ensure(iam_role_arn=IAM_ARN, authorize=False)
    assert first.changed and first.reused_by == "created"
    assert atlas.operations() == ["listGroupCloudProviderAccess", "createGroupCloudProviderAccess"]
    cpa.CloudProviderAccess(atlas, GROUP).ensure(role_id=first.after["role_id"], iam_role_arn=IAM_ARN)

    atlas.calls.clear()
    again = cpa.CloudProviderAccess(atlas, GROUP).ensure(iam_role_arn=IAM_ARN, authorize=False)
    assert not again.changed and again.reused_by == "iam_role_arn"
    assert again.after["role_id"] == first.after["role_id"]
    assert atlas.operations() == ["listGroupCloudProviderAccess"]


def test_authorize_waits_out_cannot_assume_role():
    clock = Clock()
    atlas = FakeAtlas(roles=[raw_role(R1, "e1")], authorizeGroupCloudProviderAccessRole=[cannot_assume(), cannot_assume()])
    access = cpa.CloudProviderAccess(atlas, GROUP, sleep=clock.sleep, clock=clock)
    outcome = access.ensure(role_id=R1, iam_role_arn=IAM_ARN, authorize_timeout=60)
    assert outcome.after["authorized"] is True
    assert clock.sleeps == [1.0, 2.0]
    assert atlas.operations().count("authorizeGroupCloudProviderAccessRole") == 3


def test_authorize_gives_up_with_what_the_trust_policy_must_hold_and_the_created_role():
    clock = Clock()
    atlas = FakeAtlas(authorizeGroupCloudProviderAccessRole=[cannot_assume() for _attempt in range(100)])
    access = cpa.CloudProviderAccess(atlas, GROUP, sleep=clock.sleep, clock=clock)
    with pytest.raises(AtlasApiError) as caught:
        access.ensure(iam_role_arn=IAM_ARN, authorize_timeout=20)
    message = str(caught.value)
    assert f"The trust policy of {IAM_ARN} must allow the principal {ATLAS_ARN} to call sts:AssumeRole" in message
    assert '{"StringEquals": {"sts:ExternalId": "new-ext"}}' in message
    assert "raise authorize_timeout" in message
    assert "still CANNOT_ASSUME_ROLE after" in message
    assert sum(clock.sleeps) == pytest.approx(20)
    assert caught.value.role["role_id"] == "c" * 24


def test_authorize_does_not_repeat_other_errors():
    error = AtlasApiError(404, operation="authorizeGroupCloudProviderAccessRole", error_code="CLOUD_PROVIDER_ACCESS_ROLE_NOT_FOUND")
    atlas = FakeAtlas(roles=[raw_role(R1, "e1")], authorizeGroupCloudProviderAccessRole=[error])
    with pytest.raises(AtlasApiError) as caught:
        cpa.CloudProviderAccess(atlas, GROUP, sleep=pytest.fail).ensure(role_id=R1, iam_role_arn=IAM_ARN)
    assert caught.value.hint is None


def test_remove_deauthorizes_and_tolerates_a_role_already_gone():
    gone = AtlasApiError(404, operation="deauthorizeGroupCloudProviderAccessRole", error_code="CLOUD_PROVIDER_ACCESS_ROLE_NOT_FOUND")
    atlas = FakeAtlas(roles=[raw_role(R1, "e1", iam_arn=IAM_ARN)], deauthorizeGroupCloudProviderAccessRole=[gone])
    plan = cpa.CloudProviderAccess(atlas, GROUP).remove(iam_role_arn=IAM_ARN)
    assert [r["role_id"] for r in plan.roles] == [R1]
    assert atlas.calls[-1] == ("deauthorizeGroupCloudProviderAccessRole", None, {"cloudProvider": "AWS", "groupId": GROUP, "roleId": R1})


def test_remove_in_check_mode_writes_nothing():
    atlas = FakeAtlas(roles=[raw_role(R1, "e1")])
    plan = cpa.CloudProviderAccess(atlas, GROUP).remove(role_id=R1, check_mode=True)
    assert len(plan.roles) == 1
    assert atlas.operations() == ["listGroupCloudProviderAccess"]


def test_find_filters_by_id_and_arn():
    atlas = FakeAtlas(roles=[raw_role(R1, "e1", iam_arn=IAM_ARN), raw_role(R2, "e2")])
    access = cpa.CloudProviderAccess(atlas, GROUP)
    assert [r["role_id"] for r in access.find()] == [R1, R2]
    assert [r["role_id"] for r in access.find(role_id=R2)] == [R2]
    assert [r["role_id"] for r in access.find(iam_role_arn=IAM_ARN)] == [R1]
    assert access.find(role_id=R2, iam_role_arn=IAM_ARN) == []


# -- creating a role after a fault: never a second role for one that Atlas did create -----------------


def server_error():
    return AtlasApiError(500, operation="createGroupCloudProviderAccess", method="POST", path="/x", error_code="UNEXPECTED_ERROR")


def lost_response():
    return AtlasConnectionError("Atlas API createGroupCloudProviderAccess (POST /x) timed out", operation="createGroupCloudProviderAccess")


def created_then(atlas, error, role_id=R3):
    """Atlas makes the role, then the answer is lost."""

    def answer():
        atlas.roles.append(raw_role(role_id, "made-" + role_id[0], created="2025-03-01T00:00:00Z"))
        return error

    return answer


@pytest.mark.parametrize("fault", [server_error, lost_response])
def test_create_after_a_fault_uses_the_role_atlas_did_create(fault):
    atlas = FakeAtlas(roles=[raw_role(R1, "e1"), raw_role(R2, "e2", iam_arn=IAM_ARN)])
    atlas.scripts["createGroupCloudProviderAccess"] = [created_then(atlas, fault())]
    access = cpa.CloudProviderAccess(atlas, GROUP)
    before = access.roles()
    created = access.create()
    assert created["role_id"] == R3 and created["external_id"] == "made-3"
    assert atlas.operations() == ["listGroupCloudProviderAccess", "createGroupCloudProviderAccess", "listGroupCloudProviderAccess"]
    assert [r["role_id"] for r in before] == [R1, R2]  # R1 is unused but was there before: not taken for the new role


@pytest.mark.parametrize("fault", [server_error, lost_response])
def test_create_after_a_fault_posts_once_more_when_no_role_appeared(fault):
    atlas = FakeAtlas(roles=[raw_role(R1, "e1")], createGroupCloudProviderAccess=[fault()])
    access = cpa.CloudProviderAccess(atlas, GROUP)
    access.roles()
    assert access.create()["role_id"] == "c" * 24
    assert atlas.operations() == [
        "listGroupCloudProviderAccess",
        "createGroupCloudProviderAccess",
        "listGroupCloudProviderAccess",
        "createGroupCloudProviderAccess",
    ]


def test_create_after_a_fault_leaves_a_new_role_that_is_someone_elses():
    atlas = FakeAtlas()
    # What appeared meanwhile is already authorized or in use: another run's role, not ours to take.
    atlas.scripts["createGroupCloudProviderAccess"] = [
        lambda: (atlas.roles.extend([raw_role(R3, "x3", iam_arn=OTHER_ARN), raw_role(R4, "x4", usages=[EAR])]), server_error())[1]
    ]
    access = cpa.CloudProviderAccess(atlas, GROUP)
    assert access.create()["role_id"] == "c" * 24
    assert atlas.operations().count("createGroupCloudProviderAccess") == 2


def test_create_posts_only_twice_and_raises_the_second_fault():
    atlas = FakeAtlas(createGroupCloudProviderAccess=[server_error(), server_error()])
    with pytest.raises(AtlasApiError, match="HTTP 500 UNEXPECTED_ERROR"):
        cpa.CloudProviderAccess(atlas, GROUP).create()
    # No roles read before: create reads them first, so that it can tell a role that appeared.
    assert atlas.operations() == [
        "listGroupCloudProviderAccess",
        "createGroupCloudProviderAccess",
        "listGroupCloudProviderAccess",
        "createGroupCloudProviderAccess",
    ]


def test_create_does_not_repeat_a_refused_post():
    refused = AtlasApiError(409, operation="createGroupCloudProviderAccess", method="POST", path="/x", error_code="DUPLICATE_CLOUD_PROVIDER_ACCESS_ROLE")
    atlas = FakeAtlas(createGroupCloudProviderAccess=[refused])
    access = cpa.CloudProviderAccess(atlas, GROUP)
    access.roles()
    with pytest.raises(AtlasApiError, match="HTTP 409"):
        access.create()
    assert atlas.operations() == ["listGroupCloudProviderAccess", "createGroupCloudProviderAccess"]


def test_ensure_after_a_fault_on_create_authorizes_the_role_atlas_did_create():
    atlas = FakeAtlas()
    atlas.scripts["createGroupCloudProviderAccess"] = [created_then(atlas, server_error())]
    outcome = cpa.CloudProviderAccess(atlas, GROUP).ensure(iam_role_arn=IAM_ARN)
    assert outcome.reused_by == "created" and outcome.after["role_id"] == R3 and outcome.after["authorized"]
    assert [r["roleId"] for r in atlas.roles] == [R3]
    assert atlas.operations() == [
        "listGroupCloudProviderAccess",
        "createGroupCloudProviderAccess",
        "listGroupCloudProviderAccess",
        "authorizeGroupCloudProviderAccessRole",
    ]
