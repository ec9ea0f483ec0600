# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether an IAM role may use a KMS key the way Atlas uses it, decided from the policies alone.

Atlas assumes the role and calls kms:Encrypt, kms:Decrypt and kms:DescribeKey on the key from its
control plane. This file reads the role's identity policies (inline, attached, permissions
boundary) and evaluates them with the key policy by AWS's rules: an explicit Deny anywhere wins; in
the key's own account a key-policy statement naming the role is enough, one naming the account
delegates to the identity policies; for a key in another account both the key policy and an
identity policy must allow. Wildcards in actions, resources and principals count, and so do the
conditions Atlas's requests meet. ``aws:SourceIp`` is checked against Atlas's control-plane
addresses when they are known.

Every answer is three-valued: True, False, or None when the policies depend on something the
evaluation cannot know (a condition key, a policy variable, unknown source addresses). None is
reported as unchecked, never as a failure.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import ipaddress
import json
import re

from ansible_collections.cmk.atlas.plugins.module_utils._errors import CmkAtlasError
from ansible_collections.cmk.atlas.plugins.module_utils.aws.arn import parse_role_arn
from ansible_collections.cmk.atlas.plugins.module_utils.aws.connection import AwsError
from ansible_collections.cmk.atlas.plugins.module_utils.policy.document import KMS_ACCESS_ACTIONS, load_policy

SOURCE_IP_KEY = "aws:sourceip"

# Keys that Atlas's direct calls to the public KMS endpoint do not carry: AWS treats them as absent.
_ABSENT_KEYS = frozenset(
    (
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
        "aws:referer",
        "aws:multifactorauthpresent",
        "aws:multifactorauthage",
        "kms:viaservice",
        "kms:grantisforawsresource",
    )
)
# Over private networking the call comes through a VPC endpoint whose identifiers are Atlas's.
_PRIVATE_NETWORK_KEYS = frozenset(("aws:sourcevpc", "aws:sourcevpce", "aws:vpcsourceip", SOURCE_IP_KEY))

# Operator (lower case) -> (comparison, ignore case, negated).
_OPERATORS = {
    "stringequals": ("equals", False, False),
    "stringnotequals": ("equals", False, True),
    "stringequalsignorecase": ("equals", True, False),
    "stringnotequalsignorecase": ("equals", True, True),
    "stringlike": ("like", False, False),
    "stringnotlike": ("like", False, True),
    "arnequals": ("like", False, False),
    "arnlike": ("like", False, False),
    "arnnotequals": ("like", False, True),
    "arnnotlike": ("like", False, True),
    "bool": ("equals", True, False),
    "ipaddress": ("ip", False, False),
    "notipaddress": ("ip", False, True),
}
_ACCOUNT_RE = re.compile(r"^\d{12}$")
_ROOT_ARN_RE = re.compile(r"^arn:aws(?:-[a-z]+)*:iam::(\d{12}):root$")
_VARIABLE_RE = re.compile(r"\$\{[^}]*\}")

DIRECT = "direct"
ACCOUNT = "account"


# -- three-valued logic ------------------------------------------------------------------------


def all_of(*values):
    """Kleene AND: False wins, then None (cannot tell), else True."""
    if any(value is False for value in values):
        return False
    if any(value is None for value in values):
        return None
    return True


def any_of(*values):
    """Kleene OR: True wins, then None, else False."""
    if any(value is True for value in values):
        return True
    if any(value is None for value in values):
        return None
    return False


def negate(value):
    return None if value is None else not value


# -- the request Atlas makes -------------------------------------------------------------------

Request = collections.namedtuple("Request", ["role_arn", "role_account", "key_arn", "key_account", "key_region", "source", "private_networking"])
"""One call Atlas makes: as ``role_arn`` on ``key_arn``, from ``source`` (an ip_network, or None when unknown)."""


def _context_values(request):
    return {
        "aws:principalarn": [request.role_arn],
        "aws:principalaccount": [request.role_account],
        "aws:principaltype": ["AssumedRole"],
        "aws:securetransport": ["true"],
        "aws:requestedregion": [request.key_region],
        "aws:viaawsservice": ["false"],
        "aws:principalisawsservice": ["false"],
        "kms:calleraccount": [request.role_account],
    }


def _as_list(value):
    if isinstance(value, list):
        return value
    return [value]


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _glob(pattern, value, ignore_case):
    regex = "".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    return re.fullmatch(regex, value, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None


def _networks(values):
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:
            continue
    return networks


def _ip_in(source, values):
    """Whether every address of ``source`` is in ``values`` (True), none is (False), or some are (None)."""
    networks = [network for network in _networks(values) if network.version == source.version]
    if any(source.subnet_of(network) for network in networks):
        return True
    if any(source.overlaps(network) for network in networks):
        return None
    return False


# -- conditions --------------------------------------------------------------------------------

Condition = collections.namedtuple("Condition", ["value", "ip_blocked", "ip_sensitive", "notes"])
"""A condition block's value (three-valued); ``ip_blocked``: False only because of ``aws:SourceIp``;
``ip_sensitive``: it tests ``aws:SourceIp``; ``notes``: why it could not be decided."""


def _split_operator(operator):
    name = operator
    set_operator = None
    for prefix in ("forallvalues:", "foranyvalue:"):
        if name.lower().startswith(prefix):
            set_operator, name = prefix[:-1], name[len(prefix) :]
    if_exists = name.lower().endswith("ifexists") and len(name) > len("ifexists")
    if if_exists:
        name = name[: -len("ifexists")]
    return name.lower(), set_operator, if_exists


def _pair(operator, key, expected, request, values):
    """(value, note) for one operator and key of a condition."""
    name, set_operator, if_exists = _split_operator(operator)
    key_lower = key.lower()
    expected = [_text(item) for item in _as_list(expected)]
    if request.private_networking and key_lower in _PRIVATE_NETWORK_KEYS:
        return None, f"{key} (Atlas reaches KMS over private networking, from addresses it does not publish)"
    if key_lower == SOURCE_IP_KEY:
        if request.source is None:
            return None, f"{key} (Atlas's control-plane addresses are not known)"
        if name not in ("ipaddress", "notipaddress"):
            return None, f"{operator} on {key}"
        inside = _ip_in(request.source, expected)
        if inside is None:
            return None, f"{key}: Atlas address block {request.source} is only partly in {', '.join(expected)}"
        return (not inside) if name == "notipaddress" else inside, None
    if key_lower in values:
        actual = values[key_lower]
    elif key_lower in _ABSENT_KEYS:
        actual = None
    else:
        return None, f"condition key {key}"
    if name == "null":
        wants_absent = bool(expected) and expected[0].lower() == "true"
        return (actual is None) == wants_absent, None
    spec = _OPERATORS.get(name)
    if spec is None:
        return None, f"condition operator {operator}"
    if any(_VARIABLE_RE.search(item) for item in expected):
        return None, f"a policy variable in the {key} condition"
    comparison, ignore_case, negated = spec
    if actual is None:
        if if_exists or set_operator == "forallvalues":
            return True, None
        if set_operator == "foranyvalue" or not negated:
            return False, None
        return True, None
    hits = []
    for item in actual:
        if comparison == "like":
            hit = any(_glob(pattern, item, ignore_case) for pattern in expected)
        else:
            hit = any(item.lower() == pattern.lower() if ignore_case else item == pattern for pattern in expected)
        hits.append(not hit if negated else hit)
    return (all(hits) if set_operator == "forallvalues" else any(hits)), None


def evaluate_condition(block, request):
    """The Condition element of a statement for ``request``, as a Condition."""
    if not block:
        return Condition(True, False, False, [])
    if not isinstance(block, dict):
        return Condition(None, False, False, ["a malformed Condition element"])
    values = _context_values(request)
    results = []
    notes = []
    for operator, pairs in block.items():
        if not isinstance(pairs, dict):
            results.append((None, False))
            notes.append(f"a malformed condition {operator}")
            continue
        for key, expected in pairs.items():
            value, note = _pair(str(operator), str(key), expected, request, values)
            results.append((value, key.lower() == SOURCE_IP_KEY))
            if note:
                notes.append(note)
    value = all_of(*(item[0] for item in results))
    ip_sensitive = any(is_ip for _value, is_ip in results)
    ip_blocked = value is False and all(item is True for item, is_ip in results if not is_ip) and any(item is False for item, is_ip in results if is_ip)
    return Condition(value, ip_blocked, ip_sensitive, notes)


# -- statements and policies -------------------------------------------------------------------


def _statements(document):
    statements = (document or {}).get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    return [statement for statement in statements if isinstance(statement, dict)]


def _action_matches(statement, action):
    if "Action" in statement:
        return any(isinstance(item, str) and _glob(item, action, True) for item in _as_list(statement["Action"]))
    if "NotAction" in statement:
        return not any(isinstance(item, str) and _glob(item, action, True) for item in _as_list(statement["NotAction"]))
    return False


def _resource_matches(statement, resource):
    """Three-valued: a policy variable in a pattern that could match makes it undecidable."""
    if "Resource" in statement:
        patterns, negated = _as_list(statement["Resource"]), False
    elif "NotResource" in statement:
        patterns, negated = _as_list(statement["NotResource"]), True
    else:
        return False
    hit = False
    for pattern in patterns:
        if not isinstance(pattern, str):
            continue
        if _VARIABLE_RE.search(pattern):
            if _glob(_VARIABLE_RE.sub("*", pattern), resource, False):
                hit = None if hit is False else hit
            continue
        if _glob(pattern, resource, False):
            hit = True
            break
    return negate(hit) if negated else hit


def _named(block, request):
    """How a Principal element names the role: DIRECT (the role or everyone), ACCOUNT (its account) or None."""
    if block == "*":
        return DIRECT
    if not isinstance(block, dict):
        return None
    best = None
    for value in _as_list(block.get("AWS", [])):
        if not isinstance(value, str):
            continue
        if value in ("*", request.role_arn):
            return DIRECT
        root = _ROOT_ARN_RE.match(value)
        if value == request.role_account or (root and root.group(1) == request.role_account):
            best = ACCOUNT
    return best


def _label(statement, index):
    return f"statement {statement['Sid']}" if statement.get("Sid") else f"statement #{index + 1}"


Outcome = collections.namedtuple("Outcome", ["allow", "allow_direct", "deny", "denials", "ip_blocked", "ip_denials", "notes"])
"""One policy for one request. ``allow``: some Allow applies (three-valued), ``allow_direct``: one
naming the role itself (key policies), ``deny``: some Deny applies; ``denials``/``ip_blocked``/
``ip_denials``: labels of the Denies that apply, the Allows only ``aws:SourceIp`` keeps from applying,
the Denies that apply because of ``aws:SourceIp``; ``notes``: what could not be decided."""


def evaluate_policy(document, action, request, resource_policy=False):
    """Evaluate one policy document (identity or, with ``resource_policy``, the key policy) for ``request``."""
    allows, directs, denies = [], [], []
    denials, ip_blocked, ip_denials, notes = [], [], [], []
    for index, statement in enumerate(_statements(document)):
        if not _action_matches(statement, action):
            continue
        resource = _resource_matches(statement, request.key_arn)
        if resource is False:
            continue
        via = DIRECT
        if resource_policy:
            if "Principal" in statement:
                via = _named(statement["Principal"], request)
            elif "NotPrincipal" in statement:
                via = None if _named(statement["NotPrincipal"], request) else DIRECT
            else:
                via = None
            if via is None:
                continue
        condition = evaluate_condition(statement.get("Condition"), request)
        applies = all_of(resource, condition.value)
        label = _label(statement, index)
        if applies is None:
            notes.extend(f"{label} depends on {note}" for note in condition.notes or ["a policy variable in Resource"])
        effect = statement.get("Effect")
        if effect == "Deny":
            denies.append(applies)
            if applies is True:
                denials.append(label)
                if condition.ip_sensitive:
                    ip_denials.append(label)
        elif effect == "Allow":
            allows.append(applies)
            if via == DIRECT:
                directs.append(applies)
            if condition.ip_blocked and resource is True:
                ip_blocked.append(label)
    return Outcome(any_of(*allows), any_of(*directs), any_of(*denies), denials, ip_blocked, ip_denials, notes)


# -- the decision --------------------------------------------------------------------------------

Documents = collections.namedtuple("Documents", ["identity", "boundary", "key_policy"])
"""What the decision reads: ``identity`` [(label, document)], ``boundary`` (label, document) or None,
``key_policy`` the key policy or None when it could not be read."""

Report = collections.namedtuple("Report", ["role_ok", "key_ok", "source_ip_ok", "role_problems", "key_problems", "source_ip_problems", "unchecked"])
"""Whether the role side (identity policies, boundary), the key side (key policy) and the
``aws:SourceIp`` conditions let Atlas use the key (three-valued each, ``key_ok`` None when the key
policy was not read), with readable problems and what could not be decided."""


class _Problems:
    """Problems merged over actions and addresses: 'text from 198.51.100.10/32, 198.51.100.11/32 (kms:Decrypt, kms:Encrypt)'."""

    def __init__(self, joiner=" from "):
        self._items = collections.OrderedDict()
        self._joiner = joiner

    def add(self, text, action, source=None):
        actions, sources = self._items.setdefault(text, (set(), []))
        actions.add(action)
        if source is not None and str(source) not in sources:
            sources.append(str(source))

    def texts(self):
        return [
            f"{text}{self._joiner + ', '.join(sources) if sources else ''} ({', '.join(sorted(actions))})" for text, (actions, sources) in self._items.items()
        ]

    def __bool__(self):
        return bool(self._items)


def _mentions_source_ip(documents):
    texts = [json.dumps(document) for _label, document in documents.identity]
    if documents.boundary:
        texts.append(json.dumps(documents.boundary[1]))
    if documents.key_policy:
        texts.append(json.dumps(documents.key_policy))
    return any(SOURCE_IP_KEY in text.lower() for text in texts)


def needs_source_addresses(documents):
    """Whether any of the documents has an ``aws:SourceIp`` condition (so the addresses are worth fetching)."""
    return _mentions_source_ip(documents)


def evaluate_access(role_arn, key_arn, key_region, documents, sources=None, private_networking=False, actions=KMS_ACCESS_ACTIONS):
    """Decide whether the role may call ``actions`` on the key from every address in ``sources``.

    ``sources``: Atlas's control-plane addresses or blocks (strings), None when unknown. Returns a Report.
    """
    role = parse_role_arn(role_arn, "role")
    key_account = key_arn.split(":")[4]
    same_account = key_account == role.account
    networks = _networks(sources) if sources else []
    addresses = networks or [None]
    role_problems, key_problems, ip_problems = _Problems(), _Problems(), _Problems(": ")
    unchecked = []
    role_values, key_values = [], []
    ip_sensitive = _mentions_source_ip(documents)
    for source in addresses:
        request = Request(role_arn, role.account, key_arn, key_account, key_region, source, private_networking)
        # Addresses only matter (and are only named) when some policy tests aws:SourceIp.
        where = source if ip_sensitive else None
        for action in actions:
            identity = [(label, evaluate_policy(document, action, request)) for label, document in documents.identity]
            boundary = evaluate_policy(documents.boundary[1], action, request) if documents.boundary else None
            key = evaluate_policy(documents.key_policy, action, request, resource_policy=True) if documents.key_policy is not None else None
            for label, outcome in identity + ([(f"permissions boundary {documents.boundary[0]}", boundary)] if boundary else []):
                unchecked.extend(f"{label}: {note}" for note in outcome.notes)
            if key is not None:
                unchecked.extend(f"key policy: {note}" for note in key.notes)

            identity_allow = any_of(*(outcome.allow for _label, outcome in identity))
            identity_deny = any_of(*(outcome.deny for _label, outcome in identity))
            boundary_ok = True if boundary is None else all_of(boundary.allow, negate(boundary.deny))
            if key is None:
                key_direct = key_grant = key_deny = None
            else:
                key_direct, key_grant, key_deny = key.allow_direct, key.allow, key.deny
            # In the key's account a key policy naming the role is enough; otherwise an identity policy must allow too.
            identity_needed = negate(key_direct) if same_account else True
            role_ok = all_of(any_of(negate(identity_needed), identity_allow), negate(identity_deny), boundary_ok)
            key_ok = all_of(key_grant, negate(key_deny))
            role_values.append(role_ok)
            key_values.append(key_ok)

            ip_blocked = []
            for label, outcome in identity:
                for denial in outcome.denials:
                    role_problems.add(f"explicit Deny in {label} ({denial})", action, where)
                if role_ok is False and outcome.ip_blocked:
                    ip_blocked.append(label)
                    ip_problems.add(f"{label} allows it only from aws:SourceIp addresses that exclude Atlas's control-plane addresses", action, source)
                for denial in outcome.ip_denials:
                    ip_problems.add(f"{label} ({denial}) denies it by aws:SourceIp to Atlas's control-plane addresses", action, source)
            if boundary is not None:
                if boundary.deny is True:
                    role_problems.add(f"explicit Deny in permissions boundary {documents.boundary[0]}", action, where)
                elif boundary.allow is False:
                    role_problems.add(f"permissions boundary {documents.boundary[0]} does not allow it", action, where)
                if role_ok is False and boundary.ip_blocked:
                    ip_problems.add(
                        f"permissions boundary {documents.boundary[0]} allows it only from aws:SourceIp addresses that exclude Atlas's control-plane addresses",
                        action,
                        source,
                    )
            if identity_allow is False and identity_needed is True and identity_deny is not True:
                if ip_blocked:
                    verb = "allows" if len(ip_blocked) == 1 else "allow"
                    text = f"{', '.join(ip_blocked)} of {role_arn} {verb} it on {key_arn} only from aws:SourceIp addresses that exclude Atlas's (see source_ip)"
                    role_problems.add(text, action)
                else:
                    scope = "" if same_account else " (a key in another account needs an identity policy as well as the key policy)"
                    role_problems.add(f"no identity policy of {role_arn} allows it on {key_arn}{scope}", action, where)
            if key is not None:
                for denial in key.denials:
                    key_problems.add(f"explicit Deny in the key policy ({denial})", action, where)
                if key_ok is False and key.ip_blocked:
                    ip_problems.add("the key policy allows it only from aws:SourceIp addresses that exclude Atlas's control-plane addresses", action, source)
                for denial in key.ip_denials:
                    ip_problems.add(f"the key policy ({denial}) denies it by aws:SourceIp to Atlas's control-plane addresses", action, source)
                if key_grant is False:
                    key_problems.add(f"the key policy of {key_arn} names neither {role_arn} nor its account {role.account}", action, where)

    role_ok = all_of(*role_values)
    key_ok = all_of(*key_values) if documents.key_policy is not None else None
    if not ip_sensitive:
        source_ip_ok = True
    elif ip_problems:
        source_ip_ok = False
    elif not networks or private_networking:
        source_ip_ok = None
    else:
        source_ip_ok = True
    return Report(role_ok, key_ok, source_ip_ok, role_problems.texts(), key_problems.texts(), ip_problems.texts(), sorted(set(unchecked)))


# -- reading the documents -------------------------------------------------------------------------

RolePolicies = collections.namedtuple("RolePolicies", ["arn", "name", "account", "trust_policy", "identity", "boundary"])
"""An IAM role's trust policy, identity policies [(label, document)] and permissions boundary (label, document) or None."""


class RoleNotFoundError(CmkAtlasError):
    """The IAM role does not exist in the account the AWS credentials act in."""


def _managed_policy(aws, policy_arn):
    policy = aws.call("iam", "get_policy", PolicyArn=policy_arn)["Policy"]
    version = aws.call("iam", "get_policy_version", PolicyArn=policy_arn, VersionId=policy["DefaultVersionId"])["PolicyVersion"]
    return load_policy(version["Document"], f"managed policy {policy_arn}")


def read_role_policies(aws, role_arn):
    """Every policy that decides what ``role_arn`` may do (IAM reads only); RoleNotFoundError when it does not exist."""
    role = parse_role_arn(role_arn, "role")
    try:
        raw = aws.call("iam", "get_role", RoleName=role.name)["Role"]
    except AwsError as exc:
        if exc.code == "NoSuchEntity":
            raise RoleNotFoundError(f"IAM role {role_arn} does not exist") from None
        raise
    identity = []
    names = aws.paginate("iam", "list_role_policies", RoleName=role.name).get("PolicyNames", [])
    for name in sorted(names):
        document = aws.call("iam", "get_role_policy", RoleName=role.name, PolicyName=name)["PolicyDocument"]
        identity.append((f"inline policy {name}", load_policy(document, f"inline policy {name}")))
    attached = aws.paginate("iam", "list_attached_role_policies", RoleName=role.name).get("AttachedPolicies", [])
    for policy in sorted(attached, key=lambda item: item["PolicyArn"]):
        identity.append((f"managed policy {policy['PolicyArn']}", _managed_policy(aws, policy["PolicyArn"])))
    boundary = None
    boundary_arn = (raw.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
    if boundary_arn:
        boundary = (boundary_arn, _managed_policy(aws, boundary_arn))
    trust = load_policy(raw.get("AssumeRolePolicyDocument"), "trust policy")
    return RolePolicies(raw.get("Arn", role_arn), role.name, role.account, trust, identity, boundary)


def control_plane_addresses(body):
    """Atlas's outbound control-plane addresses on AWS (every region: Atlas may call from any) from listControlPlaneIpAddresses."""
    outbound = ((body or {}).get("outbound") or {}).get("aws") or {}
    found = []
    for region in sorted(outbound):
        for value in outbound[region] or []:
            if value not in found:
                found.append(value)
    return found
