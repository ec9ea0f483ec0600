"""Private networking planned offline (settings, endpoints and options in; steps, problems and diffs out), its place in the
enable plan, and its writes against a fake Atlas with a fake clock."""

import pytest
from unit.fakes import Clock
from unit.plugins.module_utils.procedures import test_enable as base

from ansible_collections.cmk.atlas.plugins.module_utils._module import UNKNOWN
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.client import AtlasApiError
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.private_endpoints import EndpointFailedError, PrivateEndpoints, normalize_endpoint
from ansible_collections.cmk.atlas.plugins.module_utils.procedures import private_networking as pn
from ansible_collections.cmk.atlas.plugins.module_utils.procedures.enable import Variables

MODULE = Variables(False)
PLAYBOOK = Variables(True)


def endpoint(region, status="ACTIVE", endpoint_id=None, error=None):
    raw = {"id": endpoint_id or f"id-{region.lower()}", "regionName": region, "status": status, "cloudProvider": "AWS"}
    if error:
        raw["errorMessage"] = error
    return normalize_endpoint(raw)


def plan(current=False, endpoints=(), wanted=None, regions=None, var=MODULE, **kwargs):
    return pn.plan_private_networking(current, list(endpoints), wanted, regions, var, **kwargs)


def steps(networking_plan):
    networking = pn.Networking(networking_plan, api=None, timeout=60, option="endpoint_timeout")
    return [description for description, _apply in networking.before_patch], [description for description, _apply in networking.after_patch]


# -- the plan -----------------------------------------------------------------------------------------


def test_regions_on_a_project_without_private_networking_set_the_flag_then_create_and_wait():
    planned = plan(regions=["eu-west-2", "us-east-1"])
    assert planned.problems == []
    assert (planned.before, planned.after, planned.change, planned.implied) == (False, True, True, True)
    assert planned.create == ["EU_WEST_2", "US_EAST_1"]
    assert steps(planned) == ([], ["create encryption-at-rest private endpoints in eu-west-2, us-east-1 until they are ACTIVE"])


def test_the_flag_given_is_not_implied():
    planned = plan(wanted=True, regions=["eu-west-2"])
    assert (planned.change, planned.implied) == (True, False)


def test_regions_in_atlas_form_and_repeated_count_once():
    assert plan(regions=["EU_WEST_2", "eu-west-2"]).create == ["EU_WEST_2"]


def test_an_unknown_region_is_a_problem_naming_the_variable():
    planned = plan(regions=["eu-west-2", "mars-north-1"], var=PLAYBOOK)
    (problem,) = planned.problems
    assert problem.subject == "cmk_atlas_private_endpoint_regions"
    assert "mars-north-1" in problem.message
    assert planned.create == ["EU_WEST_2"]


def test_a_converged_project_plans_nothing():
    planned = plan(current=True, endpoints=[endpoint("EU_WEST_2")], regions=["eu-west-2"])
    assert planned.problems == [] and planned.change is None
    assert steps(planned) == ([], [])


def test_the_flag_alone_on_a_project_that_has_it_plans_nothing_and_keeps_the_endpoints():
    planned = plan(current=True, endpoints=[endpoint("EU_WEST_2"), endpoint("US_EAST_1")], wanted=True)
    assert steps(planned) == ([], []) and planned.regions is None


def test_unset_options_leave_private_networking_as_it_is():
    planned = plan(current=True, endpoints=[endpoint("EU_WEST_2")])
    assert (planned.after, planned.change) == (True, None)
    assert steps(planned) == ([], [])


def test_an_endpoint_still_provisioning_is_waited_for_not_created_again():
    planned = plan(current=True, endpoints=[endpoint("EU_WEST_2", "INITIATING", "e1")], regions=["eu-west-2"])
    assert planned.create == [] and [e["id"] for e in planned.wait] == ["e1"]
    assert steps(planned)[1] == ["wait for the encryption-at-rest private endpoints e1 (eu-west-2, INITIATING) until they are ACTIVE"]


def test_a_failed_endpoint_is_replaced_and_its_message_reported():
    failed = endpoint("EU_WEST_2", "FAILED", "e1", error="The VPC endpoint service is not available")
    planned = plan(current=True, endpoints=[failed], regions=["eu-west-2"])
    assert planned.replace == [failed]
    (warning,) = planned.warnings
    assert "e1 in EU_WEST_2 is FAILED: The VPC endpoint service is not available" in warning
    assert steps(planned)[1] == [
        "delete the FAILED encryption-at-rest private endpoints e1 (eu-west-2, FAILED) and wait until they are gone",
        "create encryption-at-rest private endpoints in eu-west-2 until they are ACTIVE",
    ]


def test_endpoints_of_regions_no_longer_listed_are_removed_after_the_listed_ones_are_active():
    current = [endpoint("EU_WEST_2"), endpoint("US_EAST_1", "INITIATING", "e2")]
    planned = plan(current=True, endpoints=current, regions=["eu-west-1"])
    assert planned.create == ["EU_WEST_1"]
    assert [e["id"] for e in planned.remove] == ["id-eu_west_2", "e2"]
    assert steps(planned)[1] == [
        "create encryption-at-rest private endpoints in eu-west-1 until they are ACTIVE",
        "delete encryption-at-rest private endpoints of regions no longer listed: id-eu_west_2 (eu-west-2, ACTIVE), e2 (us-east-1, INITIATING) "
        "and wait until they are gone",
    ]


def test_without_a_list_no_endpoint_is_removed():
    planned = plan(current=True, endpoints=[endpoint("EU_WEST_2")], wanted=True)
    assert planned.remove == []


def test_an_endpoint_atlas_is_deleting_in_a_listed_region_does_not_block_the_new_one():
    planned = plan(current=True, endpoints=[endpoint("EU_WEST_2", "DELETING", "old")], regions=["eu-west-2"])
    assert planned.create == ["EU_WEST_2"] and planned.remove == []


def test_false_with_regions_listed_is_refused():
    planned = plan(wanted=False, regions=["eu-west-2"], var=PLAYBOOK)
    (problem,) = planned.problems
    assert problem.subject == "cmk_atlas_require_private_networking"
    assert "cmk_atlas_private_endpoint_regions lists eu-west-2" in problem.message


def test_an_empty_list_implies_nothing():
    planned = plan(regions=[])
    assert planned.problems == [] and (planned.after, planned.change) == (False, None)


@pytest.mark.parametrize(
    ("given", "subject"),
    [({"source_ips": ["198.51.100.0/24"]}, "cmk_atlas_source_ips"), ({"managed_source_ips": ["198.51.100.10/32"]}, "cmk_atlas_manage_source_ips")],
)
def test_source_ip_conditions_with_private_networking_planned_on_are_refused(given, subject):
    planned = plan(regions=["eu-west-2"], var=PLAYBOOK, **given)
    (problem,) = planned.problems
    assert problem.subject == subject
    assert "no longer from public addresses" in problem.message


def test_source_ips_are_no_problem_without_private_networking():
    assert plan(source_ips=["198.51.100.0/24"]).problems == []


def test_source_ips_of_the_module_name_its_options():
    (problem,) = plan(current=True, managed_source_ips=["198.51.100.10/32"]).problems
    assert problem.subject == "required_source_ips"


def test_turning_off_deletes_every_endpoint_first_and_waits_until_they_are_gone():
    current = [endpoint("EU_WEST_2"), endpoint("US_EAST_1", "DELETING", "e2")]
    planned = plan(current=True, endpoints=current, wanted=False)
    assert (planned.after, planned.change) == (False, False)
    assert [e["id"] for e in planned.remove] == ["id-eu_west_2"]
    assert [e["id"] for e in planned.wait_gone] == ["id-eu_west_2", "e2"]
    before, after = steps(planned)
    assert before == ["delete encryption-at-rest private endpoints id-eu_west_2 (eu-west-2, ACTIVE), e2 (us-east-1, DELETING) and wait until they are gone"]
    assert after == []


def test_turning_off_a_project_without_endpoints_only_clears_the_flag():
    planned = plan(current=True, wanted=False)
    assert planned.change is False and steps(planned) == ([], [])


def test_a_negative_endpoint_timeout_is_a_problem():
    (problem,) = plan(timeout=-1, var=PLAYBOOK).problems
    assert problem.subject == "cmk_atlas_endpoint_timeout"


def test_planned_endpoints_and_the_diff_by_region():
    planned = plan(current=True, endpoints=[endpoint("US_EAST_1")], regions=["eu-west-2"])
    assert pn.planned_endpoints(planned) == [{"id": UNKNOWN, "region_name": "EU_WEST_2", "status": "ACTIVE", "error_message": None}]
    diff = pn.Networking(planned, None, 60, "endpoint_timeout").diff("p1")
    assert diff["before"] == {"require_private_networking": True, "private_endpoints": {"us-east-1": "ACTIVE"}}
    assert diff["after"] == {"require_private_networking": True, "private_endpoints": {"eu-west-2": "ACTIVE"}}


def test_the_diff_says_the_flag_is_implied():
    diff = pn.Networking(plan(regions=["eu-west-2"]), None, 60, "endpoint_timeout").diff("p1")
    assert "implied by the regions" in diff["before_header"]
    assert diff["after"]["require_private_networking"] is True


def test_no_diff_where_private_networking_plays_no_part():
    assert pn.Networking(plan(), None, 60, "endpoint_timeout").diff("p1") is None


# -- the place in the enable plan -----------------------------------------------------------------------------------


def in_place(**params):
    roles = [base.atlas_role(iam_role_arn=base.ROLE_ARN, used=True)]
    config = base.role_config(roles=roles)
    return dict(roles=roles, current=config, existing_role=base.iam_role(), **params)


def enable_plan(endpoints=(), flag=None, **kwargs):
    access = base.procedure(**kwargs)
    if flag is not None:
        access.current = dict(access.current, require_private_networking=flag)
    access.endpoints = list(endpoints)
    access._addresses = ["198.51.100.10/32"]  # Atlas's control-plane addresses, read where a policy has a source-IP condition
    return access, access.plan_all()


def test_a_fresh_enable_with_regions_sets_the_flag_in_the_patch_then_the_endpoints_then_waits_for_valid():
    access, planned = enable_plan(private_endpoint_regions=["eu-west-2"])
    assert planned.problems == []
    assert planned.changes[-3:] == [
        f"set encryption at rest of project {base.PROJECT} (customerMasterKeyID, enabled, region, requirePrivateNetworking, roleId, "
        "implied by private_endpoint_regions)",
        "create encryption-at-rest private endpoints in eu-west-2 until they are ACTIVE",
        f"wait until Atlas reports the key of project {base.PROJECT} valid",
    ]
    assert access.encryption_plan.body["requirePrivateNetworking"] is True
    headers = [diff["before_header"] for diff in planned.diffs]
    assert any(header.startswith("encryption-at-rest private endpoints") for header in headers), headers


def test_an_enabled_project_gets_the_flag_alone_in_the_patch():
    access, planned = enable_plan(**in_place(require_private_networking=True))
    assert access.encryption_plan.body == {"requirePrivateNetworking": True}
    assert planned.changes == [f"set encryption at rest of project {base.PROJECT} (requirePrivateNetworking) and wait for valid"]


def test_endpoints_added_to_a_project_that_has_the_flag_are_confirmed_valid_afterwards():
    _access, planned = enable_plan(flag=True, **in_place(private_endpoint_regions=["eu-west-2"]))
    assert planned.changes == [
        "create encryption-at-rest private endpoints in eu-west-2 until they are ACTIVE",
        f"confirm that Atlas reports the key of project {base.PROJECT} valid",
    ]


def test_a_converged_private_project_plans_no_write():
    _access, planned = enable_plan(endpoints=[endpoint("EU_WEST_2")], flag=True, **in_place(private_endpoint_regions=["eu-west-2"]))
    assert planned.problems == [] and planned.changes == []


def test_turning_off_deletes_the_endpoints_before_the_patch():
    _access, planned = enable_plan(endpoints=[endpoint("EU_WEST_2")], flag=True, **in_place(require_private_networking=False))
    assert planned.changes == [
        "delete encryption-at-rest private endpoints id-eu_west_2 (eu-west-2, ACTIVE) and wait until they are gone",
        f"set encryption at rest of project {base.PROJECT} (requirePrivateNetworking) and wait for valid",
    ]


def test_refusals_come_before_any_write():
    _access, planned = enable_plan(require_private_networking=False, private_endpoint_regions=["eu-west-2"], source_ips=["198.51.100.0/24"])
    assert "require_private_networking" in base.subjects(planned)
    _access, planned = enable_plan(private_endpoint_regions=["eu-west-2"], source_ips=["198.51.100.0/24"])
    assert "source_ips" in base.subjects(planned)


def test_the_planned_flag_reaches_the_judgement_of_the_policies(monkeypatch):
    seen = []
    real = base.pka.evaluate_access

    def spy(*args):
        seen.append(args[-1])
        return real(*args)

    monkeypatch.setattr(base.pka, "evaluate_access", spy)
    enable_plan(private_endpoint_regions=["eu-west-2"])
    assert seen == [True]


def test_the_result_shows_the_flag_and_the_planned_endpoints_in_check_mode(monkeypatch):
    access = base.procedure(check_mode=True, private_endpoint_regions=["eu-west-2"])
    access.endpoints = []
    monkeypatch.setattr(access, "read", lambda: None)
    outcome = access.run()
    assert outcome.result["require_private_networking"] is True
    assert outcome.result["private_endpoints"] == [
        {"id": UNKNOWN, "region": "eu-west-2", "region_name": "EU_WEST_2", "status": "ACTIVE", "error_message": None}
    ]


# -- the writes -------------------------------------------------------------------------------------


class FakeAtlas:
    """The private endpoint calls, with endpoints that become ACTIVE (or FAILED) ``after`` seconds of the clock."""

    def __init__(self, clock, after=3.0, fail=None, endpoints=()):
        self.clock = clock
        self.after = after
        self.fail = fail
        self.calls = []
        self.endpoints = {raw["id"]: dict(raw) for raw in endpoints}
        self.counter = 0

    def _status(self, raw):
        if raw.get("deleting_since") is not None:
            return None if self.clock() >= raw["deleting_since"] + self.after else "DELETING"
        if raw.get("created") is not None and self.clock() < raw["created"] + self.after:
            return "INITIATING"
        return "FAILED" if raw.get("errorMessage") else raw.get("status", "ACTIVE")

    def _view(self, raw):
        view = {"id": raw["id"], "regionName": raw["regionName"], "status": self._status(raw), "cloudProvider": "AWS"}
        if view["status"] == "FAILED":
            view["errorMessage"] = raw["errorMessage"]
        return view

    def paginate(self, operation, **path):
        self.calls.append((self.clock(), operation))
        return [self._view(raw) for raw in self.endpoints.values() if self._status(raw) is not None]

    def call(self, operation, body=None, **path):
        self.calls.append((self.clock(), operation))
        if operation == "createGroupEncryptionAtRestPrivateEndpoint":
            self.counter += 1
            raw = {"id": f"new{self.counter}", "regionName": body["regionName"], "created": self.clock(), "status": "ACTIVE"}
            if self.fail:
                raw["errorMessage"] = self.fail
            self.endpoints[raw["id"]] = raw
            return self._view(raw)
        if operation == "requestGroupEncryptionAtRestPrivateEndpointDeletion":
            raw = self.endpoints[path["endpointId"]]
            if self._status(raw) == "INITIATING":
                raise AtlasApiError(400, operation, error_code="ENCRYPTION_AT_REST_PRIVATE_ENDPOINT_DELETE_BLOCKED_DURING_PROVISIONING", detail="IN_PROGRESS")
            raw.setdefault("deleting_since", self.clock())
            return None
        raise AssertionError(operation)


def networking(atlas, clock, **kwargs):
    api = PrivateEndpoints(atlas, "p1", sleep=clock.sleep, clock=clock)
    endpoints = api.list()
    atlas.calls.clear()
    return pn.Networking(plan(endpoints=endpoints, **kwargs), api, 60, "endpoint_timeout")


def test_created_endpoints_are_waited_for_until_active_within_two_seconds():
    clock = Clock()
    atlas = FakeAtlas(clock, after=5.0)
    net = networking(atlas, clock, current=True, regions=["eu-west-2"])
    for _description, apply in net.after_patch:
        apply()
    assert atlas.calls[0][1] == "createGroupEncryptionAtRestPrivateEndpoint"
    assert clock.sleeps[0] == 1.0 and set(clock.sleeps[1:]) == {2.0}
    assert 5.0 <= clock.now < 7.0
    assert net.results(applied=True) == [{"id": "new1", "region": "eu-west-2", "region_name": "EU_WEST_2", "status": "ACTIVE", "error_message": None}]


def test_a_failed_endpoint_stops_the_wait_with_atlas_s_message():
    clock = Clock()
    atlas = FakeAtlas(clock, after=3.0, fail="The VPC endpoint service is not available")
    net = networking(atlas, clock, current=True, regions=["eu-west-2"])
    ((_description, apply),) = net.after_patch
    with pytest.raises(EndpointFailedError) as caught:
        apply()
    assert "new1 in EU_WEST_2 is FAILED: The VPC endpoint service is not available" in str(caught.value)
    assert clock.now < 5.0


def test_an_unlisted_endpoint_still_provisioning_is_deleted_once_atlas_lets_it():
    clock = Clock()
    atlas = FakeAtlas(clock, after=4.0, endpoints=[{"id": "old", "regionName": "US_EAST_1", "created": 0.0}])
    net = networking(atlas, clock, current=True, regions=[])
    ((description, apply),) = net.after_patch
    assert description.startswith("delete encryption-at-rest private endpoints of regions no longer listed: old (us-east-1, INITIATING)")
    apply()
    deletions = [time for time, operation in atlas.calls if operation == "requestGroupEncryptionAtRestPrivateEndpointDeletion"]
    assert deletions[0] == 0.0 and 4.0 <= deletions[-1] < 6.0
    assert atlas.paginate("list") == []
    assert clock.now < deletions[-1] + 4.0 + 2.0


def test_turning_off_waits_until_every_endpoint_is_gone():
    clock = Clock()
    atlas = FakeAtlas(clock, after=3.0, endpoints=[{"id": "e1", "regionName": "EU_WEST_2"}])
    net = networking(atlas, clock, current=True, wanted=False)
    ((_description, apply),) = net.before_patch
    apply()
    assert atlas.paginate("list") == []
    assert 3.0 <= clock.now < 5.0
    assert net.results(applied=True) == []
