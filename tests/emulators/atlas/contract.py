"""Contract checks against the official Atlas Admin API spec.

The spec is read at test time from ``<repo>/../shared/atlas-api/atlas-kms-subset.yaml`` (or the path in
``CMK_ATLAS_SPEC``); it is never copied into the project. An older subset without ``listGroupClusters``
gets it, with every component it references, from ``spec.yaml`` beside the subset.
"""

import copy
import functools
import json
import os
import re
import threading
from urllib.parse import parse_qsl

import yaml
from jsonschema_path import SchemaPath
from openapi_core import OpenAPI
from openapi_core.configurations import Config
from openapi_core.security.exceptions import SecurityProviderError
from openapi_core.security.factories import SecurityProviderFactory
from openapi_core.security.providers import BaseProvider
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS30ReadValidator

SPEC_ENV = "CMK_ATLAS_SPEC"
SERVER_URL = "https://cloud.mongodb.com"
LIST_CLUSTERS_PATH = "/api/atlas/v2/groups/{groupId}/clusters"
VERSIONED = re.compile(r"^application/vnd\.atlas\.(\d{4}-\d{2}-\d{2}|preview)\+json$")

# Statuses Atlas can answer for any operation before the operation itself runs: request validation (400),
# version negotiation (406), a sunset version (410, the spec's `gone` response) and the gateway (502-504,
# the spec's `serviceUnavailable`). The subset does not list them per operation; their body must still be
# an ApiError sent as application/json.
PLATFORM_STATUSES = frozenset({400, 406, 410, 502, 503, 504})

_LOCK = threading.Lock()


class _BearerProvider(BaseProvider):
    """The spec's ServiceAccounts scheme (oauth2) as it reaches the API: a Bearer token.

    openapi-core has no provider for oauth2 and would accept any request under it."""

    def __call__(self, parameters):
        header = parameters.header.get("Authorization", "")
        if header[:7].lower() != "bearer ":
            raise SecurityProviderError("Missing bearer token.")
        return header[7:]


class _SecurityProviders(SecurityProviderFactory):
    PROVIDERS = {**SecurityProviderFactory.PROVIDERS, "oauth2": _BearerProvider}


def default_spec_path():
    """The subset spec: ``$CMK_ATLAS_SPEC`` or ``<repo>/../shared/atlas-api/atlas-kms-subset.yaml``."""
    override = os.environ.get(SPEC_ENV)
    if override:
        return override
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    return os.path.join(os.path.dirname(repo), "shared", "atlas-api", "atlas-kms-subset.yaml")


def _load_yaml(path):
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=loader)


def _refs(node):
    """Every local ``$ref`` target below ``node``, discriminator mappings included."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#/"):
                yield value
            elif key == "mapping" and isinstance(value, dict):
                yield from (v for v in value.values() if isinstance(v, str) and v.startswith("#/"))
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve_pointer(doc, ref):
    node = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _add_operation_from_full_spec(subset, full, path, method):
    """Copy one operation and, transitively, every component it references into ``subset``."""
    item = full["paths"][path]
    subset["paths"].setdefault(path, {})[method] = copy.deepcopy(item[method])
    pending = list(_refs(item[method]))
    seen = set()
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        parts = ref[2:].split("/")
        if parts[0] != "components":
            continue
        section, name = parts[1], parts[2]
        target = subset["components"].setdefault(section, {})
        if name not in target:
            target[name] = copy.deepcopy(full["components"][section][name])
        pending.extend(_refs(full["components"][section][name]))


def _break_polymorphic_cycles(spec):
    """Work around openapi-core recursing forever on ``oneOf`` + ``discriminator`` bases.

    Each base with both keywords gets a ``<Name>__Base`` copy without them, and subtypes that say
    ``allOf: [$ref <Name>]`` point at the copy. Validation of the subtypes is otherwise unchanged.
    """
    schemas = spec["components"]["schemas"]
    poly = [name for name, schema in schemas.items() if isinstance(schema, dict) and "oneOf" in schema and "discriminator" in schema]
    for name in poly:
        base = {k: v for k, v in schemas[name].items() if k not in ("oneOf", "discriminator")}
        schemas[name + "__Base"] = base
    targets = {"#/components/schemas/" + name: "#/components/schemas/" + name + "__Base" for name in poly}

    def walk(node):
        if isinstance(node, dict):
            for item in node.get("allOf", []) if isinstance(node.get("allOf"), list) else []:
                if isinstance(item, dict) and item.get("$ref") in targets:
                    item["$ref"] = targets[item["$ref"]]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)


EAR_PRIVATE_ENDPOINT_SCHEMAS = ("EARPrivateEndpoint", "AWSKMSEARPrivateEndpoint", "AzureKeyVaultEARPrivateEndpoint")
# ECMAScript-style Unicode classes that Python's ``re`` (used by jsonschema for ``pattern``) rejects.
# Inside a character class that also holds ``_``, ``\w`` (letters, digits, ``_``) stands for them.
_UNICODE_LETTERS_DIGITS = "\\p{L}\\p{N}"


def _relax_known_defects(spec):
    r"""Known places where the spec disagrees with what Atlas sends; each is listed in atlas/DESIGN.md.

    - ``awsKms.roleId`` is marked ``writeOnly`` but Atlas returns it on GET (clients read the configured
      role back from it). Dropping ``writeOnly`` changes response validation only.
    - The encryption-at-rest private endpoint's ``regionName`` is ``type: object`` with a ``oneOf`` of two
      string enums: no string can match ``type: object``, and the Azure and AWS enums share values
      (``US_EAST_2``, ``US_WEST_2``), so ``oneOf`` fails for them. Atlas sends and takes a string: the type
      is dropped and ``oneOf`` becomes ``anyOf``.
    - Its ``cloudProvider`` is ``readOnly`` but is the discriminator, so a request must carry it (Atlas's
      SDKs send it on create). ``readOnly`` is dropped.
    - An AWS cloud provider access role that is not authorized yet comes with ``iamAssumedRoleArn`` and
      ``authorizedDate`` as ``null`` (not left out), which the spec types as plain strings: both are made
      ``nullable`` (a value that is there must still be a string of the right form).
    - ``Group.name``'s pattern uses ``\p{L}\p{N}``, which Python's ``re`` cannot compile; it is rewritten
      to ``\w`` inside the same class (which also holds ``_``, so the set of names is the same).
    """
    schemas = spec["components"]["schemas"]
    role_id = schemas["AWSKMSConfiguration"]["properties"]["roleId"]
    role_id.pop("writeOnly", None)
    for part in schemas["CloudProviderAccessAWSIAMRole"].get("allOf", []):
        for field in ("iamAssumedRoleArn", "authorizedDate"):
            if field in part.get("properties", {}):
                part["properties"][field]["nullable"] = True
    for name in EAR_PRIVATE_ENDPOINT_SCHEMAS:
        properties = (schemas.get(name) or {}).get("properties") or {}
        region = properties.get("regionName")
        if isinstance(region, dict) and "oneOf" in region:
            region.pop("type", None)
            region["anyOf"] = region.pop("oneOf")
        if isinstance(properties.get("cloudProvider"), dict):
            properties["cloudProvider"].pop("readOnly", None)
    _rewrite_unicode_patterns(spec)


def _rewrite_unicode_patterns(node):
    if isinstance(node, dict):
        pattern = node.get("pattern")
        if isinstance(pattern, str) and _UNICODE_LETTERS_DIGITS in pattern and "_" in pattern:
            node["pattern"] = pattern.replace(_UNICODE_LETTERS_DIGITS, "\\w")
        for value in node.values():
            _rewrite_unicode_patterns(value)
    elif isinstance(node, list):
        for value in node:
            _rewrite_unicode_patterns(value)


def _media_types(spec):
    found = set()
    for item in spec["paths"].values():
        for op in item.values():
            if not isinstance(op, dict):
                continue
            for mt in (op.get("requestBody") or {}).get("content") or {}:
                found.add(mt)
            for response in (op.get("responses") or {}).values():
                for mt in (response.get("content") or {}) if isinstance(response, dict) else ():
                    found.add(mt)
    return sorted(mt for mt in found if VERSIONED.match(mt))


def _inline(spec, node, depth=0):
    """A self-contained copy of a (non-recursive) schema, for validating error bodies directly."""
    if depth > 20:
        return {}
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline(spec, _resolve_pointer(spec, node["$ref"]), depth + 1)
        return {k: _inline(spec, v, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(spec, v, depth + 1) for v in node]
    return node


@functools.lru_cache(maxsize=4)
def _load(spec_path):
    subset = _load_yaml(spec_path)
    full_path = os.path.join(os.path.dirname(spec_path), "spec.yaml")
    if LIST_CLUSTERS_PATH not in subset["paths"] or "get" not in subset["paths"][LIST_CLUSTERS_PATH]:
        full = _load_yaml(full_path)
        _add_operation_from_full_spec(subset, full, LIST_CLUSTERS_PATH, "get")
        for name in ("gone", "serviceUnavailable"):
            if name in full["components"].get("responses", {}):
                subset["components"]["responses"].setdefault(name, copy.deepcopy(full["components"]["responses"][name]))
    raw = copy.deepcopy(subset)
    _relax_known_defects(subset)
    _break_polymorphic_cycles(subset)
    deserializers = {mt: json.loads for mt in _media_types(subset)}
    config = Config(spec_validator_cls=None, extra_media_type_deserializers=deserializers, security_provider_factory=_SecurityProviders())
    openapi = OpenAPI(SchemaPath.from_dict(subset), config=config)
    api_error = _inline(subset, {"$ref": "#/components/schemas/ApiError"})
    return raw, openapi, api_error


def _flatten_error(exc):
    """A readable one-line account of an openapi-core error, with the schema errors behind it."""
    parts = [f"{type(exc).__name__}: {exc}"]
    seen = {id(exc)}
    queue = [exc]
    while queue:
        current = queue.pop(0)
        for attr in ("schema_errors", "errors"):
            for sub in getattr(current, attr, None) or ():
                if id(sub) in seen:
                    continue
                seen.add(id(sub))
                message = getattr(sub, "message", None) or str(sub)
                where = "/".join(str(p) for p in getattr(sub, "absolute_path", []) or [])
                parts.append(f"{where or '<body>'}: {message}" if isinstance(message, str) else str(sub))
                queue.append(sub)
        cause = current.__cause__
        if cause is not None and id(cause) not in seen:
            seen.add(id(cause))
            parts.append(f"{type(cause).__name__}: {cause}")
            queue.append(cause)
    return "; ".join(p.replace("\n", " ")[:500] for p in parts)


def _header(headers, name):
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return value
    return None


def _base_media_type(value):
    return (value or "").split(";", 1)[0].strip().lower()


class SpecContract:
    """Validates requests and responses against the official spec (the subset, plus listGroupClusters if missing)."""

    def __init__(self, spec_path=None):
        self.spec_path = os.path.abspath(spec_path or default_spec_path())
        with _LOCK:
            self.spec, self._openapi, self._api_error = _load(self.spec_path)
        self._templates = []
        for path, item in self.spec["paths"].items():
            pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(path)) + "$"
            names = re.findall(r"\{([^}]+)\}", path)
            self._templates.append((re.compile(pattern), path, names, item))

    # -- lookups -------------------------------------------------------------------------------------

    def operation(self, method, path):
        """``(template, operation dict, path params)`` for a concrete path, or ``None``."""
        for pattern, template, names, item in self._templates:
            match = pattern.match(path)
            if match and method.lower() in item:
                return template, item[method.lower()], dict(zip(names, match.groups()))
        return None

    def versions(self, operation_id):
        """Per operation: the versions listed for the success response, the request body and their sunsets."""
        for item in self.spec["paths"].values():
            for op in item.values():
                if isinstance(op, dict) and op.get("operationId") == operation_id:
                    return _versions_of(op)
        raise KeyError(operation_id)

    def operation_ids(self):
        return sorted(op["operationId"] for item in self.spec["paths"].values() for op in item.values() if isinstance(op, dict) and "operationId" in op)

    # -- validation ----------------------------------------------------------------------------------

    def validate_request(self, method, path, headers, body):
        """Violations of the spec by one request (``body``: bytes, str, parsed JSON or None)."""
        found = self.operation(method, path.split("?", 1)[0])
        if found is None:
            return [f"{method} {path}: no such operation in the spec"]
        template, op, params = found
        data = _as_bytes(body)
        query = _query(path)
        content_type = _header(headers, "Content-Type") or ""
        request = MockRequest(
            SERVER_URL,
            method,
            path.split("?", 1)[0],
            path_pattern=template,
            args=query,
            view_args=params,
            headers=dict(headers or {}),
            data=data,
            content_type=_base_media_type(content_type) if data else "application/json",
        )
        try:
            self._openapi.validate_request(request)
        except Exception as exc:  # openapi-core raises one class per kind of violation
            return [f"{method} {path} ({op['operationId']}) request: {_flatten_error(exc)}"]
        return []

    def validate_response(self, method, path, request_headers, status, headers, body):
        """Violations of the spec by one response to a request (``body``: bytes, str, parsed JSON or None)."""
        found = self.operation(method, path.split("?", 1)[0])
        if found is None:
            return [f"{method} {path}: no such operation in the spec"]
        template, op, params = found
        where = f"{method} {path} ({op['operationId']}) -> {status}"
        data = _as_bytes(body)
        content_type = _base_media_type(_header(headers, "Content-Type"))
        responses = op.get("responses") or {}
        problems = []
        if str(status) not in responses and "default" not in responses:
            if status in PLATFORM_STATUSES:
                return self._check_error_body(where, content_type, data)
            return [f"{where}: status {status} is not documented for this operation"]
        if status >= 400:
            problems.extend(self._check_error_body(where, content_type, data))
        elif data:
            accept = [_base_media_type(v) for v in (_header(request_headers, "Accept") or "").split(",")]
            if content_type not in accept:
                problems.append(f"{where}: response Content-Type {content_type!r} is not the version the request accepted ({accept})")
        if status == 204 and data:
            problems.append(f"{where}: 204 with a body")
        query = _query(path)
        request = MockRequest(
            SERVER_URL,
            method,
            path.split("?", 1)[0],
            path_pattern=template,
            args=query,
            view_args=params,
            headers=dict(request_headers or {}),
        )
        response = MockResponse(data or b"", status_code=status, headers=dict(headers or {}), content_type=content_type or "application/json")
        try:
            self._openapi.validate_response(request, response)
        except Exception as exc:
            text = _flatten_error(exc)
            # A 204 carries no body (real Atlas sends none), so there is no data to match the listed media type.
            if not (status == 204 and not data and ("MissingData" in text or "MediaTypeNotFound" in text)):
                problems.append(f"{where} response: {text}")
        return problems

    def _check_error_body(self, where, content_type, data):
        problems = []
        if content_type != "application/json":
            problems.append(f"{where}: error Content-Type {content_type!r}, expected application/json")
        try:
            parsed = json.loads(data or b"null")
        except ValueError as exc:
            return [*problems, f"{where}: error body is not JSON ({exc})"]
        for error in OAS30ReadValidator(self._api_error).iter_errors(parsed):
            location = "/".join(str(p) for p in error.absolute_path) or "<body>"
            problems.append(f"{where}: error body {location}: {error.message}")
        return problems


def _versions_of(op):
    """``{"response": {version: sunset or None}, "request": {version: sunset or None}}`` of one operation."""
    result = {"response": {}, "request": {}}
    for code, response in (op.get("responses") or {}).items():
        if not str(code).startswith("2"):
            continue
        for mt, media in (response.get("content") or {}).items():
            match = VERSIONED.match(mt)
            if match:
                result["response"][match.group(1)] = (media or {}).get("x-sunset")
    for mt, media in ((op.get("requestBody") or {}).get("content") or {}).items():
        match = VERSIONED.match(mt)
        if match:
            result["request"][match.group(1)] = (media or {}).get("x-sunset")
    return result


def _as_bytes(body):
    if body is None:
        return None
    if isinstance(body, bytes):
        return body or None
    if isinstance(body, str):
        return body.encode("utf-8") or None
    return json.dumps(body).encode("utf-8")


def _query(path):
    if "?" not in path:
        return {}
    return dict(parse_qsl(path.split("?", 1)[1], keep_blank_values=True))
