"""``mailroom ingest webhooks``: run the webhook receiver (registered by :mod:`mailroom.email.cli`)."""

from __future__ import annotations

from pathlib import Path

import typer

from ....cli.options import LogOption

DEFAULT_CERT_HOST = r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?"  # same as .sns (kept here so --help imports little)


def webhooks(
    listen: str = typer.Option("127.0.0.1:8025", "--listen", help="HOST:PORT to serve on."),
    topic: str = typer.Option("email-events", "--topic", "-t", help="Topic to write the events to."),
    partitions: int = typer.Option(4, help="Partitions of the topic if it is created."),
    sendgrid_key: Path | None = typer.Option(None, "--sendgrid-key", help="File with SendGrid's Signed Event Webhook "
                                             "verification key (base64 DER as shown by SendGrid, or PEM)."),
    mailgun_signing_key: str | None = typer.Option(None, "--mailgun-signing-key", envvar="MAILGUN_WEBHOOK_SIGNING_KEY",
                                                   help="Mailgun's webhook signing key."),
    postmark_user: str | None = typer.Option(None, "--postmark-user", envvar="POSTMARK_WEBHOOK_AUTH",
                                             help="USER:PASSWORD of the Basic auth in Postmark's webhook URL."),
    sns_cert_host: str = typer.Option(DEFAULT_CERT_HOST, "--sns-cert-host",
                                      help="Regex the host of an SNS SigningCertURL/SubscribeURL must match."),
    sns_allow_http: bool = typer.Option(False, "--sns-allow-http", help="Accept http:// certificate URLs (tests only)."),
    sns_topic_arn: list[str] = typer.Option([], "--sns-topic-arn", help="Accept only these SNS topics (repeatable)."),
    sns_confirm: bool = typer.Option(True, "--sns-confirm/--no-sns-confirm", help="Confirm SNS subscriptions."),
    max_age: float | None = typer.Option(None, "--max-age", help="Reject SendGrid/Mailgun signatures older than this many seconds."),
    log: str = LogOption,
) -> None:
    """Receive ESP webhooks (SendGrid, Mailgun, SES via SNS, Postmark) into a topic as canonical events.

    Answers 2xx only after the events were written, so providers retry on failure; payloads that do not parse (400) or are not authentic (401) go to TOPIC-processing-log. Providers without a configured key reject every post (401).
    """
    import uvicorn

    from ....log import open_log
    from .app import create_app
    from .mailgun import Mailgun
    from .postmark import Postmark
    from .sendgrid import SendGrid
    from .ses import Ses
    from .sink import EventSink
    from .sns import SnsVerifier

    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        typer.echo(f"error: --listen wants HOST:PORT, got {listen!r}", err=True)
        raise typer.Exit(2)
    if postmark_user is not None and ":" not in postmark_user:
        typer.echo("error: --postmark-user wants USER:PASSWORD", err=True)
        raise typer.Exit(2)
    try:
        sg = SendGrid(sendgrid_key.read_text() if sendgrid_key else None, max_age_s=max_age)
    except (OSError, ValueError) as e:
        typer.echo(f"error: cannot load the SendGrid key {sendgrid_key}: {e}", err=True)
        raise typer.Exit(2) from None
    providers = [
        sg, Mailgun(mailgun_signing_key, max_age_s=max_age),
        Ses(SnsVerifier(cert_host_pattern=sns_cert_host, allow_http=sns_allow_http, topic_arns=sns_topic_arn or None),
            confirm_subscriptions=sns_confirm),
        Postmark(postmark_user),
    ]
    with open_log(log) as lg:
        sink = EventSink(lg, topic, partitions=partitions)
        app = create_app(sink, providers)
        configured = [p.name for p, ok in zip(providers, (sendgrid_key, mailgun_signing_key, True, postmark_user)) if ok]
        typer.echo(f"receiving webhooks on http://{host}:{port}/webhooks/{{{','.join(configured)}}} -> {topic}", err=True)
        uvicorn.run(app, host=host.strip("[]"), port=int(port), log_level="warning", access_log=False)
