"""The AWX credential type shipped in extensions/awx: a shape AWX accepts, injecting what the collection reads.

The schemas and checks below are those AWX applies when a credential type is created
(``CredentialTypeInputField`` and ``CredentialTypeInjectorField`` in awx/main/fields.py), so a file
that passes here is one the AWX API takes as it is."""

import fnmatch
import os

import jsonschema
import pytest
import yaml
from jinja2 import StrictUndefined, meta, sandbox

from ansible_collections.cmk.atlas.plugins.module_utils.atlas.client import (
    AtlasAuthMethodApiKey,
    AtlasAuthMethodServiceAccount,
    atlas_argument_spec,
)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CREDENTIAL_TYPE = os.path.join(REPO_ROOT, "extensions", "awx", "credential_types", "mongodb_atlas.yml")

INPUTS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "required": {"type": "array", "items": {"type": "string"}},
        "fields": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "type": {"enum": ["string", "boolean"]},
                    "format": {"enum": ["ssh_private_key", "url"]},
                    "choices": {"type": "array", "minItems": 1, "items": {"type": "string"}, "uniqueItems": True},
                    "id": {"type": "string", "pattern": "^[a-zA-Z_]+[a-zA-Z0-9_]*$"},
                    "label": {"type": "string"},
                    "help_text": {"type": "string"},
                    "multiline": {"type": "boolean"},
                    "secret": {"type": "boolean"},
                    "ask_at_runtime": {"type": "boolean"},
                    "default": {},
                },
                "additionalProperties": False,
                "required": ["id", "label"],
            },
        },
    },
}

INJECTORS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "file": {"type": "object", "patternProperties": {r"^template(\.[a-zA-Z_]+[a-zA-Z0-9_]*)?$": {"type": "string"}}, "additionalProperties": False},
        "env": {
            "type": "object",
            "patternProperties": {"^[a-zA-Z_]+[a-zA-Z0-9_]*$": {"type": "string", "pattern": "^[\x00-\x7f]*$"}},
            "additionalProperties": False,
        },
        "extra_vars": {"type": "object", "patternProperties": {"^[a-zA-Z_]+[a-zA-Z0-9_]*$": {"type": "string"}}, "additionalProperties": False},
    },
}

# Environment variables AWX refuses in a credential type's env injector (besides every ANSIBLE_* name).
AWX_ENV_BLOCKLIST = {
    "VIRTUAL_ENV",
    "PATH",
    "PYTHONPATH",
    "JOB_ID",
    "INVENTORY_ID",
    "INVENTORY_SOURCE_ID",
    "INVENTORY_UPDATE_ID",
    "AD_HOC_COMMAND_ID",
    "REST_API_URL",
    "REST_API_TOKEN",
    "MAX_EVENT_RES",
    "CALLBACK_QUEUE",
    "CALLBACK_CONNECTION",
    "CACHE",
    "JOB_CALLBACK_DEBUG",
    "INVENTORY_HOSTVARS",
    "AWX_HOST",
    "PROJECT_REVISION",
    "SUPERVISOR_CONFIG_PATH",
}

SECRET_IDS = {"private_key", "client_secret"}


@pytest.fixture(scope="module")
def credential_type():
    with open(CREDENTIAL_TYPE) as handle:
        return yaml.safe_load(handle)


def fields(credential_type):
    return {field["id"]: field for field in credential_type["inputs"]["fields"]}


def templates(credential_type):
    return [(kind, name, template) for kind, injector in credential_type["injectors"].items() for name, template in injector.items()]


def test_it_is_a_cloud_credential_type_with_name_inputs_and_injectors(credential_type):
    assert set(credential_type) <= {"name", "description", "kind", "inputs", "injectors"}
    assert credential_type["name"] and credential_type["kind"] == "cloud"
    jsonschema.validate(credential_type["inputs"], INPUTS_SCHEMA)
    jsonschema.validate(credential_type["injectors"], INJECTORS_SCHEMA)


def test_every_field_has_a_unique_id_a_label_and_a_type(credential_type):
    ids = [field["id"] for field in credential_type["inputs"]["fields"]]
    assert len(ids) == len(set(ids)) and "tower" not in ids
    labels = [field["label"] for field in credential_type["inputs"]["fields"]]
    assert len(labels) == len(set(labels))
    for field in credential_type["inputs"]["fields"]:
        assert field["type"] == "string", field
        assert isinstance(field.get("default", ""), str), field
    assert set(credential_type["inputs"].get("required", [])) <= set(ids)


def test_the_secrets_are_secret_and_nothing_else_is(credential_type):
    by_id = fields(credential_type)
    assert {field_id for field_id, field in by_id.items() if field.get("secret")} == SECRET_IDS
    # Neither pair is required on its own: a credential holds an API key or a service account.
    assert not set(credential_type["inputs"].get("required", [])) & set(by_id)


def test_every_injector_template_refers_to_a_defined_input(credential_type):
    defined = set(fields(credential_type))
    environment = sandbox.ImmutableSandboxedEnvironment(undefined=StrictUndefined)
    for kind, name, template in templates(credential_type):
        used = meta.find_undeclared_variables(environment.parse(template))
        assert used and used <= defined, (kind, name, used)
        # As AWX checks it when the type is saved: every field set to a placeholder, undefined names fail.
        assert environment.from_string(template).render({field_id: "EXAMPLE" for field_id in defined}) == "EXAMPLE", (kind, name)
    env = credential_type["injectors"]["env"]
    assert not [name for name in env if name.startswith("ANSIBLE_") or name in AWX_ENV_BLOCKLIST]


def test_the_env_names_are_those_the_collection_reads(credential_type):
    env = credential_type["injectors"]["env"]
    base_url_env = atlas_argument_spec()["base_url"]["fallback"][1]
    read = {
        AtlasAuthMethodApiKey.ID_OPTION[1]: "public_key",
        AtlasAuthMethodApiKey.SECRET_OPTION[1]: "private_key",
        AtlasAuthMethodServiceAccount.ID_OPTION[1]: "client_id",
        AtlasAuthMethodServiceAccount.SECRET_OPTION[1]: "client_secret",
        **dict.fromkeys(base_url_env, "base_url"),
    }
    assert set(env) == set(read)
    for name, field_id in read.items():
        assert env[name] == "{{ " + field_id + " }}" or env[name].startswith("{{ " + field_id + " |"), (name, env[name])
    # The module options the variables stand for fall back to exactly these names.
    spec = atlas_argument_spec()
    for name, field_id in read.items():
        assert spec[field_id]["fallback"][1] == [name]
        assert spec[field_id].get("no_log", False) is (field_id in SECRET_IDS)


def test_an_empty_base_url_is_injected_as_atlas_and_a_missing_field_as_empty(credential_type):
    # AWX renders the env injectors with only the inputs the credential has: a field left empty is undefined.
    environment = sandbox.ImmutableSandboxedEnvironment()
    env = credential_type["injectors"]["env"]
    namespace = {"public_key": "pub", "private_key": "priv"}
    rendered = {name: environment.from_string(template).render(**namespace) for name, template in env.items()}
    assert rendered == {
        "MONGODB_ATLAS_PUBLIC_KEY": "pub",
        "MONGODB_ATLAS_PRIVATE_KEY": "priv",
        "MONGODB_ATLAS_CLIENT_ID": "",
        "MONGODB_ATLAS_CLIENT_SECRET": "",
        "MONGODB_ATLAS_BASE_URL": atlas_argument_spec()["base_url"]["default"],
    }
    assert fields(credential_type)["base_url"]["default"] == atlas_argument_spec()["base_url"]["default"]


def test_the_collection_build_ships_extensions_and_no_local_leftovers():
    with open(os.path.join(REPO_ROOT, "galaxy.yml")) as handle:
        ignore = yaml.safe_load(handle).get("build_ignore", [])

    def ignored(path):
        # ansible-galaxy matches every file and directory path, relative to the collection root, against each pattern.
        parts = path.split("/")
        return any(fnmatch.fnmatch("/".join(parts[: n + 1]), pattern) for n in range(len(parts)) for pattern in ignore)

    assert not ignored("extensions/awx/credential_types/mongodb_atlas.yml")
    assert not ignored("meta/execution-environment.yml") and not ignored("requirements.txt")
    for leftover in (".venv/bin/python", ".venv-bench/pyvenv.cfg", ".venv-2.17/pyvenv.cfg", ".ansible/collections", "tests/output/junit.xml"):
        assert ignored(leftover), leftover
