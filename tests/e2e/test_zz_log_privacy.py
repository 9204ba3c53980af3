"""The logs of the end-to-end run hold no customer's phone, name or e-mail, nor what anyone typed.

PIPL (docs/privacy.md): logs name conversations by pseudonyms and customers by id. This reads the
whole log of the stack the e2e tests chatted with (every process: Rasa, actions, API, care), after
the others in this directory (pytest runs the files in name order, hence the name), so it checks
every turn they made: verifications with phones, complaints, staff questions about customers.
"""

import csv
from pathlib import Path

import pytest
from e2e_stack import RunningStack

from crm_store.settings import PROJECT_ROOT

pytestmark = pytest.mark.e2e

# Messages the e2e tests send (test_e2e_chat, test_e2e_faq, test_browser_staff, …), whole enough
# not to be words the assistant's own log lines use ("转人工记录" is one of those).
TYPED = ["帮我查一下订单SO202611180001到哪了", "查一下王芳的档案", "请问运费是怎么算的", "下单后多久发货"]


def _demo_people() -> list[str]:
    values: list[str] = []
    for file, columns in (("customers.csv", ("name", "phone", "email")), ("employees.csv", ("email",))):
        with (PROJECT_ROOT / "demo" / file).open(encoding="utf-8") as rows:
            values += [row[c] for row in csv.DictReader(rows) for c in columns if row[c]]
    return values


def test_the_run_logged_no_personal_data(running_stack: RunningStack) -> None:
    log = Path(running_stack.log_file).read_text(encoding="utf-8", errors="replace")
    assert "api" in log and "actions" in log  # the processes did log: this is the right file

    found = sorted({value for value in _demo_people() + TYPED if value in log})

    assert found == [], f"personal data or typed text in the stack's log: {found}"
