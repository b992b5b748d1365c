"""What each Ctrl-C means while pqueue runs: the first stops every program gracefully (the
consumer lets its job finish within PQ_SHUTDOWN_GRACE), the second stops the running job at once
(killed and put back in the queue, its attempt not spent), a third kills everything."""

from __future__ import annotations

import socket

from launcher.briefing import duration
from launcher.supervision import Supervision
from launcher.terminal import Terminal
from pqueue import Job, PersistentQ, PQError, Settings, Status


class Stopper:
    """Counts stop signals and answers each one, saying on the terminal what it does."""

    def __init__(self, terminal: Terminal, supervision: Supervision, store: PersistentQ, settings: Settings) -> None:
        self.terminal = terminal
        self.supervision = supervision
        self.store = store
        self.settings = settings
        self.pending = 0  # signals received, not yet answered (set by the signal handler)
        self.presses = 0

    def answer_signals(self) -> None:
        while self.pending:
            self.pending -= 1
            self.presses += 1
            self._answer()

    def _answer(self) -> None:
        if self.presses == 1:
            self.terminal.say(self._first_words())
            self.supervision.stop()
        elif self.presses == 2:
            jobs = self._our_running_jobs()
            which = ", ".join(f"job {job.id}" for job in jobs) or "the running job"
            self.terminal.say(
                f"stopping now: the consumer kills {which} and puts it back in the queue (attempt not spent)"
            )
            self.supervision.stop_job_now()
        else:
            self.terminal.say("killing every program now (SIGKILL); a running job is rescued when its lease ends")
            self.supervision.kill_everything()

    def _first_words(self) -> str:
        jobs = self._our_running_jobs()
        grace = duration(self.settings.shutdown_grace)
        if not jobs:
            return "stopping every program (Ctrl-C again to stop at once)"
        try:
            now = self.store.now()
        except PQError:
            now = None
        shown = []
        for job in jobs:
            ran = (
                f" (running for {duration(round((now - job.started_at).total_seconds()))})"
                if now and job.started_at
                else ""
            )
            shown.append(f"job {job.id}{ran}")
        return (
            f"stopping: the consumer lets {', '.join(shown)} finish, for up to {grace} (PQ_SHUTDOWN_GRACE), then "
            "stops it and puts it back in the queue (attempt not spent). Ctrl-C again to stop it now."
        )

    def _our_running_jobs(self) -> list[Job]:
        """The jobs this system's consumer holds (on PostgreSQL others may run elsewhere)."""
        mine = tuple(
            f"{socket.gethostname()}:{process.pid}:" for process in self.supervision.programs().get("consumer", [])
        )
        if not mine:
            return []
        try:
            running = self.store.get_all_items(status=Status.UNDER_PROCESS, limit=100).items
        except PQError:
            return []
        return [job for job in running if (job.worker_id or "").startswith(mine)]
