"""Names exported for the Rasa lookup tables and the jieba dictionary."""

from sqlalchemy.orm import Session, sessionmaker

from crm_store.lookups import entity_names, product_short_name


def test_entity_names_lists_demo_people_products_and_companies(demo_store: sessionmaker[Session]) -> None:
    with demo_store() as session:
        names = entity_names(session)
    assert set(names) == {"product", "customer_name", "employee_name"}
    assert "张伟" in names["customer_name"]
    assert "华峰科技有限公司" in names["customer_name"]
    assert "王丽" in names["employee_name"]
    assert {"无线蓝牙耳机 Air3", "无线蓝牙耳机", "扫地机器人 S7", "扫地机器人", "高山绿茶礼盒"} <= set(
        names["product"]
    )
    # Employees are not customers, and company names belong only to company customers.
    assert "王丽" not in names["customer_name"]
    assert len(names["employee_name"]) == 8
    for values in names.values():
        assert values == sorted(set(values))


def test_product_short_name_drops_only_a_model_suffix() -> None:
    assert product_short_name("有机大米 5kg") == "有机大米"
    assert product_short_name("办公椅 ErgoPlus") == "办公椅"
    assert product_short_name("高山绿茶礼盒") is None
    assert product_short_name("Kindle Paperwhite") is None
    assert product_short_name("杯 X2") is None
