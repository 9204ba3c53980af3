"""Request and response bodies of `/api/customers`: matches, the 360 view, updates.

The 360 body is `crm_store.customer360.CustomerView.to_json()`, described here for the OpenAPI
schema: amounts are numbers in CNY, dates ISO 8601, missing values null.
"""

from datetime import date

from pydantic import BaseModel, ConfigDict, Field, model_validator


class CustomerMatchOut(BaseModel):
    """A customer found for a query; the phone is always masked in a list."""

    customer_id: str
    name: str
    type: str = Field(description="个人 or 企业.")
    company: str | None
    city: str | None
    phone: str = Field(description="Masked, e.g. 182****4104.")
    owner_id: str | None
    matched_by: str = Field(
        description="id, phone, name, company_person, title, company, surname or phone_tail."
    )


class ProfileOut(BaseModel):
    name: str
    type: str
    company: str | None
    gender: str | None
    city: str | None
    region: str | None
    owner_id: str | None
    owner_name: str | None
    channel_pref: str | None
    opt_out: bool
    phone: str | None = Field(description="In full for the customer's owner only, masked otherwise.")
    email: str | None = Field(description="In full for the customer's owner only, masked otherwise.")
    contact_masked: bool


class OrderLineOut(BaseModel):
    order_id: str
    order_date: date
    status: str
    amount: float
    items: list[str] = Field(description="Product names, the largest line first.")


class TicketLineOut(BaseModel):
    ticket_id: str
    category: str | None
    priority: str
    status: str
    opened_at: date
    summary: str


class LastContactOut(BaseModel):
    interaction_id: str
    occurred_at: date
    kind: str
    summary: str
    employee_id: str
    employee_name: str


class OpportunityLineOut(BaseModel):
    opportunity_id: str
    name: str
    stage: str
    amount: float
    probability: int = Field(description="Percent, by stage (crm_store.opportunities.STAGE_PROBABILITY).")
    weighted_amount: float
    expected_close: date | None
    owner_id: str


class RfmOut(BaseModel):
    """RFM scores 1 (worst) to 5 (best) among the customers who bought in the last 12 months."""

    recency: int | None = Field(description="Days since the last counted order, scored; null: not scored.")
    frequency: int | None = Field(description="Counted orders in the window, scored.")
    monetary: int | None = Field(description="Their spend, scored.")


class CustomerViewOut(BaseModel):
    """The 360 view of a customer (crm_store/customer360.py documents every rule)."""

    customer_id: str
    url: str = Field(description="The customer's staff page, /customers/{id}.")
    profile: ProfileOut
    value_tier: str = Field(
        description="关键, 普通 or 小客户: the first 80 %, next 15 % and last 5 % of the last 12 months' "
        "revenue (docs/analytics.md)."
    )
    lifecycle: str = Field(description="潜在, 新客, 回头客, 忠实, 流失预警 or 已流失.")
    rfm: RfmOut
    clv: float = Field(
        description="Customer lifetime value in 元: yearly margin × discounted expected lifetime."
    )
    churn_risk: float = Field(description="0 to 1; above 0.5 exactly when lapsed by the lapse rule.")
    scores_as_of: date | None = Field(
        description="The day of the refresh the tier, RFM, CLV and churn risk come from; null: computed now."
    )
    total_spend: float
    order_count: int
    last_order_date: date | None
    days_since_last_order: int | None
    lapse_threshold_days: int | None
    recent_orders: list[OrderLineOut]
    open_tickets: list[TicketLineOut]
    last_contact: LastContactOut | None
    next_step: str | None
    next_date: date | None
    open_opportunities: list[OpportunityLineOut]
    weighted_pipeline: float
    preferences: list[str]
    notes: str | None
    next_birthday: date | None
    days_to_birthday: int | None


class CustomerPatchIn(BaseModel):
    """Fields to change; only those given are changed. Each is validated as the chat's updates are.

    `preferences` replaces the whole list; `add_preference` adds one item to it.
    """

    model_config = ConfigDict(extra="forbid")

    phone: str | None = Field(default=None, examples=["13912345678"])
    email: str | None = None
    city: str | None = None
    birthday: str | None = Field(default=None, examples=["1990-03-05"])
    notes: str | None = None
    preferences: list[str] | None = None
    add_preference: str | None = Field(default=None, examples=["喜欢靠窗的座位"])

    @model_validator(mode="after")
    def _one_way_for_preferences(self) -> "CustomerPatchIn":
        if self.preferences is not None and self.add_preference is not None:
            raise ValueError("preferences 与 add_preference 只能提供其一")
        return self

    def changes(self) -> dict[str, object]:
        """The service's form: field → raw value (an added preference is a text, a list replaces)."""
        given = self.model_dump(exclude_unset=True)
        if "add_preference" in given:
            given["preferences"] = given.pop("add_preference")
        return given


class CustomerPatchOut(BaseModel):
    """What changed (field names only: the values are personal)."""

    customer_id: str
    changed: list[str]
