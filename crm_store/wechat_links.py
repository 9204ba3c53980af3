"""WeChat Official Account followers: which customer an openid is, and which callbacks were taken.

* `link` / `unlink` / `linked_customer`: the follower ↔ customer link (table `wechat_links`). Linking
  and unlinking are audited; the audit trail names the follower by the pseudonym of its conversation
  (`wechat_subject`), never by the openid.
* `first_seen` / `purge_seen`: WeChat retries a callback it got no answer to within 5 s, and several
  API workers may each get a copy. `first_seen` inserts the message's key or ignores it
  (`ON CONFLICT DO NOTHING`, atomic on both backends), so exactly one caller is told "new".

Services flush; callers commit.
"""

from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from crm_store.access import Actor
from crm_store.audit import audit
from crm_store.errors import Invalid, NotFound
from crm_store.identity import Verification, display_name
from crm_store.models import AuditLog, Customer, WechatLink, WechatSeenMessage
from crm_store.privacy import conversation_key, mask_phone

__all__ = [
    "SEEN_KEEP",
    "WECHAT_CONVERSATION_PREFIX",
    "first_seen",
    "last_unlinked_at",
    "link",
    "linked_customer",
    "purge_seen",
    "recognised_follower",
    "unlink",
    "wechat_conversation",
    "wechat_subject",
]

WECHAT_CONVERSATION_PREFIX: Final = "wechat:"
SEEN_KEEP: Final = timedelta(days=1)
"""How long a taken callback's key is kept (WeChat retries within about 15 s)."""
_MAX_OPENID: Final = 64
_MAX_KEY: Final = 64


def wechat_conversation(openid: str) -> str:
    """The Rasa sender id of a follower's conversation: `wechat:<openid>`."""
    return f"{WECHAT_CONVERSATION_PREFIX}{openid}"


def wechat_subject(openid: str) -> str:
    """The pseudonym of a follower in logs and the audit trail (of its conversation id)."""
    return conversation_key(wechat_conversation(openid))


def _check_openid(openid: str) -> None:
    if not openid or len(openid) > _MAX_OPENID:
        raise Invalid("openid_invalid", field="openid", max_length=_MAX_OPENID)


def link(session: Session, openid: str, customer_id: str, *, actor: Actor) -> bool:
    """Link a follower to a customer (replacing an earlier link of that follower); audited.

    Returns:
        True when something changed, False when the follower was already linked to this customer.

    Raises:
        Invalid: An empty or over-long openid ("openid_invalid").
        NotFound: No such customer ("customer_not_found").
    """
    _check_openid(openid)
    if session.get(Customer, customer_id) is None:
        raise NotFound("customer_not_found", customer_id=customer_id)
    row = session.get(WechatLink, openid)
    if row is not None and row.customer_id == customer_id:
        return False
    old = row.customer_id if row is not None else None
    if row is None:
        session.add(WechatLink(openid=openid, customer_id=customer_id))
    else:
        row.customer_id = customer_id
    audit(
        session,
        actor,
        "link_wechat",
        entity="wechat_link",
        entity_id=wechat_subject(openid),
        changes=[("customer_id", old, customer_id)],
    )
    session.flush()
    return True


def unlink(session: Session, openid: str, *, actor: Actor | None = None) -> str | None:
    """Remove a follower's link; audited. Returns the customer it was linked to, or None if none.

    `actor` defaults to the customer themselves (the follower's "解绑").
    """
    row = session.get(WechatLink, openid)
    if row is None:
        return None
    customer_id = row.customer_id
    session.delete(row)
    audit(
        session,
        actor or Actor(role="customer"),
        "unlink_wechat",
        entity="wechat_link",
        entity_id=wechat_subject(openid),
        changes=[("customer_id", customer_id, None)],
    )
    session.flush()
    return customer_id


def linked_customer(session: Session, openid: str) -> str | None:
    """The customer a follower is linked to, or None."""
    return session.scalar(select(WechatLink.customer_id).where(WechatLink.openid == openid))


def recognised_follower(session: Session, conversation: str) -> Verification | None:
    """A linked follower's conversation as verified, so that a returning customer need not verify
    again; None for any other conversation.

    Only the WeChat channel produces `wechat:` conversation ids (api.gateway reserves the prefix),
    and it proved the openid by the callback's signature; the link itself was made when the
    follower verified with phone and order number in the chat.
    """
    if not conversation.startswith(WECHAT_CONVERSATION_PREFIX):
        return None
    customer = session.scalar(
        select(Customer)
        .join(WechatLink, WechatLink.customer_id == Customer.customer_id)
        .where(WechatLink.openid == conversation.removeprefix(WECHAT_CONVERSATION_PREFIX))
    )
    if customer is None:
        return None
    return Verification(
        outcome="verified",
        customer_id=customer.customer_id,
        masked_phone=mask_phone(customer.phone),
        display_name=display_name(customer),
    )


def last_unlinked_at(session: Session, openid: str) -> datetime | None:
    """When the follower last said "解绑" (or staff unlinked them), or None: a verification of the
    conversation from before then must not link the follower again."""
    return session.scalar(
        select(func.max(AuditLog.occurred_at)).where(
            AuditLog.action == "unlink_wechat",
            AuditLog.entity == "wechat_link",
            AuditLog.entity_id == wechat_subject(openid),
        )
    )


def _insert(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(WechatSeenMessage)
    if dialect == "sqlite":
        return sqlite.insert(WechatSeenMessage)
    raise NotImplementedError(
        f"insert-or-ignore needs PostgreSQL or SQLite, not {dialect}"
    )  # programming error


def first_seen(session: Session, msg_key: str, *, now: datetime) -> bool:
    """Record a callback's key; True only for the first caller with that key (insert-or-ignore).

    The caller commits at once, so that a concurrent copy in another worker sees the row.

    Raises:
        Invalid: An empty or over-long key ("msg_key_invalid").
    """
    if not msg_key or len(msg_key) > _MAX_KEY:
        raise Invalid("msg_key_invalid", field="msg_key", max_length=_MAX_KEY)
    statement = (
        _insert(session)
        .values(msg_key=msg_key, received_at=now)
        .on_conflict_do_nothing(index_elements=["msg_key"])
        .returning(WechatSeenMessage.msg_key)
    )
    inserted = session.scalars(statement).first()
    session.flush()
    return inserted is not None


def purge_seen(session: Session, *, now: datetime) -> int:
    """Forget keys received more than `SEEN_KEEP` before `now`; returns how many."""
    result = session.execute(delete(WechatSeenMessage).where(WechatSeenMessage.received_at < now - SEEN_KEEP))
    session.flush()
    return int(getattr(result, "rowcount", 0) or 0)
