"""Errors that mean "the input is wrong", as opposed to bugs.

The CLI turns an :class:`InputError` into its message on stderr and exit code 2; anything else
is a bug and is allowed to surface as a traceback.
"""


class InputError(ValueError):
    """Bad user input. Each entry of ``problems`` names where (a JSON path or a file) and what."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))
