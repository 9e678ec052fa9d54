"""Property tests that must reach the case they guard.

A property written ``if plan.promotes: assert ...`` passes without running its assert when the
strategy never yields a promotion (it once gave none in 2,000 clusters). ``must_reach`` runs a
hypothesis test, then fails unless at least ``share`` of its examples reached the guarded case; the
test says which examples did with ``reached``. A test that checks several rules on the same examples
calls ``reached`` once per rule with a label each, and each label must reach its share. Hypothesis
has no API that fails on an event's share, so the count is kept here; the examples are
derandomized (``PROPERTY``), so the count cannot flake.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, event, settings

# Enough examples to matter, the same ones every run (derandomized, no example database), and no
# per-example deadline (a loaded CI machine is not a defect of the policy). The safety properties
# (never two active, never none, demote before promote, the locks, the guards' whole correction and
# shared counts) get 2,000 examples; the others 1,000, to keep the suite inside its time budget.
SAFETY = settings(
    max_examples=2000,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
PROPERTY = settings(SAFETY, max_examples=1000)

_counts: list[dict[str, Counter[str]]] = []  # per running test: label -> examples, reached


def reached(case: bool, label: str) -> bool:
    """Note whether this example reached the guarded case ``label`` (shown by
    ``--hypothesis-show-statistics``); returns ``case`` so it reads as a condition."""
    event(label if case else f"not reached: {label}")
    if _counts:
        count = _counts[-1].setdefault(label, Counter())
        count["examples"] += 1
        count["reached"] += 1 if case else 0
    return case


def must_reach(share: float = 0.2) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a ``@given`` test (this decorator outermost): it fails unless, for each label it
    passes to ``reached``, ``share`` of the examples that asked called ``reached(True, label)``."""

    def decorate(test: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(test)  # keeps hypothesis's markers, so its pytest plugin still reports statistics
        def run(*args: Any, **kwargs: Any) -> None:
            _counts.append({})
            try:
                test(*args, **kwargs)
            finally:
                by_label = _counts.pop()
            assert by_label, "the test never called reached()"
            for label, counts in by_label.items():
                examples, hits = counts["examples"], counts["reached"]
                print(
                    f"{test.__name__}: {hits} of {examples} examples reached the guarded case"
                    f"{f' {label!r}' if len(by_label) > 1 else ''} ({hits / examples:.0%})"
                )
                assert hits >= share * examples, (
                    f"only {hits} of {examples} examples reached the guarded case {label!r} (need {share:.0%})"
                )

        return run

    return decorate
