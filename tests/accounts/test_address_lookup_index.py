"""Whether an address has an account, in any case (email__iexact), is asked of every user:
on PostgreSQL an index on UPPER(email) answers it, not a read of the whole table."""

from __future__ import annotations

import pytest
from django.db import connection

from accounts.models import User


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_the_any_case_lookup_of_an_address_can_use_its_index(make_user):
    make_user(email="ada@example.com")
    query = User.objects.with_address("ADA@example.com")
    with connection.cursor() as cursor:
        # The table is tiny here, where reading it whole is cheapest: say it is not, to
        # see whether the index matches the lookup's expression at all.
        cursor.execute("SET LOCAL enable_seqscan = off")
        sql, params = query.values("pk").query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "user_email_upper" in plan, plan
    assert query.exists()


def test_an_account_is_found_by_its_address_in_any_case_and_no_other(make_user):
    ada = make_user(email="ada@example.com")
    make_user(email="ada.lovelace@example.com")
    assert list(User.objects.with_address("ADA@Example.COM")) == [ada]
    assert not User.objects.with_address("ada@example.co").exists()
