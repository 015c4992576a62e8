"""An administrator makes and revokes API tokens from the command line; only a digest is kept."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlmodel import Session, select

from sewamitra.cli import main
from storage.db import session_scope
from storage.models import ApiRole, ApiToken, AuditEvent, Provider, utcnow
from storage.tokens import TokenError, authenticate, create_token, digest, revoke
from tests.factories import ROOT


def test_a_token_is_shown_once_and_kept_as_a_digest(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        issued = create_token(session, "UP-Portal", ApiRole.PARTNER)
    with Session(engine) as session:
        stored = session.exec(select(ApiToken)).one()
        assert stored.client == "up-portal"
        assert stored.role is ApiRole.PARTNER
        assert stored.token_hash == digest(issued.secret)
        assert issued.secret not in stored.token_hash
        assert stored.prefix == issued.secret[:10]
        assert authenticate(session, issued.secret, utcnow()) is not None
        assert authenticate(session, issued.secret[:-1] + "x", utcnow()) is None
        event = session.exec(select(AuditEvent)).one()
        assert (event.action, event.detail["client"]) == ("api_token.created", "up-portal")
        assert issued.secret not in str(event.detail)


@pytest.mark.parametrize(
    ("client", "role", "kwargs", "message"),
    [
        ("x", ApiRole.PARTNER, {}, "client"),
        ("up-portal", ApiRole.PARTNER, {"provider": "Gomti Home Services"}, "only for tokens with the provider"),
        ("gomti", ApiRole.PROVIDER, {}, "needs --provider"),
        ("gomti", ApiRole.PROVIDER, {"provider": "Nobody"}, "no provider agency named"),
        ("up-portal", ApiRole.PARTNER, {"expires_days": 0}, "expires-days"),
    ],
)
def test_bad_token_details_are_explained(engine: sa.Engine, client, role, kwargs, message) -> None:
    with pytest.raises(TokenError, match=message), session_scope(engine) as session:
        create_token(session, client, role, **kwargs)


def test_a_revoked_or_expired_token_no_longer_works(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        session.add(Provider(name="Gomti Home Services", district="LUCKNOW"))
        kept = create_token(session, "gomti", ApiRole.PROVIDER, provider="Gomti Home Services").secret
        gone = create_token(session, "gomti", ApiRole.PROVIDER, provider="Gomti Home Services").secret
        brief = create_token(session, "city-app", ApiRole.PARTNER, expires_days=1).secret
    with session_scope(engine) as session:
        assert [t.client for t in revoke(session, gone)] == ["gomti"]  # the whole token, of two with one client
        with pytest.raises(TokenError, match="no live token"):
            revoke(session, gone[:10])
    with Session(engine) as session:
        assert authenticate(session, gone, utcnow()) is None
        assert authenticate(session, kept, utcnow()) is not None
        assert authenticate(session, brief, utcnow()) is not None
        later = session.exec(select(ApiToken).where(ApiToken.client == "city-app")).one().expires_at
        assert later is not None
        assert authenticate(session, brief, later) is None


def test_the_cli_makes_and_revokes_a_token(tmp_path: Path) -> None:
    env = {
        "SEWAMITRA_DATA_DIR": str(tmp_path),
        "SEWAMITRA_DATABASE_URL": f"sqlite:///{tmp_path / 'h.db'}",
        "SEWAMITRA_CONFIG": str(ROOT / "config.yaml"),
    }  # the CLI sets it; the runner puts it back
    runner = CliRunner()
    assert runner.invoke(main, ["--config", str(ROOT / "config.yaml"), "db", "upgrade"], env=env).exit_code == 0
    made = runner.invoke(
        main, ["--config", str(ROOT / "config.yaml"), "create-token", "up-portal", "--role", "partner"], env=env
    )
    assert made.exit_code == 0, made.output
    secret = made.output.strip().splitlines()[-1]
    assert secret.startswith("sm_")
    assert len(secret) == 46
    revoked = runner.invoke(main, ["--config", str(ROOT / "config.yaml"), "revoke-token", secret[:10]], env=env)
    assert revoked.exit_code == 0
    assert "revoked" in revoked.output
    refused = runner.invoke(
        main, ["--config", str(ROOT / "config.yaml"), "create-token", "up-portal", "--role", "nobody"], env=env
    )
    assert refused.exit_code != 0
