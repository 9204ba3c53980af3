"""Request and response bodies of `/api/opportunities`."""

from datetime import date, datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class StageChangeOut(BaseModel):
    from_stage: str | None
    to_stage: str
    changed_at: datetime
    actor_id: str | None


class OpportunityOut(BaseModel):
    """An opportunity with its weighted amount (amount × the stage's probability) and stage history."""

    opportunity_id: str
    name: str
    customer_id: str
    customer_name: str
    company: str | None
    owner_id: str
    owner_name: str
    stage: str
    amount: float
    probability: int
    weighted_amount: float
    expected_close: date | None
    lost_reason: str | None
    is_open: bool
    history: list[StageChangeOut]


class PipelineOut(BaseModel):
    """Open opportunities the signed-in employee sees, with totals."""

    items: list[OpportunityOut]
    total_amount: float
    weighted_total: float


class OpportunityIn(BaseModel):
    """A new opportunity; a salesperson always owns what they create."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str = Field(min_length=1, max_length=32, examples=["C0003"])
    name: str = Field(min_length=1, max_length=128, examples=["企业版软件三期"])
    amount: Decimal = Field(examples=["120000"])
    stage: str = Field(default="线索", description="线索, 需求确认, 报价 or 谈判.")
    expected_close: date | None = None
    owner_id: str | None = Field(default=None, description="Managers and admins only.")


class OpportunityPatchIn(BaseModel):
    """Move the stage, change the amount, or close as lost (`lost_reason`, stage 输单 or omitted)."""

    model_config = ConfigDict(extra="forbid")

    stage: str | None = Field(default=None, examples=["谈判"])
    amount: Decimal | None = None
    lost_reason: str | None = Field(default=None, max_length=500, examples=["客户预算取消"])

    @model_validator(mode="after")
    def _something_to_do(self) -> "OpportunityPatchIn":
        if self.stage is None and self.amount is None and self.lost_reason is None:
            raise ValueError("请提供 stage、amount 或 lost_reason")
        if self.lost_reason is not None and self.stage not in (None, "输单"):
            raise ValueError("lost_reason 只用于标记输单")
        return self
