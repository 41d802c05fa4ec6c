"""Channels: apprise URLs and email addresses, redacted wherever they are shown."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from server.alerts.channels import Channel, ChannelError, channel_for, scrub, smtp_url
from taktline.config.settings import SmtpSettings
from taktline.model.secrets import SecretRef


def relay(**extra: object) -> SmtpSettings:
    return SmtpSettings.model_validate(
        {"host": "smtp.plant.example", "from": "taktline@plant.example"} | extra
    )


def test_an_email_address_goes_through_the_relay_with_starttls_by_default() -> None:
    channel = channel_for("anna.berg@plant.example", relay())
    assert channel.url.startswith("mailtos://smtp.plant.example:587?")
    assert "mode=starttls" in channel.url and "to=anna.berg%40plant.example" in channel.url
    assert channel.redacted.startswith("mailtos://smtp.plant.example")


def test_a_plain_relay_is_mailto_without_tls() -> None:
    url = smtp_url(relay(port=25, starttls=False), "anna.berg@plant.example")
    assert url.startswith("mailto://smtp.plant.example:25?")
    assert "mode=insecure" in url and "smtp=smtp.plant.example" in url


def test_the_relay_password_is_read_from_its_secret_and_never_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TAKTLINE_TEST_SMTP_PASSWORD", "s3cr@t/pw")
    settings = relay(username="taktline", password=SecretRef(env="TAKTLINE_TEST_SMTP_PASSWORD"))
    channel = channel_for("anna.berg@plant.example", settings)
    assert "taktline:s3cr%40t%2Fpw@smtp.plant.example" in channel.url
    assert "s3cr" not in repr(channel) and "s3cr" not in str(channel)
    assert "taktline:****@" in channel.redacted


def test_an_unset_relay_password_is_a_clear_error() -> None:
    settings = relay(username="taktline", password=SecretRef(env="TAKTLINE_TEST_UNSET_PASSWORD"))
    with pytest.raises(ChannelError, match="TAKTLINE_TEST_UNSET_PASSWORD is not set"):
        channel_for("anna.berg@plant.example", settings)


def test_redaction_masks_tokens_headers_and_webhook_paths() -> None:
    slack = Channel.from_url("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ")
    webhook = Channel.from_url(
        "jsons://hooks.plant.example/in/Pat4T0ken?+Authorization=Bearer%20xY9"
    )
    assert "TIiajkdnlazkcOXrIdevi7FQ" not in repr(slack)
    assert repr(webhook) == "Channel(jsons://hooks.plant.example/…)"


@pytest.mark.parametrize(
    ("spec", "smtp", "message"),
    [
        ("anna.berg@plant.example", None, "no alerts smtp relay is configured"),
        ("anna.berg", relay(), "neither an apprise URL"),
        (
            "nosuchscheme://host/path",
            None,
            "apprise cannot load the channel URL 'nosuchscheme://…'",
        ),
    ],
)
def test_what_is_not_a_channel_is_a_clear_error(
    spec: str, smtp: SmtpSettings | None, message: str
) -> None:
    with pytest.raises(ChannelError, match=re.escape(message)):
        channel_for(spec, smtp)


def test_apprise_reasons_for_a_bad_url_are_scrubbed() -> None:
    with pytest.raises(ChannelError) as error:
        Channel.from_url("slack://T1JJ3T3L2/BADSECRETTOKEN9")
    assert "Slack" in str(error.value)
    assert "BADSECRETTOKEN9" not in str(error.value) and "T1JJ3T3L2" not in str(error.value)


def test_scrub_masks_every_part_of_the_url_but_the_scheme() -> None:
    url = "json://ops:Pa55word@hooks.plant.example/in/Pat4T0ken?+X-Token=Bearer%20Hdr7oken"
    text = "failed ops Pa55word hooks.plant.example Pat4T0ken Hdr7oken json"
    assert scrub(url, text) == "failed ops **** **** **** **** json"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"from": "taktline"}, "is not an email address"),
        ({"password": {"env": "X"}}, "a password needs a username"),
        ({"host": "smtp.plant.example:25"}, "String should match pattern"),
    ],
)
def test_bad_smtp_settings_are_refused(extra: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        relay(**extra)
