"""The closed value sets of the CRM, kept in one place.

The database has no CHECK constraints for these (adding a value must not need a migration); the
importer and the services validate against these constants instead. The Chinese values are the
ones in the CSV import format and are shown to users as they are.
"""

from typing import Final

ORDER_STATUSES: Final = (
    "待付款",
    "已付款",
    "已发货",
    "运输中",
    "派送中",
    "已签收",
    "已取消",
    "退货中",
    "已退款",
)
# An order in one of these states will not move any more: nothing to chase.
ORDER_CLOSED_STATUSES: Final = frozenset({"已签收", "已取消", "已退款"})
# Past its promised date an order is late unless the goods arrived, or it was cancelled or refunded.
# 退货中 implies the goods were delivered, so a return in progress is not a late delivery either.
ORDER_NOT_LATE_STATUSES: Final = ORDER_CLOSED_STATUSES | {"退货中"}

TICKET_PRIORITIES: Final = ("低", "中", "高")
TICKET_PRIORITY_HIGH: Final = "高"
TICKET_STATUSES: Final = ("新建", "处理中", "已解决", "已关闭")
TICKET_OPEN_STATUSES: Final = frozenset({"新建", "处理中"})
TICKET_STATUS_NEW: Final = "新建"

EMPLOYEE_ROLES: Final = ("manager", "sales", "service", "admin")

CUSTOMER_TYPES: Final = ("个人", "企业")
CUSTOMER_TYPE_COMPANY: Final = "企业"
GENDERS: Final = ("男", "女")
CHANNEL_PREFS: Final = ("wechat", "sms", "email", "web")

INTERACTION_KINDS: Final = ("拜访", "电话", "微信", "邮件", "短信", "会议", "消息", "其他")
# A message the customer left through the chat or a messaging app (e.g. when filing a complaint).
INTERACTION_KIND_MESSAGE: Final = "消息"

# The sales pipeline, in order (issue 16): 线索 → 需求确认 → 报价 → 谈判 → 赢单/输单; the last two close it.
# Probabilities per stage live in crm_store/opportunities.py (STAGE_PROBABILITY).
OPPORTUNITY_PIPELINE: Final = ("线索", "需求确认", "报价", "谈判", "赢单", "输单")
OPPORTUNITY_STAGE_WON: Final = "赢单"
OPPORTUNITY_STAGE_LOST: Final = "输单"
# Stages of older data, still accepted on import; a move takes an opportunity into the pipeline.
OPPORTUNITY_LEGACY_STAGES: Final = ("初步接触", "方案演示")
OPPORTUNITY_STAGES: Final = OPPORTUNITY_PIPELINE + OPPORTUNITY_LEGACY_STAGES

TASK_STATUSES: Final = ("待办", "已完成", "已取消")
TASK_STATUS_OPEN: Final = "待办"

# pending → (sending, claimed by a sender) → sent; failed after too many attempts; skipped when it
# must not go out (the customer opted out, no address). A deferred message is pending with a later
# `next_attempt_at`.
OUTBOX_STATUSES: Final = ("pending", "sending", "sent", "failed", "skipped")
OUTBOX_STATUS_PENDING: Final = "pending"
OUTBOX_STATUS_SENDING: Final = "sending"
OUTBOX_STATUS_SENT: Final = "sent"
OUTBOX_STATUS_FAILED: Final = "failed"
OUTBOX_STATUS_SKIPPED: Final = "skipped"

COMPLAINT_CATEGORIES: Final = ("产品质量", "物流配送", "服务态度", "价格争议", "售后维修", "其他")
COMPLAINT_CATEGORY_OTHER: Final = "其他"
# Where a ticket or a hand-off came from; the same values as a customer's preferred channel.
CONTACT_CHANNELS: Final = CHANNEL_PREFS

# Satisfaction ratings, for tickets and hand-off cases alike: 1 (very unhappy) to 5 (very happy).
RATING_MIN: Final = 1
RATING_MAX: Final = 5

VALUE_TIER_KEY: Final = "关键"
VALUE_TIER_NORMAL: Final = "普通"
VALUE_TIER_SMALL: Final = "小客户"
VALUE_TIERS: Final = (VALUE_TIER_KEY, VALUE_TIER_NORMAL, VALUE_TIER_SMALL)

# How an employee's role is shown to customers: a function, never a name.
ROLE_LABELS: Final = {"service": "客服专员", "sales": "客户经理", "manager": "经理", "admin": "值班专员"}

HANDOFF_REASON_ASKED: Final = "客户要求"
HANDOFF_REASON_NOT_UNDERSTOOD: Final = "连续未理解"
HANDOFF_REASON_SERIOUS_COMPLAINT: Final = "高优先级投诉"
HANDOFF_REASONS: Final = (
    HANDOFF_REASON_ASKED,
    HANDOFF_REASON_NOT_UNDERSTOOD,
    HANDOFF_REASON_SERIOUS_COMPLAINT,
)
HANDOFF_STATUSES: Final = ("open", "closed")
HANDOFF_STATUS_OPEN: Final = "open"
HANDOFF_STATUS_CLOSED: Final = "closed"
TRANSCRIPT_SPEAKERS: Final = ("customer", "bot", "staff")
# What a staff message of a case is: an ordinary reply, or the closing words that end the case
# (delivered with the 1–5 rating buttons while the case is unrated).
HANDOFF_MESSAGE_REPLY: Final = "reply"
HANDOFF_MESSAGE_CLOSING: Final = "closing"
HANDOFF_MESSAGE_KINDS: Final = (HANDOFF_MESSAGE_REPLY, HANDOFF_MESSAGE_CLOSING)

# A notice to an employee (outbox.employee_id set) about a new ticket.
OUTBOX_KIND_TICKET_NOTICE: Final = "ticket_notice"

# A question the assistant could not answer: waiting for staff, turned into knowledge, or set aside.
UNANSWERED_STATUSES: Final = ("open", "resolved", "dismissed")
UNANSWERED_STATUS_OPEN: Final = "open"
UNANSWERED_STATUS_RESOLVED: Final = "resolved"
UNANSWERED_STATUS_DISMISSED: Final = "dismissed"

# Proactive care (issue 17): the rules, whom a message is for, and the staff inbox channel. Customer
# channels are `CHANNEL_PREFS` (`web` is the customer web inbox); staff reminders go to the inbox.
CARE_RULES: Final = ("birthday", "lapse", "follow_up", "sla", "replenishment")
CARE_RULE_BIRTHDAY: Final = "birthday"
CARE_RULE_LAPSE: Final = "lapse"
CARE_RULE_FOLLOW_UP: Final = "follow_up"
CARE_RULE_SLA: Final = "sla"
CARE_RULE_REPLENISHMENT: Final = "replenishment"
CARE_AUDIENCES: Final = ("staff", "customer")
CARE_AUDIENCE_STAFF: Final = "staff"
CARE_AUDIENCE_CUSTOMER: Final = "customer"
CARE_STAFF_CHANNEL: Final = "staff_inbox"
# A copy of a staff reminder as a WeCom app message, for an employee linked to a WeCom member.
CARE_WECOM_CHANNEL: Final = "wecom"
CARE_CHANNELS: Final = (CARE_STAFF_CHANNEL, *CHANNEL_PREFS, CARE_WECOM_CHANNEL)
