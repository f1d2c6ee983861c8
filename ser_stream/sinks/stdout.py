"""Stdout sink: JSON lines (the contract), or a live text view for a person."""

from __future__ import annotations

import json
import sys
import threading
from typing import Any, TextIO

from . import StateMessage

BAR_WIDTH = 30


class StdoutSink:
    """Writes one line per hop. Owned by the pipeline thread.

    A closed pipe (``ser-stream run | head``) sets ``stop`` so the daemon ends cleanly.
    """

    name = "stdout"

    def __init__(self, *, fmt: str, labels: tuple[str, ...], stop: threading.Event, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.fmt = fmt
        self.labels = labels
        self.stop = stop
        self._drawn = 0

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except BrokenPipeError:
            self.stop.set()

    def publish_window(self, message: dict[str, Any]) -> None:
        if self.fmt == "json":
            self._write(json.dumps(message, separators=(", ", ": ")) + "\n")
        else:
            self._write(self.render(message))

    def publish_state(self, state: StateMessage) -> None:
        """The mood is part of every window line; nothing extra on stdout."""

    def publish_event(self, event: dict[str, Any]) -> None:
        """Mood changes show in the window lines' ``mood``; nothing extra on stdout."""

    def render(self, m: dict[str, Any]) -> str:
        """A redrawn block: level meter, label, mood, probability bars."""
        level = m["level_dbfs"]
        fill = int(round(BAR_WIDTH * min(max((level + 80.0) / 80.0, 0.0), 1.0)))
        head = f"t={m['t']:8.1f}s  level {level:6.1f} dBFS [{'#' * fill}{'.' * (BAR_WIDTH - fill)}]"
        if m["speech"]:
            now = f"speech: {m['label']:<10} {m['confidence']:.0%}"
        else:
            now = "silence"
        lines = [head, f"{now:<28} mood: {m['mood']}"]
        probs = m["probs"] or {}
        for lab in self.labels:
            p = probs.get(lab, 0.0)
            n = int(round(BAR_WIDTH * p))
            lines.append(f"  {lab:<10} {'█' * n}{' ' * (BAR_WIDTH - n)} {p:5.0%}" if probs else f"  {lab:<10}")
        up = f"\x1b[{self._drawn}F" if self._drawn else ""
        self._drawn = len(lines)
        return up + "".join(f"\x1b[2K{line}\n" for line in lines)

    def close(self) -> None:
        try:
            self.stream.flush()
        except (BrokenPipeError, ValueError):
            pass
