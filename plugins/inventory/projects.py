# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402 - DOCUMENTATION and EXAMPLES come before the imports, as in the modules

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: projects
short_description: MongoDB Atlas projects as hosts, grouped by their encryption at rest
version_added: 0.1.0
description:
  - One inventory host per MongoDB Atlas project that the Atlas credentials can see, for the playbooks of the
    C(cmk.atlas) collection, which treat every host as one project.
  - Lists the projects with C(GET /api/atlas/v2/groups) (C(listGroups)), or those of one organization with
    C(GET /api/atlas/v2/orgs/{orgId}/groups) (C(getOrgGroups)) when O(organization_id) is set, keeps those that
    O(name_pattern), O(include_projects) and O(exclude_projects) let through, and reads each kept project's
    encryption at rest (C(getGroupEncryptionAtRest)).
  - Every host gets the variables C(cmk_atlas_project_id), C(cmk_atlas_project_name), C(cmk_atlas_org_id) and,
    unless O(encryption_at_rest=false), C(cmk_atlas_encryption_at_rest) (see the notes).
  - Hosts are grouped by how the project reaches its AWS KMS key, C(cmk_atlas_none) (no encryption at rest with
    AWS KMS), C(cmk_atlas_credentials) (an access key and secret) and C(cmk_atlas_role) (an IAM role), and all of
    them into the group O(group). A project whose encryption at rest could not be read is put into
    C(cmk_atlas_unknown), with a warning.
  - The playbook C(cmk.atlas.enable) is for the projects of C(cmk_atlas_none) and C(cmk.atlas.switch) for those of
    C(cmk_atlas_credentials); run them with C(-e cmk_atlas_hosts=cmk_atlas_none) and C(-e cmk_atlas_hosts=cmk_atlas_credentials).
  - The inventory source is a YAML file whose name ends in C(atlas_projects.yml) or C(atlas_projects.yaml), with
    C(plugin) set to V(cmk.atlas.projects). The plugin must be enabled, in C(enable_plugins) of the C([inventory]) section
    of C(ansible.cfg) or in E(ANSIBLE_INVENTORY_ENABLED).
author:
  - cmk.atlas maintainers (@cmk-atlas)
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description:
      - The name of this plugin; it marks the file as an inventory source of this plugin.
    type: str
    required: true
    choices:
      - cmk.atlas.projects
  base_url:
    description:
      - Address of the Atlas Admin API, without the C(/api/atlas/v2) path.
      - Must be an C(http) or C(https) URL with a host. A trailing slash is ignored.
    type: str
    default: https://cloud.mongodb.com
    env:
      - name: MONGODB_ATLAS_BASE_URL
  public_key:
    description:
      - Public key of an Atlas programmatic API key, used with O(private_key) for HTTP digest authentication.
      - Set either O(public_key) and O(private_key), or O(client_id) and O(client_secret), not both.
      - The key needs a role that may read the projects and their encryption at rest, such as Organization Read Only
        or Project Read Only on each project.
    type: str
    env:
      - name: MONGODB_ATLAS_PUBLIC_KEY
  private_key:
    description:
      - Private key of the Atlas programmatic API key named by O(public_key).
      - Keep it out of the inventory file, in the environment variable or encrypted with ansible-vault
        (C(!vault)); a Jinja2 expression such as a lookup is evaluated too.
    type: str
    env:
      - name: MONGODB_ATLAS_PRIVATE_KEY
  client_id:
    description:
      - Client ID of an Atlas service account, used with O(client_secret) to get an OAuth 2.0 access token
        (client credentials grant) from C(/api/oauth/token) under O(base_url).
      - Set either O(client_id) and O(client_secret), or O(public_key) and O(private_key), not both.
    type: str
    env:
      - name: MONGODB_ATLAS_CLIENT_ID
  client_secret:
    description:
      - Secret of the Atlas service account named by O(client_id). Like O(private_key), best kept out of the file.
    type: str
    env:
      - name: MONGODB_ATLAS_CLIENT_SECRET
  timeout:
    description:
      - Seconds to wait for a connection to Atlas and, separately, for each response.
    type: int
    default: 30
  retries:
    description:
      - How many times to repeat an Atlas request after a transient fault (HTTP 429, 500, 502, 503, 504, refused or
        reset connections, read timeouts), with exponential backoff and jitter; HTTP 429 waits as long as its
        C(Retry-After) header asks, up to 60 seconds.
      - V(0) disables retries.
    type: int
    default: 5
  validate_certs:
    description:
      - Whether to verify the TLS certificate of O(base_url).
      - Set to V(false) only for a test server with a self-signed certificate.
    type: bool
    default: true
  organization_id:
    description:
      - List only the projects of this Atlas organization (24 hexadecimal digits, Organization Settings in the
        Atlas UI), with C(getOrgGroups).
      - If not set, every project the credentials can see, with C(listGroups).
    type: str
  name_pattern:
    description:
      - Keep only the projects whose name this Python regular expression matches anywhere (C(re.search)); anchor it
        with C(^) and C($) to match the whole name.
    type: str
  include_projects:
    description:
      - Keep only the projects named here, by project name or project id.
      - Combined with O(name_pattern), a project must pass both.
    type: list
    elements: str
    default: []
  exclude_projects:
    description:
      - Leave out the projects named here, by project name or project id, whatever O(name_pattern) and
        O(include_projects) say.
    type: list
    elements: str
    default: []
  hostname:
    description:
      - What names the host of a project.
      - V(name) uses the project name with every run of characters other than letters, digits, C(_), C(.) and C(-)
        replaced by one C(_). When two projects would get the same host name (projects in two organizations may
        share a name), each of them is named C(<name>_<project id>) instead, with a warning.
      - V(id) uses the project id.
    type: str
    choices:
      - name
      - id
    default: name
  group:
    description:
      - The group that gets every host of this source. The playbooks of the collection run on C(atlas_projects)
        unless C(cmk_atlas_hosts) names another group.
      - An empty string puts the hosts into no such group (they are still in C(all) and the encryption-at-rest groups).
    type: str
    default: atlas_projects
  encryption_at_rest:
    description:
      - Whether to read each project's encryption at rest (one C(getGroupEncryptionAtRest) call per project) for the
        variable C(cmk_atlas_encryption_at_rest) and the groups C(cmk_atlas_none), C(cmk_atlas_credentials) and
        C(cmk_atlas_role).
      - V(false) only lists the projects; the hosts then get neither that variable nor those groups.
    type: bool
    default: true
notes:
  - "C(cmk_atlas_encryption_at_rest) is a dictionary: C(access_method) (V(none), V(credentials) or V(role)),
    C(enabled), C(customer_master_key_id), C(region) (Atlas form, such as C(US_EAST_1)), C(aws_region) (AWS form,
    such as C(us-east-1)), C(role_id) (the Atlas cloud provider access role, when Atlas names it), C(access_key_id)
    (the AWS access key id of a project that uses credentials), C(require_private_networking) and C(valid).
    It never holds a secret access key: Atlas does not return one."
  - The Atlas credentials are never written to the inventory cache or to host variables. The cache holds only what
    the hosts show; it is keyed by the inventory file, so after changing the credentials or filters run
    C(ansible-inventory --flush-cache) or wait for O(cache_timeout).
  - C(compose), C(groups) and C(keyed_groups) see the host variables above; use O(compose) to set the variables the
    playbooks need per project, such as C(cmk_atlas_iam_role_name).
  - Listing errors (wrong credentials, an unknown organization, Atlas unreachable) fail the source; an error reading
    one project's encryption at rest only puts that project into C(cmk_atlas_unknown), with a warning.
requirements:
  - requests
seealso:
  - name: cmk.atlas inventory guide
    description: Using the plugin with the playbooks cmk.atlas.enable and cmk.atlas.switch.
    link: https://github.com/cmk-atlas/cmk.atlas/blob/main/docs/inventory.md
"""

EXAMPLES = r"""
# inventory/prod.atlas_projects.yml: every project the credentials from MONGODB_ATLAS_* can see
plugin: cmk.atlas.projects

---
# One organization's production projects, named by project id, with what the playbooks need
plugin: cmk.atlas.projects
organization_id: 64b0a1c2d3e4f5a6b7c8d9e0
name_pattern: "-prod$"
exclude_projects:
  - legacy-prod        # by name
  - 5f1a2b3c4d5e6f7a8b9c0d21  # or by id
hostname: name
compose:
  ansible_connection: "'local'"
  cmk_atlas_iam_role_name: "'atlas-kms-' ~ inventory_hostname"
  cmk_atlas_kms_key: "'alias/atlas-' ~ inventory_hostname"
keyed_groups:
  # atlas_region_US_EAST_1, ... for the projects with a key
  - key: cmk_atlas_encryption_at_rest.region
    prefix: atlas_region
groups:
  not_valid: cmk_atlas_encryption_at_rest.access_method != 'none' and not cmk_atlas_encryption_at_rest.valid

---
# A service account whose secret is encrypted with ansible-vault; the listing is cached for an hour
plugin: cmk.atlas.projects
client_id: mdb_sa_id_0123456789abcdef01234567
client_secret: !vault |
  $ANSIBLE_VAULT;1.1;AES256
  ...
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/cmk-atlas-inventory
cache_timeout: 3600

# Then, with enable_plugins = cmk.atlas.projects, ... in the [inventory] section of ansible.cfg:
#   ansible-inventory -i prod.atlas_projects.yml --graph
#   ansible-playbook cmk.atlas.enable -i prod.atlas_projects.yml -e cmk_atlas_hosts=cmk_atlas_none --check --diff
#   ansible-playbook cmk.atlas.switch -i prod.atlas_projects.yml -e cmk_atlas_hosts=cmk_atlas_credentials --check --diff
"""

import re

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

try:
    import requests  # noqa: F401 pylint: disable=unused-import

    HAS_REQUESTS = True
except ImportError:  # pragma: no cover - depends on the controller's Python
    HAS_REQUESTS = False

from ansible_collections.cmk.atlas.plugins.module_utils.atlas.client import (
    AtlasApiError,
    AtlasClient,
    AtlasConfigError,
    AtlasConnectionError,
    AtlasError,
    AtlasMissingLibraryError,
)
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.encryption_at_rest import (
    ACCESS_CREDENTIALS,
    ACCESS_NONE,
    ACCESS_ROLE,
    normalize,
)

GROUP_PREFIX = "cmk_atlas_"
UNKNOWN_STATE = "unknown"
STATE_GROUPS = tuple(GROUP_PREFIX + state for state in (ACCESS_NONE, ACCESS_CREDENTIALS, ACCESS_ROLE))
UNKNOWN_GROUP = GROUP_PREFIX + UNKNOWN_STATE
# What a host shows of normalize(): no secret is among them (Atlas never returns the secret access key);
# iam_role_arn is left out as it needs the project's roles, which the inventory does not read.
EAR_FIELDS = (
    "access_method",
    "enabled",
    "customer_master_key_id",
    "region",
    "aws_region",
    "role_id",
    "access_key_id",
    "require_private_networking",
    "valid",
)
CONNECTION_OPTIONS = ("base_url", "public_key", "private_key", "client_id", "client_secret", "timeout", "retries", "validate_certs")
TEMPLATED_OPTIONS = ("base_url", "public_key", "private_key", "client_id", "client_secret", "organization_id")
ATLAS_ID = re.compile(r"^[0-9a-f]{24}$")
_UNSAFE_HOST_CHARACTERS = re.compile(r"[^A-Za-z0-9_.-]+")
# Bumped when the cached record changes shape; an older cache is read again from Atlas.
CACHE_FORMAT = 1


def sanitize_host_name(name):
    """The project name as a host name: runs of characters other than letters, digits, _ . - become one _."""
    return _UNSAFE_HOST_CHARACTERS.sub("_", str(name or "")).strip("_")


def encryption_view(aws_kms):
    """What ``cmk_atlas_encryption_at_rest`` shows of Atlas's ``awsKms`` object."""
    config = normalize(aws_kms)
    return {field: config.get(field) for field in EAR_FIELDS}


def project_matches(project, pattern=None, include=(), exclude=()):
    """Whether a project (``id``/``name``) passes the filters; ``exclude`` wins."""
    keys = {project.get("id"), project.get("name")}
    if exclude and keys & set(exclude):
        return False
    if include and not keys & set(include):
        return False
    return pattern is None or pattern.search(project.get("name") or "") is not None


def host_names(records, use_id=False):
    """Host name per project id, and the warnings about names that two projects would share."""
    if use_id:
        return {record["id"]: record["id"] for record in records}, []
    wanted = {}
    for record in records:
        wanted.setdefault(sanitize_host_name(record["name"]) or record["id"], []).append(record)
    names = {}
    warnings = []
    for name, sharing in wanted.items():
        if len(sharing) == 1:
            names[sharing[0]["id"]] = name
            continue
        ids = sorted(record["id"] for record in sharing)
        for project_id in ids:
            names[project_id] = f"{name}_{project_id}"
        warnings.append(f"{len(ids)} Atlas projects ({', '.join(ids)}) would have the host name {name}; each is named {name}_<project id> instead")
    return names, warnings


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "cmk.atlas.projects"

    def verify_file(self, path):
        if not super().verify_file(path):
            return False
        return path.endswith(("atlas_projects.yml", "atlas_projects.yaml"))

    # -- options ------------------------------------------------------------------------------

    def _option(self, name):
        value = self.get_option(name)
        if name in TEMPLATED_OPTIONS and isinstance(value, str) and self.templar.is_template(value):
            value = self.templar.template(value)
        return value

    def client_params(self):
        """The connection options as AtlasClient.from_params takes them."""
        return {name: self._option(name) for name in CONNECTION_OPTIONS}

    def _atlas_client(self):
        if not HAS_REQUESTS:
            raise AnsibleParserError(
                "The cmk.atlas.projects inventory plugin needs the Python library requests in the Python that runs Ansible: pip install requests"
            )
        try:
            return AtlasClient.from_params(self.client_params(), log=self.display.vvvv)
        except AtlasMissingLibraryError as error:
            raise AnsibleParserError(f"{error}: pip install {error.library}") from None
        except AtlasConfigError as error:
            raise AnsibleParserError(f"cmk.atlas.projects: {error}") from None

    def _filters(self):
        pattern = self.get_option("name_pattern")
        if pattern:
            try:
                pattern = re.compile(pattern)
            except re.error as error:
                raise AnsibleParserError(f"cmk.atlas.projects: name_pattern {pattern!r} is not a valid regular expression: {error}") from None
        else:
            pattern = None
        return pattern, list(self.get_option("include_projects") or []), list(self.get_option("exclude_projects") or [])

    # -- reading Atlas ------------------------------------------------------------------------

    def fetch_projects(self, client):
        """The kept projects as cache records: id, name, org_id, encryption_at_rest (or None) and error (or None)."""
        organization_id = self._option("organization_id")
        pattern, include, exclude = self._filters()
        try:
            if organization_id:
                organization_id = str(organization_id).strip()
                if not ATLAS_ID.match(organization_id):
                    raise AnsibleParserError(
                        f"cmk.atlas.projects: organization_id {organization_id!r} is not an Atlas organization id; expected 24 hexadecimal "
                        "digits such as 64b0a1c2d3e4f5a6b7c8d9e0 (Organization Settings in the Atlas UI)."
                    )
                projects = list(client.paginate("getOrgGroups", items_per_page=500, orgId=organization_id))
            else:
                projects = list(client.paginate("listGroups", items_per_page=500))
        except AtlasError as error:
            raise AnsibleParserError(f"cmk.atlas.projects could not list the Atlas projects: {error}") from None
        read_encryption = self.get_option("encryption_at_rest")
        records = []
        for project in sorted(projects, key=lambda p: (p.get("name") or "", p.get("id") or "")):
            if not project.get("id") or not project_matches(project, pattern, include, exclude):
                continue
            record = {"id": project["id"], "name": project.get("name"), "org_id": project.get("orgId"), "encryption_at_rest": None, "error": None}
            if read_encryption:
                try:
                    answer = client.call("getGroupEncryptionAtRest", groupId=project["id"]) or {}
                    record["encryption_at_rest"] = encryption_view(answer.get("awsKms"))
                except AtlasConnectionError as error:
                    raise AnsibleParserError(f"cmk.atlas.projects could not read the encryption at rest of project {project['id']}: {error}") from None
                except AtlasApiError as error:
                    record["error"] = str(error)
            records.append(record)
        return records

    # -- the inventory ------------------------------------------------------------------------

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        update_cache = self.get_option("cache") and not cache
        records = None
        if use_cache:
            try:
                cached = self._cache[cache_key]
            except KeyError:
                update_cache = True
            else:
                records = self._cached_records(cached)
                if records is None:
                    update_cache = True
        if records is None:
            client = self._atlas_client()
            try:
                records = self.fetch_projects(client)
            finally:
                client.close()
        if update_cache:
            self._cache[cache_key] = {"format": CACHE_FORMAT, "projects": records}
        self.populate(records)

    @staticmethod
    def _cached_records(cached):
        if not isinstance(cached, dict) or cached.get("format") != CACHE_FORMAT or not isinstance(cached.get("projects"), list):
            return None
        return cached["projects"]

    def populate(self, records):
        names, warnings = host_names(records, use_id=self.get_option("hostname") == "id")
        for warning in warnings:
            self.display.warning(f"cmk.atlas.projects: {warning}")
        group = self.get_option("group")
        if group:
            group = self.inventory.add_group(group)
        read_encryption = self.get_option("encryption_at_rest")
        if read_encryption:
            # Also when empty, so that a play on one of them finds no host rather than an unknown group.
            for state_group in STATE_GROUPS:
                self.inventory.add_group(state_group)
        strict = self.get_option("strict")
        for record in records:
            host = self.inventory.add_host(names[record["id"]])
            if group:
                self.inventory.add_child(group, host)
            self.inventory.set_variable(host, "cmk_atlas_project_id", record["id"])
            self.inventory.set_variable(host, "cmk_atlas_project_name", record["name"])
            self.inventory.set_variable(host, "cmk_atlas_org_id", record["org_id"])
            if read_encryption:
                state = record.get("encryption_at_rest")
                if state is None:
                    self.display.warning(
                        f"cmk.atlas.projects: the encryption at rest of project {record['name']} ({record['id']}) could not be read, "
                        f"so its host {host} is in group {UNKNOWN_GROUP}: {record.get('error') or 'no answer'}"
                    )
                    state_group = UNKNOWN_GROUP
                else:
                    state_group = GROUP_PREFIX + state["access_method"]
                self.inventory.set_variable(host, "cmk_atlas_encryption_at_rest", state)
                self.inventory.add_group(state_group)
                self.inventory.add_child(state_group, host)
            hostvars = self.inventory.get_host(host).get_vars()
            self._set_composite_vars(self.get_option("compose"), hostvars, host, strict=strict)
            hostvars = self.inventory.get_host(host).get_vars()
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, host, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, host, strict=strict)
