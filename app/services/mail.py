"""E-mail: rendering messages from templates, and sending them through the SMTP relay.

Messages are rendered when their event commits (app/services/outbox.py) and stored in the
outbox as a payload (``to``, ``subject``, ``text``, ``html``, ``attachments``); the
delivery job (app/jobs/outbox.py) turns a payload into a MIME message here and hands it
to the relay with aiosmtplib. ``SMTP_URL`` holds a password: it is parsed here and never
logged (errors name the host and port only).
"""

import base64
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
import jinja2

from app.settings import Settings

TEMPLATES = Path(__file__).resolve().parent.parent / "mail" / "templates"
# How long one SMTP operation (connect, a command) may take before it counts as a failure.
SMTP_TIMEOUT_SECONDS = 20.0


class MailKind(StrEnum):
    """What an e-mail is about; each has templates ``<kind>.subject.txt``, ``.txt``, ``.html``."""

    BOOKING_CONFIRMED = "booking_confirmed"
    REMINDER = "reminder"
    WAITLIST_OFFER = "waitlist_offer"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"
    SUSPENDED = "suspended"


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool  # smtps://: TLS from the first byte
    start_tls: bool  # ?starttls=true: upgrade a plain connection
    sender: str

    def __repr__(self) -> str:  # never the password
        return f"SmtpConfig(host={self.host!r}, port={self.port}, tls={self.use_tls})"

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def smtp_config(settings: Settings) -> SmtpConfig | None:
    """The relay of ``SMTP_URL``; None when it is unset (no e-mail at all)."""
    if settings.SMTP_URL is None:
        return None
    parts = urlsplit(settings.SMTP_URL.get_secret_value())
    implicit_tls = parts.scheme == "smtps"
    query = parse_qs(parts.query)
    starttls = query.get("starttls", ["false"])[-1].lower() in ("1", "true", "yes")
    assert parts.hostname is not None  # checked by Settings
    return SmtpConfig(
        host=parts.hostname,
        port=parts.port or (465 if implicit_tls else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        use_tls=implicit_tls,
        start_tls=starttls and not implicit_tls,
        sender=settings.MAIL_FROM,
    )


_text_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=False,  # noqa: S701 (plain-text parts and subjects: nothing is HTML)
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)
_html_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,  # every value in the HTML part is escaped
    undefined=jinja2.StrictUndefined,
)


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def render(kind: MailKind, context: dict[str, Any]) -> Rendered:
    # One line: a newline in a header would start another header.
    subject = " ".join(_text_env.get_template(f"{kind}.subject.txt").render(context).split())
    return Rendered(
        subject=subject,
        text=_text_env.get_template(f"{kind}.txt").render(context),
        html=_html_env.get_template(f"{kind}.html").render(context | {"title": subject}),
    )


def build_message(payload: dict[str, Any], *, sender: str, message_id: str) -> EmailMessage:
    """The MIME message of an outbox payload: text and HTML alternatives, attachments."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = payload["to"]
    message["Subject"] = payload["subject"]
    message["Date"] = formatdate(localtime=False, usegmt=True)
    # Stable per outbox row: a relay or a reader can drop a duplicate of a retried send.
    message["Message-ID"] = message_id
    message.set_content(payload["text"])
    message.add_alternative(payload["html"], subtype="html")
    for attachment in payload.get("attachments", []):
        maintype, _, subtype = attachment["content_type"].partition("/")
        message.add_attachment(
            base64.b64decode(attachment["data"]),
            maintype=maintype,
            subtype=subtype,
            filename=attachment["filename"],
        )
    return message


def message_id(outbox_id: int, sender: str) -> str:
    domain = sender.rpartition("@")[2].strip(" >") or "dl-sms"
    return make_msgid(idstring=f"outbox-{outbox_id}", domain=domain)


class PermanentFailure(Exception):
    """The relay refused the message for good (5xx): retrying will not help."""


class SmtpSender:
    """One connection to the relay for a batch of messages."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password,
            use_tls=config.use_tls,
            start_tls=config.start_tls,
            timeout=SMTP_TIMEOUT_SECONDS,
        )

    async def __aenter__(self) -> "SmtpSender":
        await self._client.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._client.quit()
        except aiosmtplib.SMTPException:
            self._client.close()

    async def send(self, message: EmailMessage) -> None:
        """Accepted by the relay, or PermanentFailure (5xx), or another exception (retry)."""
        try:
            await self._client.send_message(message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            if all(r.code >= 500 for r in exc.recipients):
                raise PermanentFailure(f"recipient refused: {exc.recipients[0].message}") from exc
            raise
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code >= 500 and not isinstance(exc, aiosmtplib.SMTPServerDisconnected):
                raise PermanentFailure(f"{exc.code} {exc.message}") from exc
            raise
