"""The CLV fit's one error type, apart from the fitting code: the tasks module names it among the
deterministic errors without importing pandas and scipy into every task process."""


class CLVFitError(RuntimeError):
    """A CLV model cannot be fitted or trusted; the message says which guard rail failed."""
