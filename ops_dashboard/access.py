"""Who may see the dashboard: a password gate when PQ_DASHBOARD_PASSWORD is set."""

from __future__ import annotations

import hmac

import streamlit as st

from pqueue import Settings

SIGNED_IN = "signed_in"


def _check(password: str, settings: Settings) -> None:
    expected = settings.dashboard_password or ""
    # compare_digest: the time taken does not tell how much of the password was right.
    if hmac.compare_digest(password.encode(), expected.encode()):
        st.session_state[SIGNED_IN] = True
        st.session_state.pop("login_error", None)
    else:
        st.session_state["login_error"] = "wrong password"


def _submit(settings: Settings) -> None:
    _check(str(st.session_state.get("login_password") or ""), settings)
    st.session_state["login_password"] = ""


def sign_out() -> None:
    """Forget this browser session's sign-in."""
    st.session_state[SIGNED_IN] = False


def signed_in(settings: Settings) -> bool:
    """True when no password is set or this session entered it; otherwise show the login form."""
    if not settings.dashboard_password or st.session_state.get(SIGNED_IN):
        return True
    st.title("pqueue")
    with st.form("login"):
        st.text_input("password", type="password", key="login_password")
        st.form_submit_button("Sign in", on_click=_submit, args=(settings,))
    if st.session_state.get("login_error"):
        st.error(st.session_state["login_error"])
    return False
