"""IAM policy evaluation for the checks Atlas makes and moto does not.

Pure functions over policy documents; the caller fetches the documents (``aws_view``). Written from the
AWS evaluation rules, independently of the collection's own policy code, so a mistake there cannot hide
behind the same mistake here.

Rules implemented (see atlas/DESIGN.md):
- an explicit Deny in any applicable policy wins;
- same account: a key policy statement naming the principal (or ``*``) is enough on its own, a
  statement naming the account delegates to IAM and then needs an identity-policy Allow;
- other account: the key policy must allow the principal or its account AND an identity policy must allow;
- a permissions boundary, when present, must allow as well;
- ``Action``/``NotAction``, ``Resource``/``NotResource``, ``Principal``/``NotPrincipal``, ``*`` and ``?``;
- condition keys the request does not carry are handled the AWS way (negated operators and
  ``...IfExists`` match, the rest do not); keys the emulator cannot know make the statement not apply.
"""

import ipaddress
import re
from dataclasses import dataclass, field

KMS_ACTIONS = ("kms:Encrypt", "kms:Decrypt", "kms:DescribeKey")

# Keys that are well defined for Atlas's calls and simply not present (public endpoint, direct call,
# no AWS service in between). Any other key the context does not carry is unknown to the emulator.
ABSENT_KEYS = frozenset(
    {
        "aws:sourcevpc",
        "aws:sourcevpce",
        "aws:vpcsourceip",
        "aws:sourcearn",
        "aws:sourceaccount",
        "aws:sourceorgid",
        "aws:sourceorgpaths",
        "aws:calledvia",
        "aws:calledviafirst",
        "aws:calledvialast",
        "kms:viaservice",
        "aws:referer",
    }
)

STRING_OPS = {
    "stringequals": ("eq", False, False),
    "stringnotequals": ("eq", False, True),
    "stringequalsignorecase": ("eq", True, False),
    "stringnotequalsignorecase": ("eq", True, True),
    "stringlike": ("like", False, False),
    "stringnotlike": ("like", False, True),
    "arnequals": ("like", False, False),
    "arnlike": ("like", False, False),
    "arnnotequals": ("like", False, True),
    "arnnotlike": ("like", False, True),
    "bool": ("eq", True, False),
    "ipaddress": ("ip", False, False),
    "notipaddress": ("ip", False, True),
}

ACCOUNT_ID = re.compile(r"^\d{12}$")
ROOT_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):root$")


@dataclass(frozen=True)
class Principal:
    """Who makes the call: ``arn`` of the role/user (or account root), and its ``account``."""

    arn: str
    account: str


@dataclass
class Context:
    """Request context: condition key (lower case) -> list of string values."""

    values: dict = field(default_factory=dict)

    @classmethod
    def of(cls, **values):
        return cls({k.replace("__", ":").lower(): _strings(v) for k, v in values.items() if v is not None})

    def with_values(self, **values):
        merged = dict(self.values)
        for key, value in values.items():
            name = key.replace("__", ":").lower()
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = _strings(value)
        return Context(merged)


@dataclass
class Outcome:
    """Result of one statement or policy: ``effect`` is "Allow", "Deny" or None; ``notes`` explain skips."""

    effect: str = None
    via: str = None  # for resource policies: "direct" (names the principal or *) or "account"
    statement: str = None
    notes: list = field(default_factory=list)


def _strings(value):
    if value is None:
        return []
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_string(v) for v in value]
    return [_string(value)]


def _string(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def statements(document):
    """The statements of a policy document (dict or JSON already decoded)."""
    if not document:
        return []
    stmts = document.get("Statement", []) if isinstance(document, dict) else []
    if isinstance(stmts, dict):
        stmts = [stmts]
    return [s for s in stmts if isinstance(s, dict)]


def _glob(pattern, value, ignore_case=False):
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    flags = (re.IGNORECASE | re.DOTALL) if ignore_case else re.DOTALL
    return re.fullmatch(regex, value, flags) is not None


def _substitute(pattern, context):
    """Policy variables (``${aws:username}``): known single-valued keys are substituted, others never match."""
    if "${" not in pattern:
        return pattern
    unresolved = False

    def repl(match):
        nonlocal unresolved
        name = match.group(1)
        if name in ("*", "?", "$"):
            return name
        values = context.values.get(name.lower())
        if not values or len(values) != 1:
            unresolved = True
            return ""
        return values[0]

    result = re.sub(r"\$\{([^}]+)\}", repl, pattern)
    return None if unresolved else result


def action_matches(stmt, action):
    if "Action" in stmt:
        return any(_glob(p, action, ignore_case=True) for p in _strings(stmt["Action"]))
    if "NotAction" in stmt:
        return not any(_glob(p, action, ignore_case=True) for p in _strings(stmt["NotAction"]))
    return False


def resource_matches(stmt, resource, context, required=True):
    if "Resource" in stmt:
        patterns = [_substitute(p, context) for p in _strings(stmt["Resource"])]
        return any(p is not None and _glob(p, resource) for p in patterns)
    if "NotResource" in stmt:
        patterns = [_substitute(p, context) for p in _strings(stmt["NotResource"])]
        return not any(p is not None and _glob(p, resource) for p in patterns)
    # Trust policies have no Resource element; identity and key policies must have one.
    return not required


def principal_match(block, principal):
    """How a Principal element names ``principal``: "direct", "account" or None."""
    if block == "*":
        return "direct"
    if not isinstance(block, dict):
        return None
    best = None
    for value in _strings(block.get("AWS")):
        if value == "*":
            return "direct"
        if value == principal.arn:
            return "direct"
        root = ROOT_ARN.match(value)
        if (ACCOUNT_ID.match(value) and value == principal.account) or (root and root.group(1) == principal.account):
            # A root ARN as the caller itself (Atlas's account in a trust policy) is a direct match.
            best = "direct" if principal.arn == f"arn:aws:iam::{principal.account}:root" else "account"
    return best


def _compare(kind, ignore_case, actual, expected):
    if kind == "ip":
        try:
            address = ipaddress.ip_address(actual)
        except ValueError:
            return False
        for item in expected:
            try:
                if address in ipaddress.ip_network(item, strict=False):
                    return True
            except ValueError:
                continue
        return False
    if kind == "like":
        return any(_glob(e, actual, ignore_case) for e in expected)
    if ignore_case:
        return any(actual.lower() == e.lower() for e in expected)
    return actual in expected


def conditions_hold(block, context):
    """``(holds, notes)`` for a Condition element."""
    if not block:
        return True, []
    if not isinstance(block, dict):
        return False, ["malformed Condition element"]
    for operator, pairs in block.items():
        name = operator
        set_op = None
        for prefix in ("ForAnyValue:", "ForAllValues:"):
            if name.startswith(prefix):
                set_op, name = prefix[:-1], name[len(prefix) :]
        if_exists = name.endswith("IfExists") and name != "IfExists"
        if if_exists:
            name = name[: -len("IfExists")]
        if not isinstance(pairs, dict):
            return False, [f"malformed condition {operator}"]
        for key, raw_expected in pairs.items():
            k = key.lower()
            expected = _strings(raw_expected)
            if k in context.values:
                actual = context.values[k]
            elif k in ABSENT_KEYS:
                actual = None
            else:
                return False, [f"condition key {key} is unknown to the emulator, so the statement does not apply"]
            if name.lower() == "null":
                want_absent = bool(expected) and expected[0].lower() == "true"
                if (actual is None) != want_absent:
                    return False, []
                continue
            spec = STRING_OPS.get(name.lower())
            if spec is None:
                return False, [f"condition operator {operator} is not supported by the emulator, so the statement does not apply"]
            kind, ignore_case, negated = spec
            if actual is None:
                if if_exists or set_op == "ForAllValues":
                    continue
                if set_op == "ForAnyValue" or not negated:
                    return False, []
                continue  # a negated operator matches when the key is not in the request
            hits = [_compare(kind, ignore_case, value, expected) for value in actual]
            if negated:
                hits = [not h for h in hits]
            holds = all(hits) if set_op == "ForAllValues" else any(hits)
            if not holds:
                return False, []
    return True, []


def evaluate(document, action, resource, context, principal=None, resource_policy=False, resource_required=True):
    """Outcome of one policy for one request (Deny beats Allow; among Allows "direct" beats "account")."""
    outcome = Outcome()
    for index, stmt in enumerate(statements(document)):
        label = stmt.get("Sid") or f"#{index}"
        if not action_matches(stmt, action) or not resource_matches(stmt, resource, context, required=resource_required):
            continue
        via = None
        if resource_policy:
            if "Principal" in stmt:
                via = principal_match(stmt["Principal"], principal)
                if via is None:
                    continue
            elif "NotPrincipal" in stmt:
                if principal_match(stmt["NotPrincipal"], principal) is not None:
                    continue
                via = "direct"
            else:
                continue
        holds, notes = conditions_hold(stmt.get("Condition"), context)
        outcome.notes.extend(f"statement {label}: {n}" for n in notes)
        if not holds:
            continue
        effect = stmt.get("Effect")
        if effect == "Deny":
            return Outcome("Deny", via, label, outcome.notes)
        if effect == "Allow" and (outcome.effect is None or (outcome.via == "account" and via == "direct")):
            outcome.effect, outcome.via, outcome.statement = "Allow", via, label
    return outcome


def kms_decision(principal, action, key_arn, key_policy, identity_policies, boundary, context):
    """``(allowed, reason)`` for ``principal`` calling ``action`` on the key, by AWS's rules."""
    key_account = key_arn.split(":")[4]
    key_outcome = evaluate(key_policy, action, key_arn, context, principal=principal, resource_policy=True)
    notes = list(key_outcome.notes)
    if key_outcome.effect == "Deny":
        return False, f"explicit Deny in the key policy (statement {key_outcome.statement})"
    identity_allow = None
    for label, document in identity_policies:
        result = evaluate(document, action, key_arn, context)
        notes.extend(f"{label}: {n}" for n in result.notes)
        if result.effect == "Deny":
            return False, f"explicit Deny in identity policy {label} (statement {result.statement})"
        if result.effect == "Allow" and identity_allow is None:
            identity_allow = label
    if boundary is not None:
        result = evaluate(boundary[1], action, key_arn, context)
        if result.effect != "Allow":
            return False, f"the permissions boundary {boundary[0]} does not allow it"
    suffix = f" ({'; '.join(notes)})" if notes else ""
    if principal.account == key_account:
        if key_outcome.effect == "Allow" and key_outcome.via == "direct":
            return True, f"key policy statement {key_outcome.statement} names the principal"
        if key_outcome.effect == "Allow" and key_outcome.via == "account":
            if identity_allow:
                return True, f"key policy delegates to the account and {identity_allow} allows it"
            return False, f"no identity policy of {principal.arn} allows it on {key_arn}{suffix}"
        return False, f"the key policy neither names {principal.arn} nor delegates to account {key_account}{suffix}"
    if key_outcome.effect != "Allow":
        return False, f"the key policy in account {key_account} allows neither {principal.arn} nor account {principal.account}{suffix}"
    if not identity_allow:
        return False, f"no identity policy of {principal.arn} allows it on {key_arn} (needed for a key in another account){suffix}"
    return True, f"key policy statement {key_outcome.statement} and {identity_allow} allow it"


def kms_problems(principal, key_arn, key_policy, identity_policies, boundary, contexts, actions=KMS_ACTIONS):
    """Every (action, source) that is refused, as readable lines; empty when all are allowed."""
    problems = []
    for source, context in contexts:
        for action in actions:
            allowed, reason = kms_decision(principal, action, key_arn, key_policy, identity_policies, boundary, context)
            if not allowed:
                problems.append(f"{action} from {source} is denied: {reason}")
    return problems


def trust_problems(trust_policy, atlas_account_id, external_id, source_ips, other_external_id):
    """Why Atlas could not (or could too freely) assume a role with this trust policy; empty when fine.

    Atlas assumes the role as its account (``arn:aws:iam::<atlas>:root``) with ``sts:ExternalId``. It also
    requires that the role cannot be assumed without that external ID (confused-deputy protection).
    """
    atlas = Principal(f"arn:aws:iam::{atlas_account_id}:root", atlas_account_id)
    problems = []
    for ip in source_ips:
        base = Context.of(aws__SourceIp=ip, aws__PrincipalAccount=atlas_account_id, aws__SecureTransport=True)
        checks = (
            (external_id, True, f"does not let {atlas.arn} sts:AssumeRole with sts:ExternalId {external_id} from {ip}"),
            (None, False, f"lets {atlas.arn} sts:AssumeRole without any sts:ExternalId (Atlas requires the external ID condition)"),
            (other_external_id, False, f"lets {atlas.arn} sts:AssumeRole with an external ID other than {external_id}"),
        )
        for value, wanted, message in checks:
            context = base.with_values(sts__ExternalId=value)
            result = evaluate(trust_policy, "sts:AssumeRole", "*", context, principal=atlas, resource_policy=True, resource_required=False)
            if (result.effect == "Allow") != wanted:
                notes = f" ({'; '.join(result.notes)})" if result.notes else ""
                text = message
                if result.effect == "Deny" and wanted:
                    text = f"denies {atlas.arn} sts:AssumeRole from {ip} (statement {result.statement})"
                if f"the trust policy {text}{notes}" not in problems:
                    problems.append(f"the trust policy {text}{notes}")
    return problems
