"""A job can be put only for a partner that exists and is enabled (its job would never be claimed
otherwise), checked in the put's own transaction, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from pqueue import InvalidInput, NewJob, PersistentQ


def test_put__for_an_unknown_or_disabled_partner_is_refused_and_stores_nothing(q: PersistentQ) -> None:
    q.add_partner("acme")
    q.add_partner("beta")
    q.disable_partner("beta")

    with pytest.raises(InvalidInput, match="'nobody' is not a partner here"):
        q.put_items([NewJob({"n": 1}, partner="acme"), NewJob({"n": 2}, partner="nobody")])
    with pytest.raises(InvalidInput, match="'beta' is not a partner here, or is disabled"):
        q.put_item({"n": 3}, partner="beta")
    assert q.count_items() == 0

    q.disable_partner("beta", enable=True)
    puts = q.put_items([NewJob({"n": 4}, partner="acme"), NewJob({"n": 5}, partner="beta"), NewJob({"n": 6})])
    assert [q.get_job(put.id).partner for put in puts] == ["acme", "beta", "default"]
