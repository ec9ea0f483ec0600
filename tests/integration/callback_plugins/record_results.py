# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only callback: append every task result as one JSON line to $CMK_ATLAS_RESULTS_FILE.

The default callback still prints to stdout, so tests can read both the human output
(diffs, warnings, -vvv) and the exact results.
"""

from __future__ import absolute_import, division, print_function

import json
import os

from ansible.plugins.callback import CallbackBase

__metaclass__ = type

DOCUMENTATION = """
name: record_results
type: aggregate
short_description: Record task results as JSON lines for tests
description:
  - Appends one JSON object a task result to the file named by C(CMK_ATLAS_RESULTS_FILE).
options: {}
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "record_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._path = os.environ.get("CMK_ATLAS_RESULTS_FILE")

    def _record(self, result, status):
        if not self._path:
            return
        task = result._task  # pylint: disable=protected-access
        entry = {
            "host": result._host.get_name(),  # pylint: disable=protected-access
            "task": task.get_name(),
            "action": task.action,
            "status": status,
            "result": self._clean(result._result),  # pylint: disable=protected-access
        }
        with open(self._path, "a") as handle:
            handle.write(json.dumps(entry, default=str) + "\n")

    def _clean(self, value):
        return json.loads(json.dumps(value, default=str))

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")
