"""A reverse proxy in front of moto that logs every AWS call and can answer chosen calls with errors.

The collection's ``endpoint_url`` points here. Requests are forwarded with their method, path,
headers and body unchanged; an armed fault answers the matching call itself, in the error format
of the call's protocol (IAM and STS: query/XML; KMS: JSON), without forwarding it.

Control from Python (``fail``, ``request_log``, ...) or over HTTP under ``/__proxy/``:
``GET|DELETE /__proxy/log``, ``GET|POST|DELETE /__proxy/faults``, ``POST /__proxy/reset``.
"""

import http.client
import json
import re
import threading
import time
import uuid
from urllib.parse import parse_qs, urlsplit

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

CONTROL_PREFIX = "/__proxy/"
ACCOUNT_HEADER = "x-moto-account-id"
_RAW_HEADERS = "fault_proxy.raw_headers"
# Hop-by-hop headers belong to one connection, not to the message.
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "expect"}
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/,\s]+)/([^/,\s]+)/aws4_request")

# Operations that change nothing although their names do not say Get/List/Describe.
_READ_OPERATIONS = {
    "AssumeRole",
    "AssumeRoleWithSAML",
    "AssumeRoleWithWebIdentity",
    "DecodeAuthorizationMessage",
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateMac",
    "GenerateRandom",
    "ReEncrypt",
    "Sign",
    "Verify",
    "VerifyMac",
}
_READ_PREFIXES = ("Get", "List", "Describe", "Simulate")

# Error code -> HTTP status, as the services answer them.
_ERROR_STATUS = {
    "Throttling": 400,
    "ThrottlingException": 400,
    "TooManyRequestsException": 400,
    "AccessDenied": 403,
    "AccessDeniedException": 400,
    "InternalFailure": 500,
    "InternalError": 500,
    "KMSInternalException": 500,
    "ServiceFailure": 500,
    "ServiceUnavailable": 503,
    "ServiceUnavailableException": 503,
    "DependencyTimeoutException": 503,
}
# Protocol-neutral names: (query/XML code, JSON code).
_ALIASES = {
    "throttling": ("Throttling", "ThrottlingException"),
    "access_denied": ("AccessDenied", "AccessDeniedException"),
    "internal": ("InternalFailure", "KMSInternalException"),
    "unavailable": ("ServiceUnavailable", "ServiceUnavailableException"),
}
_STATUS_CODES = {500: "InternalFailure", 502: "BadGateway", 503: "ServiceUnavailable", 504: "GatewayTimeout"}
_MESSAGES = {
    "Throttling": "Rate exceeded",
    "ThrottlingException": "Rate exceeded",
    "ServiceUnavailable": "Service is unavailable. Please try again later.",
}


def is_write(operation):
    """True for calls that may change state; reads and crypto/STS calls that change nothing are False."""
    if not operation:
        return False
    return not (operation.startswith(_READ_PREFIXES) or operation in _READ_OPERATIONS)


class Fault:
    """An armed fault: answers the next ``remaining`` calls that match."""

    def __init__(self, operation, error="ThrottlingException", count=1, service=None, account=None, status=None, message=None):
        if count < 1:
            raise ValueError("count must be at least 1")
        self.operation = operation
        self.error = error
        self.remaining = int(count)
        self.service = service
        self.account = str(account) if account is not None else None
        self.status = status
        self.message = message

    def matches(self, call):
        return (
            self.remaining > 0
            and self.operation in ("*", call["operation"])
            and self.service in (None, call["service"])
            and self.account in (None, call["account"])
        )

    def answer(self, call, json_protocol):
        """(status, code, message) for this call's protocol."""
        error = self.error
        status = self.status
        if isinstance(error, int):
            status = status or error
            code = _STATUS_CODES.get(error, "InternalFailure" if error >= 500 else "BadRequest")
        elif error in _ALIASES:
            code = _ALIASES[error][1 if json_protocol else 0]
        else:
            code = error
        status = int(status or _ERROR_STATUS.get(code, 400))
        message = self.message or _MESSAGES.get(code)
        if message is None:
            if "AccessDenied" in code:
                message = f"User is not authorized to perform: {call['service']}:{call['operation']}"
            else:
                message = "We encountered an internal error. Please try again."
        return status, code, message

    def as_dict(self):
        return {
            "operation": self.operation,
            "error": self.error,
            "remaining": self.remaining,
            "service": self.service,
            "account": self.account,
            "status": self.status,
            "message": self.message,
        }


class _RawHeadersHandler(WSGIRequestHandler):
    """Hands the application the request headers as received (names, order, repeats)."""

    def make_environ(self):
        environ = super().make_environ()
        environ[_RAW_HEADERS] = list(self.headers.items())
        return environ

    def log_request(self, code="-", size="-"):
        pass


class FaultProxy:
    """``FaultProxy(target_url).start()`` returns the proxy's URL; ``stop()`` stops it.

    ``account_resolver(access_key_id)`` names the account of a request without moto's account
    header (the test bed passes moto's own mapping); without it such calls log ``account: None``.
    """

    def __init__(self, target_url, host="127.0.0.1", port=0, account_resolver=None, timeout=60):
        target = urlsplit(target_url)
        self.target_url = target_url
        self._target_host = target.hostname
        self._target_port = target.port or 80
        self._host = host
        self._port = port
        self._timeout = timeout
        self._account_resolver = account_resolver
        self._lock = threading.Lock()
        self._log = []
        self._faults = []
        self._server = None
        self._thread = None
        self.url = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self):
        if self._server is not None:
            return self.url
        self._server = make_server(self._host, self._port, self._wsgi, threaded=True, request_handler=_RawHeadersHandler)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        # A short poll interval keeps stop() quick: shutdown() waits for the next poll.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="aws-fault-proxy", daemon=True)
        self._thread.start()
        return self.url

    def stop(self):
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self._server = None
        self._thread = None
        self.url = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- control ----------------------------------------------------------------------------

    def fail(self, operation, error="ThrottlingException", count=1, service=None, account=None, status=None, message=None):
        """Answer the next ``count`` calls of ``operation`` (``"*"`` for any) with an error.

        ``error`` is an AWS error code used as given (``ThrottlingException``, ``Throttling``,
        ``AccessDeniedException``, ``AccessDenied``, ``InternalFailure``, ...), a protocol-neutral
        name that becomes the code the service really uses (``throttling``, ``access_denied``,
        ``internal``, ``unavailable``), or an HTTP status (500, 503). The status follows the code
        unless ``status`` is given. ``service`` (``iam``, ``kms``, ``sts``) and ``account`` narrow
        the match. Faults are consumed in the order they were armed.
        """
        fault = Fault(operation, error, count, service, account, status, message)
        with self._lock:
            self._faults.append(fault)
        return fault

    def faults(self):
        """The armed faults that have calls left to answer."""
        with self._lock:
            return [fault.as_dict() for fault in self._faults if fault.remaining > 0]

    def clear_faults(self):
        with self._lock:
            self._faults.clear()

    def request_log(self):
        """One entry per call, oldest first: service, operation, status, write, account, fault, ..."""
        with self._lock:
            return [dict(entry) for entry in self._log]

    def clear_request_log(self):
        with self._lock:
            self._log.clear()

    def write_calls(self):
        return [entry for entry in self.request_log() if entry["write"]]

    def reset(self):
        with self._lock:
            self._log.clear()
            self._faults.clear()

    # -- request handling -------------------------------------------------------------------

    def _wsgi(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL_PREFIX):
            return self._control(Request(environ))(environ, start_response)
        body = self._read_body(environ)
        headers = environ[_RAW_HEADERS]
        call = self._identify(environ, headers, body)
        with self._lock:
            fault = next((f for f in self._faults if f.matches(call)), None)
            if fault is not None:
                fault.remaining -= 1
        if fault is not None:
            status, reason, response_headers, response_body = self._error_response(fault, call, headers)
            call["fault"] = dict(response_headers)["x-amzn-ErrorType"]
        else:
            status, reason, response_headers, response_body = self._forward(environ, headers, body)
            call["fault"] = None
        call["status"] = status
        with self._lock:
            self._log.append(call)
        start_response(f"{status} {reason}", response_headers)
        return [response_body]

    @staticmethod
    def _read_body(environ):
        stream = environ["wsgi.input"]
        length = environ.get("CONTENT_LENGTH")
        if length:
            return stream.read(int(length))
        if environ.get("wsgi.input_terminated"):
            return stream.read()
        return b""

    def _identify(self, environ, headers, body):
        lower = {}
        for name, value in headers:
            lower.setdefault(name.lower(), value)
        query = environ.get("QUERY_STRING", "")
        access_key = service = None
        match = _CREDENTIAL.search(lower.get("authorization", "")) or _CREDENTIAL.search(query.replace("%2F", "/"))
        if match:
            access_key, service = match.group(1), match.group(3)
        operation = None
        target = lower.get("x-amz-target")
        if target:
            operation = target.rsplit(".", 1)[-1]
        else:
            params = parse_qs(query)
            if lower.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                params.update(parse_qs(body.decode("utf-8", "replace")))
            if params.get("Action"):
                operation = params["Action"][0]
        account = lower.get(ACCOUNT_HEADER)
        if account is None and access_key and self._account_resolver is not None:
            account = self._account_resolver(access_key)
        return {
            "time": time.time(),
            "service": service,
            "operation": operation,
            "write": is_write(operation),
            "account": account,
            "access_key_id": access_key,
            "method": environ["REQUEST_METHOD"],
            "path": environ.get("PATH_INFO", ""),
            "status": None,
            "fault": None,
        }

    def _error_response(self, fault, call, headers):
        json_protocol = any(name.lower() == "x-amz-target" for name, _value in headers) or any(
            name.lower() == "content-type" and "json" in value for name, value in headers
        )
        status, code, message = fault.answer(call, json_protocol)
        request_id = str(uuid.uuid4())
        if json_protocol:
            body = json.dumps({"__type": code, "message": message}).encode()
            content_type = "application/x-amz-json-1.1"
        else:
            kind = "Receiver" if status >= 500 else "Sender"
            body = (
                '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
                f"<Error><Type>{kind}</Type><Code>{code}</Code><Message>{_xml_escape(message)}</Message></Error>"
                f"<RequestId>{request_id}</RequestId></ErrorResponse>"
            ).encode()
            content_type = "text/xml"
        response_headers = [
            ("x-amzn-RequestId", request_id),
            ("x-amzn-ErrorType", code),
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
        ]
        return status, http.client.responses.get(status, ""), response_headers, body

    def _forward(self, environ, headers, body):
        path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
        if not environ.get("RAW_URI") and not environ.get("REQUEST_URI") and environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        chunked = any(name.lower() == "transfer-encoding" for name, _value in headers)
        connection = http.client.HTTPConnection(self._target_host, self._target_port, timeout=self._timeout)
        try:
            connection.putrequest(environ["REQUEST_METHOD"], path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                if name.lower() in _HOP_BY_HOP:
                    continue
                connection.putheader(name, value)
            if chunked:  # the body was de-chunked on the way in
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body or None)
            response = connection.getresponse()
            response_body = response.read()
            response_headers = [
                (name, value) for name, value in response.getheaders() if name.lower() not in _HOP_BY_HOP and name.lower() not in ("server", "date")
            ]
            return response.status, response.reason, response_headers, response_body
        except OSError as error:
            message = f"fault proxy could not reach {self.target_url}: {error}".encode()
            return 502, "Bad Gateway", [("Content-Type", "text/plain"), ("Content-Length", str(len(message)))], message
        finally:
            connection.close()

    # -- HTTP control -----------------------------------------------------------------------

    def _control(self, request):
        what = request.path[len(CONTROL_PREFIX) :].strip("/")
        method = request.method
        if what == "log" and method == "GET":
            return _json_response(self.request_log())
        if what == "log" and method == "DELETE":
            self.clear_request_log()
            return _json_response({"status": "ok"})
        if what == "faults" and method == "GET":
            return _json_response(self.faults())
        if what == "faults" and method == "DELETE":
            self.clear_faults()
            return _json_response({"status": "ok"})
        if what == "faults" and method == "POST":
            try:
                spec = json.loads(request.get_data() or b"{}")
                fault = self.fail(
                    spec["operation"],
                    error=spec.get("error", "ThrottlingException"),
                    count=int(spec.get("count", 1)),
                    service=spec.get("service"),
                    account=spec.get("account"),
                    status=spec.get("status"),
                    message=spec.get("message"),
                )
            except (ValueError, KeyError, TypeError) as error:
                return _json_response({"error": f"bad fault: {error!r}"}, 400)
            return _json_response(fault.as_dict(), 201)
        if what == "reset" and method == "POST":
            self.reset()
            return _json_response({"status": "ok"})
        return _json_response({"error": f"unknown control {method} {request.path}"}, 404)


def _json_response(data, status=200):
    return Response(json.dumps(data, indent=1), status=status, mimetype="application/json")


def _xml_escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
