import pytest

from ansible_collections.cmk.atlas.plugins.module_utils._module import ModuleInputError
from ansible_collections.cmk.atlas.plugins.module_utils.procedures import engine
from ansible_collections.cmk.atlas.plugins.module_utils.procedures.engine import ApplyError, Plan, PlanRefusedError, execute

WHAT = "cmk.atlas.enable of project 5f1a2b3c4d5e6f7a8b9c0d1e"


def recording_plan(*descriptions, fail_at=None, error=None):
    """A plan whose steps record their description in ``plan.calls``; the step ``fail_at`` raises ``error``."""
    plan = Plan()
    plan.calls = []

    def step(description):
        def apply():
            plan.calls.append(description)
            if description == fail_at:
                raise error or RuntimeError("Atlas answered 500")

        return apply

    for description in descriptions:
        plan.step(description, step(description))
    return plan


# -- Plan -----------------------------------------------------------------------------------------


def test_a_plan_without_steps_changes_nothing_and_one_with_steps_lists_them_in_order():
    plan = Plan()
    assert plan.changed is False
    assert plan.changes == []
    plan.step("create the Atlas role", lambda: None)
    plan.step("authorize it", lambda: None)
    assert plan.changed is True
    assert plan.changes == ["create the Atlas role", "authorize it"]


def test_problems_keep_subject_message_and_fix_and_convert_to_dicts():
    plan = Plan()
    plan.problem("kms_key", "it is not set")
    plan.problem("region", "it contradicts the key", "leave it unset")
    assert plan.problems == [engine.Problem("kms_key", "it is not set", None), engine.Problem("region", "it contradicts the key", "leave it unset")]


# -- execute: refusal -----------------------------------------------------------------------------


@pytest.mark.parametrize("check_mode", [False, True], ids=["real run", "check mode"])
def test_a_plan_with_problems_is_refused_with_every_problem_numbered_and_no_step_runs(check_mode):
    plan = recording_plan("create the Atlas role", "create IAM role atlas-kms")
    plan.problem("kms_key", "it is not set", "give the key id, ARN or alias")
    plan.problem("iam_role_name", "it belongs to another project")
    with pytest.raises(PlanRefusedError) as caught:
        execute(plan, WHAT, check_mode)
    message = str(caught.value)
    assert message == (
        f"{WHAT}: 2 problems found before any write, so nothing was written. "
        "(1) kms_key: it is not set Fix: give the key id, ARN or alias "
        "(2) iam_role_name: it belongs to another project"
    )
    assert caught.value.problems == plan.problems
    assert isinstance(caught.value, ModuleInputError)
    assert plan.calls == []


def test_one_problem_is_spoken_of_in_the_singular():
    plan = recording_plan("a write")
    plan.problem("region", "it contradicts the key")
    with pytest.raises(PlanRefusedError, match=r": 1 problem found before any write, so nothing was written\. \(1\) region: it contradicts the key$"):
        execute(plan, WHAT, check_mode=False)
    assert plan.calls == []


# -- execute: check mode and the real run ------------------------------------------------------------


def test_check_mode_returns_the_planned_changes_and_calls_no_step():
    plan = recording_plan("create the Atlas role", "create IAM role atlas-kms", "authorize it")
    plan.warnings.append("a warning does not stop the plan")
    assert execute(plan, WHAT, check_mode=True) == ["create the Atlas role", "create IAM role atlas-kms", "authorize it"]
    assert plan.calls == []


def test_a_real_run_calls_every_step_in_order_and_returns_the_writes():
    plan = recording_plan("create the Atlas role", "create IAM role atlas-kms", "authorize it")
    assert execute(plan, WHAT, check_mode=False) == ["create the Atlas role", "create IAM role atlas-kms", "authorize it"]
    assert plan.calls == ["create the Atlas role", "create IAM role atlas-kms", "authorize it"]


def test_an_empty_plan_writes_nothing():
    assert execute(Plan(), WHAT, check_mode=False) == []
    assert execute(Plan(), WHAT, check_mode=True) == []


# -- execute: a failing step --------------------------------------------------------------------------


def test_a_failing_step_names_the_writes_before_it_and_says_a_rerun_continues():
    error = RuntimeError("Atlas answered 500")
    plan = recording_plan("create the Atlas role", "create IAM role atlas-kms", "authorize it", "set encryption", fail_at="authorize it", error=error)
    with pytest.raises(ApplyError) as caught:
        execute(plan, WHAT, check_mode=False)
    message = str(caught.value)
    assert message.startswith("authorize it failed: Atlas answered 500. Writes made before it in this run: create the Atlas role; create IAM role atlas-kms. ")
    assert "Run again to continue from there" in message
    assert "Nothing was written" not in message
    assert caught.value.step == "authorize it"
    assert caught.value.done == ["create the Atlas role", "create IAM role atlas-kms"]
    assert caught.value.error is error
    assert caught.value.__cause__ is error
    # The steps after the failing one never ran.
    assert plan.calls == ["create the Atlas role", "create IAM role atlas-kms", "authorize it"]


def test_a_failing_first_step_says_nothing_was_written():
    plan = recording_plan("create the Atlas role", "create IAM role atlas-kms", fail_at="create the Atlas role")
    with pytest.raises(ApplyError) as caught:
        execute(plan, WHAT, check_mode=False)
    message = str(caught.value)
    assert message == "create the Atlas role failed: Atlas answered 500. Writes made before it in this run: none. Nothing was written."
    assert "Run again" not in message
    assert caught.value.done == []
    assert plan.calls == ["create the Atlas role"]


def test_an_input_error_of_a_step_is_reported_with_the_writes_too():
    plan = recording_plan("write one", "write two", fail_at="write two", error=ModuleInputError("the previous access key has no user"))
    with pytest.raises(ApplyError, match=r"^write two failed: the previous access key has no user\. Writes made before it in this run: write one\. Run again"):
        execute(plan, WHAT, check_mode=False)


def test_an_apply_error_raised_by_a_step_passes_through_unchanged():
    inner = ApplyError("inner write", RuntimeError("boom"), ["inner done"])
    plan = recording_plan("write one", "write two", fail_at="write two", error=inner)
    with pytest.raises(ApplyError) as caught:
        execute(plan, WHAT, check_mode=False)
    assert caught.value is inner
