"""Atlas error responses: the ``ApiError`` body shape (``error``, ``errorCode``, ``detail``, ``reason``,
``parameters``) that Atlas sends as ``application/json``."""

REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    410: "Gone",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

# Codes the spec's response components use for injected faults.
FAULT_CODES = {429: "RATE_LIMITED", 500: "UNEXPECTED_ERROR", 503: "SERVICE_UNAVAILABLE"}

UNAUTHORIZED_DETAIL = "You are not authorized for this resource."


class ApiError(Exception):
    """An error answer. ``parameters`` are plain values; the body wraps each as ``{"value": ...}``
    because the spec types ``parameters`` as a list of objects (real Atlas sends bare strings)."""

    def __init__(self, status, error_code, detail, parameters=(), headers=None, fields=None):
        super().__init__(f"{status} {error_code}: {detail}")
        self.status = status
        self.error_code = error_code
        self.detail = detail
        self.parameters = list(parameters)
        self.headers = dict(headers or {})
        self.fields = fields

    def body(self):
        body = {
            "detail": self.detail,
            "error": self.status,
            "errorCode": self.error_code,
            "parameters": [{"value": p} for p in self.parameters],
            "reason": REASONS.get(self.status, "Error"),
        }
        if self.fields:
            body["badRequestDetail"] = {"fields": [{"field": f, "description": d} for f, d in self.fields]}
        return body


def validation_error(fields, detail=None):
    """400 VALIDATION_ERROR (the spec's badRequest example) with ``badRequestDetail.fields``."""
    fields = list(fields)
    text = detail or "; ".join(f"{f}: {d}" for f, d in fields)
    return ApiError(400, "VALIDATION_ERROR", text, fields=fields)


def unauthorized():
    # Real Atlas carries no usable code here (clients print `Error code: ""`); the spec requires the
    # field, so it is present and empty.
    return ApiError(401, "", UNAUTHORIZED_DETAIL)


def group_not_found(group_id):
    return ApiError(404, "GROUP_NOT_FOUND", f"No group with ID {group_id} exists.", [group_id])


def role_not_found(group_id, role_id):
    return ApiError(404, "CLOUD_PROVIDER_ACCESS_ROLE_NOT_FOUND", f"No cloud provider access role with ID {role_id} exists in group {group_id}.", [role_id])


def role_not_authorized(role_id):
    detail = f"The specified Cloud Provider Access role ({role_id}) has not been authorized."
    return ApiError(400, "CLOUD_PROVIDER_ACCESS_ROLE_NOT_AUTHORIZED", detail, [role_id])


def cannot_assume_role(arn, reasons=()):
    detail = f"Atlas cannot assume the specified role ({arn})."
    if reasons:
        detail += " [emulator: " + "; ".join(reasons) + "]"
    return ApiError(400, "CANNOT_ASSUME_ROLE", detail, [arn])


def invalid_aws_credentials(reasons=()):
    detail = "The AWS credentials or IAM role cannot use the customer master key."
    if reasons:
        detail += " [emulator: " + "; ".join(reasons) + "]"
    return ApiError(400, "INVALID_AWS_CREDENTIALS", detail)


def cluster_not_found(group_id, name):
    return ApiError(404, "CLUSTER_NOT_FOUND", f"No cluster named {name} exists in group {group_id}.", [name, group_id])


def invalid_version():
    return ApiError(406, "INVALID_VERSION_DATE", "Invalid accept header or version date.")


def fault(status, error_code=None, retry_after=None):
    code = error_code or FAULT_CODES.get(status) or ("UNEXPECTED_ERROR" if status >= 500 else "VALIDATION_ERROR")
    headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else {}
    detail = "Rate limit exceeded. Retry after the period in the Retry-After header." if status == 429 else "Injected fault."
    return ApiError(status, code, detail, headers=headers)


def org_not_found(org_id):
    # The spec's only 404 example is RESOURCE_NOT_FOUND ("just an example"); Atlas names its not-found
    # codes after the resource (GROUP_NOT_FOUND, CLUSTER_NOT_FOUND), for organizations ORG_NOT_FOUND.
    return ApiError(404, "ORG_NOT_FOUND", f"No organization with ID {org_id} exists.", [org_id])


def resource_not_found(what, parameters=()):
    """404 RESOURCE_NOT_FOUND, the spec's notFound example, for resources without a code of their own."""
    return ApiError(404, "RESOURCE_NOT_FOUND", f"Cannot find resource {what}.", parameters)
