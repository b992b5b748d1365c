"""The two-step flow for actions: a button records what the operator saw, Confirm applies it."""

from __future__ import annotations

import streamlit as st

from ops_dashboard.actions import Outcome, PendingAction, apply, summary
from pqueue import PersistentQInterface

PENDING = "pending_action"
OUTCOME = "action_outcome"


def request(action: PendingAction) -> None:
    """Button callback: remember the action and the statuses shown, until confirmed or dropped."""
    st.session_state[PENDING] = action
    st.session_state[OUTCOME] = None


def refuse(origin: str, outcome: Outcome) -> None:
    """Show a problem found before anything was asked of the database."""
    st.session_state[PENDING] = None
    st.session_state[OUTCOME] = (origin, outcome)


def drop() -> None:
    """Forget the pending action (Back, or the operator looked at another job)."""
    st.session_state[PENDING] = None


def _confirm(store: PersistentQInterface, action: PendingAction) -> None:
    # Applies exactly the recorded action, not whatever is on the screen now.
    st.session_state[PENDING] = None
    st.session_state[OUTCOME] = (action.origin, apply(store, action))


def pending(origin: str) -> PendingAction | None:
    """The action awaiting confirmation in this part of the page, if any."""
    action: PendingAction | None = st.session_state.get(PENDING)
    return action if action is not None and action.origin == origin else None


def render_confirmation(store: PersistentQInterface, origin: str) -> None:
    """Ask before acting; the question names every job and the status it was shown in."""
    action = pending(origin)
    if action is None:
        return
    with st.container(border=True):
        st.warning(f"Please confirm: {action.describe()}.")
        confirm, back = st.columns([1, 5])
        confirm.button("Confirm", key=f"confirm_{origin}", type="primary", on_click=_confirm, args=(store, action))
        back.button("Back", key=f"back_{origin}", on_click=drop)


def render_outcome(origin: str) -> None:
    """What the last confirmed action did: successes, requests sent to consumers, refusals."""
    recorded: tuple[str, Outcome] | None = st.session_state.get(OUTCOME)
    if recorded is None or recorded[0] != origin:
        return
    outcome = recorded[1]
    done = summary(outcome)
    if done:
        st.success(done)
    for note in outcome.notes:
        st.info(note)
    for reason in outcome.refused:
        st.error(f"refused: {reason}")
