"""Projects (groups) and organizations of the Atlas emulator: listGroups, getGroup, getOrgGroups."""

import pytest
import requests

from emulators.atlas.state import DEFAULT_ORG_ID
from emulators.atlas.testing import new_group_id

OTHER_ORG = "5e2211c17a3e5a48f5497de3"


pytestmark = pytest.mark.usefixtures("clean_emulator")


def test_get_group_has_the_fields_the_spec_requires(api, emulator):
    group = emulator.add_project(new_group_id(), "Payments-prod")
    emulator.add_cluster(group, "c0")
    emulator.add_cluster(group, "c1")
    response = api.get(f"/groups/{group}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/vnd.atlas.2023-01-01+json"
    body = response.json()
    assert body["id"] == group
    assert body["name"] == "Payments-prod"
    assert body["orgId"] == DEFAULT_ORG_ID
    assert body["clusterCount"] == 2
    assert body["created"].endswith("Z")
    assert body["links"][0]["rel"] == "self"


def test_unknown_or_malformed_group_is_group_not_found(api):
    for group in (new_group_id(), "not-a-group"):
        response = api.get(f"/groups/{group}")
        assert response.status_code == 404
        assert response.json()["errorCode"] == "GROUP_NOT_FOUND"


def test_list_groups_is_paginated(api, emulator):
    groups = [emulator.add_project(new_group_id(), f"p{i}") for i in range(5)]
    body = api.get("/groups").json()
    assert [g["id"] for g in body["results"]] == groups
    assert body["totalCount"] == 5
    first = api.get("/groups?itemsPerPage=2").json()
    assert [g["id"] for g in first["results"]] == groups[:2]
    assert "next" in {link["rel"] for link in first["links"]}
    last = api.get("/groups?itemsPerPage=2&pageNum=3&includeCount=false").json()
    assert [g["id"] for g in last["results"]] == groups[4:]
    assert "totalCount" not in last
    bad = api.get("/groups?itemsPerPage=0")
    assert bad.status_code == 400
    assert bad.json()["errorCode"] == "VALIDATION_ERROR"


def test_org_groups_filter_by_org_and_name_prefix(api, emulator):
    mine = emulator.add_project(new_group_id(), "Payments-prod")
    emulator.add_project(new_group_id(), "payments-dev")
    emulator.add_project(new_group_id(), "Search")
    other = emulator.add_project(new_group_id(), "payments-other", org_id=OTHER_ORG)
    all_default = api.get(f"/orgs/{DEFAULT_ORG_ID}/groups").json()
    assert all_default["totalCount"] == 3
    assert all(g["orgId"] == DEFAULT_ORG_ID for g in all_default["results"])
    # Case-insensitive prefix of the name.
    named = api.get(f"/orgs/{DEFAULT_ORG_ID}/groups?name=PAYMENTS").json()
    assert sorted(g["name"] for g in named["results"]) == ["Payments-prod", "payments-dev"]
    assert api.get(f"/orgs/{DEFAULT_ORG_ID}/groups?name=ments").json()["results"] == []
    assert [g["id"] for g in api.get(f"/orgs/{OTHER_ORG}/groups").json()["results"]] == [other]
    assert mine in {g["id"] for g in api.get("/groups").json()["results"]}


def test_unknown_org_is_org_not_found(api, emulator):
    for org in ("000000000000000000000000", "not-an-org"):
        response = api.get(f"/orgs/{org}/groups")
        assert response.status_code == 404
        assert response.json()["errorCode"] == "ORG_NOT_FOUND"
    emulator.add_organization("000000000000000000000000")
    body = api.get("/orgs/000000000000000000000000/groups").json()
    assert body["results"] == []
    assert body["totalCount"] == 0


def test_unicode_project_names_pass_the_contract(api, emulator):
    group = emulator.add_project(new_group_id(), "Zahlungen-Ü_1")
    assert api.get(f"/groups/{group}").json()["name"] == "Zahlungen-Ü_1"


def test_projects_need_authentication(emulator):
    response = requests.get(f"{emulator.base_url}/api/atlas/v2/groups", headers={"Accept": "application/vnd.atlas.2023-01-01+json"}, timeout=10)
    assert response.status_code == 401


def test_versions_and_methods(api, emulator):
    group = emulator.add_project(new_group_id(), "p")
    assert api.get(f"/groups/{group}", version="2024-08-05").status_code == 406
    assert api.post("/groups", {"name": "x"}).status_code == 405


def test_control_api_adds_a_project_in_an_org(emulator, api):
    control = f"{emulator.base_url}/__emulator"
    created = requests.post(f"{control}/projects", json={"name": "ctl", "org_id": OTHER_ORG}, timeout=10).json()
    assert api.get(f"/groups/{created['group_id']}").json()["orgId"] == OTHER_ORG
    assert requests.get(f"{control}/projects/{created['group_id']}", timeout=10).json()["orgId"] == OTHER_ORG
    assert requests.post(f"{control}/organizations", json={"org_id": "111111111111111111111111"}, timeout=10).status_code == 200
    assert api.get("/orgs/111111111111111111111111/groups").status_code == 200
    assert requests.post(f"{control}/projects", json={"name": "bad", "org_id": "nope"}, timeout=10).status_code == 400
