"""Fakes the unit tests share."""


class Clock:
    """A clock that moves only when ``sleep`` is called; ``sleeps`` lists the waits."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class NoAtlas:
    """An Atlas client that must not be called: planning works on what was read."""

    def __getattr__(self, name):
        raise AssertionError(f"Atlas was called ({name}) while planning")


class PlanningAws:
    """The AWS connection as far as planning reaches it: the caller's identity and the region; any call fails.
    The class itself serves as the ``aws()`` factory the procedures take."""

    region = "us-east-1"

    def __init__(self, account="111111111111"):
        self.account = account
        self.calls = []

    def caller_identity(self):
        return {"Account": self.account, "Arn": f"arn:aws:iam::{self.account}:user/operator"}

    def derive(self, **_kwargs):
        return self

    def call(self, *args, **kwargs):
        self.calls.append(args)
        raise AssertionError(f"AWS was called ({args}) while planning")
