"""RS: random sequences of genuine tokens, each answer worked out by paygkit's model.

The sequence itself is drawn in `paygkit.certify.sequence`.
"""

from __future__ import annotations

from paygkit.certify.cases.case import Suite
from paygkit.certify.sequence import random_sequence

SUITE = Suite("RS", "Random sequences")

SUITE.case(
    "RS1",
    "Tokens entered in random orders get the answers of the paygkit model",
    "Genuine tokens of every type (Add Time, Set Time, Disable PAYG, Counter Sync) are made "
    "in count order as a server makes them, some counts skipped as when tokens are lost, "
    "and entered in a random order: out of order, again, after the count jumped by 1, 2, 4 "
    "or more, old Counter Sync tokens. After each entry the answer, the count and the time "
    "left (or unlimited) must be those of paygkit's model of the protocol. The run's seed "
    "is in the report: the same seed (--seed) gives the same sequence again; "
    "--sequence-length makes it longer for a release run.",
    seeded=True,
)(random_sequence)
