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
