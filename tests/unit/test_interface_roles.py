"""PersistentQ implements the four roles of pqueue/interface.py, and each method sits in exactly one.

A program annotates the role it calls; these checks keep that annotation honest: a method left
out of every role, or in two, or with a signature that drifted from its ABC, fails here.
"""

from __future__ import annotations

import inspect
import typing

import pytest

from pqueue import Insights, Operations, Partners, PersistentQ, PersistentQInterface, WorkQueue
from pqueue.validation import CHECKED

ROLES: tuple[type, ...] = (WorkQueue, Operations, Insights, Partners)

# PersistentQ's own hook for EXPLAIN in tests and bench/: it hands out SQLAlchemy, so it is no role's.
NOT_A_ROLE = {"candidate_query"}


def _own_methods(cls: type) -> set[str]:
    """The public functions a class defines itself (not inherited, no properties)."""
    return {name for name, value in vars(cls).items() if inspect.isfunction(value) and not name.startswith("_")}


def _public_methods(cls: type) -> set[str]:
    return {name for name, value in inspect.getmembers(cls, inspect.isfunction) if not name.startswith("_")}


def test_persistentq_implements_every_role() -> None:
    assert issubclass(PersistentQ, PersistentQInterface)
    for role in ROLES:
        assert issubclass(PersistentQInterface, role)
        assert issubclass(PersistentQ, role)
    assert not getattr(PersistentQ, "__abstractmethods__", frozenset())


def test_each_role_is_abstract_through_and_through() -> None:
    for role in ROLES:
        assert set(role.__abstractmethods__) == _own_methods(role)  # type: ignore[attr-defined]


def test_every_public_method_belongs_to_exactly_one_role() -> None:
    for name in _public_methods(PersistentQ) - NOT_A_ROLE:
        owners = [role.__name__ for role in ROLES if name in _own_methods(role)]
        assert len(owners) == 1, f"{name} is in {owners or 'no role'}"


def test_the_roles_do_not_overlap_and_the_union_adds_no_method() -> None:
    owned = [_own_methods(role) for role in ROLES]
    for index, methods in enumerate(owned):
        assert not any(methods & other for other in owned[index + 1 :])
    assert not _own_methods(PersistentQInterface)
    assert set(PersistentQInterface.__abstractmethods__) == set().union(*owned)


@pytest.mark.parametrize("role", ROLES, ids=lambda role: role.__name__)
def test_signatures_match_the_role(role: type) -> None:
    for name in sorted(_own_methods(role)):
        declared = inspect.signature(getattr(role, name))
        implemented = inspect.signature(getattr(PersistentQ, name))
        # Parameter names, kinds and defaults; the annotations are strings (postponed), compare them too.
        assert implemented == declared, f"{role.__name__}.{name}: {implemented} != {declared}"


def test_the_roles_declare_the_hints_the_checks_read() -> None:
    """`@checked` reads each operation's annotations; they are the ones its role declares."""
    for role in ROLES:
        for name in _own_methods(role):
            assert typing.get_type_hints(getattr(PersistentQInterface, name)) == typing.get_type_hints(
                getattr(role, name)
            )
            assert typing.get_type_hints(getattr(PersistentQ, name)) == typing.get_type_hints(getattr(role, name))
    assert CHECKED["heartbeat"] == ("job_id", "lease_id", "lease_seconds", "agent_status")
