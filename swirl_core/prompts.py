"""How an FWM or IDM example becomes tokens: the prompt (X and Z, or X and Y) and the target span.

Two layouts, chosen by the tokenizer:

* **chat** (the tokenizer has a chat template, e.g. an instruction-tuned model): a fixed system prompt of
  the project's per role, the user turn holds the state and the action (FWM) or the next state (IDM), and
  the assistant turn is the target, closed by the template's end-of-turn token (the tokenizer's eos). An
  instruction-tuned model starts from sensible behaviour instead of unfamiliar markers.
* **markers** (no template, e.g. the tiny preset): `[bos] <|fwm|> <|state|> X <|action|> Z <|next_state|>`
  then `Y <|eos|>`, and `[bos] <|idm|> <|state|> X <|next_state|> Y <|action|>` then `Z <|eos|>`.
  The tiny tokenizer has each marker as one special token; any other tokenizer spells them out.

Budget (`max_length` tokens in all): the target is capped at `max_target_tokens` (keeping its start; a
capped target gets no eos), Z or Y inside the prompt is capped the same way, and X gets what is left once
`max_target_tokens` are reserved for the target. The reserve does not depend on the target at hand, so a
given (x, z) or (x, y) has one prompt in SFT, sampling, scoring and evaluation. Only X and the Z/Y text
are ever cut: the template, the instruction and the role markers always stay whole. X keeps its first
`keep_head` share of the budget (task and tool documentation come first in a conversation) and fills the
rest from its end (the newest turns, which the next step depends on), with an ellipsis line in between;
`keep_head=0` keeps only the end.

Changed lines (`changes_only`): where most of a next state repeats its state line for line (toolsim's facts
and response log), Y can be written as `changed_lines(x, y)`, the lines of Y that X lacks, and read back with
`apply_changed_lines(x, changes)`: a `label: value` line replaces X's line of that label, any other line is
appended. The FWM then learns and writes only what the action changed.

User text is encoded with `split_special_tokens=True`, so a state that contains "<|im_end|>" or "<|eos|>"
cannot forge a marker.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedTokenizerBase

from swirl_envs.errors import SwirlError

from .tiny import BOS

ROLES = ("fwm", "idm")
MARKERS = {"fwm": "<|fwm|>", "idm": "<|idm|>", "state": "<|state|>", "action": "<|action|>",
           "next_state": "<|next_state|>"}
SYSTEM_PROMPTS = {
    "fwm": "You are a world model. Given the current state of an environment and the action taken in it, "
           "write the next state exactly as the environment would show it.",
    "idm": "You are an inverse dynamics model. Given the current state of an environment and the state that "
           "followed, write the action that was taken, in the environment's own action format.",
}
USER_LABELS = {"fwm": ("State:", "Action:"), "idm": ("State:", "Next state:")}
# with changes_only the chat layout says that Y is written and read as its changed lines
CHANGES_SYSTEM_PROMPTS = {
    "fwm": "You are a world model. Given the current state of an environment and the action taken in it, "
           "write the lines of the next state that differ from the current state (each changed line whole, "
           "then any new lines), exactly as the environment would show them.",
    "idm": "You are an inverse dynamics model. Given the current state of an environment and the lines that "
           "changed in the state that followed, write the action that was taken, in the environment's own "
           "action format.",
}
CHANGES_USER_LABELS = {**USER_LABELS, "idm": ("State:", "Changed lines:")}
ELLIPSIS = "\n...\n"
_X, _C = "\uE000X\uE000", "\uE000C\uE000"  # private-use sentinels that locate X and Z/Y in the rendered template


def serialize_action(action: Any) -> str:
    if isinstance(action, str):
        return action
    if isinstance(action, dict | list):
        return json.dumps(action, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    raise SwirlError(f"an action must be text (or a JSON-able dict/list), got {type(action).__name__}")


def line_label(line: str) -> str | None:
    head, sep, _ = line.partition(": ")
    return head if sep else None


def changed_lines(state: str, next_state: str) -> str:
    """The lines of `next_state` that `state` does not have (as a multiset), in order. Exact, so that
    `apply_changed_lines` rebuilds `next_state`; the metrics' `evals.metrics.new_lines` forgives blanks."""
    unused = Counter(state.split("\n"))
    changes = []
    for line in next_state.split("\n"):
        if unused[line]:
            unused[line] -= 1
        else:
            changes.append(line)
    return "\n".join(changes)


def apply_changed_lines(state: str, changes: str) -> str:
    """`state` with `changes` applied: each labelled line replaces the first line of `state` with that label
    (once), every other line is appended. The inverse of `changed_lines` where lines change in place or are
    added at the end (true of every toolsim transition, tested)."""
    lines = state.split("\n")
    position: dict[str, int] = {}
    for i, line in enumerate(lines):
        label = line_label(line)
        if label is not None:
            position.setdefault(label, i)
    for line in changes.split("\n") if changes else []:
        label = line_label(line)
        at = position.pop(label, None) if label is not None else None
        if at is None:
            lines.append(line)
        else:
            lines[at] = line
    return "\n".join(lines)


@dataclass
class PromptFormat:
    """Token layout of one role's examples for one tokenizer (see the module docstring)."""

    tokenizer: PreTrainedTokenizerBase
    role: str
    max_length: int
    max_target_tokens: int
    keep_head: float = 0.0
    chat: bool | None = None  # None: the chat layout when the tokenizer has a template
    changes_only: bool = False  # Y is written and read as its changed lines (the chat layout's wording says so)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise SwirlError(f"role must be 'fwm' or 'idm', got {self.role!r}")
        if not 0.0 <= self.keep_head < 1.0:
            raise SwirlError(f"keep_head must be in [0, 1), got {self.keep_head}")
        if self.chat is None:
            self.chat = bool(getattr(self.tokenizer, "chat_template", None))
        self.pieces = self._chat_pieces() if self.chat else self._marker_pieces()
        self.ellipsis = self.encode(ELLIPSIS)

    @property
    def layout(self) -> str:
        return "chat" if self.chat else "markers"

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False, split_special_tokens=True).input_ids

    def _fixed(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids  # template text: its special tokens count

    def _marker_pieces(self) -> tuple[list[int], list[int], list[int]]:
        tok = self.tokenizer
        head = [tok.bos_token_id] if tok.bos_token_id is not None and tok.bos_token == BOS else []
        head += self._fixed(MARKERS[self.role] + MARKERS["state"])
        middle = ("action", "next_state") if self.role == "fwm" else ("next_state", "action")
        return head, self._fixed(MARKERS[middle[0]]), self._fixed(MARKERS[middle[1]])

    def _chat_pieces(self) -> tuple[list[int], list[int], list[int]]:
        state_label, context_label = (CHANGES_USER_LABELS if self.changes_only else USER_LABELS)[self.role]
        messages = [{"role": "system", "content": self.system_prompt},
                    {"role": "user", "content": f"{state_label}\n{_X}\n\n{context_label}\n{_C}"}]
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        before, found_x, rest = text.partition(_X)
        between, found_c, after = rest.partition(_C)
        if not (found_x and found_c):
            raise SwirlError(f"the chat template of {self.tokenizer.name_or_path!r} drops the user message")
        return self._fixed(before), self._fixed(between), self._fixed(after)

    def target_ids(self, text: str) -> list[int]:
        """The scored/trained span: the text then eos, capped at max_target_tokens (a capped span has no eos)."""
        ids = self.encode(text)
        if len(ids) >= self.max_target_tokens:
            return ids[: self.max_target_tokens]
        return ids + [self.tokenizer.eos_token_id]

    def prompt_ids(self, state_text: str, context_text: str) -> list[int]:
        """Prompt tokens for X and the context (Z for the FWM, Y for the IDM)."""
        head, between, tail = self.pieces
        context = self.encode(context_text)[: self.max_target_tokens]
        budget = self.max_length - self.max_target_tokens - len(head) - len(between) - len(tail) - len(context)
        return head + self.fit_state(self.encode(state_text), budget) + between + context + tail

    def fit_state(self, x: list[int], budget: int) -> list[int]:
        if budget <= 0:
            return []
        if len(x) <= budget:
            return x
        first = int(budget * self.keep_head)
        if first == 0 or budget <= len(self.ellipsis) + first:
            return x[len(x) - budget:]
        last = budget - first - len(self.ellipsis)
        return x[:first] + self.ellipsis + x[len(x) - last:]

    def describe(self) -> dict[str, Any]:
        return {"layout": self.layout, "keep_head": self.keep_head,
                "system_prompt": self.system_prompt if self.chat else None}

    @property
    def system_prompt(self) -> str:
        return (CHANGES_SYSTEM_PROMPTS if self.changes_only else SYSTEM_PROMPTS)[self.role]
