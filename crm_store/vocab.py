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
TICKET_STATUSES: Final = ("新建", "处理中", "已解决", "已关闭")
TICKET_OPEN_STATUSES: Final = frozenset({"新建", "处理中"})

EMPLOYEE_ROLES: Final = ("manager", "sales", "service", "admin")

CUSTOMER_TYPES: Final = ("个人", "企业")
CUSTOMER_TYPE_COMPANY: Final = "企业"
GENDERS: Final = ("男", "女")
CHANNEL_PREFS: Final = ("wechat", "sms", "email", "web")

INTERACTION_KINDS: Final = ("拜访", "电话", "微信", "邮件", "短信", "会议", "其他")

OPPORTUNITY_STAGES: Final = ("初步接触", "需求确认", "方案演示", "报价", "谈判", "赢单", "输单")

TASK_STATUSES: Final = ("待办", "已完成", "已取消")
TASK_STATUS_OPEN: Final = "待办"

OUTBOX_STATUSES: Final = ("pending", "sent", "failed", "skipped")
OUTBOX_STATUS_PENDING: Final = "pending"
