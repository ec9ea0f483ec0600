# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark-only callback: the wall-clock moment of every play and task start, written as JSON to
$CMK_ATLAS_TIMING_FILE when the playbook ends (tests/benchmarks/bench.py splits a run's time by task)."""

from __future__ import absolute_import, division, print_function

import json
import os
import time

from ansible.plugins.callback import CallbackBase

__metaclass__ = type

DOCUMENTATION = """
name: bench_timing
type: aggregate
short_description: Record when each play and task starts, for the benchmark
description:
  - Writes the start time of the playbook, of every play and of every task, and the end time, to C(CMK_ATLAS_TIMING_FILE).
options: {}
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timing"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._path = os.environ.get("CMK_ATLAS_TIMING_FILE")
        self._events = []

    def _event(self, kind, name=""):
        self._events.append({"kind": kind, "name": name, "time": time.time()})

    def v2_playbook_on_start(self, playbook):
        self._event("playbook")

    def v2_playbook_on_play_start(self, play):
        self._event("play", play.get_name())

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._event("task", task.get_name())

    def v2_playbook_on_handler_task_start(self, task):
        self._event("task", task.get_name())

    def v2_playbook_on_stats(self, stats):
        self._event("end")
        if self._path:
            with open(self._path, "w") as handle:
                json.dump(self._events, handle)
