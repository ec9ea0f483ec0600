# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The procedure engine: read every resource once, plan the end state and judge it, then apply.

A procedure builds a ``Plan`` from what it read: the ordered writes (``Step``), the diffs, warnings
and every ``Problem`` found in the *planned* state. ``execute`` refuses a plan with problems before
the first write (all problems at once), stops after the plan in check mode, and otherwise runs the
steps in order; a failure part-way names the writes made and says that a re-run continues from there.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections

from ansible_collections.cmk.atlas.plugins.module_utils._module import ModuleInputError

Problem = collections.namedtuple("Problem", ["subject", "message", "fix"])
"""One reason the planned state would not work or must not be written: ``subject`` names what it is
about (a variable, a resource), ``fix`` what the user sets or does."""

Step = collections.namedtuple("Step", ["description", "apply"])
"""One write of the plan: ``apply()`` performs it (and any wait that belongs to it)."""


class Plan:
    """What a procedure will do: steps in the order the services need them, plus the diffs and findings."""

    def __init__(self):
        self.steps = []
        self.diffs = []
        self.warnings = []
        self.problems = []

    def step(self, description, apply):
        self.steps.append(Step(description, apply))

    def problem(self, subject, message, fix=None):
        self.problems.append(Problem(subject, message, fix))

    @property
    def changed(self):
        return bool(self.steps)

    @property
    def changes(self):
        return [step.description for step in self.steps]


class PlanRefusedError(ModuleInputError):
    """The planned state has problems; nothing was written."""

    def __init__(self, what, problems):
        self.problems = list(problems)
        lines = []
        for number, problem in enumerate(self.problems, 1):
            text = f"({number}) {problem.subject}: {problem.message}"
            if problem.fix:
                text += f" Fix: {problem.fix}"
            lines.append(text)
        count = len(self.problems)
        super().__init__(f"{what}: {count} problem{'s' if count != 1 else ''} found before any write, so nothing was written. " + " ".join(lines))


class ApplyError(ModuleInputError):
    """A write failed part-way; ``done`` lists the writes made before it."""

    def __init__(self, step, error, done):
        self.error = error
        self.done = list(done)
        self.step = step
        made = "; ".join(self.done) if self.done else "none"
        super().__init__(
            f"{step} failed: {error}. Writes made before it in this run: {made}. "
            + ("Run again to continue from there: each resource is read again and what is in place is kept." if self.done else "Nothing was written.")
        )


def execute(plan, what, check_mode):
    """Refuse, preview or apply ``plan``; returns the descriptions of the writes made (or planned, in check mode)."""
    if plan.problems:
        raise PlanRefusedError(what, plan.problems)
    if check_mode:
        return plan.changes
    done = []
    for step in plan.steps:
        try:
            step.apply()
        except ApplyError:
            raise
        except Exception as error:  # every failure of a write is reported with the writes made before it
            raise ApplyError(step.description, error, done) from error
        done.append(step.description)
    return done
