"""The table of one subscription's protocol states, after h2's table-driven state
machine: every legal (state, input) is a row of `_TRANSITIONS`, anything else is a
`ProtocolError`. `Subscription.process_input` steps it; nothing else sets `state`.
No I/O.

A state says three things at once, so that no flag beside it can disagree:

- where the exchange is: not requested (IDLE), a response in flight (AWAITING_ACK*),
  or nothing in flight (every other state, `State.watching`);
- whether an answer is owed even if nothing changed (`*_MUST_RESPOND`, `State.owed`):
  a new stream, a reconnect or newly requested names (rules 7 and 8 of `stream.py`),
  or the applied rest of a partly rejected response, whose ACK lets listeners follow;
- how the client took the last response, while nothing is in flight: ACKED (it
  accepted it whole), NACKED (it rejected it and said nothing a quarantine could
  pin: the rejected content is not sent again while it is the newest, rule 3), or
  neither (WATCHING: the rejected entries are quarantined, the rest applied).

Once an answer is owed, how the last response was taken no longer matters for
sending, so ACKED and WATCHING share MUST_RESPOND; NACKED keeps its own, because
`GET /proxies` shows a proxy NACKED until the next response goes out.
"""

from enum import Enum, auto

from turnout.models.errors import TurnoutError


class ProtocolError(TurnoutError):
    """The client broke the protocol; the stream is closed with INVALID_ARGUMENT."""


class State(Enum):
    IDLE = auto()
    """Nothing requested yet for this type."""
    MUST_RESPOND = auto()
    """Requested, nothing in flight; an answer is owed even if nothing changed."""
    WATCHING = auto()
    """Requested, nothing in flight or owed; the last response's rejected entries are
    quarantined (`splice.py`): the next answer waits for a change."""
    ACKED = auto()
    """Nothing in flight or owed; the client accepted the last response whole."""
    NACKED = auto()
    """Nothing in flight or owed; the client rejected the last response and nothing
    was quarantined: it waits for the next change (rule 3 of `stream.py`)."""
    NACKED_MUST_RESPOND = auto()
    """As NACKED, and an answer is owed (new names, or a reconnect)."""
    AWAITING_ACK = auto()
    """One response in flight (rule 4 of `stream.py`)."""
    AWAITING_ACK_MUST_RESPOND = auto()
    """One response in flight, and an answer is owed once it is answered."""

    @property
    def watching(self) -> bool:
        """Requested and nothing in flight: a response may be sent."""
        return self not in (State.IDLE, State.AWAITING_ACK, State.AWAITING_ACK_MUST_RESPOND)

    @property
    def awaiting_ack(self) -> bool:
        return self in (State.AWAITING_ACK, State.AWAITING_ACK_MUST_RESPOND)

    @property
    def owed(self) -> bool:
        """An answer is due even if nothing the client wants changed."""
        return self in (
            State.MUST_RESPOND,
            State.NACKED_MUST_RESPOND,
            State.AWAITING_ACK_MUST_RESPOND,
        )

    @property
    def nacked(self) -> bool:
        """The last response was rejected and nothing newer was sent since."""
        return self in (State.NACKED, State.NACKED_MUST_RESPOND)


class Input(Enum):
    RECV_REQUEST = auto()
    """A request without a nonce: a new subscription or a reconnect, always answered."""
    RECV_NEW_NAMES = auto()
    """A request (of any nonce, stale ones too) named resources not asked for before,
    or turned wildcard: they are sent even if unchanged."""
    RECV_UPDATE = auto()
    """A request with the current nonce after its response was answered: a change of
    names only (new names came first as RECV_NEW_NAMES)."""
    SEND_RESPONSE = auto()
    RECV_ACK = auto()
    RECV_NACK = auto()
    """A NACK of the response in flight that named nothing a quarantine could pin."""
    RECV_NACK_QUARANTINED = auto()
    """A NACK whose rejected entries were quarantined; the client applied the rest of
    the response, or the response held nothing else."""
    RECV_NACK_PARTIAL = auto()
    """A NACK whose rejected entries were quarantined while the response changed other
    resources too: the client applied those, and an answer is owed so that it ACKs
    them (listeners and routes wait for that ACK)."""


_TRANSITIONS: dict[tuple[State, Input], State] = {
    # A new subscription or a reconnect: answered even if nothing changed.
    (State.IDLE, Input.RECV_REQUEST): State.MUST_RESPOND,
    (State.MUST_RESPOND, Input.RECV_REQUEST): State.MUST_RESPOND,
    (State.WATCHING, Input.RECV_REQUEST): State.MUST_RESPOND,
    (State.ACKED, Input.RECV_REQUEST): State.MUST_RESPOND,
    (State.NACKED, Input.RECV_REQUEST): State.NACKED_MUST_RESPOND,
    (State.NACKED_MUST_RESPOND, Input.RECV_REQUEST): State.NACKED_MUST_RESPOND,
    (State.AWAITING_ACK, Input.RECV_REQUEST): State.AWAITING_ACK_MUST_RESPOND,
    (State.AWAITING_ACK_MUST_RESPOND, Input.RECV_REQUEST): State.AWAITING_ACK_MUST_RESPOND,
    # New names: answered even if unchanged. Before the first nonce-less request
    # (a stale one names them) nothing is sent yet; RECV_REQUEST owes the answer.
    (State.IDLE, Input.RECV_NEW_NAMES): State.IDLE,
    (State.MUST_RESPOND, Input.RECV_NEW_NAMES): State.MUST_RESPOND,
    (State.WATCHING, Input.RECV_NEW_NAMES): State.MUST_RESPOND,
    (State.ACKED, Input.RECV_NEW_NAMES): State.MUST_RESPOND,
    (State.NACKED, Input.RECV_NEW_NAMES): State.NACKED_MUST_RESPOND,
    (State.NACKED_MUST_RESPOND, Input.RECV_NEW_NAMES): State.NACKED_MUST_RESPOND,
    (State.AWAITING_ACK, Input.RECV_NEW_NAMES): State.AWAITING_ACK_MUST_RESPOND,
    (State.AWAITING_ACK_MUST_RESPOND, Input.RECV_NEW_NAMES): State.AWAITING_ACK_MUST_RESPOND,
    # A names change after the answer: the state holds.
    (State.MUST_RESPOND, Input.RECV_UPDATE): State.MUST_RESPOND,
    (State.WATCHING, Input.RECV_UPDATE): State.WATCHING,
    (State.ACKED, Input.RECV_UPDATE): State.ACKED,
    (State.NACKED, Input.RECV_UPDATE): State.NACKED,
    (State.NACKED_MUST_RESPOND, Input.RECV_UPDATE): State.NACKED_MUST_RESPOND,
    # One response at a time; sending pays what was owed.
    (State.MUST_RESPOND, Input.SEND_RESPONSE): State.AWAITING_ACK,
    (State.WATCHING, Input.SEND_RESPONSE): State.AWAITING_ACK,
    (State.ACKED, Input.SEND_RESPONSE): State.AWAITING_ACK,
    (State.NACKED, Input.SEND_RESPONSE): State.AWAITING_ACK,
    (State.NACKED_MUST_RESPOND, Input.SEND_RESPONSE): State.AWAITING_ACK,
    # The answer to the response in flight.
    (State.AWAITING_ACK, Input.RECV_ACK): State.ACKED,
    (State.AWAITING_ACK_MUST_RESPOND, Input.RECV_ACK): State.MUST_RESPOND,
    (State.AWAITING_ACK, Input.RECV_NACK): State.NACKED,
    (State.AWAITING_ACK_MUST_RESPOND, Input.RECV_NACK): State.NACKED_MUST_RESPOND,
    (State.AWAITING_ACK, Input.RECV_NACK_QUARANTINED): State.WATCHING,
    (State.AWAITING_ACK_MUST_RESPOND, Input.RECV_NACK_QUARANTINED): State.MUST_RESPOND,
    (State.AWAITING_ACK, Input.RECV_NACK_PARTIAL): State.MUST_RESPOND,
    (State.AWAITING_ACK_MUST_RESPOND, Input.RECV_NACK_PARTIAL): State.MUST_RESPOND,
}


def next_state(state: State, inp: Input, type_url: str) -> State:
    """The state `inp` leads to from `state`; a `ProtocolError` if no row allows it."""
    try:
        return _TRANSITIONS[(state, inp)]
    except KeyError:
        raise ProtocolError(f"{inp.name} in {state.name} for {type_url}") from None
