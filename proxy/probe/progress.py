"""A plain progress bar on stderr: redrawn in place on a terminal, a few lines otherwise."""

from __future__ import annotations

from typing import TextIO

BAR = 30


class Progress:
    """Counts finished prompts; `censored` and `errors` are shown beside the bar. Writes
    nothing when `out` is None."""

    def __init__(self, total: int, out: TextIO | None) -> None:
        self.total = total
        self.done = 0
        self.censored = 0
        self.errors = 0
        self._out = out
        self._live = out is not None and out.isatty()
        self._next_step = 0.25

    def advance(self, censored: bool | None) -> None:
        self.done += 1
        self.censored += int(bool(censored))
        self.errors += int(censored is None)
        if self._out is None:
            return
        fraction = self.done / self.total if self.total else 1.0
        if self._live:
            self._out.write("\r" + self.line())
            if self.done == self.total:
                self._out.write("\n")
            self._out.flush()
        elif fraction >= self._next_step or self.done == self.total:
            # A log file gets a line at each quarter, not a wall of carriage returns.
            while self._next_step <= fraction:
                self._next_step += 0.25
            self._out.write(self.line() + "\n")
            self._out.flush()

    def line(self) -> str:
        filled = BAR * self.done // self.total if self.total else BAR
        bar = "#" * filled + "." * (BAR - filled)
        return f"[{bar}] {self.done}/{self.total}  censored {self.censored}  errors {self.errors}"
