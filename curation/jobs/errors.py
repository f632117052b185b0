class JobParamsError(ValueError):
    """The parameters given for a job are wrong; the message says which and why."""


class JobCancelled(Exception):
    """Raised inside a running job when a user asked to cancel it."""


class JobLost(Exception):
    """Raised inside a running job when this attempt no longer owns the row (the reaper gave it to another)."""
