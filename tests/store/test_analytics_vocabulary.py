"""The parser's dictionaries from the store: every value as the demo company's CSV files spell it."""

import csv
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from crm_store.analytics.vocabulary import load_vocabulary
from crm_store.models import Customer, Employee
from crm_store.vocab import COMPLAINT_CATEGORIES, OPPORTUNITY_STAGES, VALUE_TIERS


def _rows(demo_dir: Path, name: str) -> list[dict[str, str]]:
    with (demo_dir / name).open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_the_vocabulary_holds_every_value_of_the_demo_company(
    demo_store: sessionmaker[Session], demo_dir: Path
) -> None:
    customers = _rows(demo_dir, "customers.csv")
    products = _rows(demo_dir, "products.csv")
    employees = _rows(demo_dir, "employees.csv")
    with demo_store() as session:
        vocabulary = load_vocabulary(session)

    assert vocabulary.regions == {c["region"] for c in customers} | {e["region"] for e in employees}
    assert vocabulary.cities == {c["city"] for c in customers}
    assert vocabulary.products == {p["name"] for p in products}
    assert vocabulary.categories == {p["category"] for p in products}
    assert dict(vocabulary.staff) == {e["name"]: e["employee_id"] for e in employees}
    assert vocabulary.customer_ids == {c["customer_id"] for c in customers}
    assert vocabulary.customers["张伟"] == ("C0001",)
    companies: dict[str, list[str]] = {}
    for c in customers:
        if c["company"]:
            companies.setdefault(c["company"], []).append(c["customer_id"])
    assert {k: list(v) for k, v in vocabulary.companies.items()} == companies
    assert vocabulary.companies["华峰科技有限公司"] == ("C0003", "C0028")
    assert vocabulary.tiers == VALUE_TIERS
    assert vocabulary.opportunity_stages == frozenset(OPPORTUNITY_STAGES)
    assert vocabulary.complaint_categories == frozenset(COMPLAINT_CATEGORIES)


def test_a_manager_of_all_regions_adds_no_region_and_new_names_appear_on_reload(
    demo_store: sessionmaker[Session],
) -> None:
    with demo_store.begin() as session:
        session.add(Employee(employee_id="E09", name="钱多多", role="manager", region="全国"))
        session.add(Customer(customer_id="C0999", name="欧阳娜娜", type="个人", city="拉萨", region="西藏"))
    with demo_store() as session:
        vocabulary = load_vocabulary(session)
    assert "全国" not in vocabulary.regions
    assert "西藏" in vocabulary.regions and "拉萨" in vocabulary.cities
    assert vocabulary.staff["钱多多"] == "E09"
    assert vocabulary.customers["欧阳娜娜"] == ("C0999",)
