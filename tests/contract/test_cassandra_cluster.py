"""Says whether the storage contract also ran against a real Cassandra cluster."""

from __future__ import annotations

import pytest

from tests.support.storage import CASSANDRA_ENV, cassandra_address


def test_contract_suite_ran_on_a_real_cluster() -> None:
    if cassandra_address() is None:
        pytest.skip(
            f"no Cassandra: set {CASSANDRA_ENV}=host:port to run the storage contract suite "
            "against a real cluster"
        )
