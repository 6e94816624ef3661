"""The one error type for bad input data; its message names the file, line and field."""

from __future__ import annotations


class DataError(ValueError):
    """Input data that cannot be used. `str(err)` is `FILE:LINE: field: problem`."""

    def __init__(
        self, path: object, problem: str, line: int | None = None, field: str | None = None
    ):
        where = str(path) + (f":{line}" if line is not None else "")
        what = f"{field}: {problem}" if field else problem
        super().__init__(f"{where}: {what}")
        self.path, self.line, self.field, self.problem = str(path), line, field, problem
