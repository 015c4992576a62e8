"""An administrator creates console users from the command line."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from sqlmodel import col, select

from sewamitra.cli import main
from storage.db import session_scope
from storage.models import AuditEvent, Provider, Role, User, UserDistrict
from storage.users import UserError, create_user, verify_password
from tests.factories import ROOT


def test_an_agent_is_created_with_a_hashed_password_and_an_audit_event(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        create_user(session, "Priya.Singh", Role.AGENT, "correct horse battery", phone="0522 262 3456")
    with session_scope(engine) as session:
        user = session.exec(select(User)).one()
        assert user.username == "priya.singh"
        assert user.role is Role.AGENT
        assert user.phone == "+915222623456"
        assert "correct horse" not in user.password_hash
        assert user.password_hash.startswith("scrypt:32768:8:1$")  # werkzeug's own cost (tests' quick users aside)
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


def test_the_cli_resets_a_password_and_disables_and_enables_a_user_but_keeps_the_last_admin(tmp_path) -> None:
    database = tmp_path / "h.db"
    env = {
        "SEWAMITRA_DATA_DIR": str(tmp_path),
        "SEWAMITRA_DATABASE_URL": f"sqlite:///{database}",
        "SEWAMITRA_CONFIG": str(ROOT / "config.yaml"),
    }  # the CLI sets it; the runner puts it back
    runner = CliRunner()

    def sewamitra(*args: str, stdin: str | None = None) -> Result:
        return runner.invoke(main, ["--config", str(ROOT / "config.yaml"), *args], env=env, input=stdin)

    assert sewamitra("db", "upgrade").exit_code == 0
    assert (
        sewamitra("create-user", "meera", "--role", "admin", "--password-stdin", stdin="long enough pw\n").exit_code
        == 0
    )
    assert (
        sewamitra("create-user", "asha", "--role", "agent", "--password-stdin", stdin="long enough pw\n").exit_code == 0
    )

    reset = sewamitra("reset-password", "Asha")
    assert reset.exit_code == 0, reset.output
    password = reset.output.strip().splitlines()[-1]
    engine = sa.create_engine(f"sqlite:///{database}")
    with session_scope(engine) as session:
        asha = session.exec(select(User).where(User.username == "asha")).one()
        assert asha.must_change_password is True
        assert verify_password(asha, password)
        assert not verify_password(asha, "long enough pw")

    refused = sewamitra("disable-user", "meera")
    assert refused.exit_code != 0
    assert "last active admin" in refused.output
    assert "no console user named" in sewamitra("disable-user", "nobody").output
    assert sewamitra("disable-user", "asha").exit_code == 0
    with session_scope(engine) as session:
        assert session.exec(select(User.active).where(User.username == "asha")).one() is False
    assert sewamitra("disable-user", "asha", "--enable").exit_code == 0
    with session_scope(engine) as session:
        assert session.exec(select(User.active).where(User.username == "asha")).one() is True
        actions = session.exec(select(AuditEvent.action).order_by(col(AuditEvent.id))).all()
        assert actions == ["user.created", "user.created", "user.password_reset", "user.disabled", "user.enabled"]
        assert all(password not in str(event.detail) for event in session.exec(select(AuditEvent)).all())
    engine.dispose()


def test_the_cli_creates_a_district_officer_with_their_districts_and_refuses_one_without(tmp_path) -> None:
    database = tmp_path / "h.db"
    env = {"SEWAMITRA_DATA_DIR": str(tmp_path), "SEWAMITRA_DATABASE_URL": f"sqlite:///{database}"}
    runner = CliRunner()

    def sewamitra(*args: str) -> Result:
        config = ["--config", str(ROOT / "config.yaml")]
        return runner.invoke(main, [*config, *args, "--password-stdin"], env=env, input="long enough pw\n")

    assert runner.invoke(main, ["--config", str(ROOT / "config.yaml"), "db", "upgrade"], env=env).exit_code == 0
    made = sewamitra("create-user", "dm.lucknow", "--role", "district_officer", "--district", "lucknow")
    assert made.exit_code == 0, made.output
    without = sewamitra("create-user", "dm.none", "--role", "district_officer")
    assert without.exit_code != 0
    assert "needs at least one district" in without.output
    unknown = sewamitra("create-user", "dm.x", "--role", "district_officer", "--district", "Atlantis")
    assert "no district 'ATLANTIS'" in unknown.output
    agent_with_one = sewamitra("create-user", "asha", "--role", "agent", "--district", "LUCKNOW")
    assert "only for district officers" in agent_with_one.output
    engine = sa.create_engine(f"sqlite:///{database}")
    with session_scope(engine) as session:
        assert session.exec(select(User.username).order_by(col(User.username))).all() == ["dm.lucknow"]
        assert session.exec(select(UserDistrict.district)).all() == ["LUCKNOW"]
    engine.dispose()


def test_a_password_the_cli_makes_up_for_a_user_is_changed_at_their_first_sign_in(tmp_path) -> None:
    """The README's `create-user asha …` shows a password made for Asha: someone else's choice, so the
    console asks her for her own first, as for a user an admin adds on the console. A script that
    pipes the password in (--password-stdin) is not asked."""
    database = tmp_path / "h.db"
    env = {"SEWAMITRA_DATA_DIR": str(tmp_path), "SEWAMITRA_DATABASE_URL": f"sqlite:///{database}"}
    runner = CliRunner()
    config = ["--config", str(ROOT / "config.yaml")]
    assert runner.invoke(main, [*config, "db", "upgrade"], env=env).exit_code == 0
    made = runner.invoke(main, [*config, "create-user", "asha", "--role", "agent"], env=env)
    assert made.exit_code == 0, made.output
    password = made.output.split("password: ")[1].split()[0]
    piped = runner.invoke(
        main, [*config, "create-user", "ravi", "--role", "agent", "--password-stdin"], env=env, input="long enough pw\n"
    )
    assert piped.exit_code == 0, piped.output
    engine = sa.create_engine(f"sqlite:///{database}")
    with session_scope(engine) as session:
        asha = session.exec(select(User).where(User.username == "asha")).one()
        ravi = session.exec(select(User).where(User.username == "ravi")).one()
        assert verify_password(asha, password)
        assert (asha.must_change_password, ravi.must_change_password) == (True, False)
    engine.dispose()
