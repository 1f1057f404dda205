"""Is a generated answer text at all, or broken output? A pure check shown next to ROUGE-L in the Space.

An unlearned model that answers ``"A (2."`` or ``"the the the the"`` scores ROUGE-L 0 on a forget question, exactly
like one that cleanly says something else; only the second is forgetting. :func:`garbage_reason` names what is wrong
with the first kind, so the Space can mark it. The rules are deliberately simple and conservative (short real
answers such as ``"Violin maker."`` or ``"1957."`` pass):

* **empty**: nothing but whitespace;
* **no words**: no word of two or more letters and no number of two or more digits (``"A (2."``, ``"?!"``);
* **unclosed bracket**: an opening ``(``, ``[`` or ``{`` that is never closed (a fragment cut mid-thought);
* **mostly symbols**: under 40% of the non-space characters are letters or digits;
* **repeats a character**: one character 5+ times in a row (``"!!!!!"``, ``"aaaaaa"``);
* **repeats itself**: a word or a 2-3-word phrase 3+ times in a row, or (8+ words) under 40% distinct words.
"""

from __future__ import annotations

import re

_CONTENT = re.compile(r"[^\W\d_]{2,}|\d{2,}")
_CHAR_RUN = re.compile(r"(\S)\1{4,}")
_PAIRS = {"(": ")", "[": "]", "{": "}"}
MIN_ALNUM_SHARE = 0.4
MIN_DISTINCT_SHARE = 0.4


def _unclosed(text: str) -> bool:
    stack: list[str] = []
    for ch in text:
        if ch in _PAIRS:
            stack.append(_PAIRS[ch])
        elif stack and ch == stack[-1]:
            stack.pop()
    return bool(stack)


def _repeats(words: list[str]) -> bool:
    for n in (1, 2, 3):
        for i in range(len(words) - 3 * n + 1):
            gram = words[i:i + n]
            if words[i + n:i + 2 * n] == gram and words[i + 2 * n:i + 3 * n] == gram:
                return True
    return len(words) >= 8 and len(set(words)) / len(words) < MIN_DISTINCT_SHARE


def garbage_reason(text: str | None) -> str | None:
    """Why ``text`` is not a usable answer (``"no words"``, ``"unclosed bracket"``, ...), or ``None`` if it is
    plausible text. Pure: the same text always gets the same verdict."""
    text = (text or "").strip()
    if not text:
        return "empty"
    if not _CONTENT.search(text):
        return "no words"
    if _CHAR_RUN.search(text):
        return "repeats a character"
    words = [w.lower() for w in re.findall(r"\w+", text)]
    if _repeats(words):
        return "repeats itself"
    visible = [c for c in text if not c.isspace()]
    if sum(c.isalnum() for c in visible) < MIN_ALNUM_SHARE * len(visible):
        return "mostly symbols"
    if _unclosed(text):
        return "unclosed bracket"
    return None


def garbage_note(reason: str | None, rouge: float | None = None) -> str:
    """The Markdown mark shown next to an answer's scores (``""`` when the answer is plausible text)."""
    if reason is None:
        return ""
    tail = ": ROUGE-L is low because the output is broken, not because the model cleanly forgot" \
        if rouge is not None and rouge < 0.2 else ""
    return f"⚠ **garbled answer** ({reason}){tail}"
