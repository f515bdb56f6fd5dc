"""How a connection starts (``tether_opening``)."""

from __future__ import annotations

from enum import IntEnum

from . import _enums


class Opening(IntEnum):
    """What a client and a server exchange before the first message."""

    #: The hello/welcome exchange (the default): a client reports CONNECTED
    #: only once the server's welcome has arrived, and both ends learn the
    #: other's protocol version and capabilities.
    HELLO = 1
    #: No opening: frames from the first byte, for peers that do not speak
    #: the hello (tether before the hello, or a hand-written peer).
    RAW = 2

    @classmethod
    def coerce(cls, value: Opening | str | int, field: str = "opening") -> Opening:
        """An :class:`Opening` from itself, its name (any case) or its
        number; TypeError or ValueError naming ``field`` otherwise."""
        return _enums.coerce(cls, value, field)
