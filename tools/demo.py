# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""make demo: the enable, switch and rotate playbooks against the embedded Atlas and AWS test bed.

Builds and installs the collection into .ansible/demo/collections, starts the test bed with the
scenario "demo" in the background, and runs, with the test bed's environment only:
  1. cmk.atlas.enable --check --diff on project "plain" (nothing may be written),
  2. cmk.atlas.enable on "plain" (no encryption at rest yet),
  3. cmk.atlas.switch on "legacy" (access key and secret -> IAM role, confirmed),
  4. cmk.atlas.rotate --check --diff on "plain" to a new KMS key (nothing may be written), then the rotation,
  5. rotate and switch again, which must report changed=0 and send no write call,
then prints what Atlas and AWS hold now, read from the test bed itself. The test bed is always
stopped and the temporary files removed, also after a failure or Ctrl-C.

Run it with the project's virtual environment: .venv/bin/python tools/demo.py
"""

from __future__ import absolute_import, division, print_function

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

__metaclass__ = type

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(REPO, "tests")
SCENARIO_FILE = os.path.join(TESTS, "emulators", "scenarios", "demo.yaml")
COLLECTIONS = os.path.join(REPO, ".ansible", "demo", "collections")
# The virtual environment's bin directory, as called (not resolved: .venv/bin/python is a link).
BIN = os.path.dirname(os.path.abspath(sys.executable))
PLAYBOOKS = (
    "playbooks/enable.yml",
    "playbooks/switch.yml",
    "playbooks/rotate.yml",
    "roles/enable/tasks/key_management.yml",
    "roles/switch/tasks/main.yml",
    "roles/rotate/tasks/main.yml",
)
NEXT_KEY_ALIAS = "alias/atlas-cmk-next"

TESTBED_START_TIMEOUT = 90
TESTBED_STOP_TIMEOUT = 20
PLAYBOOK_TIMEOUT = 900
ATLAS_MEDIA_TYPE = "application/vnd.atlas.2023-01-01+json"
# Environment variables that could send the demo to real Atlas or AWS, or change how Ansible runs.
FOREIGN_PREFIXES = ("ANSIBLE_", "AWS_", "MONGODB_ATLAS_", "BOTO_")

ANSI = re.compile(r"\x1b\[[0-9;]*m")
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")

IAM_ROLE_NAMES = {"plain": "atlas-kms-plain", "legacy": "atlas-kms-legacy-role"}
KMS_ACTIONS = ("kms:Decrypt", "kms:DescribeKey", "kms:Encrypt")


class DemoError(Exception):
    """A step failed; the message says which and why."""


class Stop(BaseException):
    """SIGTERM or SIGHUP: leave through the finally blocks."""


def _on_signal(signum, _frame):
    raise Stop(signal.Signals(signum).name)


# -- output ---------------------------------------------------------------------------------


COLOR = sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _style(text, code):
    return f"\x1b[{code}m{text}\x1b[0m" if COLOR else text


def heading(text):
    line = "=" * 100
    print(f"\n{_style(line, '1;36')}\n{_style(text, '1;36')}\n{_style(line, '1;36')}", flush=True)


def note(text):
    print(_style(text, "2"), flush=True)


def good(text):
    print(_style(text, "1;32"), flush=True)


def table(header, rows):
    """Rows of cells as a plain-text table; cells may hold several lines."""
    widths = [len(cell) for cell in header]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], *(len(part) for part in str(cell).split("\n")))
    border = "+" + "+".join("-" * (width + 2) for width in widths) + "+"

    def render(row):
        cells = [str(cell).split("\n") for cell in row]
        height = max(len(parts) for parts in cells)
        lines = []
        for number in range(height):
            parts = [(cell[number] if number < len(cell) else "").ljust(widths[index]) for index, cell in enumerate(cells)]
            lines.append("| " + " | ".join(parts) + " |")
        return lines

    out = [border, *render(header), border.replace("-", "=")]
    for row in rows:
        out.extend(render(row))
        out.append(border)
    return "\n".join(out)


# -- preparation ------------------------------------------------------------------------------


def check_layout():
    missing = [path for path in PLAYBOOKS if not os.path.exists(os.path.join(REPO, path))]
    if missing:
        raise DemoError(f"playbooks not found: {', '.join(missing)} missing in {REPO}. The demo runs cmk.atlas.enable, cmk.atlas.switch and cmk.atlas.rotate.")
    for tool in ("ansible-galaxy", "ansible-playbook"):
        if not os.path.exists(os.path.join(BIN, tool)):
            raise DemoError(f"{tool} not found in {BIN}; run the demo with the project's virtual environment (make demo).")


def load_scenario():
    import yaml  # noqa: PLC0415 - from .venv; imported here so that a missing venv gives a clear message first

    with open(SCENARIO_FILE, encoding="utf-8") as handle:
        scenario = yaml.safe_load(handle)
    projects = scenario["atlas"]["projects"]
    return {
        "projects": {name: projects[name]["id"] for name in ("plain", "legacy")},
        "clusters": {name: [cluster["name"] for cluster in projects[name].get("clusters", [])] for name in ("plain", "legacy")},
        "key_alias": scenario["aws"]["keys"]["main"]["alias"],
        "legacy_user": scenario["aws"]["users"]["legacy"]["name"],
    }


def run_quiet(args, env=None, cwd=None):
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise DemoError(f"{' '.join(shlex.quote(arg) for arg in args)} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def build_and_install(work, env):
    """Build the collection from the files git knows (tracked or new, not ignored) and install it."""
    try:
        listing = run_quiet(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO)
    except OSError as exc:
        raise DemoError(f"git is needed to list the collection's files: {exc}") from None
    source = os.path.join(work, "source", "ansible_collections", "cmk", "atlas")
    count = 0
    for relative in filter(None, listing.split("\0")):
        path = os.path.join(REPO, relative)
        if not os.path.isfile(path):
            continue  # deleted but not yet committed
        target = os.path.join(source, relative)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(path, target)
        count += 1
    output = os.path.join(work, "build")
    run_quiet([os.path.join(BIN, "ansible-galaxy"), "collection", "build", source, "--output-path", output], env=env)
    tarballs = [name for name in os.listdir(output) if name.endswith(".tar.gz")]
    if len(tarballs) != 1:
        raise DemoError(f"ansible-galaxy collection build made {tarballs or 'no artefact'} in {output}")
    shutil.rmtree(COLLECTIONS, ignore_errors=True)
    os.makedirs(COLLECTIONS)
    run_quiet([os.path.join(BIN, "ansible-galaxy"), "collection", "install", os.path.join(output, tarballs[0]), "-p", COLLECTIONS, "--force"], env=env)
    print(f"built {tarballs[0]} from {count} files; installed into {os.path.relpath(COLLECTIONS, REPO)}")


# -- the test bed ----------------------------------------------------------------------------


class TestBedProcess:
    """``python -m emulators serve`` in the background, in a session of its own."""

    def __init__(self, work):
        self.env_file = os.path.join(work, "testbed.env")
        self.log_file = os.path.join(work, "testbed.log")
        self.proc = None
        self.env = {}
        self.unset = []

    def start(self):
        env = {key: value for key, value in os.environ.items() if not key.startswith(FOREIGN_PREFIXES)}
        env.update(PYTHONPATH=".", PYTHONUNBUFFERED="1")
        args = [os.path.join(BIN, "python"), "-m", "emulators", "serve", "--scenario", "demo", "--env-file", self.env_file]
        with open(self.log_file, "wb") as log:
            self.proc = subprocess.Popen(args, cwd=TESTS, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + TESTBED_START_TIMEOUT
        while not self.ready():
            if self.proc.poll() is not None:
                raise DemoError(f"the test bed exited with status {self.proc.returncode} before it was ready:\n{self.log()}")
            if time.monotonic() > deadline:
                raise DemoError(f"the test bed was not ready after {TESTBED_START_TIMEOUT} s:\n{self.log()}")
            time.sleep(0.2)
        self.read_env_file()

    def ready(self):
        return os.path.exists(self.env_file) and "test bed ready" in self.log()

    def log(self):
        try:
            with open(self.log_file, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except OSError:
            return ""

    def read_env_file(self):
        with open(self.env_file, encoding="utf-8") as handle:
            for line in handle:
                words = shlex.split(line, comments=True)
                if not words:
                    continue
                if words[0] == "unset":
                    self.unset.extend(words[1:])
                elif words[0] == "export":
                    name, value = words[1].split("=", 1)
                    self.env[name] = value
        pid = self.env.get("CMK_TESTBED_PID")
        if pid != str(self.proc.pid):
            raise DemoError(f"the env file names test bed process {pid}, but the demo started {self.proc.pid}")

    def stop(self):
        """SIGTERM, wait; SIGKILL to its session only if it does not end. Returns a line for the log."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(TESTBED_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
                return f"test bed process {self.proc.pid} did not stop within {TESTBED_STOP_TIMEOUT} s and was killed"
        return f"test bed stopped (process {self.proc.pid} exited with status {self.proc.returncode})"

    # -- reading the test bed ------------------------------------------------------------

    def _http(self, method, url, **kwargs):
        import requests  # noqa: PLC0415 - from .venv

        response = requests.request(method, url, timeout=30, **kwargs)
        if response.status_code >= 400:
            raise DemoError(f"{method} {url} answered HTTP {response.status_code}: {response.text[:300]}")
        return response.json() if response.content else None

    def atlas(self, path):
        from requests.auth import HTTPDigestAuth  # noqa: PLC0415 - from .venv

        auth = HTTPDigestAuth(self.env["MONGODB_ATLAS_PUBLIC_KEY"], self.env["MONGODB_ATLAS_PRIVATE_KEY"])
        return self._http("GET", self.env["MONGODB_ATLAS_BASE_URL"] + path, auth=auth, headers={"Accept": ATLAS_MEDIA_TYPE})

    def atlas_project(self, project_id):
        return self._http("GET", f"{self.env['MONGODB_ATLAS_BASE_URL']}/__emulator/projects/{project_id}")

    def clear_logs(self):
        self._http("DELETE", self.env["MONGODB_ATLAS_BASE_URL"] + "/__emulator/requests")
        self._http("DELETE", self.env["AWS_ENDPOINT_URL"] + "/__proxy/log")

    def write_calls(self):
        """Atlas and AWS write calls since clear_logs(), as short labels."""
        calls = []
        for entry in self._http("GET", self.env["MONGODB_ATLAS_BASE_URL"] + "/__emulator/requests") or []:
            if entry.get("write"):
                calls.append(f"Atlas {entry.get('operation_id') or entry.get('path')}")
        for entry in self._http("GET", self.env["AWS_ENDPOINT_URL"] + "/__proxy/log") or []:
            if entry.get("write"):
                calls.append(f"AWS {entry.get('service')}:{entry.get('operation')}")
        return calls

    def aws(self, service):
        """boto3 straight to moto (not through the proxy), as the operator in account R."""
        import boto3  # noqa: PLC0415 - from .venv

        return boto3.client(
            service,
            endpoint_url=self.env["CMK_TESTBED_MOTO_URL"],
            region_name=self.env["AWS_REGION"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )


# -- ansible-playbook -------------------------------------------------------------------------


def write_inventory(path, facts):
    """One host per Atlas project; what each project needs is in its host variables."""
    plain, legacy = facts["projects"]["plain"], facts["projects"]["legacy"]
    text = f"""# The demo's inventory: one host per Atlas project (scenario "demo" of the test bed).
atlas_projects:
  hosts:
    plain:                                   # no encryption at rest yet: cmk.atlas.enable
      cmk_atlas_project_id: "{plain}"
      cmk_atlas_iam_role_name: {IAM_ROLE_NAMES["plain"]}
      cmk_atlas_kms_key: {facts["key_alias"]}
      cmk_atlas_clusters:
        - {facts["clusters"]["plain"][0]}
    legacy:                                  # access key and secret: cmk.atlas.switch
      cmk_atlas_project_id: "{legacy}"
      cmk_atlas_iam_role_name: {IAM_ROLE_NAMES["legacy"]}
      cmk_atlas_confirm_switch: true
      cmk_atlas_deactivate_previous_access_key: true
"""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return text


def ansible_env(work, testbed):
    env = {key: value for key, value in os.environ.items() if not key.startswith(FOREIGN_PREFIXES) and key not in testbed.unset}
    env.update(testbed.env)
    home = os.path.join(work, "ansible-home")
    os.makedirs(os.path.join(work, "tmp"), exist_ok=True)
    config = os.path.join(work, "ansible.cfg")
    with open(config, "w", encoding="utf-8") as handle:
        handle.write("[defaults]\n")
    env.update(
        {
            "ANSIBLE_CONFIG": config,
            "ANSIBLE_HOME": home,
            "ANSIBLE_LOCAL_TEMP": os.path.join(home, "tmp"),
            # Module payloads too, so that an interrupted run leaves nothing behind either.
            "ANSIBLE_REMOTE_TMP": os.path.join(home, "remote-tmp"),
            "TMPDIR": os.path.join(work, "tmp"),
            "ANSIBLE_COLLECTIONS_PATH": COLLECTIONS,
            "ANSIBLE_PYTHON_INTERPRETER": os.path.join(BIN, "python"),
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "PATH": BIN + os.pathsep + os.environ.get("PATH", ""),
        }
    )
    env["ANSIBLE_FORCE_COLOR" if COLOR else "ANSIBLE_NOCOLOR"] = "1"
    return env


def run_playbook(playbook, inventory, env, cwd, limit, extra=()):
    """Run one playbook, its output streamed; return {host: recap counts}. Fails on a non-zero exit."""
    args = [os.path.join(BIN, "ansible-playbook"), f"cmk.atlas.{playbook}", "-i", inventory, "--limit", limit, *extra]
    note("$ " + " ".join(["ansible-playbook", *args[1:]]).replace(inventory, "inventory.yml"))
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    recap = {}
    started = time.monotonic()
    try:
        for line in proc.stdout:
            sys.stdout.write(line)
            match = RECAP.match(ANSI.sub("", line))
            if match:
                host, ok, changed, unreachable, failed = match.groups()
                recap[host] = {"ok": int(ok), "changed": int(changed), "unreachable": int(unreachable), "failed": int(failed)}
        proc.wait(PLAYBOOK_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
    sys.stdout.flush()
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise DemoError(f"ansible-playbook cmk.atlas.{playbook} --limit {limit} failed (exit {proc.returncode}); its output is above")
    if limit not in recap:
        raise DemoError(f"no PLAY RECAP line for {limit} in the output of cmk.atlas.{playbook}")
    note(f"({playbook} on {limit}: {elapsed:.0f} s)")
    return recap


# -- what Atlas and AWS hold --------------------------------------------------------------------


def _fold(arn):
    """An ARN over two lines (after the account), so that the table stays narrow."""
    parts = arn.split(":")
    if len(arn) <= 44 or len(parts) < 6:
        return arn
    return ":".join(parts[:5]) + ":\n" + ":".join(parts[5:])


def _statements(document):
    if isinstance(document, str):
        document = json.loads(document)
    statements = (document or {}).get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def _as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _external_ids(trust_policy):
    found = []
    for statement in _statements(trust_policy):
        for operator in (statement.get("Condition") or {}).values():
            found.extend(_as_list((operator or {}).get("sts:ExternalId")))
    return found


def _grant_text(statement, key_arn):
    actions = sorted(_as_list(statement.get("Action")), key=str.lower)
    resources = _as_list(statement.get("Resource"))
    names = ["the key" if resource == key_arn else "the retained key" if ":kms:" in str(resource) else str(resource) for resource in resources]
    where = " and ".join(names)
    short = ", ".join(action.split(":")[-1] for action in actions)
    text = f"{short} on {where}"
    if statement.get("Condition"):
        text += f"\nif {json.dumps(statement['Condition'], sort_keys=True)}"
    return text


def _names_principal(statement, role_arn, account):
    principal = statement.get("Principal") or {}
    names = _as_list(principal.get("AWS") if isinstance(principal, dict) else principal)
    return role_arn in names or (f"arn:aws:iam::{account}:root" in names and statement.get("Sid", "").startswith("MongoDBAtlas"))


def project_facts(testbed, facts, name):
    project_id = facts["projects"][name]
    state = testbed.atlas_project(project_id)
    ear = (testbed.atlas(f"/api/atlas/v2/groups/{project_id}/encryptionAtRest") or {}).get("awsKms") or {}
    role_id = ear.get("roleId") or state["encryptionAtRest"].get("roleId")
    role = next((item for item in state["roles"] if item["roleId"] == role_id), None)
    if role is None:
        role = next((item for item in state["roles"] if item["authorized"]), None)
    row = {"project": f"{state['name']}\n{project_id}"}
    row["Atlas role id"] = role["roleId"] if role else "(none)"
    role_arn = role.get("iamAssumedRoleArn") if role else None
    row["IAM role it assumes"] = _fold(role_arn) if role_arn else "(none)"
    row["trust policy: external ID"] = "(no IAM role)"
    row["key policy statement"] = "(none)"
    row["inline policy"] = "(none)"
    iam, kms = testbed.aws("iam"), testbed.aws("kms")
    key_id = ear.get("customerMasterKeyID")
    key = kms.describe_key(KeyId=key_id)["KeyMetadata"] if key_id else {}
    if role_arn:
        role_name = role_arn.rsplit("/", 1)[-1]
        raw = iam.get_role(RoleName=role_name)["Role"]
        external = _external_ids(raw.get("AssumeRolePolicyDocument"))
        expected = role.get("atlasAssumedRoleExternalId")
        row["trust policy: external ID"] = ", ".join(external) + ("\n(the one Atlas sends)" if external == [expected] else f"\n(Atlas sends {expected})")
        inline = []
        for policy_name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"]
            grants = [_grant_text(statement, key.get("Arn")) for statement in _statements(document) if statement.get("Effect") == "Allow"]
            inline.append(f"{policy_name}:\n" + "\n".join(grants))
        row["inline policy"] = "\n".join(inline) or "(none)"
        if key:
            policy = kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"]
            account = key["Arn"].split(":")[4]
            mine = [statement for statement in _statements(policy) if _names_principal(statement, role_arn, account)]
            if mine:
                row["key policy statement"] = "\n".join(f"{statement.get('Sid', '(no Sid)')}:\n{_grant_text(statement, key['Arn'])}" for statement in mine)
            else:
                row["key policy statement"] = "(none: the key policy lets\nIAM policies grant the key)"
    access_key_id = state["encryptionAtRest"].get("accessKeyID")
    method = "IAM role" if ear.get("roleId") else f"access key {access_key_id}" if access_key_id else "-"
    if ear.get("enabled"):
        row["encryption at rest"] = f"enabled, valid: {json.dumps(ear.get('valid'))}\naccess: {method}"
        row["key (state, region)"] = f"{_fold(key_id)}\n({key.get('KeyState', '?')}, {ear.get('region')})"
    else:
        row["encryption at rest"] = "not enabled"
        row["key (state, region)"] = "-"
    clusters = state["clusters"]
    row["clusters: provider"] = (
        "\n".join(f"{cluster}: {info['encryptionAtRestProvider']}{' (paused)' if info['paused'] else ''}" for cluster, info in sorted(clusters.items())) or "-"
    )
    row["retained keys"] = "-"
    if role_arn:
        tags = {tag["Key"]: tag["Value"] for tag in iam.list_role_tags(RoleName=role_arn.rsplit("/", 1)[-1])["Tags"]}
        retained = [value.split(" ") for key, value in sorted(tags.items()) if key.startswith("cmk-atlas:retained:")]
        row["retained keys"] = "\n".join(f"{_fold(arn)}\n(rotated out {stamp})" for stamp, arn in retained) or "(none)"
    if name == "legacy":
        keys = iam.list_access_keys(UserName=facts["legacy_user"])["AccessKeyMetadata"]
        row["previous access key"] = "\n".join(f"{item['AccessKeyId']}: {item['Status']}" for item in keys) or "(none)"
    else:
        row["previous access key"] = "-"
    return row


def summary(testbed, facts):
    rows = {name: project_facts(testbed, facts, name) for name in ("plain", "legacy")}
    labels = [
        "project",
        "encryption at rest",
        "key (state, region)",
        "Atlas role id",
        "IAM role it assumes",
        "trust policy: external ID",
        "inline policy",
        "key policy statement",
        "retained keys",
        "clusters: provider",
        "previous access key",
    ]
    return table(["", "plain (enabled, rotated)", "legacy (switched)"], [[label, rows["plain"][label], rows["legacy"][label]] for label in labels])


# -- the demo ------------------------------------------------------------------------------------


def demo(work):
    started = time.monotonic()
    check_layout()
    facts = load_scenario()

    heading("1. Build the collection and install it into .ansible/demo/collections")
    base_env = {key: value for key, value in os.environ.items() if not key.startswith(FOREIGN_PREFIXES)}
    base_env.update(ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_HOME=os.path.join(work, "ansible-home"))
    step = time.monotonic()
    build_and_install(work, base_env)
    note(f"({time.monotonic() - step:.0f} s)")

    heading("2. Start the test bed: Atlas emulator, moto (IAM, KMS, STS) and the AWS fault proxy on 127.0.0.1")
    testbed = TestBedProcess(work)
    try:
        step = time.monotonic()
        testbed.start()
        for line in testbed.log().splitlines():
            if line.startswith(("scenario", "Atlas ", "AWS ", "moto ", "KMS ", "IAM ")) and not line.startswith("Atlas service acc"):
                print(line)
        note(f"(test bed process {testbed.proc.pid}, ready after {time.monotonic() - step:.0f} s; its credentials are throwaway values of the test bed)")
        run_steps(work, testbed, facts)
    finally:
        message = testbed.stop()
        if message:
            note(message)
    good(f"\nmake demo: done in {time.monotonic() - started:.0f} s; the test bed is stopped and the temporary files are removed.")


def run_steps(work, testbed, facts):
    inventory = os.path.join(work, "inventory.yml")
    text = write_inventory(inventory, facts)
    env = ansible_env(work, testbed)
    print("\ninventory.yml:\n" + text)

    heading("3. Preview: cmk.atlas.enable --check --diff on project plain (nothing is written)")
    testbed.clear_logs()
    run_playbook("enable", inventory, env, work, "plain", ("--check", "--diff"))
    writes = testbed.write_calls()
    if writes:
        raise DemoError(f"check mode sent write calls: {', '.join(writes)}")
    good("check mode sent no write call to Atlas or AWS")

    heading("4. Enable: cmk.atlas.enable on project plain")
    run_playbook("enable", inventory, env, work, "plain")

    heading("5. Switch: cmk.atlas.switch on project legacy (confirmed with cmk_atlas_confirm_switch: true)")
    run_playbook("switch", inventory, env, work, "legacy")

    kms = testbed.aws("kms")
    next_key = kms.create_key(Description="the next Atlas customer master key")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName=NEXT_KEY_ALIAS, TargetKeyId=next_key)
    rotate = ("-e", f"cmk_atlas_kms_key={NEXT_KEY_ALIAS}")
    heading(f"6. Preview a rotation: cmk.atlas.rotate --check --diff on project plain to {NEXT_KEY_ALIAS} (a new key)")
    testbed.clear_logs()
    run_playbook("rotate", inventory, env, work, "plain", ("--check", "--diff", *rotate))
    writes = testbed.write_calls()
    if writes:
        raise DemoError(f"check mode sent write calls: {', '.join(writes)}")
    good("check mode sent no write call to Atlas or AWS")

    heading("7. Rotate: cmk.atlas.rotate on project plain (the old key stays granted, retained for the snapshots taken under it)")
    run_playbook("rotate", inventory, env, work, "plain", rotate)

    heading("8. Run rotate and switch again: nothing may change")
    testbed.clear_logs()
    recap = {}
    recap.update(run_playbook("rotate", inventory, env, work, "plain", rotate))
    recap.update(run_playbook("switch", inventory, env, work, "legacy"))
    changed = {host: counts["changed"] for host, counts in recap.items() if counts["changed"] or counts["failed"] or counts["unreachable"]}
    if changed:
        raise DemoError(f"the second run was not idempotent: PLAY RECAP reports changes or failures for {changed}")
    writes = testbed.write_calls()
    if writes:
        raise DemoError(f"the second run sent write calls: {', '.join(writes)}")
    good("PLAY RECAP: changed=0 for " + " and ".join(sorted(recap)) + "; no write call to Atlas or AWS")

    heading("9. What Atlas and AWS hold now (read from the test bed)")
    print(summary(testbed, facts))


def main():
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    work = tempfile.mkdtemp(prefix="cmk-atlas-demo-")
    try:
        demo(work)
    except DemoError as exc:
        print(_style(f"\nmake demo FAILED: {exc}", "1;31"), file=sys.stderr, flush=True)
        return 1
    except (KeyboardInterrupt, Stop):
        print("\nmake demo: interrupted; the test bed is stopped", file=sys.stderr, flush=True)
        return 130
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
