"""A small deterministic tokenizer: words hashed into a fixed vocabulary. No downloads, no training.

Text is lower-cased and split into words (runs of Unicode letters/digits); Chinese/Japanese characters become one
token each, since those scripts do not separate words by spaces. A token's id is
`2 + crc32(utf-8 bytes) mod (vocab_size - 2)`, the same on every machine and Python version (Python's own `hash` is
salted per process). Id 0 is padding, id 1 is reserved for an unknown/empty text. Hash collisions are accepted:
with 8,192 ids and the suite's ~40k distinct words many words share an id, like the hashing trick in fastText.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgekit.errors import EdgekitError

PAD_ID = 0
UNK_ID = 1

# CJK ideographs, kana, CJK compatibility ideographs: one token per character.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+", re.UNICODE)


def words(text: str) -> list[str]:
    """The tokens of `text` before hashing (lower-cased words, CJK characters one by one)."""
    return _TOKEN.findall(text.lower())


@dataclass(frozen=True)
class HashTokenizer:
    """Text -> int64 token ids [N, seq_len] (0-padded, truncated at seq_len) and the matching attention mask."""

    vocab_size: int = 8192
    seq_len: int = 64

    def __post_init__(self) -> None:
        if self.vocab_size < 16:
            raise EdgekitError(f"vocab_size={self.vocab_size} is too small", "use at least 16 (default 8192)")
        if self.seq_len < 1:
            raise EdgekitError(f"seq_len={self.seq_len} must be positive", "use e.g. 64 or 128")

    def token_id(self, token: str) -> int:
        return 2 + zlib.crc32(token.encode("utf-8")) % (self.vocab_size - 2)

    def encode_one(self, text: str) -> list[int]:
        ids = [self.token_id(w) for w in words(text)[: self.seq_len]]
        return ids or [UNK_ID]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Token ids, int64 [len(texts), seq_len]."""
        out = np.zeros((len(texts), self.seq_len), dtype=np.int64)
        for i, text in enumerate(texts):
            ids = self.encode_one(text)
            out[i, : len(ids)] = ids
        return out

    @staticmethod
    def attention_mask(ids: np.ndarray) -> np.ndarray:
        """1 where a real token is, 0 on padding; int64 like the ids."""
        return (ids != PAD_ID).astype(np.int64)
