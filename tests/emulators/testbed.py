"""The whole test bed: moto server, the AWS fault proxy in front of it, and the Atlas emulator,
seeded from a named scenario (``scenarios/<name>.yaml``) or a scenario file.

    with TestBed("demo") as bed:
        env = bed.env()                 # for ansible-playbook
        bed.proxy.fail("PutRolePolicy", "throttling", count=2)
        bed.atlas.inject_fault(...)
        bed.write_calls()               # Atlas and AWS write calls since the last clear_logs()

The scenario format is described in README.md beside this file.
"""

import copy
import json
import os
import re

import yaml

from .aws.accounts import Accounts
from .aws.accounts import client as aws_client
from .aws.fault_proxy import FaultProxy
from .aws.moto_server import MotoServer

SCENARIO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios")
ATLAS_AWS_ACCOUNT_ID = "536727724300"
ATLAS_EGRESS_IPS = ("198.51.100.10", "198.51.100.11")
# Seeding moto's random source before every seeding makes ids, ARNs and access keys the same
# after each reset, so values read once (env(), key ARNs) stay valid.
MOTO_SEED = 20240611
DEFAULT_API_KEY = {"public_key": "cmkatlas", "private_key": "9f3c2a51-7d4e-4b8a-a6c1-2e5f0d9b7c13"}
DEFAULT_SERVICE_ACCOUNT = {
    "client_id": "mdb_sa_id_660000000000000000000abc",
    "client_secret": "mdb_sa_sk_Yk3nQ8vR2tWz5mXc7pLd9sHf4jGa6bEu",
}
DEFAULT_OPERATOR = {"account": "R", "name": "cmk-atlas-operator"}
_ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
_READ_METHODS = ("GET", "HEAD", "OPTIONS")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_.-]+)\}")
_TOP_LEVEL = {"description", "aws", "atlas"}
_AWS_KEYS = {"region", "accounts", "operator", "keys", "users", "roles"}
_ATLAS_KEYS = {"api_keys", "service_accounts", "projects"}


class ScenarioError(ValueError):
    """A scenario file that cannot be loaded; the message names the place."""


def scenario_names():
    return sorted(name[: -len(".yaml")] for name in os.listdir(SCENARIO_DIR) if name.endswith(".yaml"))


def load_scenario(scenario):
    """A scenario as a dict, from a name in ``scenarios/``, a path (YAML or JSON), or a dict."""
    if isinstance(scenario, dict):
        data, name = copy.deepcopy(scenario), scenario.get("name", "inline")
    else:
        path = scenario
        if not os.path.exists(path) and os.sep not in scenario:
            path = os.path.join(SCENARIO_DIR, f"{scenario}.yaml")
        if not os.path.exists(path):
            raise ScenarioError(f"unknown scenario {scenario!r}: not a file and not one of {', '.join(scenario_names())}")
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
        name = os.path.splitext(os.path.basename(path))[0]
    _check_keys("scenario", data, _TOP_LEVEL)
    _check_keys("aws", data.setdefault("aws", {}), _AWS_KEYS)
    _check_keys("atlas", data.setdefault("atlas", {}), _ATLAS_KEYS)
    data["name"] = name
    return data


def _check_keys(where, data, allowed):
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: expected a mapping")
    unknown = set(data) - allowed - {"name"}
    if unknown:
        raise ScenarioError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")


def _policy_text(document):
    return document if isinstance(document, str) else json.dumps(document)


def atlas_region(aws_region):
    """us-east-1 -> US_EAST_1, the form Atlas uses for AWS regions."""
    return aws_region.upper().replace("-", "_")


def _resolve(value, context, where):
    """Replace ``${keys.main.arn}``-style references with seeded values."""
    if isinstance(value, dict):
        return {key: _resolve(item, context, where) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, context, where) for item in value]
    if not isinstance(value, str):
        return value

    def lookup(reference):
        current = context
        for part in reference.split("."):
            if not isinstance(current, dict) or part not in current:
                raise ScenarioError(f"{where}: unknown reference ${{{reference}}}")
            current = current[part]
        return current

    whole = _PLACEHOLDER.fullmatch(value)
    if whole:
        return lookup(whole.group(1))
    return _PLACEHOLDER.sub(lambda match: str(lookup(match.group(1))), value)


def hosts_text(project_states):
    """Hosts-file text (``ADDRESS HOSTNAME`` per line) for the cluster nodes of ``project_states``
    (``AtlasEmulator.project_state()`` or ``GET /__emulator/projects/{id}`` answers).

    The node host names exist only in the emulator; a module given this file as its hosts file
    resolves them without DNS and without touching the machine's resolver.
    """
    lines = ["# cluster nodes of the Atlas emulator: public address, host name"]
    for state in project_states:
        for cluster_name, cluster in sorted((state.get("clusters") or {}).items()):
            for node in cluster.get("nodes") or []:
                if node.get("public_ip"):
                    lines.append(f"{node['public_ip']} {node['hostname']}  # {state.get('groupId')} {cluster_name}")
    return "\n".join(lines) + "\n"


class TestBed:
    """moto + AWS fault proxy + Atlas emulator, seeded from a scenario.

    ``atlas_contract``: True checks Atlas traffic against the spec subset (path from the
    ``CMK_ATLAS_SPEC`` environment variable, else the emulator's default), False turns it off,
    a string is a spec path, anything else is passed to the emulator as the contract.
    ``with_atlas=False`` runs the AWS side only.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, scenario="empty", atlas_contract=True, with_atlas=True, cluster_transition_seconds=0.5):
        self.scenario = load_scenario(scenario)
        self._atlas_contract = atlas_contract
        self._with_atlas = with_atlas
        self._cluster_transition_seconds = cluster_transition_seconds
        # A process of its own: resets here must not empty moto servers that other tests run in this process.
        self.moto = MotoServer(isolated=True)
        self.proxy = None
        self.atlas = None
        self.moto_url = self.aws_endpoint_url = self.atlas_url = None
        self.atlas_aws_account_id = ATLAS_AWS_ACCOUNT_ID
        self.atlas_egress_ips = ATLAS_EGRESS_IPS
        self._clear_facts()

    def _clear_facts(self):
        self.accounts = {}
        self.region = "us-east-1"
        self.operator = {}
        self.keys = {}
        self.users = {}
        self.roles = {}
        self.projects = {}
        self.project_names = {}
        self.clusters = {}
        self.encryption = {}
        self.api_key = dict(DEFAULT_API_KEY)
        self.service_account = dict(DEFAULT_SERVICE_ACCOUNT)

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def scenario_name(self):
        return self.scenario["name"]

    @property
    def running(self):
        return self.moto_url is not None

    def start(self):
        if self.running:
            return self
        try:
            self.moto_url = self.moto.start()
            self.proxy = FaultProxy(self.moto_url, account_resolver=self.moto.account_for_access_key)
            self.aws_endpoint_url = self.proxy.start()
            if self._with_atlas:
                self.atlas = self._make_atlas()
                self.atlas_url = self.atlas.start()
            self._seed()
        except BaseException:
            self.stop()
            raise
        return self

    def _make_atlas(self):
        from .atlas import AtlasEmulator

        contract = self._atlas_contract
        if contract is True or isinstance(contract, str):
            from .atlas.contract import SpecContract

            path = contract if isinstance(contract, str) else os.environ.get("CMK_ATLAS_SPEC")
            contract = SpecContract(path) if path else SpecContract()
        elif contract is False:
            contract = None
        return AtlasEmulator(
            self.moto_url,
            atlas_aws_account_id=ATLAS_AWS_ACCOUNT_ID,
            egress_ips=ATLAS_EGRESS_IPS,
            cluster_transition_seconds=self._cluster_transition_seconds,
            contract=contract,
            aws_account_ids=tuple((self.scenario["aws"].get("accounts") or {"R": "111111111111"}).values()),
        )

    def stop(self):
        if self.atlas is not None:
            self.atlas.stop()
            self.atlas = None
            self.atlas_url = None
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None
            self.aws_endpoint_url = None
        self.moto.stop()
        self.moto_url = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def reset(self):
        """Back to the loaded scenario: empty moto, Atlas and proxy (faults, logs), then seed again."""
        if not self.running:
            raise RuntimeError("the test bed is not running; start() it first")
        self.moto.reset()
        self.proxy.reset()
        if self.atlas is not None:
            self.atlas.reset()
        self._seed()
        return self

    def load(self, scenario):
        """Reset and seed another scenario (a name, a path or a dict); before start(), only choose it."""
        self.scenario = load_scenario(scenario)
        return self.reset() if self.running else self

    # -- what tests use ---------------------------------------------------------------------

    def env(self, auth="api_key"):
        """Environment for ``ansible-playbook`` (and any boto3 / Atlas client) to use the test bed.

        ``auth`` is ``api_key`` (MONGODB_ATLAS_PUBLIC_KEY/PRIVATE_KEY) or ``service_account``
        (MONGODB_ATLAS_CLIENT_ID/CLIENT_SECRET). The AWS keys are the operator's, an IAM user in
        account R; AWS_ENDPOINT_URL is the fault proxy.
        """
        env = {
            "AWS_ENDPOINT_URL": self.aws_endpoint_url,
            "AWS_ACCESS_KEY_ID": self.operator["access_key_id"],
            "AWS_SECRET_ACCESS_KEY": self.operator["secret_access_key"],
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        if self.atlas_url is not None:
            env["MONGODB_ATLAS_BASE_URL"] = self.atlas_url
        if auth == "api_key":
            env["MONGODB_ATLAS_PUBLIC_KEY"] = self.api_key["public_key"]
            env["MONGODB_ATLAS_PRIVATE_KEY"] = self.api_key["private_key"]
        elif auth == "service_account":
            env["MONGODB_ATLAS_CLIENT_ID"] = self.service_account["client_id"]
            env["MONGODB_ATLAS_CLIENT_SECRET"] = self.service_account["client_secret"]
        else:
            raise ValueError("auth must be 'api_key' or 'service_account'")
        return env

    def aws_client(self, service, account="R", region=None):
        """A boto3 client straight to moto (not through the proxy) acting in ``account``
        (a scenario account name such as ``R``/``K``, or a 12-digit id)."""
        return aws_client(self.moto_url, service, self.account_id(account), region or self.region)

    def account_id(self, account):
        account = str(account)
        if account in self.accounts:
            return self.accounts[account]
        if re.fullmatch(r"\d{12}", account):
            return account
        raise KeyError(f"unknown account {account!r}; scenario accounts: {self.accounts}")

    @property
    def key_arns(self):
        return {name: key["arn"] for name, key in self.keys.items()}

    @property
    def key_aliases(self):
        return {name: key["alias"] for name, key in self.keys.items()}

    @property
    def legacy_access_key_id(self):
        """The access key id that credentials-based encryption at rest uses (first such project)."""
        for settings in self.encryption.values():
            if settings.get("accessKeyID"):
                return settings["accessKeyID"]
        return None

    def node_addresses(self):
        """Host name -> current public address of every node of the scenario's clusters."""
        return {
            node["hostname"]: node["public_ip"]
            for group_id in self.projects.values()
            for cluster in self.atlas.project_state(group_id)["clusters"].values()
            for node in cluster["nodes"]
            if node.get("public_ip")
        }

    def write_hosts_file(self, path):
        """Write the nodes' host names with their current public addresses, in hosts format, to ``path``.

        For ``hosts_file`` of ``cmk.atlas.source_ip_info`` (or ``CMK_ATLAS_HOSTS_FILE``): the
        node host names do not exist in DNS. Call it again after ``atlas.set_node_public_ip()``
        for the module to see the new address. Returns ``path``.
        """
        text = hosts_text(self.atlas.project_state(group_id) for group_id in self.projects.values())
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        return path

    def clear_logs(self):
        """Forget the Atlas and AWS request logs (e.g. between a first and a second run)."""
        self.proxy.clear_request_log()
        if self.atlas is not None:
            self.atlas.clear_request_log()

    def write_calls(self):
        """Every call that may change state since the last clear_logs(), Atlas first then AWS.

        Atlas: ``{"system": "atlas", "method", "path", "status", "operation"}``; AWS:
        ``{"system": "aws", "service", "operation", "account", "status"}``.
        """
        calls = []
        if self.atlas is not None:
            for entry in self.atlas.request_log():
                method = str(entry.get("method", "")).upper()
                if entry.get("write", method not in _READ_METHODS):
                    calls.append(
                        {
                            "system": "atlas",
                            "method": method,
                            "path": entry.get("path"),
                            "status": entry.get("status"),
                            "operation": entry.get("operation_id"),
                        }
                    )
        for entry in self.proxy.write_calls():
            calls.append(
                {
                    "system": "aws",
                    "service": entry["service"],
                    "operation": entry["operation"],
                    "account": entry["account"],
                    "status": entry["status"],
                }
            )
        return calls

    def describe(self):
        """Plain-text summary of URLs, credentials and scenario facts (for the serve command)."""
        lines = [
            f"scenario:          {self.scenario_name}",
            f"Atlas base URL:    {self.atlas_url or '(not started)'}",
            f"AWS endpoint URL:  {self.aws_endpoint_url}  (fault proxy; control under /__proxy/)",
            f"moto URL:          {self.moto_url}  (direct, for inspection)",
            f"Atlas API key:     {self.api_key['public_key']} / {self.api_key['private_key']}",
            f"Atlas service acc: {self.service_account['client_id']} / {self.service_account['client_secret']}",
            f"AWS operator:      {self.operator['arn']}  {self.operator['access_key_id']} / {self.operator['secret_access_key']}",
            f"AWS accounts:      {', '.join(f'{name}={number}' for name, number in self.accounts.items())}  (Atlas: {self.atlas_aws_account_id})",
        ]
        for name, key in self.keys.items():
            lines.append(f"KMS key {name}:  {key['arn']}  {key['alias'] or ''}  {key['state']}")
        for name, role in self.roles.items():
            lines.append(f"IAM role {name}: {role['arn']}")
        for name, user in self.users.items():
            lines.append(f"IAM user {name}: {user['arn']}  access key {user['access_key_id']}")
        for name, project_id in self.projects.items():
            clusters = ", ".join(self.clusters.get(name, [])) or "no clusters"
            mode = "credentials-based encryption at rest" if name in self.encryption else "no encryption at rest"
            lines.append(f"Atlas project {name}: {project_id} ({self.project_names[name]}; {mode}; {clusters})")
        return "\n".join(lines)

    # -- seeding ----------------------------------------------------------------------------

    def _seed(self):
        self._clear_facts()
        self.moto.seed(MOTO_SEED)
        self._seed_aws(self.scenario["aws"])
        if self.atlas is not None:
            # The emulator looks for access keys (credentials-based encryption) in the accounts it knows.
            for account_id in self.accounts.values():
                self.atlas.aws.remember_account(account_id)
            self._seed_atlas(self.scenario["atlas"])

    def _seed_aws(self, spec):
        self.region = spec.get("region", "us-east-1")
        self.accounts = {str(name): str(number) for name, number in (spec.get("accounts") or {"R": "111111111111"}).items()}
        if "R" not in self.accounts:
            raise ScenarioError("aws.accounts: account R (the operator's account) is required")
        for name, number in self.accounts.items():
            if not re.fullmatch(r"\d{12}", number):
                raise ScenarioError(f"aws.accounts.{name}: {number!r} is not a 12-digit account id")
        seeder = Accounts(self.moto_url, self.region)
        context = {"accounts": self.accounts, "region": self.region, "keys": self.keys, "users": self.users, "roles": self.roles}

        operator = {**DEFAULT_OPERATOR, **(spec.get("operator") or {})}
        self.operator = seeder.create_user_with_access_key(self._account(operator["account"], "aws.operator"), operator["name"], _ADMIN_POLICY, "admin")
        context["operator"] = self.operator

        # Principals first, so key policies can name them; their policies last, so they can name keys.
        pending = []
        for name, user in (spec.get("users") or {}).items():
            where = f"aws.users.{name}"
            self.users[name] = seeder.create_user_with_access_key(self._account(user.get("account", "R"), where), user.get("name", name))
            for policy_name, document in (user.get("policies") or {}).items():
                pending.append(("user", self.users[name], policy_name, document, where))
        for name, role in (spec.get("roles") or {}).items():
            where = f"aws.roles.{name}"
            trusted = [self.accounts.get(str(item), str(item)) for item in role.get("trust", ["R"])]
            trust_policy = _resolve(role["trust_policy"], context, where) if "trust_policy" in role else None
            account = self._account(role.get("account", "R"), where)
            self.roles[name] = seeder.create_role(account, role.get("name", name), trust_policy, trusted, tags=role.get("tags"))
            for policy_name, document in (role.get("policies") or {}).items():
                pending.append(("role", self.roles[name], policy_name, document, where))
        for name, key in (spec.get("keys") or {}).items():
            where = f"aws.keys.{name}"
            policy = key.get("policy", "default")
            self.keys[name] = seeder.create_key(
                self._account(key.get("account", "R"), where),
                key.get("region", self.region),
                alias=key.get("alias"),
                state=key.get("state", "Enabled"),
                policy=None if policy == "default" else _resolve(policy, context, where),
                description=key.get("description", ""),
                tags=key.get("tags"),
            )
        for kind, principal, policy_name, template, where in pending:
            iam = seeder.client("iam", principal["account"])
            document = _policy_text(_resolve(template, context, where))
            if kind == "user":
                iam.put_user_policy(UserName=principal["name"], PolicyName=policy_name, PolicyDocument=document)
            else:
                iam.put_role_policy(RoleName=principal["name"], PolicyName=policy_name, PolicyDocument=document)

    def _account(self, name, where):
        try:
            return self.account_id(name)
        except KeyError:
            raise ScenarioError(f"{where}: unknown account {name!r}; scenario accounts: {sorted(self.accounts)}") from None

    def _seed_atlas(self, spec):
        atlas = self.atlas
        api_keys = spec.get("api_keys") or [DEFAULT_API_KEY]
        service_accounts = spec.get("service_accounts") or [DEFAULT_SERVICE_ACCOUNT]
        self.api_key = dict(api_keys[0])
        self.service_account = dict(service_accounts[0])
        for key in api_keys:
            atlas.add_api_key(key["public_key"], key["private_key"])
        for account in service_accounts:
            atlas.add_service_account(account["client_id"], account["client_secret"], token_lifetime=account.get("token_lifetime", 3600))
        next_ip = iter(range(100, 250))
        for name, project in (spec.get("projects") or {}).items():
            where = f"atlas.projects.{name}"
            group_id = str(project.get("id", ""))
            if not re.fullmatch(r"[0-9a-f]{24}", group_id):
                raise ScenarioError(f"{where}.id: {group_id!r} is not a 24-digit lowercase hex id")
            atlas.add_project(group_id, project.get("name", name))
            self.projects[name] = group_id
            self.project_names[name] = project.get("name", name)
            self.clusters[name] = []
            for cluster in project.get("clusters") or []:
                nodes = cluster.get("nodes") or [
                    {
                        "hostname": f"{cluster['name'].lower()}-shard-00-0{index}.{group_id[-5:]}.mongodb.net",
                        "port": 27017,
                        "public_ip": f"203.0.113.{next(next_ip)}",
                    }
                    for index in range(3)
                ]
                atlas.add_cluster(
                    group_id,
                    cluster["name"],
                    paused=bool(cluster.get("paused", False)),
                    encryption_at_rest_provider=cluster.get("encryption_at_rest_provider", "NONE"),
                    nodes=tuple(dict(node) for node in nodes),
                )
                self.clusters[name].append(cluster["name"])
            settings = (project.get("encryption_at_rest") or {}).get("aws_kms")
            if settings:
                self.encryption[name] = self._aws_kms_settings(settings, f"{where}.encryption_at_rest.aws_kms")
                atlas.set_encryption_at_rest(group_id, aws_kms=dict(self.encryption[name]))

    def _aws_kms_settings(self, settings, where):
        """API-shaped awsKms for credentials-based encryption at rest."""
        if settings.get("key") not in self.keys:
            raise ScenarioError(f"{where}.key: {settings.get('key')!r} is not a key of aws.keys")
        if settings.get("credentials") not in self.users:
            raise ScenarioError(f"{where}.credentials: {settings.get('credentials')!r} is not a user of aws.users")
        key = self.keys[settings["key"]]
        user = self.users[settings["credentials"]]
        form = settings.get("key_id_form") or ("id" if key["account"] == user["account"] else "arn")
        return {
            "enabled": bool(settings.get("enabled", True)),
            "customerMasterKeyID": key["arn"] if form == "arn" else key["key_id"],
            "region": atlas_region(key["region"]),
            "accessKeyID": user["access_key_id"],
            "secretAccessKey": user["secret_access_key"],
        }
