"""Repository functions for the notification outbox: durable delivery with retries.

A message is `pending` until sent (`sent`) or given up on (`dead`). `due_messages`
locks what it returns on PostgreSQL (`FOR UPDATE SKIP LOCKED`), so two senders never
take the same message. Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from receiver.storage.alert_tables import OutboxMessage

# Errors are stored for operators; a short reason is enough, and bounds what could leak.
MAX_ERROR_CHARS = 500


def enqueue_message(
    *,
    session: Session,
    group_key: str,
    title: str,
    body: str,
    tags: Sequence[str],
    now: datetime,
) -> OutboxMessage:
    """Queue a notification, due at once."""
    message = OutboxMessage(
        created_at=now,
        group_key=group_key,
        title=title,
        body=body,
        tags=list(tags),
        next_attempt_at=now,
    )
    session.add(message)
    session.flush()
    return message


def due_messages(*, session: Session, now: datetime, limit: int) -> list[OutboxMessage]:
    """Pending messages whose next attempt is due, oldest first."""
    query = (
        select(OutboxMessage)
        .where(OutboxMessage.status == "pending", col(OutboxMessage.next_attempt_at) <= now)
        .order_by(col(OutboxMessage.next_attempt_at), col(OutboxMessage.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.exec(query).all())


def mark_sent(*, session: Session, message_id: int, sent_at: datetime) -> None:
    """Record a successful delivery."""
    message = _get(session, message_id)
    message.status, message.sent_at = "sent", sent_at
    message.attempts += 1
    message.last_error = None
    session.add(message)


def mark_failed(
    *,
    session: Session,
    message_id: int,
    next_attempt_at: datetime,
    error: str,
    max_attempts: int | None = None,
) -> OutboxMessage:
    """Record a failed attempt: retry at `next_attempt_at`, or `dead` after `max_attempts`.

    `error` must be a secret-free reason (never a notifier URL); it is cut to 500 characters.
    """
    message = _get(session, message_id)
    message.attempts += 1
    message.last_error = error[:MAX_ERROR_CHARS]
    message.next_attempt_at = next_attempt_at
    if max_attempts is not None and message.attempts >= max_attempts:
        message.status = "dead"
    session.add(message)
    return message


def pending_count(*, session: Session) -> int:
    """How many messages are waiting to be sent."""
    query = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "pending")
    return session.exec(query).one()


def _get(session: Session, message_id: int) -> OutboxMessage:
    message = session.get(OutboxMessage, message_id)
    if message is None:
        raise LookupError(f"no outbox message {message_id}")
    return message
