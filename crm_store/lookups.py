"""Names known to the CRM, for the Rasa lookup tables and the jieba user dictionary."""

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.models import Customer, Employee, Product
from crm_store.vocab import CUSTOMER_TYPE_COMPANY

# "无线蓝牙耳机 Air3", "有机大米 5kg": a Chinese name followed by a Latin/number model suffix.
_MODEL_SUFFIX = re.compile(r"(?P<base>.*[^\x00-\x7f])\s+[A-Za-z0-9][A-Za-z0-9.+-]*")


def product_short_name(name: str) -> str | None:
    """The product name without its model suffix, or None when there is none to drop."""
    match = _MODEL_SUFFIX.fullmatch(name.strip())
    if match is None:
        return None
    base = match["base"].strip()
    # A one-character base ("杯 X2") would match far too much in free text.
    return base if len(base) >= 2 else None


def entity_names(session: Session) -> dict[str, list[str]]:
    """Distinct, sorted names per entity: `product`, `customer_name` and `employee_name`.

    Products also appear without their model suffix ("扫地机器人 S7" and "扫地机器人") because people
    rarely type the model; company customers also appear by company name.
    """
    products: set[str] = set()
    for name in session.scalars(select(Product.name)):
        products.add(name)
        short = product_short_name(name)
        if short:
            products.add(short)

    customers: set[str] = set()
    for name, kind, company in session.execute(select(Customer.name, Customer.type, Customer.company)):
        customers.add(name)
        if kind == CUSTOMER_TYPE_COMPANY and company:
            customers.add(company)

    employees = set(session.scalars(select(Employee.name)))
    return {
        "product": sorted(products),
        "customer_name": sorted(customers),
        "employee_name": sorted(employees),
    }
