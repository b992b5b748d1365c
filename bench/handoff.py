"""The seat's hand-off alone, without a database: `python -m bench.handoff [JOBS]`.

A real helper (consumer/helper.py) and its job processes run `bench.algos:mark` jobs of 50 ms back
to back, each held behind the one before as a consumer claiming ahead holds it (its kill
deadline, its payload held, then StartAfter), and the gaps from one run's end mark to the next
run's start mark are printed (p50 / p90 / p99, with the load). What is left in them is the
processes' part of the hand-off: the running job's answer and exit, and the held job's wake-up.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from bench.algos import read_marks
from consumer.channel import Channel
from consumer.helper_link import HelperLink
from consumer.messages import Answer, Deadline, Fork, Forked, FromHelper, Payload, StartAfter, Waiting
from pqueue import load_settings

JOB_SECONDS = 0.05


class Chain:
    """The consumer's part, by hand: fork, hold behind the running job, read the answer."""

    def __init__(self) -> None:
        self.link = HelperLink(load_settings(algorithm="bench.algos:mark"))
        self.sockets: dict[int, Channel] = {}
        self.link.on_message = self._heard
        self.link.start()
        self.link.wait_ready()

    def _heard(self, message: FromHelper, passed: Channel | None) -> None:
        if isinstance(message, Forked) and passed is not None:
            self.sockets[message.pid] = passed

    def fork(self) -> int:
        known = set(self.sockets)
        self.link.send(Fork())
        while True:
            self.link.pump()
            new = [pid for pid in self.sockets if pid not in known]
            if new:
                assert self.sockets[new[0]].recv() == Waiting(new[0])
                return new[0]
            time.sleep(0.0005)

    def give(self, pid: int, number: int, log: str, *, held: bool) -> None:
        self.link.send(Deadline(pid, time.monotonic() + 3600))
        payload = {"log": log, "tag": f"J{number:06d}", "sleep": JOB_SECONDS}
        self.sockets[pid].send(Payload(number, payload, held))

    def answer(self, pid: int) -> None:
        """Wait for the job process's answer (a held one says Began first), then forget it."""
        channel = self.sockets.pop(pid)
        while not isinstance(channel.recv(), Answer):
            pass
        channel.close()
        self.link.pump()

    def run(self, jobs: int, log: str) -> None:
        running = self.fork()
        self.give(running, 0, log, held=False)
        for number in range(1, jobs):
            held = self.fork()
            self.give(held, number, log, held=True)
            self.link.send(StartAfter(held, running))
            self.answer(running)
            running = held
        self.answer(running)
        self.link.close()


def percentile(values: list[float], share: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * share))]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    jobs = int(args[0]) if args else 200
    with tempfile.TemporaryDirectory() as workdir:
        log = str(Path(workdir) / "marks.log")
        Chain().run(jobs, log)
        marks = sorted(read_marks(log).values(), key=lambda mark: mark["start"])
    gaps = [(later["start"] - earlier["end"]) * 1000 for earlier, later in zip(marks, marks[1:], strict=False)]
    p50, p90, p99 = (percentile(gaps, share) for share in (0.5, 0.9, 0.99))
    print(
        f"hand-off gap, {len(gaps)} gaps: p50 {p50:.3f} p90 {p90:.3f} p99 {p99:.3f} ms (load {os.getloadavg()[0]:.1f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
