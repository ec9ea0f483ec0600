# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""MongoDB Atlas Admin API client shared by the collection's modules.

Connection options, the two authentication methods (API key with HTTP digest, service account
with OAuth2 client credentials), the table of the operations the collection calls with their
versioned media types, bounded retries of transient faults, pagination, and errors fit to show
a user. ``requests`` is imported only when a client is built.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import json
import math
import platform
import random
import re
import time
import traceback
from urllib.parse import quote, urlsplit

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.cmk.atlas.plugins.module_utils._errors import CmkAtlasError
from ansible_collections.cmk.atlas.plugins.module_utils._poll import poll
from ansible_collections.cmk.atlas.plugins.module_utils.version import COLLECTION_NAME, COLLECTION_VERSION

try:
    from ansible.module_utils.ansible_release import __version__ as ANSIBLE_CORE_VERSION
except ImportError:  # pragma: no cover - ansible_release ships with every ansible-core
    ANSIBLE_CORE_VERSION = "unknown"


DEFAULT_BASE_URL = "https://cloud.mongodb.com"
DEFAULT_TIMEOUT = 30
DEFAULT_RETRIES = 5
# Per-sleep bounds, so that `retries` alone bounds the total wait.
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0
RETRY_AFTER_MAX_SECONDS = 60.0
TOKEN_PATH = "/api/oauth/token"  # noqa: S105 - a URL path, not a secret
# Pseudo operation id under which token requests are counted; they change nothing in Atlas.
TOKEN_OPERATION = "requestOAuthToken"  # noqa: S105 - a label, not a secret
MAX_ITEMS_PER_PAGE = 500
REDACTED = "********"
MIN_REDACTED_LENGTH = 6

# Faults that cannot have been applied by Atlas, or that Atlas asks us to repeat: any method.
RETRY_ANY_METHOD_STATUS = frozenset((429, 502, 503, 504))
# A 500 or a lost response may follow a write that did happen: repeated only for idempotent methods.
RETRY_IDEMPOTENT_STATUS = frozenset((500,))
# Every PATCH of OPERATIONS sets the fields it sends and every DELETE removes one resource, so a
# repeat after one that did happen changes nothing more; a POST may create a second resource.
IDEMPOTENT_METHODS = frozenset(("GET", "PATCH", "DELETE"))

GROUP_NOT_FOUND_HINT = (
    "Check project_id (cmk_atlas_project_id in the cmk.atlas playbooks): it must be the project's id of 24 hexadecimal digits "
    "as the Atlas UI shows it under Project Settings, and the API key or service account must have access to that project."
)
FORBIDDEN_HINT = (
    "The credentials were accepted but may not do this: give the API key or service account a role on the project of "
    "project_id that allows it (Project Owner for encryption at rest and cloud provider access), and check that this host "
    "is on its API access list."
)

AtlasOperation = collections.namedtuple("AtlasOperation", ["method", "path", "version", "paginated", "authenticated"])


def _operation(method, path, version, paginated=False, authenticated=True):
    return AtlasOperation(method, path, version, paginated, authenticated)


# Keyed by the spec's operationId. Version: the newest the spec lists without x-sunset, for the
# request body and the success response alike (checked against the spec by a unit test).
OPERATIONS = {
    "listGroups": _operation("GET", "/api/atlas/v2/groups", "2023-01-01", paginated=True),
    "getGroup": _operation("GET", "/api/atlas/v2/groups/{groupId}", "2023-01-01"),
    "getOrgGroups": _operation("GET", "/api/atlas/v2/orgs/{orgId}/groups", "2023-01-01", paginated=True),
    "listGroupCloudProviderAccess": _operation("GET", "/api/atlas/v2/groups/{groupId}/cloudProviderAccess", "2023-01-01"),
    "createGroupCloudProviderAccess": _operation("POST", "/api/atlas/v2/groups/{groupId}/cloudProviderAccess", "2023-01-01"),
    "getGroupCloudProviderAccess": _operation("GET", "/api/atlas/v2/groups/{groupId}/cloudProviderAccess/{roleId}", "2023-01-01"),
    "authorizeGroupCloudProviderAccessRole": _operation("PATCH", "/api/atlas/v2/groups/{groupId}/cloudProviderAccess/{roleId}", "2023-01-01"),
    "deauthorizeGroupCloudProviderAccessRole": _operation(
        "DELETE", "/api/atlas/v2/groups/{groupId}/cloudProviderAccess/{cloudProvider}/{roleId}", "2023-01-01"
    ),
    "getGroupEncryptionAtRest": _operation("GET", "/api/atlas/v2/groups/{groupId}/encryptionAtRest", "2023-01-01"),
    "updateGroupEncryptionAtRest": _operation("PATCH", "/api/atlas/v2/groups/{groupId}/encryptionAtRest", "2023-01-01"),
    "listGroupEncryptionAtRestPrivateEndpoints": _operation(
        "GET", "/api/atlas/v2/groups/{groupId}/encryptionAtRest/{cloudProvider}/privateEndpoints", "2023-01-01", paginated=True
    ),
    "createGroupEncryptionAtRestPrivateEndpoint": _operation(
        "POST", "/api/atlas/v2/groups/{groupId}/encryptionAtRest/{cloudProvider}/privateEndpoints", "2023-01-01"
    ),
    "getGroupEncryptionAtRestPrivateEndpoint": _operation(
        "GET", "/api/atlas/v2/groups/{groupId}/encryptionAtRest/{cloudProvider}/privateEndpoints/{endpointId}", "2023-01-01"
    ),
    "requestGroupEncryptionAtRestPrivateEndpointDeletion": _operation(
        "DELETE", "/api/atlas/v2/groups/{groupId}/encryptionAtRest/{cloudProvider}/privateEndpoints/{endpointId}", "2023-01-01"
    ),
    # 2023-01-01 is sunset for this answer.
    "getGroupBackupCompliancePolicy": _operation("GET", "/api/atlas/v2/groups/{groupId}/backupCompliancePolicy", "2023-10-01"),
    "listGroupClusters": _operation("GET", "/api/atlas/v2/groups/{groupId}/clusters", "2024-08-05", paginated=True),
    "getGroupCluster": _operation("GET", "/api/atlas/v2/groups/{groupId}/clusters/{clusterName}", "2024-08-05"),
    # 2024-08-05 is sunset for the PATCH response; 2024-10-23 is listed for request and response.
    "updateGroupCluster": _operation("PATCH", "/api/atlas/v2/groups/{groupId}/clusters/{clusterName}", "2024-10-23"),
    "listGroupClusterBackupSnapshots": _operation(
        "GET", "/api/atlas/v2/groups/{groupId}/clusters/{clusterName}/backup/snapshots", "2023-01-01", paginated=True
    ),
    "listGroupClusterBackupSnapshotShardedClusters": _operation(
        "GET", "/api/atlas/v2/groups/{groupId}/clusters/{clusterName}/backup/snapshots/shardedClusters", "2023-01-01"
    ),
    "listGroupProcesses": _operation("GET", "/api/atlas/v2/groups/{groupId}/processes", "2023-01-01", paginated=True),
    "listControlPlaneIpAddresses": _operation("GET", "/api/atlas/v2/unauth/controlPlaneIPAddresses", "2023-11-15", authenticated=False),
}

_PATH_PARAMETER = re.compile(r"{([A-Za-z0-9_]+)}")
# An /api segment (/api, /api/atlas/v2, /api/atlas/v1.0/...) in a base URL's path.
_API_PATH = re.compile(r"/api(?:/.*)?$")
# "HTTPSConnection(host='cloud.mongodb.com', port=443): " before urllib3's own words.
_CONNECTION_PREFIX = re.compile(r"^<?\w*Connection(?:Pool)?\b[^:]*\)>?: ")


def media_type(version):
    """The versioned media type Atlas expects in ``Accept`` and ``Content-Type``."""
    return f"application/vnd.atlas.{version}+json"


def user_agent():
    return f"{COLLECTION_NAME}/{COLLECTION_VERSION} ansible-core/{ANSIBLE_CORE_VERSION} python/{platform.python_version()}"


# ---------------------------------------------------------------------------------------------
# Errors


def _shorten(text, limit=200):
    text = " ".join(str(text).split())
    if len(text) > limit:
        return text[: limit - 3] + "..."
    return text


class AtlasError(CmkAtlasError):
    """Base of every error this module raises; ``str()`` is a message fit to show a user."""

    def __init__(self, message=""):
        super().__init__(message)
        self._text = message

    def _format(self):
        return self._text

    @property
    def message(self):
        return self._format()

    def __str__(self):
        return self._format()

    def as_dict(self):
        return {"message": str(self)}


class AtlasConfigError(AtlasError):
    """Bad connection options, raised before any network call."""


class AtlasMissingLibraryError(AtlasError):
    """A Python library the client needs is not installed on the managed node."""

    def __init__(self, library, exception_traceback):
        super().__init__(f"The Python library {library} is required to talk to the Atlas Admin API")
        self.library = library
        self.traceback = exception_traceback


class AtlasApiError(AtlasError):
    """Atlas answered with an error status (body per the spec's ``ApiError`` schema when JSON)."""

    def __init__(
        self,
        status,
        operation=None,
        method=None,
        path=None,
        error_code=None,
        detail=None,
        reason=None,
        parameters=None,
        body_excerpt=None,
        attempts=1,
        hint=None,
    ):
        super().__init__()
        self.status = status
        self.operation = operation
        self.method = method
        self.path = path
        self.error_code = error_code
        self.detail = detail
        self.reason = reason
        self.parameters = parameters
        self.body_excerpt = body_excerpt
        self.attempts = attempts
        self.hint = hint
        # Set by retry_on_error_codes when it gives up waiting.
        self.note = None

    def _lead(self):
        return f"Atlas API {self.operation} ({self.method} {self.path}) failed with"

    def _format(self):
        text = f"{self._lead()} HTTP {self.status}"
        label = self.error_code or self.reason
        if label:
            text += f" {label}"
        explanation = self.detail or self.body_excerpt
        if explanation:
            text += f": {explanation}"
        if self.attempts > 1:
            text += f" (after {self.attempts} attempts)"
        if self.note:
            text += f" ({self.note})"
        hint = self.hint or self._default_hint()
        if hint:
            text += (" " if text.endswith(".") else ". ") + hint
        return text

    def _default_hint(self):
        # Atlas's own words for these name neither the option nor the fix.
        if self.error_code == "GROUP_NOT_FOUND":
            return GROUP_NOT_FOUND_HINT
        if self.status == 403:
            return FORBIDDEN_HINT
        return None

    def as_dict(self):
        return {
            "message": str(self),
            "status": self.status,
            "error_code": self.error_code,
            "detail": self.detail,
            "reason": self.reason,
            "parameters": self.parameters,
            "operation": self.operation,
            "method": self.method,
            "path": self.path,
            "attempts": self.attempts,
        }


class AtlasTokenError(AtlasApiError):
    """The OAuth token endpoint did not issue an access token for the service account."""

    def _lead(self):
        return f"Atlas did not issue an access token for the service account ({self.method} {self.path}):"


class AtlasConnectionError(AtlasError):
    """No usable HTTP response: connection refused or reset, timeout, TLS failure."""

    def __init__(self, message, operation=None, method=None, path=None, attempts=1):
        super().__init__(message)
        self.operation = operation
        self.method = method
        self.path = path
        self.attempts = attempts

    def as_dict(self):
        return {"message": str(self), "operation": self.operation, "method": self.method, "path": self.path, "attempts": self.attempts}


# ---------------------------------------------------------------------------------------------
# Authentication: one class per method, each with its options, validate() and the way it
# authenticates requests; AtlasAuthenticator selects the one the options ask for.


def _option_value(params, name):
    value = params.get(name)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _option_words(option, env):
    return f"{option} (or environment variable {env})"


class AtlasAuthMethodBase:
    NAME = ""
    LABEL = ""
    # (option, environment variable) of the identifier, then of the secret.
    ID_OPTION = ("", "")
    SECRET_OPTION = ("", "")
    ARGSPEC = {}

    def __init__(self, params):
        self.identifier = _option_value(params, self.ID_OPTION[0])
        self._secret = _option_value(params, self.SECRET_OPTION[0])

    def __repr__(self):
        return f"<{type(self).__name__}>"

    @classmethod
    def describe_options(cls):
        return f"{cls.ID_OPTION[0]} and {cls.SECRET_OPTION[0]} (or environment variables {cls.ID_OPTION[1]} and {cls.SECRET_OPTION[1]}) for {cls.LABEL}"

    def given_options(self):
        given = []
        if self.identifier is not None:
            given.append(self.ID_OPTION[0])
        if self._secret is not None:
            given.append(self.SECRET_OPTION[0])
        return given

    def validate(self):
        if self.identifier is None and self._secret is None:
            raise AtlasConfigError(f"Atlas credentials are missing: set {self.describe_options()}.")
        if self._secret is None:
            present, missing = self.ID_OPTION, self.SECRET_OPTION
        elif self.identifier is None:
            present, missing = self.SECRET_OPTION, self.ID_OPTION
        else:
            return
        raise AtlasConfigError(
            f"Atlas credentials are incomplete: {_option_words(*present)} is set but {_option_words(*missing)} is not. "
            f"{self.LABEL[0].upper()}{self.LABEL[1:]} needs both {self.ID_OPTION[0]} and {self.SECRET_OPTION[0]}."
        )

    def secret_values(self):
        return [self._secret] if self._secret else []

    def requests_auth(self, client):
        """The ``auth`` argument for requests for one API call."""
        raise NotImplementedError

    def renew_after_unauthorized(self, client):
        """Whether a 401 may be answered by new credentials and one more try."""
        return False

    def unauthorized_hint(self):
        return (
            f"Check {_option_words(self.ID_OPTION[0], self.ID_OPTION[1])} and {_option_words(self.SECRET_OPTION[0], self.SECRET_OPTION[1])}, "
            "and that this host is on the API access list."
        )


class AtlasAuthMethodApiKey(AtlasAuthMethodBase):
    """Programmatic API key: HTTP digest with the public key as user and the private key as password."""

    NAME = "api_key"
    LABEL = "an API key"
    ID_OPTION = ("public_key", "MONGODB_ATLAS_PUBLIC_KEY")
    SECRET_OPTION = ("private_key", "MONGODB_ATLAS_PRIVATE_KEY")
    ARGSPEC = {
        "public_key": {"type": "str", "no_log": False, "fallback": (env_fallback, ["MONGODB_ATLAS_PUBLIC_KEY"])},
        "private_key": {"type": "str", "no_log": True, "fallback": (env_fallback, ["MONGODB_ATLAS_PRIVATE_KEY"])},
    }

    def __init__(self, params):
        super().__init__(params)
        self._digest_auth = None

    def requests_auth(self, client):
        # One object for the client's life: it keeps the server nonce, so later calls skip the challenge.
        if self._digest_auth is None:
            self._digest_auth = client.requests.auth.HTTPDigestAuth(self.identifier, self._secret)
        return self._digest_auth


class _BearerAuth:
    """requests ``auth`` callable; an explicit auth object also keeps .netrc entries from applying."""

    def __init__(self, token):
        self._token = token

    def __repr__(self):
        return "<_BearerAuth>"

    def __call__(self, prepared_request):
        prepared_request.headers["Authorization"] = f"Bearer {self._token}"
        return prepared_request


class AtlasAuthMethodServiceAccount(AtlasAuthMethodBase):
    """Service account: OAuth2 client credentials, the bearer token cached for its lifetime."""

    NAME = "service_account"
    LABEL = "a service account"
    ID_OPTION = ("client_id", "MONGODB_ATLAS_CLIENT_ID")
    SECRET_OPTION = ("client_secret", "MONGODB_ATLAS_CLIENT_SECRET")
    ARGSPEC = {
        "client_id": {"type": "str", "fallback": (env_fallback, ["MONGODB_ATLAS_CLIENT_ID"])},
        "client_secret": {"type": "str", "no_log": True, "fallback": (env_fallback, ["MONGODB_ATLAS_CLIENT_SECRET"])},
    }
    # Atlas documents one hour; used when the token response leaves expires_in out.
    DEFAULT_TOKEN_LIFETIME = 3600
    TOKEN_EXPIRY_MARGIN = 60

    def __init__(self, params):
        super().__init__(params)
        self._token = None
        self._token_expires_at = None

    def secret_values(self):
        return [value for value in (self._secret, self._token) if value]

    def _token_is_fresh(self, client):
        return self._token is not None and client.clock() < self._token_expires_at

    def requests_auth(self, client):
        if not self._token_is_fresh(client):
            self._fetch_token(client)
        return _BearerAuth(self._token)

    def renew_after_unauthorized(self, client):
        self._token = None
        return True

    def unauthorized_hint(self):
        return (
            f"The service account's access token was refused. Check {_option_words('client_id', 'MONGODB_ATLAS_CLIENT_ID')}, "
            "its roles in the organization or project, and the API access list."
        )

    def _fetch_token(self, client):
        requests = client.requests
        started = client.clock()
        client.count_call(TOKEN_OPERATION, "POST")
        response, attempts = client.send(
            TOKEN_OPERATION,
            "POST",
            client.base_url + TOKEN_PATH,
            headers={"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"},
            data="grant_type=client_credentials",
            auth=requests.auth.HTTPBasicAuth(self.identifier, self._secret),
            idempotent=True,
        )
        hint = (
            f"Check {_option_words('client_id', 'MONGODB_ATLAS_CLIENT_ID')} and "
            f"{_option_words('client_secret', 'MONGODB_ATLAS_CLIENT_SECRET')}, and that the service account's secret has not expired."
        )
        body = _parse_json(response)
        if response.status_code != 200:
            error = client.error_from_response(response, TOKEN_OPERATION, "POST", TOKEN_PATH, attempts, error_class=AtlasTokenError)
            # OAuth endpoints answer with RFC 6749 fields rather than Atlas's ApiError.
            if isinstance(body, dict) and not error.error_code and isinstance(body.get("error"), str):
                error.error_code = body["error"]
                error.detail = client.redact(body.get("error_description")) if body.get("error_description") else error.detail
            error.hint = hint
            raise error
        token = body.get("access_token") if isinstance(body, dict) else None
        token_type = body.get("token_type", "Bearer") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token or str(token_type).lower() != "bearer":
            raise AtlasTokenError(
                response.status_code,
                operation=TOKEN_OPERATION,
                method="POST",
                path=TOKEN_PATH,
                detail="the response holds no bearer access_token",
                attempts=attempts,
                hint=hint,
            )
        lifetime = body.get("expires_in", self.DEFAULT_TOKEN_LIFETIME)
        if not isinstance(lifetime, (int, float)) or isinstance(lifetime, bool) or lifetime <= 0:
            lifetime = self.DEFAULT_TOKEN_LIFETIME
        margin = min(self.TOKEN_EXPIRY_MARGIN, lifetime / 10.0)
        self._token = token
        self._token_expires_at = started + lifetime - margin


class AtlasAuthenticator:
    """Picks the one authentication method the options complete."""

    METHODS = (AtlasAuthMethodApiKey, AtlasAuthMethodServiceAccount)

    @classmethod
    def argument_spec(cls):
        spec = {}
        for method in cls.METHODS:
            for name, option in method.ARGSPEC.items():
                spec[name] = dict(option)
        return spec

    @classmethod
    def describe_choices(cls):
        return " or ".join(method.describe_options() for method in cls.METHODS)

    @classmethod
    def select(cls, params):
        methods = [method(params) for method in cls.METHODS]
        started = [method for method in methods if method.given_options()]
        if not started:
            raise AtlasConfigError(f"Atlas credentials are missing: set {cls.describe_choices()}.")
        if len(started) > 1:
            given = ", ".join(option for method in started for option in method.given_options())
            raise AtlasConfigError(
                f"Atlas credentials are ambiguous: options or environment variables are set for more than one method ({given}). "
                f"Set only {cls.describe_choices()}."
            )
        method = started[0]
        method.validate()
        return method


def atlas_argument_spec():
    """Connection options every module that talks to Atlas merges into its argument spec."""
    spec = {
        "base_url": {"type": "str", "default": DEFAULT_BASE_URL, "fallback": (env_fallback, ["MONGODB_ATLAS_BASE_URL"])},
        "timeout": {"type": "int", "default": DEFAULT_TIMEOUT},
        "retries": {"type": "int", "default": DEFAULT_RETRIES},
        "validate_certs": {"type": "bool", "default": True},
    }
    spec.update(AtlasAuthenticator.argument_spec())
    return spec


# ---------------------------------------------------------------------------------------------
# Validation of the connection options


def validate_base_url(value):
    """The base URL without trailing slashes; AtlasConfigError names the option when it is not usable."""
    expected = "an http or https URL with a host, such as https://cloud.mongodb.com"
    where = _option_words("base_url", "MONGODB_ATLAS_BASE_URL")
    if value is None or not str(value).strip():
        raise AtlasConfigError(f"{where} is empty; it must be {expected}.")
    text = str(value).strip()
    try:
        parts = urlsplit(text)
        hostname = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError:
        parts = None
        hostname = None
    if parts is not None and (parts.username is not None or parts.password is not None):
        # Not echoed: the text holds credentials.
        raise AtlasConfigError(f"{where} must not contain a user name or password; it must be {expected}.")
    if parts is None or parts.scheme not in ("http", "https") or not hostname or parts.query or parts.fragment or any(c.isspace() for c in text):
        raise AtlasConfigError(f"{where} is {_shorten(repr(text), 100)}; it must be {expected}.")
    # The client adds /api/atlas/v2/...: a base URL that already has it gets 404 for every call.
    api = _API_PATH.search(parts.path)
    if api:
        fixed = f"{parts.scheme}://{parts.netloc}{parts.path[: api.start()]}"
        raise AtlasConfigError(
            f"{where} is {_shorten(repr(text), 100)}; base_url is the Atlas host without the API path, e.g. {DEFAULT_BASE_URL}: set it to {fixed}."
        )
    return text.rstrip("/")


def _validate_number(name, value, minimum, example, kind):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise AtlasConfigError(f"{name} is {_shorten(repr(value), 40)}; it must be {kind}, such as {example}.")
    return value


# ---------------------------------------------------------------------------------------------
# The client


def _import_requests():
    try:
        # Imported here so that modules that never talk to Atlas do not need requests.
        import requests  # noqa: PLC0415 pylint: disable=import-outside-toplevel
    except ImportError:
        raise AtlasMissingLibraryError("requests", traceback.format_exc()) from None
    return requests


_NOT_JSON = object()


def _parse_json(response):
    if not response.content:
        return None
    try:
        return json.loads(response.content.decode("utf-8"))
    except ValueError:
        return _NOT_JSON


def _parse_retry_after(value):
    if value is None:
        return None
    try:
        seconds = float(str(value).strip())
    except ValueError:
        return None  # an HTTP date: fall back to the backoff
    if math.isnan(seconds) or seconds < 0:
        return None
    return seconds


class AtlasClient:
    """A session with the Atlas Admin API.

    ``call()`` runs one operation of ``OPERATIONS``; ``paginate()`` walks a list operation.
    Transient faults are retried up to ``retries`` times; errors are ``AtlasError`` subclasses.
    """

    def __init__(
        self,
        base_url,
        auth_method,
        timeout=DEFAULT_TIMEOUT,
        retries=DEFAULT_RETRIES,
        validate_certs=True,
        session=None,
        sleep=None,
        clock=None,
        jitter=None,
        log=None,
        max_backoff=BACKOFF_MAX_SECONDS,
        max_retry_after=RETRY_AFTER_MAX_SECONDS,
    ):
        self.base_url = validate_base_url(base_url)
        self.timeout = _validate_number("timeout", timeout, 0.001, 30, "a positive number of seconds")
        self.retries = _validate_number("retries", retries, 0, 5, "a whole number of 0 or more")
        if int(self.retries) != self.retries:
            raise AtlasConfigError(f"retries is {retries!r}; it must be a whole number of 0 or more, such as 5.")
        self.retries = int(self.retries)
        self.validate_certs = bool(validate_certs)
        self.auth_method = auth_method
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self.clock = clock or time.monotonic
        self._sleep = sleep or time.sleep
        self._jitter = jitter or random.random
        self._log = log
        self.requests = _import_requests()
        self._session = session if session is not None else self.requests.Session()
        self._session.headers["User-Agent"] = user_agent()
        self._counts = {}

    @classmethod
    def from_params(cls, params, **kwargs):
        """Build a client from module parameters (after ``atlas_argument_spec`` processing).

        Raises AtlasConfigError before any network call when the options are not usable.
        """
        base_url = validate_base_url(params.get("base_url") or DEFAULT_BASE_URL)
        auth_method = AtlasAuthenticator.select(params)
        timeout = params.get("timeout")
        retries = params.get("retries")
        validate_certs = params.get("validate_certs")
        return cls(
            base_url,
            auth_method,
            timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
            retries=DEFAULT_RETRIES if retries is None else retries,
            validate_certs=True if validate_certs is None else validate_certs,
            **kwargs,
        )

    def __repr__(self):
        return f"AtlasClient(base_url={self.base_url!r}, auth={self.auth_method.NAME!r})"

    def close(self):
        self._session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # -- request accounting -------------------------------------------------------------------

    def count_call(self, operation_id, method):
        self._count(operation_id, method, "calls")

    def _count(self, operation_id, method, field):
        entry = self._counts.get(operation_id)
        if entry is None:
            # Token requests are POSTs that change nothing in Atlas.
            write = method != "GET" and operation_id != TOKEN_OPERATION
            entry = self._counts[operation_id] = {"method": method, "write": write, "calls": 0, "requests": 0}
        entry[field] += 1

    @property
    def request_counts(self):
        """Per operation id: method, whether it writes, calls made and HTTP requests sent (retries included)."""
        return {operation_id: dict(entry) for operation_id, entry in self._counts.items()}

    def request_summary(self):
        summary = {"calls": 0, "requests": 0, "write_calls": 0, "write_requests": 0}
        for entry in self._counts.values():
            summary["calls"] += entry["calls"]
            summary["requests"] += entry["requests"]
            if entry["write"]:
                summary["write_calls"] += entry["calls"]
                summary["write_requests"] += entry["requests"]
        return summary

    # -- helpers ------------------------------------------------------------------------------

    def redact(self, text):
        """``text`` with every secret this client holds replaced, for anything shown to a user."""
        if text is None:
            return None
        text = str(text)
        for secret in self.auth_method.secret_values():
            # Real keys, secrets and tokens are long; masking a few characters would garble every message.
            if len(secret) >= MIN_REDACTED_LENGTH:
                text = text.replace(secret, REDACTED)
        return text

    def _describe_exception(self, exc):
        # urllib3 wraps the cause (refused, DNS, TLS) in a retry error that repeats the URL.
        inner = exc.args[0] if exc.args else None
        reason = getattr(inner, "reason", None)
        text = str(reason if reason is not None else exc)
        text = _CONNECTION_PREFIX.sub("", text)
        return _shorten(self.redact(text), 300)

    def _debug(self, message):
        if self._log is not None:
            self._log(self.redact(message))

    def backoff_delay(self, attempt, retry_after=None):
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        ceiling = min(self.max_backoff, BACKOFF_BASE_SECONDS * (2 ** (attempt - 1)))
        return self._jitter() * ceiling

    def _wait_before_retry(self, label, method, attempt, reason, retry_after=None):
        delay = self.backoff_delay(attempt, retry_after)
        self._debug(f"{COLLECTION_NAME}: {label} {method} attempt {attempt} of {self.retries + 1}: {reason}; retrying in {delay:.2f} s")
        self._sleep(delay)

    def send(self, label, method, url, headers=None, data=None, params=None, auth=None, idempotent=None):
        """Send one request with retries of transient faults; return ``(response, attempts)``.

        ``idempotent`` (default: the methods of IDEMPOTENT_METHODS) allows repeating after faults
        that may follow a request Atlas did act on (HTTP 500, read timeout). The response may carry any status;
        AtlasConnectionError is raised when none came.
        """
        requests = self.requests
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        path = urlsplit(url).path
        attempt = 0
        while True:
            attempt += 1
            self._count(label, method, "requests")
            can_retry = attempt <= self.retries
            try:
                response = self._session.request(
                    method,
                    url,
                    headers=headers,
                    data=data,
                    params=params,
                    auth=auth,
                    timeout=self.timeout,
                    verify=self.validate_certs,
                    allow_redirects=False,
                )
            except requests.exceptions.SSLError as exc:
                raise AtlasConnectionError(
                    f"Atlas API {label} ({method} {path}): TLS with {self.base_url} failed: {self._describe_exception(exc)}. "
                    "If the server uses a private certificate authority, add it to the trust store; "
                    "set validate_certs to false only for a test server.",
                    operation=label,
                    method=method,
                    path=path,
                    attempts=attempt,
                ) from None
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                # Refused or reset connections (ConnectTimeout included) are repeated for every method;
                # a read timeout or a body cut short only for idempotent requests.
                connection_failed = isinstance(exc, requests.exceptions.ConnectionError)
                if can_retry and (connection_failed or idempotent):
                    self._wait_before_retry(label, method, attempt, type(exc).__name__)
                    continue
                kind = "timed out" if isinstance(exc, requests.exceptions.Timeout) else "could not reach Atlas"
                raise AtlasConnectionError(
                    f"Atlas API {label} ({method} {path}) {kind} at {self.base_url} after {attempt} attempt{'s' if attempt > 1 else ''}: "
                    f"{type(exc).__name__}: {self._describe_exception(exc)}",
                    operation=label,
                    method=method,
                    path=path,
                    attempts=attempt,
                ) from None
            except requests.exceptions.RequestException as exc:
                raise AtlasConnectionError(
                    f"Atlas API {label} ({method} {path}) failed before a response came: {type(exc).__name__}: {self._describe_exception(exc)}",
                    operation=label,
                    method=method,
                    path=path,
                    attempts=attempt,
                ) from None
            status = response.status_code
            self._debug(f"{COLLECTION_NAME}: {label} {method} {path} -> HTTP {status} (attempt {attempt})")
            retryable = status in RETRY_ANY_METHOD_STATUS or (status in RETRY_IDEMPOTENT_STATUS and idempotent)
            if retryable and can_retry:
                retry_after = _parse_retry_after(response.headers.get("Retry-After"))
                response.close()
                self._wait_before_retry(label, method, attempt, f"HTTP {status}", retry_after)
                continue
            return response, attempt

    def error_from_response(self, response, operation_id, method, path, attempts, error_class=AtlasApiError, hint=None):
        body = _parse_json(response)
        if isinstance(body, dict):
            detail = body.get("detail")
            return error_class(
                response.status_code,
                operation=operation_id,
                method=method,
                path=path,
                error_code=body.get("errorCode"),
                detail=self.redact(detail) if detail else None,
                reason=body.get("reason") or response.reason,
                parameters=body.get("parameters"),
                attempts=attempts,
                hint=hint,
            )
        excerpt = None
        if response.content:
            excerpt = _shorten(self.redact(response.content.decode("utf-8", "replace")))
        return error_class(
            response.status_code,
            operation=operation_id,
            method=method,
            path=path,
            reason=response.reason,
            body_excerpt=excerpt,
            attempts=attempts,
            hint=hint,
        )

    def _build_path(self, operation_id, template, path_params):
        names = _PATH_PARAMETER.findall(template)
        unknown = sorted(set(path_params) - set(names))
        if unknown:
            raise TypeError(f"Atlas API {operation_id} has no path parameter {', '.join(unknown)}")
        values = {}
        for name in names:
            value = path_params.get(name)
            if value is None or str(value) == "":
                raise AtlasConfigError(f"Atlas API {operation_id} needs a value for its path parameter {name}.")
            values[name] = quote(str(value), safe="")
        return _PATH_PARAMETER.sub(lambda match: values[match.group(1)], template)

    @staticmethod
    def _query(query):
        if not query:
            return None
        # Atlas reads booleans as true/false; requests would send True/False.
        return {key: (("true" if value else "false") if isinstance(value, bool) else value) for key, value in query.items() if value is not None}

    # -- operations ---------------------------------------------------------------------------

    def call(self, operation_id, body=None, query=None, **path_params):
        """Run one operation; return the parsed JSON body, or None when Atlas sends none (204)."""
        try:
            operation = OPERATIONS[operation_id]
        except KeyError:
            raise ValueError(f"unknown Atlas operation {operation_id!r}") from None
        path = self._build_path(operation_id, operation.path, path_params)
        versioned = media_type(operation.version)
        headers = {"Accept": versioned}
        data = None
        if body is not None:
            headers["Content-Type"] = versioned
            data = json.dumps(body, separators=(",", ":")).encode("utf-8")
        url = self.base_url + path
        params = self._query(query)
        self.count_call(operation_id, operation.method)

        def attempt_with_auth():
            auth = self.auth_method.requests_auth(self) if operation.authenticated else None
            return self.send(operation_id, operation.method, url, headers=headers, data=data, params=params, auth=auth)

        response, attempts = attempt_with_auth()
        if response.status_code == 401 and operation.authenticated and self.auth_method.renew_after_unauthorized(self):
            response.close()
            self._debug(f"{COLLECTION_NAME}: {operation_id} got HTTP 401; renewing the access token once")
            response, more_attempts = attempt_with_auth()
            attempts += more_attempts

        status = response.status_code
        if status >= 300:
            hint = None
            if status == 401 and operation.authenticated:
                hint = self.auth_method.unauthorized_hint()
            elif 300 <= status < 400:
                location = response.headers.get("Location")
                hint = f"The base URL redirects{' to ' + _shorten(location, 100) if location else ''}; set base_url to the address of the API itself."
            raise self.error_from_response(response, operation_id, operation.method, path, attempts, hint=hint)
        parsed = _parse_json(response)
        if parsed is _NOT_JSON:
            raise AtlasApiError(
                status,
                operation=operation_id,
                method=operation.method,
                path=path,
                detail="the response is not JSON: " + _shorten(self.redact(response.content.decode("utf-8", "replace")), 120),
                attempts=attempts,
            )
        return parsed

    def paginate(self, operation_id, items_per_page=100, query=None, **path_params):
        """Yield every item of a list operation (``results``/``totalCount``), page by page."""
        operation = OPERATIONS.get(operation_id)
        if operation is None or not operation.paginated:
            raise ValueError(f"Atlas operation {operation_id!r} is not a paginated list")
        if isinstance(items_per_page, bool) or not isinstance(items_per_page, int) or not 1 <= items_per_page <= MAX_ITEMS_PER_PAGE:
            raise ValueError(f"items_per_page must be a whole number from 1 to {MAX_ITEMS_PER_PAGE}")
        seen = 0
        page_number = 1
        while True:
            page_query = dict(query or {})
            page_query.update({"itemsPerPage": items_per_page, "pageNum": page_number, "includeCount": True})
            page = self.call(operation_id, query=page_query, **path_params) or {}
            results = page.get("results") or []
            yield from results
            seen += len(results)
            total = page.get("totalCount")
            if not results or (isinstance(total, int) and seen >= total) or (total is None and len(results) < items_per_page):
                return
            page_number += 1


class ProjectApi:
    """The Atlas calls about one project's resources through ``client`` (an AtlasClient). ``sleep``/``clock`` are the
    waits' time source (tests replace them); ``log`` gets progress lines."""

    def __init__(self, client, project_id, sleep=None, clock=None, log=None):
        self.client = client
        self.project_id = project_id
        self._sleep = sleep or time.sleep
        self._clock = clock or time.monotonic
        self._log = log

    def _debug(self, message):
        if self._log is not None:
            self._log(message)


def retry_on_error_codes(fn, codes, timeout, sleep=None, clock=None, interval=5.0, max_interval=30.0, log=None):
    """Call ``fn()`` until it stops failing with an Atlas ``errorCode`` in ``codes`` or ``timeout`` seconds pass.

    For conditions Atlas reports while something settles elsewhere, such as ``CANNOT_ASSUME_ROLE``
    while a new IAM role propagates. Other errors propagate at once. When time is up the last
    error is raised, noting how long it was retried.
    """
    codes = frozenset(codes)
    state = {}

    def attempt():
        try:
            state["answer"] = fn()
        except AtlasApiError as error:
            if error.error_code not in codes:
                raise
            state["error"] = error
            return False
        return True

    def tell(wait):
        if log is not None:
            error = state["error"]
            log(f"{COLLECTION_NAME}: {error.operation} answered {error.error_code}; trying again in {wait:.1f} s")

    polled = poll(attempt, timeout, interval, max_interval, sleep=sleep, clock=clock, log=tell)
    if polled.done:
        return state["answer"]
    error = state["error"]
    error.note = f"still {error.error_code} after {polled.attempts} tries over {polled.elapsed:.0f} s"
    raise error


def atlas_client_from_module(module, **client_kwargs):
    """Build an AtlasClient from an AnsibleModule's params, or fail the module with a clear message."""
    client_kwargs.setdefault("log", module.debug)
    try:
        return AtlasClient.from_params(module.params, **client_kwargs)
    except AtlasMissingLibraryError as error:
        module.fail_json(msg=missing_required_lib(error.library), exception=error.traceback)
    except AtlasConfigError as error:
        module.fail_json(msg=str(error))
    return None  # fail_json does not return


def fail_json_from_atlas_error(module, error, **result):
    """Fail the module with ``error``'s message and its fields under ``atlas_error``."""
    module.fail_json(msg=str(error), atlas_error=error.as_dict(), **result)
