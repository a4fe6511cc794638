"""The `tiny` preset: a small Llama-style causal LM and a byte-level BPE tokenizer trained on the env's own text.

Nothing is downloaded. The tokenizer is byte-level, so any Unicode string encodes (no unknown token) even
when the training text did not contain it; the vocabulary only decides how compact that encoding is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from swirl_envs.errors import SwirlError

PAD, BOS, EOS = "<|pad|>", "<|bos|>", "<|eos|>"
# Role markers select FWM or IDM in a shared-weights model; section markers delimit X, Z and Y.
ROLE_TOKENS = ("<|fwm|>", "<|idm|>")
SECTION_TOKENS = ("<|state|>", "<|action|>", "<|next_state|>")
SPECIAL_TOKENS = (PAD, BOS, EOS, *ROLE_TOKENS, *SECTION_TOKENS)


@dataclass
class TinyConfig:
    """Shape of the tiny preset. Defaults give a ~0.5M-parameter model that trains on a laptop CPU."""

    vocab_size: int = 1024  # includes 256 byte symbols and 8 special tokens; below ~300 BPE learns no merges
    min_frequency: int = 2
    hidden_size: int = 128
    intermediate_size: int = 384
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    max_position_embeddings: int = 1024

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or value < 1:
                raise SwirlError(f"tiny.{name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise SwirlError(f"tiny.hidden_size ({self.hidden_size}) must be a multiple of "
                             f"tiny.num_attention_heads ({self.num_attention_heads})")


def train_tokenizer(texts: Iterable[str], *, vocab_size: int = 1024, min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """Byte-level BPE over `texts`, wrapped with bos/eos/pad and the role/section special tokens."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator((t for t in texts if t), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token=PAD, bos_token=BOS, eos_token=EOS,
                                   additional_special_tokens=[*ROLE_TOKENS, *SECTION_TOKENS],
                                   padding_side="right")


def tiny_model(tokenizer: PreTrainedTokenizerFast, config: TinyConfig | None = None) -> LlamaForCausalLM:
    """A freshly initialised Llama-style model sized by `config`, with ids matching `tokenizer`.

    Initialisation draws from torch's global generator: seed it (build_tiny_pair does) for repeatable weights.
    """
    config = config or TinyConfig()
    model_config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers, num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_attention_heads, max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id)
    model = LlamaForCausalLM(model_config)
    return model.to(torch.float32)
