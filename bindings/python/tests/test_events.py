"""Event enums: the C numbers, printable names, values from a newer library."""

from __future__ import annotations

from tether import DisconnectReason, EventKind


def test_numbers_match_the_header() -> None:
    assert [k.value for k in EventKind] == list(range(1, 11))
    assert (EventKind.ACCEPTED.value, EventKind.GAVE_UP.value, EventKind.FAILED.value) == (9, 7, 10)
    assert [r.value for r in DisconnectReason] == list(range(1, 14))
    reasons = (DisconnectReason.INTERNAL, DisconnectReason.TLS_CERTIFICATE, DisconnectReason.TLS_NAME_MISMATCH)
    assert [r.value for r in reasons] == [11, 12, 13]
    assert DisconnectReason.from_c(0) is None
    assert DisconnectReason.from_c(3) is DisconnectReason.TIMEOUT


def test_names_print_like_the_other_apis() -> None:
    assert str(DisconnectReason.PEER_CLOSED) == "peer_closed"
    assert f"{EventKind.CONNECT_FAILED}" == "connect_failed"


def test_an_appended_code_is_kept_not_rejected() -> None:
    r = DisconnectReason(42)
    assert r == 42 and r.name == "UNKNOWN_42" and str(r) == "unknown_42"
    assert EventKind(11).name == "UNKNOWN_11"
