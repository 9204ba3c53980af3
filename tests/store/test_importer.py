"""CSV import: exact counts, idempotence, row-level rejection with file:line, no personal data leaked."""

import logging
import re
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from crm_store.faqs import load_faq_file
from crm_store.importer import KNOWN_FILES, ImportReport, import_csv_dir
from crm_store.models import Base, Customer, Employee, Faq, Order, OrderItem, Product, Ticket

DEMO_COUNTS = {
    "employees.csv": 8,
    "products.csv": 12,
    "customers.csv": 60,
    "orders.csv": 254,
    "order_items.csv": 504,
    "tickets.csv": 16,
    "interactions.csv": 41,
    "opportunities.csv": 3,
    "faqs.csv": 24,
}
TABLES = {f"{table}.csv": table for table in (name.removesuffix(".csv") for name in KNOWN_FILES)}


def table_counts(factory: sessionmaker[Session]) -> dict[str, int]:
    with factory() as session:
        return {
            file: session.scalar(select(func.count()).select_from(Base.metadata.tables[table])) or 0
            for file, table in TABLES.items()
        }


def copy_demo(demo_dir: Path, target: Path) -> Path:
    shutil.copytree(demo_dir, target)
    for path in target.iterdir():
        path.chmod(0o644)  # the shared fixture is read-only
    return target


def replace_line(path: Path, line: int, expected_prefix: str, new: str) -> str:
    """Replace physical line `line` (1-based) after checking it is the row the test means."""
    lines = path.read_text(encoding="utf-8").split("\n")
    old = lines[line - 1]
    assert old.startswith(expected_prefix), f"{path.name}:{line} is {old!r}: the fixture changed"
    lines[line - 1] = new
    path.write_text("\n".join(lines), encoding="utf-8")
    return old


def set_cell(path: Path, line: int, row_id: str, column: str, value: str) -> str:
    """Set one cell of the row on `line`; return the value it replaces."""
    header = path.read_text(encoding="utf-8").split("\n", 1)[0].split(",")
    old = path.read_text(encoding="utf-8").split("\n")[line - 1]
    cells = old.split(",")
    index = header.index(column)
    previous = cells[index]
    cells[index] = value
    replace_line(path, line, row_id + ",", ",".join(cells))
    return previous


def test_import_demo_loads_exact_counts(session_factory: sessionmaker[Session], demo_dir: Path) -> None:
    report = import_csv_dir(session_factory, demo_dir)
    assert report.ok
    assert report.errors == []
    assert report.missing_files == [] and report.unknown_files == []
    assert {name: s.inserted for name, s in report.files.items()} == DEMO_COUNTS
    assert {name: s.read for name, s in report.files.items()} == DEMO_COUNTS
    assert table_counts(session_factory) == DEMO_COUNTS


def test_import_demo_keeps_the_pinned_facts(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        zhang = session.get_one(Customer, "C0001")
        assert (zhang.name, zhang.owner_id, zhang.city, zhang.opt_out) == ("张伟", "E02", "上海", False)
        assert session.get_one(Customer, "C0002").opt_out is True
        assert session.get_one(Product, "P001").price == Decimal("399")
        assert session.get_one(OrderItem, ("SO202604040001", "P003")).quantity == 2
        assert session.get_one(Ticket, "T09001").status == "处理中"
        faq = session.get_one(Faq, "F001")
        assert faq.alt_question_list() == ["如何退货", "退货流程是什么", "买的东西可以退吗"]


def test_import_twice_changes_nothing(session_factory: sessionmaker[Session], demo_dir: Path) -> None:
    import_csv_dir(session_factory, demo_dir)
    again = import_csv_dir(session_factory, demo_dir)
    assert again.ok
    assert {name: (s.inserted, s.updated, s.unchanged) for name, s in again.files.items()} == {
        name: (0, 0, count) for name, count in DEMO_COUNTS.items()
    }
    assert table_counts(session_factory) == DEMO_COUNTS


def test_changed_rows_are_updated_in_place(
    demo_store: sessionmaker[Session], demo_dir: Path, tmp_path: Path
) -> None:
    data = copy_demo(demo_dir, tmp_path / "crm")
    assert set_cell(data / "products.csv", 2, "P001", "price", "379.5") == "399"
    assert set_cell(data / "customers.csv", 2, "C0001", "city", "杭州") == "上海"

    report = import_csv_dir(demo_store, data)

    assert report.ok
    products, customers = report.files["products.csv"], report.files["customers.csv"]
    assert (products.inserted, products.updated, products.unchanged) == (0, 1, 11)
    assert (customers.inserted, customers.updated, customers.unchanged) == (0, 1, 59)
    assert table_counts(demo_store) == DEMO_COUNTS
    with demo_store() as session:
        assert session.get_one(Product, "P001").price == Decimal("379.50")
        assert session.get_one(Customer, "C0001").city == "杭州"


def test_three_broken_rows_are_reported_and_the_rest_loaded(
    session_factory: sessionmaker[Session], demo_dir: Path, tmp_path: Path
) -> None:
    data = copy_demo(demo_dir, tmp_path / "crm")
    set_cell(data / "tickets.csv", 5, "T00004", "priority", "紧急")
    set_cell(data / "interactions.csv", 11, "I00010", "customer_id", "C9999")
    bad_phone = "1" + set_cell(data / "customers.csv", 18, "C0017", "phone", "")[1:7]
    set_cell(data / "customers.csv", 18, "C0017", "phone", bad_phone)

    report = import_csv_dir(session_factory, data)

    assert not report.ok
    assert sorted(str(e) for e in report.errors) == [
        "customers.csv:18: phone 不是有效的 11 位中国大陆手机号",
        "interactions.csv:11: customer_id C9999 不存在",
        "tickets.csv:5: 工单优先级「紧急」不在允许的取值中（可选：低、中、高）",
    ]
    assert {name: s.rejected for name, s in report.files.items() if s.rejected} == {
        "customers.csv": 1,
        "interactions.csv": 1,
        "tickets.csv": 1,
    }
    expected = dict(DEMO_COUNTS, **{"customers.csv": 59, "interactions.csv": 40, "tickets.csv": 15})
    assert table_counts(session_factory) == expected
    with session_factory() as session:
        assert session.get(Customer, "C0017") is None
        assert session.get(Ticket, "T00004") is None


def test_bad_dates_and_phones_are_rejected(
    session_factory: sessionmaker[Session], demo_dir: Path, tmp_path: Path
) -> None:
    data = copy_demo(demo_dir, tmp_path / "crm")
    set_cell(data / "customers.csv", 32, "C0031", "birthday", "1990-02-30")
    set_cell(data / "customers.csv", 56, "C0055", "phone", "021-64381234")
    set_cell(data / "tickets.csv", 3, "T00002", "opened_at", "2026/11/xx")

    report = import_csv_dir(session_factory, data)

    assert sorted(str(e) for e in report.errors) == [
        "customers.csv:32: birthday 不是有效日期（应为 YYYY-MM-DD）",
        "customers.csv:56: phone 不是有效的 11 位中国大陆手机号",
        "tickets.csv:3: opened_at 不是有效日期（应为 YYYY-MM-DD）",
    ]


def test_rejection_reasons_never_contain_personal_data(
    session_factory: sessionmaker[Session], demo_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = copy_demo(demo_dir, tmp_path / "crm")
    customers = data / "customers.csv"
    # Shifted columns put personal data where an enum or an id is expected.
    original = replace_line(customers, 18, "C0017,", "")
    cells = original.split(",")
    name, phone, email = cells[1], cells[6], cells[7]
    shifted = [
        cells[0],
        cells[1],
        cells[1],
        "",
        "男",
        "1990-01-01",
        "12345",
        email + "x",
        "",
        "",
        phone,
        "wechat",
    ]
    replace_line(customers, 18, "", ",".join([*shifted, "0", "2024-01-01", ""]))
    set_cell(data / "employees.csv", 9, "E08", "email", "zhengxia(at)example.com")

    with caplog.at_level(logging.WARNING, logger="crm_store.importer"):
        report = import_csv_dir(session_factory, data)

    reasons = [e.reason for e in report.errors]
    assert len(reasons) == 2
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for text in [*reasons, logged]:
        for secret in (name, phone, email, "12345", "zhengxia", "郑霞"):
            assert secret not in text
        assert "@" not in text
        assert not re.search(r"(?<![A-Za-z])\d{5,}", text)
    assert "客户类型" in reasons[1] or "客户类型" in reasons[0]


def test_rejected_order_takes_its_items_with_it(
    session_factory: sessionmaker[Session], demo_dir: Path, tmp_path: Path
) -> None:
    data = copy_demo(demo_dir, tmp_path / "crm")
    set_cell(data / "orders.csv", 17, "SO202512290016", "status", "已发出")
    item_lines = [
        number
        for number, line in enumerate(
            (data / "order_items.csv").read_text(encoding="utf-8").split("\n"), start=1
        )
        if line.startswith("SO202512290016,")
    ]

    report = import_csv_dir(session_factory, data)

    # One broken row is reported as one; its items are held back and blamed on it, not on themselves.
    assert [str(e) for e in report.root_errors] == [
        "orders.csv:17: 订单状态「已发出」不在允许的取值中（可选：待付款、已付款、已发货、运输中、派送中、"
        "已签收、已取消、退货中、已退款）"
    ]
    assert [(e.file, e.line, e.caused_by) for e in report.held_back] == [
        ("order_items.csv", n, "orders.csv:17") for n in item_lines
    ]
    assert report.files["orders.csv"].rejected == 1
    assert report.files["order_items.csv"].rejected == 0
    assert report.files["order_items.csv"].held_back == len(item_lines)
    assert report.files["order_items.csv"].inserted == 504 - len(item_lines)
    assert not report.ok


def test_rows_of_a_rejected_customer_are_held_back_down_the_chain(
    session_factory: sessionmaker[Session], demo_dir: Path, tmp_path: Path
) -> None:
    data = copy_demo(demo_dir, tmp_path / "crm")
    set_cell(data / "customers.csv", 10, "C0009", "owner_id", "E99")

    report = import_csv_dir(session_factory, data)

    assert [str(e) for e in report.root_errors] == ["customers.csv:10: owner_id E99 不存在"]
    # C0009's orders, and those orders' items, all point back at the one broken customer row.
    held = report.held_back
    assert {e.file for e in held} == {"orders.csv", "order_items.csv"}
    assert {e.caused_by for e in held} == {"customers.csv:10"}
    assert report.files["orders.csv"].held_back == 4
    assert report.files["orders.csv"].inserted == 250


def test_line_numbers_are_physical_lines_across_multiline_cells(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    data = tmp_path / "crm"
    data.mkdir()
    (data / "faqs.csv").write_text(
        "faq_id,category,question,answer,alt_questions\n"
        'F001,售后,怎么退货？,"第一步：申请\n第二步：寄回\n第三步：退款",如何退货\n'
        "F002,售后,,缺少问题,\n",
        encoding="utf-8",
    )
    report = import_csv_dir(session_factory, data)
    assert [str(e) for e in report.errors] == ["faqs.csv:5: 缺少必填字段 question"]
    with session_factory() as session:
        assert session.get_one(Faq, "F001").answer == "第一步：申请\n第二步：寄回\n第三步：退款"


def test_utf8_bom_is_accepted(session_factory: sessionmaker[Session], demo_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "crm"
    data.mkdir()
    content = (demo_dir / "employees.csv").read_text(encoding="utf-8")
    (data / "employees.csv").write_bytes(b"\xef\xbb\xbf" + content.replace("\n", "\r\n").encode("utf-8"))

    report = import_csv_dir(session_factory, data)

    assert report.ok, [str(e) for e in report.errors]
    assert report.files["employees.csv"].inserted == 8
    with session_factory() as session:
        assert session.get_one(Employee, "E01").name == "陈思远"


def test_not_utf8_is_reported_not_crashed(session_factory: sessionmaker[Session], tmp_path: Path) -> None:
    data = tmp_path / "crm"
    data.mkdir()
    (data / "employees.csv").write_bytes(
        "employee_id,name,role,region,email\nE01,陈思远,manager,华东,\n".encode("gbk")
    )
    report = import_csv_dir(session_factory, data)
    assert not report.ok
    assert [str(e) for e in report.errors] == ["employees.csv:2: 文件不是 UTF-8 编码，请另存为 UTF-8"]


def test_missing_files_are_skipped_and_unknown_files_reported(
    session_factory: sessionmaker[Session], demo_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "crm"
    data.mkdir()
    shutil.copy(demo_dir / "employees.csv", data / "employees.csv")
    (data / "leads.csv").write_text("lead_id,name\nL1,某人\n", encoding="utf-8")

    report = import_csv_dir(session_factory, data)

    assert report.ok
    assert report.unknown_files == ["leads.csv"]
    assert report.missing_files == [name for name in KNOWN_FILES if name != "employees.csv"]
    assert list(report.files) == ["employees.csv"]


def test_missing_column_rejects_the_file(
    session_factory: sessionmaker[Session], demo_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "crm"
    data.mkdir()
    rows = (demo_dir / "products.csv").read_text(encoding="utf-8").split("\n")
    (data / "products.csv").write_text(
        "\n".join(",".join(r.split(",")[:3]) for r in rows if r), encoding="utf-8"
    )

    report = import_csv_dir(session_factory, data)

    assert not report.ok
    assert [str(e) for e in report.errors] == ["products.csv:1: 表头缺少列：price"]
    assert table_counts(session_factory)["products.csv"] == 0


def test_duplicate_id_in_one_file_later_row_wins(
    session_factory: sessionmaker[Session], demo_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "crm"
    data.mkdir()
    content = (demo_dir / "products.csv").read_text(encoding="utf-8").rstrip("\n")
    (data / "products.csv").write_text(content + "\nP001,无线蓝牙耳机 Air3,数码配件,359\n", encoding="utf-8")

    with caplog.at_level(logging.WARNING, logger="crm_store.importer"):
        report = import_csv_dir(session_factory, data)

    summary = report.files["products.csv"]
    assert report.ok
    assert (summary.read, summary.inserted, summary.updated) == (13, 12, 1)
    assert "products.csv:14: P001 重复出现" in caplog.text
    with session_factory() as session:
        assert session.get_one(Product, "P001").price == Decimal("359")


def test_a_file_larger_than_one_batch_is_imported_whole(
    session_factory: sessionmaker[Session], demo_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "crm"
    data.mkdir()
    shutil.copy(demo_dir / "employees.csv", data / "employees.csv")
    lines = [
        "customer_id,name,type,company,gender,birthday,phone,email,city,region,owner_id,channel_pref,opt_out,created_at,notes"
    ]
    lines += [
        f"C{i:06d},客户{i},个人,,男,1990-01-01,138{i:08d},,上海,华东,E02,sms,0,2024-01-01,"
        for i in range(2500)
    ]
    lines[1500] = lines[1500].replace(",E02,", ",E99,")
    (data / "customers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    report = import_csv_dir(session_factory, data, progress=True)

    summary = report.files["customers.csv"]
    assert (summary.read, summary.inserted, summary.rejected) == (2500, 2499, 1)
    assert [str(e) for e in report.errors] == ["customers.csv:1501: owner_id E99 不存在"]
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == 2499


def test_report_lists_files_in_foreign_key_order(
    session_factory: sessionmaker[Session], demo_dir: Path
) -> None:
    report: ImportReport = import_csv_dir(session_factory, demo_dir)
    assert list(report.files) == list(KNOWN_FILES)
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Order)) == 254


def test_import_of_a_missing_directory_fails_loudly(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    with pytest.raises(NotADirectoryError):
        import_csv_dir(session_factory, tmp_path / "nope")


def test_a_bad_faq_row_gets_the_same_reason_from_both_imports(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    # `crmbot import DIR` (import_csv_dir) and `crmbot faq import FILE` (load_faq_file) check a
    # faqs.csv row with one function, so each bad row is refused by both, for the same reason.
    many_alts = "|".join(f"问法{i}" for i in range(31))
    data = tmp_path / "crm"
    data.mkdir()
    faqs_csv = data / "faqs.csv"
    faqs_csv.write_text(
        "faq_id,category,question,answer,alt_questions\n"
        "F001,售后,怎么退货？,  在订单详情中申请。  ,如何退货|如何退货|怎么退货？\n"
        "F002,售后,,没有问题,\n"
        "F 3,售后,问题,答案,\n"
        f"F004,售后,{'长' * 201},答案,\n"
        f"F005,售后,问题,{'答' * 2001},\n"
        f"F006,{'类' * 33},问题,答案,\n"
        f"F007,售后,问题,答案,{many_alts}\n"
        f"F008,售后,问题,答案,好的|{'长' * 201}\n"
        "F009,售后,问题,答案\n"
        "F010,物流,能寄到国外吗？,暂不支持。,\n",
        encoding="utf-8",
    )
    expected = [
        (3, "缺少必填字段 question"),
        (4, "faq_id 格式不对：只能含字母、数字、-、_、.，最长 32 位"),
        (5, "问题不能超过 200 字"),
        (6, "答案不能超过 2000 字"),
        (7, "分类不能超过 32 字"),
        (8, "备选问法最多 30 条"),
        (9, "第 2 条备选问法不能超过 200 字"),
        (10, "列数不对：应为 5 列，实际 4 列"),
    ]

    directory_report = import_csv_dir(session_factory, data)
    with session_factory.begin() as session:
        file_report = load_faq_file(session, faqs_csv)

    assert [(error.line, error.reason) for error in directory_report.errors] == expected
    assert [(int(error.where), error.reason) for error in file_report.errors] == expected
    # The good rows were stored as the FAQ rules clean them, so the second import changed nothing.
    assert (file_report.inserted, file_report.updated, file_report.unchanged) == (0, 0, 2)
    with session_factory() as session:
        faq = session.get_one(Faq, "F001")
        assert (faq.answer, faq.alt_question_list()) == ("在订单详情中申请。", ["如何退货"])
