"""One store per dashboard server process, shared by every browser session.

The store opens a short transaction per library call, so nothing stays open between reruns
(a long-lived read would keep SQLite's WAL from being checkpointed).
"""

from __future__ import annotations

import hashlib
import logging

import streamlit as st

import pqueue
from pqueue import PersistentQ, Settings

log = logging.getLogger("ops_dashboard")


def settings_key(settings: Settings) -> str:
    """A cache key that changes with any setting and keeps secrets out of memory dumps."""
    return hashlib.sha256(settings.model_dump_json().encode()).hexdigest()


def _close(store: PersistentQ) -> None:
    store.close()


@st.cache_resource(show_spinner=False, max_entries=4, on_release=_close)
def _open_store(key: str, _settings: Settings) -> PersistentQ:
    # migrate=False: the dashboard never creates a database; a missing one raises
    # DatabaseMissing naming its absolute path, and nothing is cached, so a later rerun retries.
    store = pqueue.connect(settings=_settings, migrate=False)
    log.info("database %s opened", store.describe())
    return store


def open_store(settings: Settings) -> PersistentQ:
    """The server's store for these settings (opened on first use)."""
    return _open_store(settings_key(settings), settings)
