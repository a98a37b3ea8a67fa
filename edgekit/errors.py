"""User-facing errors: one line naming the problem and the fix."""

from __future__ import annotations


class EdgekitError(Exception):
    """An error the user can cause and fix. The CLI prints `error: <problem> — fix: <fix>` and exits non-zero."""

    exit_code = 2

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def one_line(self) -> str:
        text = self.problem.strip().replace("\n", " ")
        return f"{text} — fix: {self.fix}" if self.fix else text


class UnsupportedOperatorError(EdgekitError):
    """A format's converter cannot express an operator of the model."""

    def __init__(self, operator: str, fmt: str, detail: str = "") -> None:
        self.operator = operator
        self.format = fmt
        problem = f"{fmt} cannot express operator {operator}"
        if detail:
            problem += f" ({detail})"
        super().__init__(
            problem,
            f"rewrite {operator} with operators {fmt} supports (see docs/export.md), "
            f"or leave {fmt} out with --format",
        )


class ConverterMissingError(EdgekitError):
    """A format's converter package is missing. `fix` names the pip extra that installs it (edgekit.formats
    .install_fix), e.g. `pip install 'edgekit[tflite]'`."""

    def __init__(self, fmt: str, package: str, fix: str = "") -> None:
        super().__init__(
            f"the {fmt} converter is not installed (Python package {package!r} is missing)",
            fix or f"pip install {package}",
        )


class DeviceUnreachableError(EdgekitError):
    exit_code = 3
