# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module base every cmk.atlas module uses: connection options merged in, clients built on
first use, one failure path for Atlas, AWS and input errors, and the check-mode placeholder for
values that only exist after an earlier step has really run."""

from __future__ import absolute_import, division, print_function

import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.cmk.atlas.plugins.module_utils._errors import CmkAtlasError
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.client import (
    AtlasApiError,
    atlas_argument_spec,
    atlas_client_from_module,
)
from ansible_collections.cmk.atlas.plugins.module_utils.aws.connection import (
    AWS_MUTUALLY_EXCLUSIVE,
    AWS_REQUIRED_TOGETHER,
    AwsConnection,
    AwsDependencyError,
    AwsError,
    AwsOptionError,
    aws_argument_spec,
)

__metaclass__ = type

# What check mode returns for a value that only the real run can know (an Atlas role id, an
# external id, an ARN). Later modules accept it in check mode and plan around it.
UNKNOWN = "(known after apply)"


# Atlas project and cloud provider access role ids: 24 lowercase hexadecimal digits.
ATLAS_ID = re.compile(r"^[a-f0-9]{24}$")


class ModuleInputError(CmkAtlasError, ValueError):
    """A module option is wrong; raised before any write."""


def validate_project_id(value, option="project_id"):
    """``value`` when it is an Atlas project id (24 hexadecimal digits)."""
    if isinstance(value, str) and ATLAS_ID.match(value):
        return value
    shown = f"'{value}'" if isinstance(value, str) else repr(value)
    raise ModuleInputError(
        f"{option} {shown} is not an Atlas project id; expected 24 hexadecimal digits such as 5f1a2b3c4d5e6f7a8b9c0d1e "
        "(Project Settings in the Atlas UI, or the groupId in API paths)"
    )


def is_unknown(value):
    """True when ``value`` is, or contains, the check-mode placeholder."""
    if isinstance(value, str):
        return UNKNOWN in value
    if isinstance(value, dict):
        return any(is_unknown(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(is_unknown(item) for item in value)
    return False


# What an option keeps when the module only accepts it: its name, type, aliases and secrecy.
_ACCEPTED_KEYS = ("type", "elements", "aliases", "no_log")


def ignored_options(spec, keep=()):
    """``spec`` reduced to options that are accepted and ignored: no default, no fallback, nothing required.

    Every module of the group ``cmk.atlas.atlas`` accepts both the Atlas and the AWS connection
    options, so that one ``module_defaults`` for the group serves them all; a module that talks to
    one side only takes the other side's options this way. Names in ``keep`` are left out (the
    module has them already, such as ``validate_certs``).
    """
    return {name: {key: value for key, value in option.items() if key in _ACCEPTED_KEYS} for name, option in spec.items() if name not in keep}


class CmkAtlasModule:
    """AnsibleModule plus the Atlas and AWS connections a module asked for.

    ``atlas``/``aws`` say which connection options the module uses: ``True`` (required to work),
    ``False`` (accepted and ignored, see ``ignored_options``). Clients are built on first use, so a
    module that finds nothing to do on one side never imports that side's library.
    """

    def __init__(self, argument_spec, atlas=False, aws=False, supports_check_mode=True, **kwargs):
        spec = {}
        if atlas:
            spec.update(atlas_argument_spec())
        if aws:
            spec.update(aws_argument_spec())
            kwargs["required_together"] = list(kwargs.get("required_together", [])) + AWS_REQUIRED_TOGETHER
            kwargs["mutually_exclusive"] = list(kwargs.get("mutually_exclusive", [])) + AWS_MUTUALLY_EXCLUSIVE
        if not atlas:
            spec.update(ignored_options(atlas_argument_spec(), keep=spec))
        if not aws:
            spec.update(ignored_options(aws_argument_spec(), keep=spec))
        spec.update(argument_spec)
        self.module = AnsibleModule(argument_spec=spec, supports_check_mode=supports_check_mode, **kwargs)
        self.params = self.module.params
        self.check_mode = self.module.check_mode
        self._atlas = None
        self._aws = None
        self._warnings = []

    # -- connections ------------------------------------------------------------------------

    @property
    def atlas(self):
        """The Atlas Admin API client (fails the module on bad connection options)."""
        if self._atlas is None:
            self._atlas = atlas_client_from_module(self.module)
        return self._atlas

    @property
    def aws(self):
        """The AWS connection for the module's AWS options (fails the module on bad options)."""
        if self._aws is None:
            self._aws = self.aws_connection(self.params)
        return self._aws

    def aws_connection(self, params):
        """An AWS connection for ``params`` (e.g. the key owner's account), or a clear failure."""
        try:
            return AwsConnection(params)
        except AwsDependencyError as exc:
            self.module.fail_json(msg=str(exc), exception=exc.traceback)
        except AwsOptionError as exc:
            self.module.fail_json(msg=str(exc))
        return None  # fail_json does not return

    # -- results ----------------------------------------------------------------------------

    def warn(self, message):
        self.module.warn(message)

    def exit(self, changed, diff=None, **result):
        if diff is not None and self.module._diff:  # pylint: disable=protected-access
            result["diff"] = diff
        self.module.exit_json(changed=changed, **result)

    def fail(self, msg, **result):
        self.module.fail_json(msg=msg, **result)

    def fail_from(self, exc, **result):
        """Fail with the message an error carries; Atlas and AWS errors keep their codes in the result."""
        if isinstance(exc, AtlasApiError):
            self.module.fail_json(msg=str(exc), atlas_error=exc.as_dict(), **result)
        if isinstance(exc, AwsError):
            aws_error = {"code": exc.code, "service": exc.service, "operation": exc.operation, "status_code": exc.status_code}
            self.module.fail_json(msg=str(exc), aws_error=aws_error, **result)
        self.module.fail_json(msg=str(exc), **result)

    def run(self, logic):
        """Call ``logic(self)`` and turn the errors the collection raises into a clean failure."""
        try:
            logic(self)
        except CmkAtlasError as exc:
            self.fail_from(exc)

    # -- check-mode placeholders ------------------------------------------------------------

    def known(self, name, value):
        """True when ``value`` is known. A placeholder is fine in check mode and an error otherwise."""
        if not is_unknown(value):
            return True
        if self.check_mode:
            return False
        raise ModuleInputError(f"{name} is '{UNKNOWN}': it comes from an earlier task that ran in check mode; run the play without --check")


def diff_of(before, after, before_header=None, after_header=None):
    """An Ansible diff of two JSON-serialisable states (``None`` means absent)."""
    diff = {"before": before if before is not None else {}, "after": after if after is not None else {}}
    if before_header:
        diff["before_header"] = before_header
    if after_header:
        diff["after_header"] = after_header
    return diff
