"""Seeded synthetic shop questions, for timing the encoder and the FAQ index at any size.

Products, services and phrasings of a Chinese online shop are combined with a seeded
`random.Random`, so every run builds the same corpus. FAQ questions are written the way a shop
writes them (怎么申请退货？); queries the way a customer types them (蓝牙耳机咋退货啊), so a
timed search has to find paraphrases, not copies. Nothing here measures quality: the texts are
realistic in length and vocabulary, which is what encoding and BM25 costs depend on.
"""

import random


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Product families, with the things one does with that kind of product.
_FAMILIES: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (
        _words("蓝牙耳机 智能手表 充电宝 平板电脑 机械键盘 无线鼠标 手机壳 移动硬盘 降噪耳机"),
        _words("连接蓝牙 充电 恢复出厂设置 升级固件 和手机配对 绑定账号"),
    ),
    (
        _words("空气炸锅 扫地机器人 电饭煲 净水器 加湿器 电热水壶 咖啡机 洗碗机 吸尘器"),
        _words("清洗 预约上门安装 更换滤芯 除垢 设置定时 连接WiFi"),
    ),
    (
        _words("羽绒服 运动鞋 牛仔裤 连衣裙 冲锋衣 羊毛衫 帆布鞋 衬衫"),
        _words("选尺码 机洗 熨烫 去掉污渍 修改裤长 保养"),
    ),
    (
        _words("面膜 洗面奶 防晒霜 口红 精华液 洗发水 香水"),
        _words("查保质期 验证真伪 申请试用 处理过敏 搭配使用"),
    ),
    (_words("奶粉 纸尿裤 儿童座椅 婴儿推车 奶瓶 儿童牙刷"), _words("消毒 安装 折叠收纳 冲泡 选择段数")),
    (_words("坚果礼盒 咖啡豆 茶叶 猫粮 月饼 牛排"), _words("保存 查生产日期 冷链配送 定制贺卡 批量订购")),
    (
        _words("乳胶枕 床垫 台灯 收纳箱 行李箱 瑜伽垫 保温杯 办公椅"),
        _words("组装 清洁 修改密码锁 调节高度 去除异味"),
    ),
)
# What any product can need from the shop.
_SERVICES = _words(
    "退货 换货 开发票 开增值税专票 申请保修 发货 修改收货地址 取消订单 使用优惠券 申请价保 查物流 "
    "催发货 退款 分期付款 加急配送 包邮 送货上门 货到付款 以旧换新 用积分抵扣 开具收据 补寄配件"
)
_MODELS = _words("Pro Max 2代 mini Plus 青春版 旗舰款")
_STATES = _words(
    "刚买的 用了半年的 拆封过的 没拆封的 打折买的 朋友送的 活动赠送的 已经签收的 海外版的 定制款的 "
    "预售的 买了三个月的 会员价买的 直播间抢的 包装破损的"
)
_CHANNELS = _words("京东旗舰店 天猫店 线下门店 小程序 直播间 官网 拼团活动 企业采购 双十一活动 618活动")
_FAQ_OPENINGS = ("", "", "", "请问", "咨询一下，")
_FAQ_TEMPLATES = (
    "{p}怎么{v}？",
    "{p}如何{v}？",
    "{p}可以{v}吗？",
    "{p}支持{v}吗？",
    "{p}{v}需要多长时间？",
    "{p}{v}的流程是什么？",
    "{p}{v}要收费吗？",
    "{p}{v}需要提供哪些材料？",
    "{p}{v}失败了怎么办？",
    "{p}{v}在哪里申请？",
    "为什么我的{p}不能{v}？",
    "{s}{p}还能{v}吗？",
    "{s}{p}{v}有什么要求？",
    "在{c}买的{p}能{v}吗？",
    "{c}购买的{p}{v}怎么操作？",
    "{c}的{p}{v}找谁处理？",
)
_QUERY_OPENINGS = ("", "", "你好，", "在吗，", "想问下", "亲，", "客服你好 ")
_QUERY_TEMPLATES = (
    "{p}咋{v}啊",
    "我想问问{p}能不能{v}",
    "{s}{p}{v}行不行",
    "{p}要{v}的话怎么弄",
    "{p}{v}具体步骤是啥",
    "在{c}买了个{p}，想{v}，怎么搞",
    "{p}能{v}不",
    "{p}{v}要等多久啊",
    "我的{p}{v}一直不成功",
    "{s}{p}，{v}的话要花钱吗",
    "{p}{v}去哪里弄",
    "请问一下{c}那边的{p}支持{v}吗？谢谢",
)

_ANSWER_OPENINGS = ("", "", "您好，", "亲，")
_ANSWER_TEMPLATES = (
    "{p}{v}请在“我的订单”中找到对应订单，点击“售后服务”并按提示填写，审核通过后{n}个工作日内处理完毕。",
    "{p}支持{v}。请联系在线客服并提供订单号和{proof}，我们会在{n}小时内回复处理结果。",
    "签收后{n}天内可为{p}申请{v}，商品需保持完好、配件齐全；在{c}下的订单请联系{c}客服办理。",
    "{p}暂不支持{v}，非常抱歉。如有质量问题，可在签收后{n}天内申请售后，我们会安排快递上门取件。",
    "{v}的费用由我们承担，偏远地区（新疆、西藏等）每单另收{m}元；{p}一般在{n}个工作日内处理完。",
    "请参照{p}说明书第{n}页的步骤{v}；仍有问题可拨打400-800-{k}转人工客服，或在App内留言。",
    "{s}{p}也可以{v}，请保留{proof}，在订单详情页提交申请，客服会在{n}小时内与您联系。",
)
_PROOFS = _words("商品照片 购物发票 快递单号 开箱视频 订单截图 保修卡")


def faq_questions(count: int, seed: int = 4) -> list[str]:
    """`count` distinct FAQ questions, the same ones for the same seed."""
    return _distinct(count, random.Random(seed), _FAQ_OPENINGS, _FAQ_TEMPLATES)


def customer_queries(count: int, seed: int = 40) -> list[str]:
    """`count` distinct customer-style questions about the same products and services."""
    return _distinct(count, random.Random(seed), _QUERY_OPENINGS, _QUERY_TEMPLATES)


def faq_answers(count: int, seed: int = 5) -> list[str]:
    """`count` distinct FAQ answers in a shop's style, 40–70 characters (not tied to questions)."""
    return _distinct(count, random.Random(seed), _ANSWER_OPENINGS, _ANSWER_TEMPLATES)


def _distinct(
    count: int, rng: random.Random, openings: tuple[str, ...], templates: tuple[str, ...]
) -> list[str]:
    seen: dict[str, None] = {}
    while len(seen) < count:
        products, uses = rng.choice(_FAMILIES)
        product = rng.choice(products) + (rng.choice(_MODELS) if rng.random() < 0.4 else "")
        verb = rng.choice(uses) if rng.random() < 0.3 else rng.choice(_SERVICES)
        template = rng.choice(templates)
        text = rng.choice(openings) + template.format(
            p=product,
            v=verb,
            s=rng.choice(_STATES),
            c=rng.choice(_CHANNELS),
            proof=rng.choice(_PROOFS),
            n=rng.randint(1, 30),
            m=rng.choice((5, 8, 10, 15, 20)),
            k=rng.randint(1000, 9999),
        )
        seen.setdefault(text, None)
    return list(seen)
