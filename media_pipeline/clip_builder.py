"""Build a randomly initialized CLIP, with its processor and a working BPE
tokenizer, in a directory that `CLIPModel.from_pretrained` and
`AutoProcessor.from_pretrained` load exactly like the real model.

Weights cannot be downloaded here, so tests and the demo use `tiny` and the
benchmarks use `vit-b-32` (ViT-B/32's real shape: the speed is the same, the
search is not semantic).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TypedDict

import torch
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor, CLIPTokenizer

from catalog.models import EMBEDDING_DIMENSIONS


class ModelSize(TypedDict):
    vision: dict[str, int]
    text: dict[str, int]
    text_vocab_size: int | None  # None: the tokenizer's own size


SIZES: dict[str, ModelSize] = {
    # Small enough to build and run in a test in well under a second.
    "tiny": {
        "vision": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2},
        "text": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2},
        "text_vocab_size": None,  # the tokenizer's own size
    },
    # openai/clip-vit-base-patch32's architecture (CLIPConfig's defaults).
    "vit-b-32": {
        "vision": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12},
        "text": {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12, "num_attention_heads": 8},
        "text_vocab_size": 49408,
    },
}
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
TOKENIZER_MERGES = 2000
SEED = 0

# Words a product catalog uses, to learn BPE merges that look like CLIP's.
CORPUS_WORDS = """
a an the of with and for in on photo picture image product item new classic vintage modern
red orange yellow green blue purple pink brown black white grey gray silver gold beige navy
cotton linen wool silk denim leather suede canvas nylon plastic metal wood wooden glass ceramic
steel brass marble stone rubber paper cardboard velvet
shoe shoes sneaker sneakers boot boots sandal sandals heel heels loafer trainer
shirt t-shirt blouse sweater hoodie jacket coat dress skirt jeans trousers shorts sock socks hat cap scarf
bag bags backpack tote handbag wallet purse belt watch ring necklace bracelet earring sunglasses
mug cup glass plate bowl bottle jar kettle teapot pan pot knife fork spoon chair table desk sofa
lamp light bulb candle vase clock mirror pillow blanket rug towel basket box shelf
phone laptop tablet headphones speaker camera keyboard mouse charger cable
small medium large big tiny round square tall short long soft hard shiny matte striped dotted
men women kids unisex summer winter sport running hiking office kitchen garden outdoor
""".split()


def _train_merges(limit: int) -> list[str]:
    tokenizer = Tokenizer(models.BPE(end_of_word_suffix="</w>", continuing_subword_prefix=""))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            # CLIP's word split: contractions, letter runs, single digits, punctuation runs.
            pre_tokenizers.Split(
                Regex(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""), behavior="removed", invert=True
            ),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=2 * len(pre_tokenizers.ByteLevel.alphabet()) + limit,  # the bytes, with and without </w>
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    corpus = [" ".join(CORPUS_WORDS[i:] + CORPUS_WORDS[:i]) for i in range(0, len(CORPUS_WORDS), 7)]
    tokenizer.train_from_iterator(corpus, trainer)
    with tempfile.TemporaryDirectory() as scratch:
        tokenizer.model.save(scratch)
        lines = (Path(scratch) / "merges.txt").read_text().splitlines()
    return [line for line in lines[1:] if line.strip()][:limit]


def build_tokenizer(directory: Path) -> CLIPTokenizer:
    """A byte-level BPE tokenizer laid out like CLIP's: 256 byte symbols, the
    same with the end-of-word mark, one token per merge, then the two specials."""
    merges = _train_merges(TOKENIZER_MERGES)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = alphabet + [symbol + "</w>" for symbol in alphabet] + ["".join(m.split()) for m in merges] + [BOS, EOS]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(tokens))}
    vocab_file, merges_file = directory / "vocab.json", directory / "merges.txt"
    vocab_file.write_text(json.dumps(vocab, ensure_ascii=False))
    merges_file.write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return CLIPTokenizer(vocab=str(vocab_file), merges=str(merges_file))


def build_clip_model(directory: Path, size: str = "tiny", seed: int = SEED) -> Path:
    if size not in SIZES:
        raise ValueError(f"Unknown size '{size}': choose one of {', '.join(SIZES)}.")
    spec = SIZES[size]
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(directory)
    special_ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    config = CLIPConfig(
        text_config={
            **spec["text"],
            **special_ids,
            "vocab_size": spec["text_vocab_size"] or len(tokenizer),
            "max_position_embeddings": 77,
        },
        vision_config={**spec["vision"], "image_size": 224, "patch_size": 32},
        projection_dim=EMBEDDING_DIMENSIONS,
    )
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    model.save_pretrained(directory)
    # CLIP's published preprocessing: bicubic resize of the short side to 224,
    # centre crop 224, CLIP's mean and std.
    processor = CLIPProcessor(image_processor=CLIPImageProcessorPil(), tokenizer=tokenizer)
    processor.save_pretrained(directory)
    return directory
