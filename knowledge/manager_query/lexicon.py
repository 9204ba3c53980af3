"""The words of managers' questions: metrics, dimensions, tiers and what the layer cannot answer.

Keys are those of crm_store/analytics/spec.py (METRICS, DIMENSIONS). All words are in the parser's
normalised form: lower case, no spaces. The parser matches the longest word at each position, so
"新增客户数" is new_customers, not customers, and "销售额" is a metric, not the 销售 of "哪个销售".
"""

from typing import Final

METRIC_WORDS: Final[dict[str, tuple[str, ...]]] = {
    "sales": (
        "销售额", "销售金额", "销售总额", "销售收入", "营业额", "营收", "营业收入", "收入", "业绩", "成交额",
        "成交金额", "交易额", "流水", "gmv", "销量", "销售情况", "销售数据", "卖了多少钱", "卖了多少",
        "卖出多少", "卖出去多少", "卖得怎么样", "卖得如何", "卖的怎么样", "卖得最好", "卖的最好", "卖得最多",
        "卖的最多", "卖得好", "卖得最差", "卖得最少", "卖的最少", "卖得差", "最畅销", "畅销", "最好卖",
        "买得最多", "买的最多", "买了多少钱", "买了多少", "消费最多", "消费额", "消费金额", "消费了多少",
        "花了多少钱", "花钱最多", "订单金额", "订单总额", "下单金额", "采购额", "采购金额", "贡献", "创收",
        "出货额", "销售趋势", "销售走势", "销售怎么样", "销售表现", "卖得",
    ),
    "orders": (
        "订单数", "订单量", "订单数量", "订单总数", "单量", "单数", "多少单", "几单", "多少笔", "几笔",
        "笔数", "下单数", "下单量", "下单次数", "成交单数", "成交量", "下了多少单", "订单", "单子",
        "购买次数", "多少个订单", "卖了多少单", "卖出多少单", "卖了几单", "卖出几单", "卖了多少笔",
    ),
    "customers": (
        "客户数", "客户数量", "客户量", "下单客户数", "下单客户", "购买客户数", "购买客户", "成交客户数",
        "成交客户", "买家数", "多少客户", "多少个客户", "多少位客户", "多少家客户", "几个客户", "几位客户",
        "几家客户", "多少人买", "多少人下单", "多少客户下单", "多少客户买", "活跃客户数", "活跃客户",
        "购买人数", "下单人数", "客户人数",
    ),
    "new_customers": (
        "新增客户数", "新增客户", "新客户数", "新客户", "新客数", "新客", "拉新", "新开客户", "新签客户",
        "新增了多少客户", "新增多少客户", "新增了几个客户", "新来的客户", "新增加的客户", "新增",
        "新加了多少客户", "新建客户", "新增客户量",
    ),
    "avg_order_value": (
        "客单价", "平均订单金额", "平均订单额", "平均每单", "每单平均", "平均每笔", "单均", "笔单价",
        "平均单价", "订单均价", "平均客单价", "平均订单价值", "每单多少钱", "平均一单", "一单平均",
        "平均每单金额", "平均订单",
    ),
    "repeat_rate": (
        "复购率", "回购率", "重复购买率", "复购比例", "复购", "回头客比例", "回头客占比", "回头率",
        "二次购买率", "再次购买率", "回购比例", "回头客",
    ),
    "complaints": (
        "投诉数", "投诉量", "投诉数量", "投诉件数", "投诉", "客诉", "工单数", "工单量", "工单", "多少投诉",
        "几个投诉", "被投诉", "投诉单",
    ),
    "avg_csat": (
        "平均满意度", "满意度", "客户满意度", "满意度评分", "满意度得分", "评分", "打分", "csat",
        "满意程度", "好评率", "平均评分", "服务评分",
    ),
    "pipeline_amount": (
        "商机金额", "商机总额", "商机", "商机额", "销售漏斗", "漏斗金额", "pipeline", "在谈金额", "在谈项目",
        "机会金额", "销售机会", "意向金额", "跟进中的金额", "储备金额", "项目金额", "未成交商机",
    ),
    "weighted_pipeline": (
        "加权商机金额", "加权商机", "加权金额",
        "加权后的商机", "加权pipeline", "预期成交金额", "预计成交金额",
        "预计成交额", "预期成交额", "按概率加权", "加权",
    ),
    "lapsed_customers": (
        "流失客户数", "流失客户", "流失了多少客户", "流失", "沉睡客户", "休眠客户", "不再下单", "久未下单",
        "很久没下单", "没再下单", "断单", "丢了多少客户", "掉了多少客户", "流失的客户", "沉默客户",
    ),
}  # fmt: skip
"""Each metric's words. "业绩" is sales: what a salesperson's results are measured by."""

WEAK_SALES_WORDS: Final = (
    "金额", "多少钱", "钱", "卖", "买", "消费", "花了", "成交", "销售", "贡献最大", "贡献最多",
)  # fmt: skip
"""Words that mean sales only when no other metric is said ("哪个客户买得多", "华东卖得好吗")."""

METRIC_PRECEDENCE: Final[tuple[tuple[str, str], ...]] = (
    ("new_customers", "customers"),
    ("lapsed_customers", "customers"),
    ("repeat_rate", "customers"),
    ("avg_order_value", "sales"),
    ("avg_order_value", "orders"),
    ("weighted_pipeline", "pipeline_amount"),
    ("avg_csat", "complaints"),
    ("pipeline_amount", "sales"),
    ("weighted_pipeline", "sales"),
    ("lapsed_customers", "orders"),
    ("new_customers", "orders"),
    ("customers", "orders"),
    ("repeat_rate", "orders"),
)
"""(a, b): when both are said, a is meant ("新增了多少客户": new_customers; "下单客户数" says 订单 too)."""

UNSUPPORTED_METRIC_WORDS: Final = (
    "利润", "毛利", "净利", "利润率", "毛利率", "成本",
    "库存", "退货率", "转化率", "点击率", "访客", "浏览量",
    "流量", "回款", "应收", "费用", "工资", "提成", "预算", "人效", "roi", "市场份额", "占有率", "赚了多少",
    "赚了", "赚钱", "亏损", "亏了", "折扣率", "退款率", "好评数", "差评", "库存量", "产量", "出勤",
)  # fmt: skip
"""Figures the semantic layer does not hold: the answer says so and lists what can be asked."""

FLOW_METRICS: Final = frozenset(
    {
        "sales",
        "orders",
        "customers",
        "new_customers",
        "avg_order_value",
        "repeat_rate",
        "complaints",
        "avg_csat",
    }
)
"""Metrics of what happened in a period: 本月 when no period is said."""

DIMENSION_NOUNS: Final[dict[str, tuple[str, ...]]] = {
    "customer": (
        "客户", "顾客", "客人", "买家", "用户",
        "公司", "企业客户", "个人客户", "大客户名单", "家公司",
    ),
    "region": ("地区", "区域", "大区", "片区", "地域", "区"),
    "city": ("城市", "市"),
    "product": ("产品", "商品", "单品", "货品", "品", "款", "款产品", "sku", "东西"),
    "category": (
        "品类", "类别", "类目", "分类", "产品类别",
        "产品分类", "产品线", "大类", "类", "类产品", "类商品",
    ),
    "sales_rep": (
        "销售员", "销售", "业务员", "销售人员", "销售代表", "员工", "人员", "客户经理", "负责人", "同事",
        "位销售", "个人", "人", "位", "业务", "销售同事",
    ),
    "day": ("天", "日", "一天"),
    "week": ("周", "星期", "礼拜", "一周"),
    "month": ("月", "个月", "月份", "一个月"),
    "quarter": ("季度", "个季度", "季"),
    "year": ("年", "年度"),
    "customer_tier": (
        "客户等级", "等级", "级别", "客户级别", "价值等级",
        "客户分层", "分层", "层级", "客户类型", "客户分级", "档次",
    ),
    "complaint_category": ("投诉类别", "投诉类型", "投诉分类", "投诉原因", "类型", "原因", "问题类型"),
    "opportunity_stage": ("商机阶段", "阶段", "销售阶段", "跟进阶段"),
}  # fmt: skip
"""The nouns that name a dimension to group by, after a marker ("按地区", "各城市", "哪个销售")."""

BARE_NOUNS: Final = frozenset(
    {"区", "市", "品", "款", "类", "人", "位", "天", "日", "周", "月", "年", "季", "业务", "个人"}
)
"""Nouns that group only right after a marker (各区, 哪款, 每天); alone they are common characters."""

GROUP_MARKERS: Final = (
    "按照", "按", "根据", "分", "各个", "各", "每一个",
    "每个", "每", "哪一个", "哪个", "哪些", "哪位", "哪家",
    "哪几个", "哪几位", "哪几家", "哪几款", "哪款", "哪类", "哪一类", "哪", "不同", "逐", "所有", "全部",
)  # fmt: skip
"""What makes the noun after it a grouping: 按地区, 各城市, 每个月, 哪个销售."""

GROUP_SUFFIXES: Final = (
    "分布", "排名", "排行榜", "排行", "维度", "构成", "占比", "对比", "拆分", "分别", "明细", "各自", "来看",
    "来分", "分组", "汇总", "细分", "榜",
)  # fmt: skip
"""What makes the noun before it a grouping: 地区分布, 销售员排名, 产品排行."""

TREND_WORDS: Final = ("趋势", "走势", "变化", "曲线", "波动", "逐日", "每日变化")
"""A trend over the period without a grain: grouped by day (a month or less) or by month."""

TIER_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "关键": (
        "关键客户", "关键", "a类客户", "a类", "a级客户",
        "a级", "重要客户", "核心客户", "大客户", "vip客户", "vip",
    ),
    "普通": ("普通客户", "普通", "b类客户", "b类", "b级客户", "b级", "一般客户", "中等客户", "中客户"),
    "小客户": ("小客户", "c类客户", "c类", "c级客户", "c级", "小额客户", "长尾客户"),
}  # fmt: skip
"""Value tiers (crm_store.vocab.VALUE_TIERS) by the words people use, the A/B/C of the books first."""

COMPLAINT_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "产品质量": ("质量问题", "质量", "产品问题", "品质"),
    "物流配送": ("物流问题", "物流", "配送", "快递", "发货慢", "送货"),
    "服务态度": ("态度问题", "态度", "服务问题"),
    "价格争议": ("价格问题", "价格", "价格纠纷", "价钱"),
    "售后维修": ("维修", "售后问题", "售后", "维修问题"),
    "其他": ("其他类", "其它类", "其他问题", "其它问题"),
}  # fmt: skip
"""Complaint categories (crm_store.vocab.COMPLAINT_CATEGORIES) as said; read only with a complaint word."""

COMPLAINT_CONTEXT: Final = ("投诉", "客诉", "工单", "满意度", "评分")

STAGE_SUFFIXES: Final = ("阶段", "中的", "中")

GENERIC_PRODUCT_WORDS: Final = frozenset(
    {
        "家用",
        "进口",
        "智能",
        "企业",
        "企业版",
        "办公",
        "无线",
        "高山",
        "有机",
        "礼盒",
        "年费",
        "版",
        "软件年费",
    }
)
"""Words inside product names that say too little alone to name a product ("家用" 空气净化器)."""

FOLLOW_UP_STARTS: Final = (
    "那么", "那就", "那", "换成", "换为", "改成", "改为", "换", "改", "只看", "再看", "看看", "如果", "要是",
    "还有", "加上", "同样", "同理", "再按", "然后", "那如果", "换到", "切换到", "只要", "仅看",
)  # fmt: skip
FOLLOW_UP_ENDS: Final = ("呢", "呢?", "呢？", "的呢", "怎么样", "如何", "又如何", "又怎么样")
ADD_CUES: Final = ("加上", "还有", "再加上", "再加", "以及", "同时看", "和")
ONLY_CUES: Final = ("只看", "仅看", "只要", "只算", "单看", "光看")
REGROUP_ADD_CUES: Final = ("再按", "同时按", "并按", "加上按", "再分")
UNGROUP_WORDS: Final = (
    "不分",
    "不用分",
    "不按",
    "合计",
    "汇总一下",
    "总的",
    "总数",
    "一共多少",
    "整体",
    "加起来",
)
DROP_FILTER_WORDS: Final = (
    "全公司",
    "全部地区",
    "所有地区",
    "全国",
    "整个公司",
    "不限地区",
    "所有区域",
    "全部区域",
)

DESC_WORDS: Final = (
    "最高", "最多", "最大", "最好", "最强", "最牛",
    "最火", "最畅销", "最受欢迎", "最优", "最能", "第一", "领先",
    "从高到低", "降序", "由高到低", "由多到少", "从多到少", "靠前",
)  # fmt: skip
ASC_WORDS: Final = (
    "最低", "最少", "最小", "最差", "最弱", "最冷门", "垫底", "倒数", "最后", "末尾", "从低到高", "升序",
    "由低到高", "由少到多", "从少到多", "靠后", "最不", "卖得最差", "卖得最少", "卖的最少",
)  # fmt: skip
RANK_WORDS: Final = ("排名", "排行", "排序", "名次", "榜")

ME_WORDS: Final = ("我的", "我负责", "我名下", "我手上", "我手里", "我自己", "我这", "我个人", "我本人", "我")

QUESTION_WORDS: Final = (
    "多少",
    "几",
    "怎么样",
    "如何",
    "情况",
    "统计",
    "看看",
    "看下",
    "查",
    "哪",
    "谁",
    "排名",
    "对比",
    "趋势",
)
"""Words of a question about figures: with no metric, the parser asks which one."""

RECORD_LOOKUP: Final = (
    r"so\d{6,}|t\d{5}|(?<![0-9])1[3-9]\d{9}(?![0-9])|物流信息|快递单号|到哪了|电话号码|手机号|生日"
)
"""A question about one record (an order number, a phone): not for the semantic layer."""
