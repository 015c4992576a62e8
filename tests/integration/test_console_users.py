"""Console user administration: an admin adds, changes, disables, re-enables users and resets their
passwords; a password given by someone else must be changed at the next sign-in; everyone changes
their own. Every step is an audit event, and no password is ever in one, nor in a log line."""

from __future__ import annotations

import logging
import re
import threading

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlmodel import Session, col, select
from werkzeug.test import TestResponse

from core.settings import Settings
from devtools.up import prepare_database
from sewamitra import localsecrets
from storage.db import session_scope
from storage.models import AuditEvent, Provider, Role, User
from storage.users import Refusal, UserError, set_active, update_user
from tests.console import PASSWORD, Console, add_user, page
from tests.factories import engine_of

NEW_PASSWORD = "a new one, mine alone"
ISSUED = re.compile(r'<b class="num" id="issued-password">([^<]+)</b>')


@pytest.fixture
def admin(app: Flask) -> Console:
    add_user(engine_of(app), "meera", Role.ADMIN)
    console = Console(app)
    console.sign_in("meera")
    return console


def user_named(app: Flask, username: str) -> User:
    with Session(engine_of(app)) as db:
        return db.exec(select(User).where(User.username == username)).one()


def events(app: Flask, action_prefix: str = "user.") -> list[AuditEvent]:
    with Session(engine_of(app)) as db:
        query = select(AuditEvent).where(col(AuditEvent.action).startswith(action_prefix)).order_by(col(AuditEvent.id))
        return list(db.exec(query).all())


def last_event(app: Flask, action: str) -> AuditEvent:
    found = [event for event in events(app) if event.action == action]
    assert found, f"no {action} event in {[e.action for e in events(app)]}"
    return found[-1]


def issued_password(response: TestResponse) -> str:
    found = ISSUED.search(page(response))
    assert found, page(response)
    return found.group(1)


def adds_agent(admin: Console, username: str = "asha", **fields: str) -> TestResponse:
    admin.get("/console/users/new")
    form = {"username": username, "full_name": "Asha Verma", "role": "agent", "phone": "", "language": ""}
    return admin.post("/console/users/new", {**form, **fields})


def changes_password(console: Console, current: str, new: str = NEW_PASSWORD, again: str | None = None) -> TestResponse:
    console.get("/console/password")
    return console.post("/console/password", {"current": current, "new": new, "again": new if again is None else again})


# -- who may administer users -------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.AGENT, Role.SUPERVISOR, Role.PROVIDER])
def test_only_an_admin_reaches_the_user_pages(app: Flask, role: Role) -> None:
    someone = add_user(engine_of(app), "someone", role, provider="Gomti Services" if role is Role.PROVIDER else None)
    console = Console(app)
    console.sign_in("someone")
    for path in ("/console/users", "/console/users/new", f"/console/users/{someone.id}"):
        assert console.get(path).status_code == 403, path
    for path in ("/console/users/new", f"/console/users/{someone.id}/reset", f"/console/users/{someone.id}/disable"):
        assert console.post(path, {"username": "sneaky", "role": "admin"}).status_code == 403, path
    assert "Users" not in page(console.get("/console/workers"))  # not in the menu either
    assert [user.username for user in _all_users(app)] == ["someone"]
    assert user_named(app, "someone").must_change_password is False
    assert "access.refused" in [event.action for event in events(app, "access.")]


def test_the_admin_sees_every_user_with_role_agency_phone_and_state(app: Flask, admin: Console) -> None:
    add_user(engine_of(app), "gomti.office", Role.PROVIDER, provider="Gomti Services", phone="0522 262 3456")
    add_user(engine_of(app), "asha", Role.AGENT)
    with session_scope(engine_of(app)) as db:
        db.execute(sa.update(User).where(col(User.username) == "asha").values(active=False))
    listing = page(admin.get("/console/users"))
    assert admin.get("/console/users").status_code == 200
    for seen in ("meera", "gomti.office", "Gomti Services", "+915222623456", "Provider agency", "asha", "Disabled"):
        assert seen in listing, seen


# -- adding a user, who chooses their own password at the first sign-in -------------------------------


def test_an_admin_adds_an_agent_who_must_choose_a_password_then_works(app: Flask, admin: Console) -> None:
    added = adds_agent(admin, phone="+919811112222")
    assert added.status_code == 200
    first = issued_password(added)
    asha = user_named(app, "asha")
    assert (asha.role, asha.phone, asha.must_change_password) == (Role.AGENT, "+919811112222", True)
    created = last_event(app, "user.created")
    assert (created.actor, created.entity_id) == (f"user:{user_named(app, 'meera').id}", asha.id)

    desk = Console(app)
    signed_in = desk.sign_in("asha", first)
    assert signed_in.headers["Location"] == "/console/password"
    for path in ("/console/queue", "/console/requests", "/console/"):
        assert desk.get(path).headers["Location"] == "/console/password", path
    assert desk.post("/console/queue/take").headers["Location"] == "/console/password"  # takes no caller
    assert "Your password was given to you" in page(desk.get("/console/password"))

    changed = changes_password(desk, first)
    assert changed.headers["Location"] == "/console/queue"
    assert desk.get("/console/queue").status_code == 200
    assert user_named(app, "asha").must_change_password is False
    assert last_event(app, "user.password_changed").detail["was_required"] is True
    assert Console(app).sign_in("asha", NEW_PASSWORD).headers["Location"] == "/console/queue"


def test_an_admin_may_choose_the_first_password_which_is_not_shown_back(app: Flask, admin: Console) -> None:
    added = adds_agent(admin, password="chosen by the admin")
    assert added.status_code == 200
    assert "chosen by the admin" not in page(added)
    assert "the one you typed" in page(added)
    assert Console(app).sign_in("asha", "chosen by the admin").headers["Location"] == "/console/password"


@pytest.mark.parametrize(
    ("fields", "refusal"),
    [
        ({"username": "A"}, "A user name has 3 to 60 characters"),
        ({"username": "meera"}, "That user name is taken."),
        ({"password": "short"}, "A password has at least 10 characters."),
        ({"phone": "12"}, "The desk phone is not a valid phone number."),
        ({"role": "provider"}, "A provider user needs an agency."),
        ({"role": "root"}, "Choose a role from the list."),
        ({"language": "fr"}, "Choose a language from the list."),
    ],
)
def test_a_user_that_cannot_be_added_is_explained_and_nothing_is_stored(
    app: Flask, admin: Console, fields: dict[str, str], refusal: str
) -> None:
    refused = adds_agent(admin, **fields)
    assert refused.status_code == 400
    assert refusal in page(refused)
    assert [user.username for user in _all_users(app)] == ["meera"]


def test_a_provider_user_is_added_to_an_agency(app: Flask, admin: Console) -> None:
    with session_scope(engine_of(app)) as db:
        db.add(Provider(name="Gomti Home Services", district="LUCKNOW"))
    with Session(engine_of(app)) as db:
        agency = db.exec(select(Provider)).one()
    assert adds_agent(admin, "gomti", role="provider", provider_id=str(agency.id)).status_code == 200
    assert user_named(app, "gomti").provider_id == agency.id


# -- changing a user ----------------------------------------------------------------------------------


def test_an_admin_changes_a_users_role_agency_phone_and_language(app: Flask, admin: Console) -> None:
    asha = add_user(engine_of(app), "asha", Role.AGENT)
    with session_scope(engine_of(app)) as db:
        db.add(Provider(name="Gomti Home Services", district="LUCKNOW"))
    with Session(engine_of(app)) as db:
        agency = db.exec(select(Provider)).one()
    admin.get(f"/console/users/{asha.id}")
    form = {"role": "provider", "provider_id": str(agency.id), "phone": "0522 262 3456", "language": "hi"}
    saved = admin.post(f"/console/users/{asha.id}", {**form, "full_name": "Asha Verma"})
    assert saved.headers["Location"] == f"/console/users/{asha.id}"
    changed = user_named(app, "asha")
    assert (changed.role, changed.provider_id, changed.phone, changed.language) == (
        Role.PROVIDER,
        agency.id,
        "+915222623456",
        "hi",
    )
    event = last_event(app, "user.changed")
    assert (event.from_status, event.to_status) == ("agent", "provider")
    assert set(event.detail["changed"]) == {"role", "full_name", "phone", "provider_id", "language"}

    hindi = Console(app)
    hindi.sign_in("asha")
    assert '<html lang="hi">' in page(hindi.get("/console/workers"))  # her language at sign-in


def test_an_admin_cannot_disable_demote_or_reset_themself(app: Flask, admin: Console) -> None:
    me = user_named(app, "meera")
    admin.get(f"/console/users/{me.id}")
    refused = admin.post(f"/console/users/{me.id}", {"role": "agent", "language": ""})
    assert refused.status_code == 400
    assert "You cannot disable yourself" in page(refused)
    admin.post(f"/console/users/{me.id}/disable")
    admin.post(f"/console/users/{me.id}/reset")
    still = user_named(app, "meera")
    assert (still.role, still.active, still.must_change_password) == (Role.ADMIN, True, False)
    assert admin.get("/console/users").status_code == 200
    assert [event.action for event in events(app) if event.action not in ("user.created", "user.signed_in")] == []


def test_the_last_active_admin_cannot_be_disabled_or_demoted(app: Flask) -> None:
    engine = engine_of(app)
    only = add_user(engine, "meera", Role.ADMIN)
    assert only.id is not None
    for change in (
        lambda db: set_active(db, only.id, False, actor="cli"),
        lambda db: update_user(
            db, only.id, role=Role.SUPERVISOR, full_name=None, phone=None, provider_id=None, language=None, actor="cli"
        ),
    ):
        with pytest.raises(UserError) as refused, session_scope(engine) as db:
            change(db)
        assert refused.value.refusal is Refusal.LAST_ADMIN
    assert user_named(app, "meera").active is True
    assert user_named(app, "meera").role is Role.ADMIN


def test_two_admins_disabling_each_other_at_once_leave_one_admin(app: Flask) -> None:
    """The first takes every active admin's row lock; the second waits, then finds itself the last."""
    engine = engine_of(app)
    first, second = add_user(engine, "meera", Role.ADMIN), add_user(engine, "vikram", Role.ADMIN)
    assert first.id is not None
    assert second.id is not None
    outcome: list[object] = []
    started = threading.Event()

    def other_admin() -> None:
        started.set()
        try:
            with session_scope(engine) as db:
                set_active(db, first.id, False, actor=f"user:{second.id}")  # type: ignore[arg-type]
            outcome.append("disabled")
        except UserError as refused:
            outcome.append(refused.refusal)

    with session_scope(engine) as db:
        set_active(db, second.id, False, actor=f"user:{first.id}")
        thread = threading.Thread(target=other_admin)
        thread.start()
        assert started.wait(30)
        _wait_until_blocked(engine)
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert outcome == [Refusal.LAST_ADMIN]
    assert (user_named(app, "meera").active, user_named(app, "vikram").active) == (True, False)


def _wait_until_blocked(engine: sa.Engine) -> None:
    """Until PostgreSQL shows another connection waiting on a lock (what the test is about)."""
    with engine.connect() as connection:
        for _ in range(600):
            waiting = connection.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            ).scalar()
            if waiting:
                return
            connection.execute(sa.text("SELECT pg_sleep(0.05)"))
            connection.rollback()
    raise AssertionError("the second admin's change never waited for the first's lock")


# -- disabling and enabling ---------------------------------------------------------------------------


def test_a_disabled_user_is_signed_out_at_the_next_page_and_refused_at_sign_in(app: Flask, admin: Console) -> None:
    asha = add_user(engine_of(app), "asha", Role.AGENT)
    desk = Console(app)
    desk.sign_in("asha")
    assert desk.get("/console/queue").status_code == 200

    admin.get(f"/console/users/{asha.id}")
    done = admin.post(f"/console/users/{asha.id}/disable", {"reason": "left the call centre"})
    assert done.headers["Location"] == f"/console/users/{asha.id}"
    assert desk.get("/console/queue").headers["Location"].startswith("/console/sign-in")
    assert Console(app).sign_in("asha").status_code == 401
    disabled = last_event(app, "user.disabled")
    assert (disabled.entity_id, disabled.reason, disabled.to_status) == (asha.id, "left the call centre", "disabled")

    admin.get(f"/console/users/{asha.id}")
    admin.post(f"/console/users/{asha.id}/enable")
    assert Console(app).sign_in("asha").headers["Location"] == "/console/queue"
    assert last_event(app, "user.enabled").entity_id == asha.id


def test_a_forged_form_disables_nobody(app: Flask, admin: Console) -> None:
    asha = add_user(engine_of(app), "asha", Role.AGENT)
    forged = admin.client.post(f"/console/users/{asha.id}/disable", data={"reason": "forged"})
    assert forged.status_code == 403
    assert user_named(app, "asha").active is True
    assert "csrf.refused" in [event.action for event in events(app, "csrf.")]


def test_a_user_that_does_not_exist_is_not_found(admin: Console) -> None:
    assert admin.get("/console/users/999999").status_code == 404
    assert admin.post("/console/users/999999/disable").status_code == 404
    assert admin.post("/console/users/999999/reset").status_code == 404


# -- resetting a password -----------------------------------------------------------------------------


def test_a_reset_password_is_shown_once_ends_the_users_sessions_and_must_be_changed(
    app: Flask, admin: Console, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    asha = add_user(engine_of(app), "asha", Role.AGENT)
    desk = Console(app)
    desk.sign_in("asha")

    admin.get(f"/console/users/{asha.id}")
    reset = admin.post(f"/console/users/{asha.id}/reset")
    assert reset.status_code == 200
    given = issued_password(reset)
    assert desk.get("/console/queue").headers["Location"].startswith("/console/sign-in")
    assert Console(app).sign_in("asha").status_code == 401  # the old password no longer opens anything
    again = Console(app)
    assert again.sign_in("asha", given).headers["Location"] == "/console/password"
    assert last_event(app, "user.password_reset").detail["chosen_by_admin"] is False

    assert changes_password(again, given, NEW_PASSWORD).headers["Location"] == "/console/queue"
    assert given not in caplog.text
    assert NEW_PASSWORD not in caplog.text
    assert PASSWORD not in caplog.text
    for event in events(app):
        assert given not in str(event.detail)
        assert NEW_PASSWORD not in str(event.detail)


# -- one's own password -------------------------------------------------------------------------------


def test_a_user_changes_their_own_password_proving_the_current_one(app: Flask) -> None:
    add_user(engine_of(app), "vikram", Role.SUPERVISOR)
    desk, other_desk = Console(app), Console(app)
    desk.sign_in("vikram")
    other_desk.sign_in("vikram")

    wrong = changes_password(desk, "not my password")
    assert wrong.status_code == 400
    assert "The current password is wrong." in page(wrong)
    differ = changes_password(desk, PASSWORD, NEW_PASSWORD, "a typo in the second")
    assert "The two new passwords differ." in page(differ)
    short = changes_password(desk, PASSWORD, "short")
    assert "A password has at least 10 characters." in page(short)
    same = changes_password(desk, PASSWORD, PASSWORD)
    assert "must differ from the current one" in page(same)
    assert [event.action for event in events(app) if event.action == "user.password_changed"] == []
    assert Console(app).sign_in("vikram").headers["Location"] == "/console/dashboard"

    assert changes_password(desk, PASSWORD).headers["Location"] == "/console/dashboard"
    assert desk.get("/console/dashboard").status_code == 200  # this session goes on
    assert other_desk.get("/console/dashboard").headers["Location"].startswith("/console/sign-in")  # others end
    assert Console(app).sign_in("vikram").status_code == 401
    assert Console(app).sign_in("vikram", NEW_PASSWORD).status_code == 302
    assert last_event(app, "user.password_changed").detail["was_required"] is False


def test_every_role_has_the_change_password_page(app: Flask) -> None:
    for role in Role:
        name = f"user.{role.value}"
        add_user(engine_of(app), name, role, provider="Gomti Services" if role is Role.PROVIDER else None)
        console = Console(app)
        console.sign_in(name)
        assert console.get("/console/password").status_code == 200, role
        assert 'href="/console/password"' in page(console.get("/console/password"))


# -- the first admin of `sewamitra up` ----------------------------------------------------------------


def test_the_first_admin_made_by_up_must_change_the_password_at_the_first_sign_in(
    app: Flask, app_settings: Settings
) -> None:
    login = prepare_database(app_settings, seed_demo=False)
    assert "the console asks for a new one at the first sign-in" in login
    first = (app_settings.data_dir / localsecrets.ADMIN_PASSWORD_FILE).read_text().strip()
    console = Console(app)
    assert console.sign_in("admin", first).headers["Location"] == "/console/password"
    assert console.get("/console/users").headers["Location"] == "/console/password"
    assert changes_password(console, first).headers["Location"] == "/console/dashboard"
    assert console.get("/console/users").status_code == 200


def _all_users(app: Flask) -> list[User]:
    with Session(engine_of(app)) as db:
        return list(db.exec(select(User).order_by(col(User.username))).all())
