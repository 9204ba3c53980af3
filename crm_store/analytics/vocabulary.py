"""The names a manager's question can mention, read from the store: the dictionaries of the parser.

`knowledge.manager_query` reads "上个月华东区王丽的客户买了多少 Air3" by looking the words up here:
the regions, cities, products and categories as the store spells them, the staff by name, the
customers by name and by company, and the closed value sets of the other dimensions (value tiers,
opportunity stages, complaint categories). The values are the canonical ones a `QuerySpec` filter
holds (crm_store/analytics/spec.py); the parser adds the colloquial forms (华东区, Air3, A类客户).

The vocabulary is company-wide, not the asker's scope: a name outside the scope is still
recognised, so that the query layer can refuse it instead of answering a different question.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session

from crm_store.access import ALL_REGIONS
from crm_store.models import Customer, Employee, Opportunity, Product, Ticket
from crm_store.vocab import COMPLAINT_CATEGORIES, OPPORTUNITY_STAGES, VALUE_TIERS

__all__ = ["Vocabulary", "load_vocabulary"]

_EMPTY: Final[Mapping[str, tuple[str, ...]]] = {}


@dataclass(frozen=True)
class Vocabulary:
    """Every dimension value the store knows, in its canonical spelling.

    `customers` and `companies` map a person's name and a company's full name to the ids of the
    customers so called (two customers may share a name; several contacts share a company).
    """

    regions: frozenset[str]
    cities: frozenset[str]
    products: frozenset[str]
    categories: frozenset[str]
    staff: Mapping[str, str]
    """Employee name → employee id (the sales_rep dimension's values are these names)."""
    customers: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: _EMPTY)
    companies: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: _EMPTY)
    customer_ids: frozenset[str] = frozenset()
    tiers: tuple[str, ...] = VALUE_TIERS
    opportunity_stages: frozenset[str] = frozenset(OPPORTUNITY_STAGES)
    complaint_categories: frozenset[str] = frozenset(COMPLAINT_CATEGORIES)


def _distinct(session: Session, column: InstrumentedAttribute[Any]) -> frozenset[str]:
    values = session.scalars(select(column).distinct())
    return frozenset(str(v).strip() for v in values if v is not None and str(v).strip())


def load_vocabulary(session: Session) -> Vocabulary:
    """The store's dictionaries: distinct regions, cities, products, categories, staff and customers.

    Regions are those of customers and employees (全国, a manager's scope, is no region of its own).
    Stages and complaint categories are the closed sets of crm_store.vocab plus any older value the
    store still holds. One pass over the customers (id, name, company) builds the name maps.
    """
    regions = (_distinct(session, Customer.region) | _distinct(session, Employee.region)) - {ALL_REGIONS}
    staff: dict[str, str] = {}
    for employee_id, name in session.execute(
        select(Employee.employee_id, Employee.name).order_by(Employee.employee_id)
    ):
        staff.setdefault(name.strip(), employee_id)

    by_name: dict[str, list[str]] = {}
    by_company: dict[str, list[str]] = {}
    ids: set[str] = set()
    for customer_id, name, company in session.execute(
        select(Customer.customer_id, Customer.name, Customer.company).order_by(Customer.customer_id)
    ):
        ids.add(customer_id)
        if name and name.strip():
            by_name.setdefault(name.strip(), []).append(customer_id)
        if company and company.strip():
            by_company.setdefault(company.strip(), []).append(customer_id)

    return Vocabulary(
        regions=regions,
        cities=_distinct(session, Customer.city),
        products=_distinct(session, Product.name),
        categories=_distinct(session, Product.category),
        staff=staff,
        customers={name: tuple(found) for name, found in by_name.items()},
        companies={company: tuple(found) for company, found in by_company.items()},
        customer_ids=frozenset(ids),
        opportunity_stages=frozenset(OPPORTUNITY_STAGES) | _distinct(session, Opportunity.stage),
        complaint_categories=frozenset(COMPLAINT_CATEGORIES) | _distinct(session, Ticket.category),
    )
