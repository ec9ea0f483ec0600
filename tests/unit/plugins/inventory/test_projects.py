"""Unit tests of the inventory plugin cmk.atlas.projects, with a fake Atlas client."""

import json

import pytest
import yaml
from ansible.errors import AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.inventory import BaseInventoryPlugin
from ansible.plugins.loader import inventory_loader

from ansible_collections.cmk.atlas.plugins.inventory import projects
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.client import AtlasApiError, AtlasClient

ORG = "64b0a1c2d3e4f5a6b7c8d9e0"
OTHER_ORG = "64b0a1c2d3e4f5a6b7c8d9e1"
PLAIN = "660000000000000000000011"
LEGACY = "660000000000000000000012"
ROLE = "660000000000000000000013"
ROLE_ID = "a" * 24
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
PRIVATE_KEY = "0f1e2d3c-private-key-value-4b5a6978"
CLIENT_SECRET = "mdb_sa_sk_client-secret-value-0123456789"


def group(group_id, name, org=ORG):
    return {"id": group_id, "name": name, "orgId": org, "clusterCount": 1, "created": "2025-01-01T00:00:00Z", "links": []}


EAR = {
    PLAIN: {"awsKms": {"enabled": False, "requirePrivateNetworking": False, "valid": False}},
    LEGACY: {
        "awsKms": {
            "enabled": True,
            "customerMasterKeyID": KEY_ID,
            "region": "US_EAST_1",
            "accessKeyID": ACCESS_KEY_ID,
            # Atlas never sends it; were it there, it must not reach a host.
            "secretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "requirePrivateNetworking": False,
            "valid": True,
        }
    },
    ROLE: {"awsKms": {"enabled": True, "customerMasterKeyID": KEY_ID, "region": "EU_WEST_2", "roleId": ROLE_ID, "valid": True}},
}


class FakeClient:
    def __init__(self, groups, ear=None, org_groups=None, ear_errors=None):
        self.groups = groups
        self.org_groups = org_groups or {}
        self.ear = ear if ear is not None else EAR
        self.ear_errors = ear_errors or {}
        self.calls = []
        self.closed = False

    def paginate(self, operation_id, items_per_page=100, query=None, **path_params):
        self.calls.append((operation_id, path_params))
        if operation_id == "listGroups":
            return iter(self.groups)
        if operation_id == "getOrgGroups":
            if path_params["orgId"] not in self.org_groups:
                raise AtlasApiError(404, operation_id, "GET", f"/api/atlas/v2/orgs/{path_params['orgId']}/groups", error_code="ORG_NOT_FOUND")
            return iter(self.org_groups[path_params["orgId"]])
        raise AssertionError(operation_id)

    def call(self, operation_id, body=None, query=None, **path_params):
        self.calls.append((operation_id, path_params))
        assert operation_id == "getGroupEncryptionAtRest"
        group_id = path_params["groupId"]
        if group_id in self.ear_errors:
            raise self.ear_errors[group_id]
        return self.ear[group_id]

    def close(self):
        self.closed = True


GROUPS = [group(PLAIN, "cmk-demo-plain"), group(LEGACY, "cmk-demo-legacy"), group(ROLE, "orders prod (eu)", org=OTHER_ORG)]


@pytest.fixture
def plugin():
    # What inventory_loader.get() does: the option definitions from DOCUMENTATION and its fragments.
    inventory_loader._load_config_defs("cmk.atlas.projects", projects, projects.__file__)
    module = projects.InventoryModule()
    module._load_name = module.ansible_name = "cmk.atlas.projects"
    # Set by the plugin loader too; ansible-core 2.17 and 2.18 read it in parse().
    module._redirected_names = ["cmk.atlas.projects"]
    return module


@pytest.fixture
def clean_env(monkeypatch):
    for name in (
        "MONGODB_ATLAS_PUBLIC_KEY",
        "MONGODB_ATLAS_PRIVATE_KEY",
        "MONGODB_ATLAS_CLIENT_ID",
        "MONGODB_ATLAS_CLIENT_SECRET",
        "MONGODB_ATLAS_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def run(plugin, tmp_path, monkeypatch, clean_env):
    """``run(config, client)``: parse an inventory file with ``config`` against ``client``; the InventoryData."""

    def run(config, client=None, cache=True, name="test.atlas_projects.yml"):
        client = client if client is not None else FakeClient(GROUPS)
        monkeypatch.setattr(plugin, "_atlas_client", lambda: client)
        path = tmp_path / name
        path.write_text(yaml.safe_dump({"plugin": "cmk.atlas.projects", "public_key": "pub", "private_key": PRIVATE_KEY, **config}))
        inventory = InventoryData()
        plugin.parse(inventory, DataLoader(), str(path), cache=cache)
        return inventory

    return run


def hosts_of(inventory, group_name):
    return sorted(host.name for host in inventory.groups[group_name].get_hosts())


def test_verify_file(plugin, tmp_path):
    for name, expected in (("a.atlas_projects.yml", True), ("atlas_projects.yaml", True), ("inventory.yml", False), ("a.atlas_projects.json", False)):
        path = tmp_path / name
        path.write_text("plugin: cmk.atlas.projects\n")
        assert plugin.verify_file(str(path)) is expected, name
    assert plugin.verify_file(str(tmp_path / "missing.atlas_projects.yml")) is False


def test_hosts_vars_and_groups(run):
    inventory = run({})
    assert sorted(inventory.hosts) == ["cmk-demo-legacy", "cmk-demo-plain", "orders_prod_eu"]
    assert hosts_of(inventory, "atlas_projects") == ["cmk-demo-legacy", "cmk-demo-plain", "orders_prod_eu"]
    assert hosts_of(inventory, "cmk_atlas_none") == ["cmk-demo-plain"]
    assert hosts_of(inventory, "cmk_atlas_credentials") == ["cmk-demo-legacy"]
    assert hosts_of(inventory, "cmk_atlas_role") == ["orders_prod_eu"]
    legacy = inventory.get_host("cmk-demo-legacy").vars
    assert legacy["cmk_atlas_project_id"] == LEGACY
    assert legacy["cmk_atlas_project_name"] == "cmk-demo-legacy"
    assert legacy["cmk_atlas_org_id"] == ORG
    assert legacy["cmk_atlas_encryption_at_rest"] == {
        "access_method": "credentials",
        "enabled": True,
        "customer_master_key_id": KEY_ID,
        "region": "US_EAST_1",
        "aws_region": "us-east-1",
        "role_id": None,
        "access_key_id": ACCESS_KEY_ID,
        "require_private_networking": False,
        "valid": True,
    }
    role = inventory.get_host("orders_prod_eu").vars
    assert role["cmk_atlas_org_id"] == OTHER_ORG
    assert role["cmk_atlas_encryption_at_rest"]["access_method"] == "role"
    assert role["cmk_atlas_encryption_at_rest"]["role_id"] == ROLE_ID
    assert role["cmk_atlas_encryption_at_rest"]["aws_region"] == "eu-west-2"
    plain = inventory.get_host("cmk-demo-plain").vars["cmk_atlas_encryption_at_rest"]
    assert plain["access_method"] == "none"
    assert plain["customer_master_key_id"] is None


def test_no_secret_reaches_a_host(run):
    inventory = run({})
    text = json.dumps({name: host.vars for name, host in inventory.hosts.items()})
    assert "secretAccessKey" not in text
    assert "EXAMPLEKEY" not in text
    assert PRIVATE_KEY not in text


def test_group_option_and_hostname_id(run):
    inventory = run({"group": "prod", "hostname": "id"})
    assert sorted(inventory.hosts) == sorted([PLAIN, LEGACY, ROLE])
    assert hosts_of(inventory, "prod") == sorted([PLAIN, LEGACY, ROLE])
    assert "atlas_projects" not in inventory.groups
    assert hosts_of(inventory, "cmk_atlas_none") == [PLAIN]


def test_no_group(run):
    inventory = run({"group": ""})
    assert "atlas_projects" not in inventory.groups
    assert hosts_of(inventory, "cmk_atlas_role") == ["orders_prod_eu"]


def test_name_pattern(run):
    client = FakeClient(GROUPS)
    inventory = run({"name_pattern": "^cmk-demo-"}, client)
    assert sorted(inventory.hosts) == ["cmk-demo-legacy", "cmk-demo-plain"]
    # A project left out costs no call.
    assert ("getGroupEncryptionAtRest", {"groupId": ROLE}) not in client.calls


def test_include_and_exclude(run):
    inventory = run({"include_projects": ["cmk-demo-plain", ROLE, "not-there"]})
    assert sorted(inventory.hosts) == ["cmk-demo-plain", "orders_prod_eu"]
    inventory = run({"name_pattern": "demo", "exclude_projects": [PLAIN]})
    assert sorted(inventory.hosts) == ["cmk-demo-legacy"]
    # Exclusion wins over inclusion.
    inventory = run({"include_projects": ["cmk-demo-plain"], "exclude_projects": ["cmk-demo-plain"]})
    assert sorted(inventory.hosts) == []


def test_bad_name_pattern(run):
    with pytest.raises(AnsibleParserError, match="name_pattern"):
        run({"name_pattern": "("})


def test_organization(run):
    client = FakeClient([], org_groups={OTHER_ORG: [GROUPS[2]]})
    inventory = run({"organization_id": OTHER_ORG}, client)
    assert sorted(inventory.hosts) == ["orders_prod_eu"]
    assert client.calls[0] == ("getOrgGroups", {"orgId": OTHER_ORG})
    with pytest.raises(AnsibleParserError, match="ORG_NOT_FOUND"):
        run({"organization_id": ORG}, FakeClient([]))
    with pytest.raises(AnsibleParserError, match="organization_id 'acme'"):
        run({"organization_id": "acme"}, FakeClient([]))


def test_encryption_at_rest_false(run):
    client = FakeClient(GROUPS)
    inventory = run({"encryption_at_rest": False}, client)
    assert sorted(inventory.hosts) == ["cmk-demo-legacy", "cmk-demo-plain", "orders_prod_eu"]
    assert [call[0] for call in client.calls] == ["listGroups"]
    assert "cmk_atlas_none" not in inventory.groups
    assert "cmk_atlas_encryption_at_rest" not in inventory.get_host("cmk-demo-plain").vars


def test_unreadable_encryption_at_rest(run, plugin, monkeypatch):
    warnings = []
    monkeypatch.setattr(plugin.display, "warning", warnings.append)
    error = AtlasApiError(403, "getGroupEncryptionAtRest", "GET", f"/api/atlas/v2/groups/{LEGACY}/encryptionAtRest", error_code="USER_UNAUTHORIZED")
    inventory = run({}, FakeClient(GROUPS, ear_errors={LEGACY: error}))
    assert hosts_of(inventory, "cmk_atlas_unknown") == ["cmk-demo-legacy"]
    assert "cmk-demo-legacy" not in hosts_of(inventory, "cmk_atlas_credentials")
    assert inventory.get_host("cmk-demo-legacy").vars["cmk_atlas_encryption_at_rest"] is None
    assert any("USER_UNAUTHORIZED" in warning and "cmk_atlas_unknown" in warning for warning in warnings)


def test_list_error_fails_the_source(run):
    class Refusing(FakeClient):
        def paginate(self, operation_id, **kwargs):
            raise AtlasApiError(401, operation_id, "GET", "/api/atlas/v2/groups", reason="Unauthorized")

    with pytest.raises(AnsibleParserError, match="could not list the Atlas projects"):
        run({}, Refusing([]))


def test_host_name_collisions(run, plugin, monkeypatch):
    warnings = []
    monkeypatch.setattr(plugin.display, "warning", warnings.append)
    twins = [group(PLAIN, "orders prod"), group(LEGACY, "orders_prod", org=OTHER_ORG), group(ROLE, "search")]
    inventory = run({}, FakeClient(twins))
    assert sorted(inventory.hosts) == [f"orders_prod_{PLAIN}", f"orders_prod_{LEGACY}", "search"]
    assert len(warnings) == 1
    assert "orders_prod" in warnings[0]


def test_sanitize_host_name():
    assert projects.sanitize_host_name("Orders (prod) / EU") == "Orders_prod_EU"
    assert projects.sanitize_host_name("a.b-c_d") == "a.b-c_d"
    assert projects.sanitize_host_name("***") == ""


def test_compose_groups_keyed_groups(run):
    inventory = run(
        {
            "compose": {"cmk_atlas_iam_role_name": "'atlas-kms-' ~ inventory_hostname", "ansible_connection": "'local'"},
            "groups": {"not_valid": "cmk_atlas_encryption_at_rest.access_method != 'none' and not cmk_atlas_encryption_at_rest.valid"},
            "keyed_groups": [{"key": "cmk_atlas_encryption_at_rest.aws_region", "prefix": "kms"}, {"key": "cmk_atlas_org_id", "prefix": "org"}],
        },
        FakeClient(GROUPS, ear={**EAR, ROLE: {"awsKms": {**EAR[ROLE]["awsKms"], "valid": False}}}),
    )
    assert inventory.get_host("cmk-demo-plain").vars["cmk_atlas_iam_role_name"] == "atlas-kms-cmk-demo-plain"
    assert inventory.get_host("cmk-demo-plain").vars["ansible_connection"] == "local"
    assert hosts_of(inventory, "not_valid") == ["orders_prod_eu"]
    assert hosts_of(inventory, "kms_us_east_1") == ["cmk-demo-legacy"]
    assert hosts_of(inventory, "kms_eu_west_2") == ["orders_prod_eu"]
    assert hosts_of(inventory, f"org_{ORG}") == ["cmk-demo-legacy", "cmk-demo-plain"]


def test_strict_compose_error(run):
    with pytest.raises(Exception, match="no_such_variable"):
        run({"strict": True, "compose": {"x": "no_such_variable.field"}})
    # Not strict: the variable is left out.
    inventory = run({"compose": {"x": "no_such_variable.field"}})
    assert "x" not in inventory.get_host("cmk-demo-plain").vars


@pytest.fixture
def cached_run(run, plugin, tmp_path):
    cache_dir = tmp_path / "cache"

    def cached(client, cache=True):
        inventory = run({"cache": True, "cache_plugin": "jsonfile", "cache_connection": str(cache_dir)}, client, cache=cache)
        plugin.update_cache_if_changed()
        return inventory

    cached.dir = cache_dir
    return cached


def test_cache_is_used_and_holds_no_secret(cached_run):
    first = FakeClient(GROUPS)
    cached_run(first)
    assert first.calls
    files = list(cached_run.dir.iterdir())
    assert len(files) == 1
    text = files[0].read_text()
    assert LEGACY in text
    for secret in (PRIVATE_KEY, "EXAMPLEKEY", "secretAccessKey", "private_key", "public_key"):
        assert secret not in text
    # Read from the cache: no call.
    second = FakeClient([])
    inventory = cached_run(second)
    assert second.calls == []
    assert hosts_of(inventory, "cmk_atlas_credentials") == ["cmk-demo-legacy"]
    # --flush-cache (cache=False): read again and refresh the cache.
    third = FakeClient(GROUPS[:1])
    inventory = cached_run(third, cache=False)
    assert third.calls
    assert sorted(inventory.hosts) == ["cmk-demo-plain"]
    assert LEGACY not in files[0].read_text()


def test_client_params_from_options_and_environment(plugin, tmp_path, monkeypatch, clean_env):
    monkeypatch.setenv("MONGODB_ATLAS_CLIENT_ID", "mdb_sa_id_from_env")
    monkeypatch.setenv("MONGODB_ATLAS_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("MONGODB_ATLAS_BASE_URL", "http://127.0.0.1:9/")
    path = tmp_path / "x.atlas_projects.yml"
    path.write_text(yaml.safe_dump({"plugin": "cmk.atlas.projects", "timeout": 7, "retries": 0}))
    # The base parse() sets the loader, the variables and (ansible-core before 2.19) the templar.
    BaseInventoryPlugin.parse(plugin, InventoryData(), DataLoader(), str(path), cache=False)
    plugin._read_config_data(str(path))
    params = plugin.client_params()
    assert params == {
        "base_url": "http://127.0.0.1:9/",
        "public_key": None,
        "private_key": None,
        "client_id": "mdb_sa_id_from_env",
        "client_secret": CLIENT_SECRET,
        "timeout": 7,
        "retries": 0,
        "validate_certs": True,
    }
    client = plugin._atlas_client()
    assert isinstance(client, AtlasClient)
    assert client.base_url == "http://127.0.0.1:9"
    assert client.auth_method.NAME == "service_account"
    assert client.timeout == 7
    client.close()


def test_templated_secret(plugin, tmp_path, monkeypatch, clean_env):
    monkeypatch.setenv("CMK_TEST_PRIVATE", PRIVATE_KEY)
    path = tmp_path / "x.atlas_projects.yml"
    path.write_text("plugin: cmk.atlas.projects\npublic_key: pub\nprivate_key: \"{{ lookup('env', 'CMK_TEST_PRIVATE') }}\"\n")
    # The base parse() sets the loader, the variables and (ansible-core before 2.19) the templar.
    BaseInventoryPlugin.parse(plugin, InventoryData(), DataLoader(), str(path), cache=False)
    plugin._read_config_data(str(path))
    assert plugin.client_params()["private_key"] == PRIVATE_KEY


def test_missing_credentials(plugin, tmp_path, clean_env):
    path = tmp_path / "x.atlas_projects.yml"
    path.write_text("plugin: cmk.atlas.projects\n")
    with pytest.raises(AnsibleParserError, match="Atlas credentials are missing"):
        plugin.parse(InventoryData(), DataLoader(), str(path), cache=False)
