"""The table of one subscription's protocol states, after h2's table-driven state
machine: every legal (state, input) is a row of `_TRANSITIONS`, anything else is a
`ProtocolError`. `Subscription.process_input` steps it. No I/O.
"""

from enum import Enum, auto

from turnout.models.errors import TurnoutError


class ProtocolError(TurnoutError):
    """The client broke the protocol; the stream is closed with INVALID_ARGUMENT."""


class State(Enum):
    IDLE = auto()  # nothing requested yet for this type
    WATCHING = auto()  # requested; nothing unacknowledged in flight
    AWAITING_ACK = auto()  # one response in flight


class Input(Enum):
    RECV_REQUEST = auto()
    SEND_RESPONSE = auto()
    RECV_ACK = auto()
    RECV_NACK = auto()


_TRANSITIONS: dict[tuple[State, Input], State] = {
    (State.IDLE, Input.RECV_REQUEST): State.WATCHING,
    (State.WATCHING, Input.RECV_REQUEST): State.WATCHING,
    (State.WATCHING, Input.SEND_RESPONSE): State.AWAITING_ACK,
    (State.AWAITING_ACK, Input.RECV_REQUEST): State.AWAITING_ACK,
    (State.AWAITING_ACK, Input.RECV_ACK): State.WATCHING,
    (State.AWAITING_ACK, Input.RECV_NACK): State.WATCHING,
}


def next_state(state: State, inp: Input, type_url: str) -> State:
    """The state `inp` leads to from `state`; a `ProtocolError` if no row allows it."""
    try:
        return _TRANSITIONS[(state, inp)]
    except KeyError:
        raise ProtocolError(f"{inp.name} in {state.name} for {type_url}") from None
