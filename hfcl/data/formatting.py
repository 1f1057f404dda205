"""Turn examples into model inputs with loss on answer tokens only.

Three input formats are accepted, detected per example:

* TOFU: ``question`` + ``answer`` strings;
* prompt-completion: ``prompt`` + ``completion`` strings;
* conversational: ``messages`` (a list of ``{"role", "content"}``; the last message must be the assistant's answer),
  or ``prompt`` + ``completion`` given as message lists.

The prompt is rendered with the tokenizer's chat template when it has one (the embedded tokenizer does), otherwise
as ``"Question: {q}\\nAnswer: "``. Prompt and answer are tokenized separately and concatenated, so the boundary is
exact; labels are ``-100`` on prompt tokens. The answer ends with the EOS token.
"""

from __future__ import annotations

import functools
from typing import Any

from ..errors import DataError

IGNORE_INDEX = -100
PLAIN_PROMPT = "Question: {question}\nAnswer: "


def example_to_messages(example: dict[str, Any]) -> tuple[list[dict[str, str]], str]:
    """Split an example of any accepted format into (prompt messages, answer text)."""
    if "question" in example and "answer" in example:
        return [{"role": "user", "content": str(example["question"])}], str(example["answer"])
    if "messages" in example:
        messages = list(example["messages"])
        if not messages or messages[-1].get("role") != "assistant":
            raise DataError("A conversational example's last message must have role 'assistant' (the answer).")
        return messages[:-1], str(messages[-1]["content"])
    if "prompt" in example and "completion" in example:
        prompt, completion = example["prompt"], example["completion"]
        if isinstance(prompt, list):
            answer = completion[-1]["content"] if isinstance(completion, list) else str(completion)
            return list(prompt), answer
        return [{"role": "user", "content": str(prompt)}], str(completion)
    raise DataError(f"Example has columns {sorted(example)}; expected 'question'+'answer' (TOFU), "
                    "'prompt'+'completion', or 'messages'.")


def render_prompt(tokenizer, messages: list[dict[str, str]]) -> str:
    """The text the model sees before its answer."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    text = "\n".join(m["content"] for m in messages)
    return PLAIN_PROMPT.format(question=text)


def prompt_ids(tokenizer, messages: list[dict[str, str]]) -> list[int]:
    """Token ids of the rendered prompt: a chat template writes its own BOS, a plain prompt gets the tokenizer's.

    Memoised per (tokenizer, template, messages): evaluation scores each question with its answer, paraphrase and
    perturbed answers, and rendering the chat template again for each was a quarter of a suite's time.
    """
    key = tuple(tuple(sorted(m.items())) for m in messages)
    return list(_prompt_ids(tokenizer, getattr(tokenizer, "chat_template", None), key))


@functools.lru_cache(maxsize=8192)
def _prompt_ids(tokenizer, template: str | None, key: tuple) -> tuple[int, ...]:
    messages = [dict(items) for items in key]
    return tuple(tokenizer(render_prompt(tokenizer, messages), add_special_tokens=template is None)["input_ids"])


def tokenize_example(tokenizer, example: dict[str, Any], max_length: int = 256) -> dict[str, list[int]]:
    """``input_ids``, ``attention_mask`` and ``labels`` (answer tokens + EOS only) for one example.

    Over-long examples are cut from the end of the answer; a prompt that leaves no room for any answer token is a
    :class:`DataError`.
    """
    messages, answer = example_to_messages(example)
    p_ids = prompt_ids(tokenizer, messages)
    a_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        a_ids = a_ids + [tokenizer.eos_token_id]
    room = max_length - len(p_ids)
    if room <= 0:
        raise DataError(f"Prompt of {len(p_ids)} tokens leaves no room for the answer at max_length={max_length}; "
                        "raise max_length or shorten the prompt.")
    a_ids = a_ids[:room]
    input_ids = p_ids + a_ids
    return {"input_ids": input_ids, "attention_mask": [1] * len(input_ids),
            "labels": [IGNORE_INDEX] * len(p_ids) + a_ids}


def tokenize_text(tokenizer, text: str, max_length: int = 256) -> dict[str, list[int]]:
    """Language-modelling inputs for raw text: BOS + text + EOS, loss on every token after BOS."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][: max_length - 2]
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    input_ids = bos + ids + eos
    return {"input_ids": input_ids, "attention_mask": [1] * len(input_ids),
            "labels": [IGNORE_INDEX] * len(bos) + ids + eos}
