"""An administrator creates console users from the command line."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlmodel import select

from storage.db import session_scope
from storage.models import AuditEvent, Provider, Role, User
from storage.users import UserError, create_user, verify_password


def test_an_agent_is_created_with_a_hashed_password_and_an_audit_event(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        create_user(session, "Priya.Singh", Role.AGENT, "correct horse battery", phone="0522 262 3456")
    with session_scope(engine) as session:
        user = session.exec(select(User)).one()
        assert user.username == "priya.singh"
        assert user.role is Role.AGENT
        assert user.phone == "+915222623456"
        assert "correct horse" not in user.password_hash
        assert user.password_hash.startswith("scrypt:")
        assert verify_password(user, "correct horse battery")
        assert not verify_password(user, "wrong")
        event = session.exec(select(AuditEvent)).one()
        assert (event.action, event.entity_id, event.actor) == ("user.created", user.id, "cli")


@pytest.mark.parametrize(
    ("username", "password", "kwargs", "message"),
    [
        ("ab", "long enough pw", {}, "username"),
        ("agent1", "short", {}, "at least 10"),
        ("agent1", "long enough pw", {"phone": "12"}, "not a valid phone"),
        ("agent1", "long enough pw", {"provider": "Gomti Services"}, "only for users with the provider role"),
    ],
)
def test_bad_user_details_are_explained(engine: sa.Engine, username, password, kwargs, message) -> None:
    with pytest.raises(UserError, match=message), session_scope(engine) as session:
        create_user(session, username, Role.AGENT, password, **kwargs)


def test_a_provider_user_belongs_to_an_existing_agency(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        session.add(Provider(name="Gomti Home Services", district="LUCKNOW"))
    with pytest.raises(UserError, match="needs --provider"), session_scope(engine) as session:
        create_user(session, "gomti", Role.PROVIDER, "long enough pw")
    with pytest.raises(UserError, match="no provider agency named"), session_scope(engine) as session:
        create_user(session, "gomti", Role.PROVIDER, "long enough pw", provider="Nobody")
    with session_scope(engine) as session:
        user = create_user(session, "gomti", Role.PROVIDER, "long enough pw", provider="Gomti Home Services")
        assert user.provider_id is not None


def test_a_username_is_taken_once(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        create_user(session, "supervisor", Role.SUPERVISOR, "long enough pw")
    with pytest.raises(UserError, match="taken"), session_scope(engine) as session:
        create_user(session, "Supervisor", Role.SUPERVISOR, "long enough pw")
