"""The lifecycle checker used by the managed tests rejects broken
sequences (so that those tests can fail)."""

from __future__ import annotations

import pytest
from support import check_lifecycle

from tether import DisconnectReason as R
from tether import Event
from tether import EventKind as K

GOOD = [
    Event(K.CONNECTING, generation=1, attempt=1),
    Event(K.CONNECTED, generation=1, attempt=1),
    Event(K.MESSAGE, generation=1, data=b"x"),
    Event(K.DISCONNECTED, generation=1, reason=R.PEER_CLOSED),
    Event(K.WAITING, generation=1, attempt=1, delay=0.02),
    Event(K.CONNECTING, generation=2, attempt=1),
    Event(K.CONNECT_FAILED, generation=2, attempt=1, reason=R.CONNECT_REFUSED),
    Event(K.WAITING, generation=2, attempt=2, delay=0.04),
    Event(K.CONNECTING, generation=3, attempt=2),
    Event(K.CONNECTED, generation=3, attempt=2),
    Event(K.DISCONNECTED, generation=3, reason=R.CLOSED_LOCALLY),
    Event(K.CLOSED, generation=3),
]


def test_a_good_story_passes() -> None:
    check_lifecycle(GOOD)
    check_lifecycle(GOOD[:-1] + [Event(K.FAILED, generation=3, reason=R.INTERNAL, detail="panic")])


@pytest.mark.parametrize(
    "broken",
    [
        GOOD[:2] + [GOOD[1]] + GOOD[2:],  # CONNECTED twice
        GOOD[:3] + GOOD[4:],  # no DISCONNECTED
        GOOD[:4] + [GOOD[3]] + GOOD[4:],  # DISCONNECTED twice
        GOOD + [Event(K.CLOSED)],  # two terminal events
        GOOD[:-1] + [Event(K.MESSAGE, data=b"late"), GOOD[-1]],  # message while down
        GOOD[:5] + [Event(K.CONNECTING, generation=3, attempt=1)] + GOOD[6:],  # generation gap
        GOOD[:1] + [Event(K.CONNECTED, generation=1, attempt=1, reason=R.RESET)] + GOOD[2:],
        GOOD[:-2] + [GOOD[-1]],  # closed while connected
        GOOD[:2] + [Event(K.MESSAGE, generation=2, data=b"x")] + GOOD[3:],  # another connection's
        GOOD[:4] + [Event(K.WAITING, generation=0, attempt=1, delay=0.02)] + GOOD[5:],
        GOOD[:-1] + [Event(K.CLOSED, generation=0)],  # not the last attempt's generation
        GOOD[:-1] + [Event(K.CLOSED, generation=3, handle=7)],  # another object's
        GOOD[:-1] + [Event(K.FAILED, generation=3, reason=R.IO)],  # FAILED is INTERNAL
    ],
)
def test_broken_stories_fail(broken: list[Event]) -> None:
    with pytest.raises(AssertionError):
        check_lifecycle(broken)
