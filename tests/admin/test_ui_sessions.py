"""Dashboard sessions: opaque ids, bounded in number, expiring, CSRF compared safely."""

from turnout.admin.ui.sessions import Sessions


def test_a_session_id_maps_to_its_token_and_csrf_never_the_token_itself() -> None:
    sessions = Sessions()
    sid, session = sessions.start("secret-token")
    assert "secret-token" not in sid and sid != session.csrf
    assert sessions.get(sid) == session
    assert session.csrf_matches(session.csrf)
    assert not session.csrf_matches(None) and not session.csrf_matches("x")
    sessions.end(sid)
    assert sessions.get(sid) is None


def test_sessions_are_bounded_oldest_first() -> None:
    sessions = Sessions(max_sessions=2)
    first, _ = sessions.start("a")
    second, _ = sessions.start("b")
    third, _ = sessions.start("c")
    assert sessions.get(first) is None
    assert sessions.get(second) is not None and sessions.get(third) is not None


def test_sessions_expire() -> None:
    sessions = Sessions(ttl=0.0)
    sid, _ = sessions.start("a")
    assert sessions.get(sid) is None
    assert sessions.get(None) is None and sessions.get("unknown") is None
