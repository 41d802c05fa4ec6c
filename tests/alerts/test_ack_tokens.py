"""Acknowledgement tokens: round trip, tampering, expiry, another key; the key file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from server.alerts.ack_tokens import (
    KEY_FILE,
    AckTokens,
    SigningKeyError,
    TokenExpired,
    TokenInvalid,
    ack_link,
    load_signing_key,
)
from taktline.model.secrets import SecretRef

HOUR = 3600.0


class Clock:
    """Seconds since the epoch, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_token_names_the_alert_and_the_person() -> None:
    tokens = AckTokens("k" * 43)
    token = tokens.issue("fa1/stopped#2", "anna.berg")
    assert tokens.verify(token, max_age_s=HOUR) == ("fa1/stopped#2", "anna.berg")


def test_the_link_carries_the_token_under_the_public_url() -> None:
    token = AckTokens("k" * 43).issue("fa1/stopped#2", "anna.berg")
    assert ack_link("https://taktline.plant.example/", token) == (
        f"https://taktline.plant.example/alerts/ack/{token}"
    )
    assert token.replace("-", "").replace("_", "").replace(".", "").isalnum()  # URL-safe


def test_an_altered_token_is_invalid() -> None:
    tokens = AckTokens("k" * 43)
    token = tokens.issue("fa1/stopped#2", "anna.berg")
    rest = token.split(".", 1)[1]
    other = AckTokens("k" * 43).issue("fa1/stopped#2", "boris").split(".", 1)[0]
    for altered in [other + "." + rest, token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), "x"]:
        with pytest.raises(TokenInvalid):
            tokens.verify(altered, max_age_s=HOUR)


def test_a_token_signed_with_another_key_is_invalid() -> None:
    token = AckTokens("another key").issue("fa1/stopped#2", "anna.berg")
    with pytest.raises(TokenInvalid):
        AckTokens("k" * 43).verify(token, max_age_s=HOUR)


def test_a_token_expires_after_its_lifetime() -> None:
    clock = Clock()
    tokens = AckTokens("k" * 43, clock=clock)
    token = tokens.issue("fa1/stopped#2", "anna.berg")
    clock.now += 12 * HOUR
    assert tokens.verify(token, max_age_s=12 * HOUR) == ("fa1/stopped#2", "anna.berg")
    clock.now += 1
    with pytest.raises(TokenExpired):
        tokens.verify(token, max_age_s=12 * HOUR)


def test_an_expired_token_with_a_bad_signature_is_invalid_not_expired() -> None:
    clock = Clock()
    token = AckTokens("another key", clock=clock).issue("fa1/stopped#2", "anna.berg")
    clock.now += 24 * HOUR
    with pytest.raises(TokenInvalid):
        AckTokens("k" * 43, clock=clock).verify(token, max_age_s=HOUR)


def test_without_a_configured_key_one_is_made_in_the_state_dir_and_kept(tmp_path: Path) -> None:
    state = tmp_path / "state"
    key = load_signing_key(None, state)
    assert len(key) >= 43
    assert stat.S_IMODE((state / KEY_FILE).stat().st_mode) == 0o600
    assert load_signing_key(None, state) == key  # a restart keeps the links valid
    token = AckTokens(key).issue("fa1/stopped#2", "anna.berg")
    assert AckTokens(load_signing_key(None, state)).verify(token, HOUR)[1] == "anna.berg"


def test_a_configured_key_comes_from_its_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAKTLINE_TEST_ACK_KEY", "configured key")
    assert load_signing_key(SecretRef(env="TAKTLINE_TEST_ACK_KEY"), tmp_path) == "configured key"
    assert not (tmp_path / KEY_FILE).exists()


def test_unreadable_or_empty_keys_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match="TAKTLINE_TEST_UNSET_KEY is not set"):
        load_signing_key(SecretRef(env="TAKTLINE_TEST_UNSET_KEY"), tmp_path)
    (tmp_path / KEY_FILE).write_text("\n")
    with pytest.raises(SigningKeyError, match="is empty"):
        load_signing_key(None, tmp_path)
    with pytest.raises(SigningKeyError, match="empty"):
        AckTokens("")
