"""Property-based fuzzing of every reader of other people's files: only patchq's own errors may come out.

Bounded for CI: EXAMPLES per property (hypothesis, no deadline). `benchmarks/fuzz_long.py` runs the same properties
(tests/hostile/properties.py) with as many examples as you ask for.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from hostile.properties import PROPERTIES

EXAMPLES = 400
CI_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                       suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                              HealthCheck.filter_too_much])


@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_only_patchq_errors_escape(name: str):
    prop, strategy = PROPERTIES[name]
    ran = []

    @CI_SETTINGS
    @given(strategy())
    def run(data: bytes) -> None:
        ran.append(1)
        prop(data)

    run()
    assert len(ran) >= EXAMPLES * 0.9        # the property really ran (hypothesis may stop early on tiny spaces)
