"""One check outcome, and the exit code a list of them gives. Torch-free: the CLI imports it."""

from __future__ import annotations

import dataclasses

PASS, FAIL, SKIP = "pass", "fail", "skip"

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


@dataclasses.dataclass
class Result:
    subject: str  # a YAML name, or "tree" for static checks of the whole tree
    check: str
    status: str
    detail: str = ""  # measured values on success, the error on failure, the reason for a skip
    seconds: float = 0.0
    data: dict = dataclasses.field(default_factory=dict)  # machine-readable extras (losses, checkpoint path ...)

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Result:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


def exit_code(results: list[Result]) -> int:
    return EXIT_FAILED if any(r.failed for r in results) else EXIT_OK
