# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The one bounded wait every step uses: the authorization while IAM propagates, ``valid``, clusters IDLE."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import time

Polled = collections.namedtuple("Polled", ["done", "attempts", "elapsed"])


def poll(check, timeout, interval, max_interval=None, sleep=None, clock=None, log=None):
    """Call ``check()`` until it returns True or ``timeout`` seconds pass (0: once).

    Between calls it sleeps ``interval`` seconds, doubling up to ``max_interval`` (None: the interval stays),
    never past the deadline; ``log(seconds)`` is told each wait. Errors of ``check()`` propagate.
    """
    sleep = sleep or time.sleep
    clock = clock or time.monotonic
    started = clock()
    deadline = started + max(timeout, 0)
    delay = interval
    attempts = 0
    while True:
        attempts += 1
        if check():
            return Polled(True, attempts, clock() - started)
        remaining = deadline - clock()
        if remaining <= 0:
            return Polled(False, attempts, clock() - started)
        wait = min(delay, remaining)
        if log is not None:
            log(wait)
        sleep(wait)
        if max_interval is not None:
            delay = min(delay * 2, max_interval)
