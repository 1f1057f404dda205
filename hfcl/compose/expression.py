"""A small safe parser for linear adapter expressions such as ``"0.7*math + 0.3*code - 0.5*toxic"``.

Grammar (no ``eval``; names are identifiers bound by ``--adapter NAME=PATH``)::

    expr   := term (("+" | "-") term)*
    term   := unary (("*" | "/") unary)*
    unary  := ("+" | "-") unary | atom
    atom   := NUMBER | NAME | "(" expr ")"

The value of an expression must be linear in the adapters: ``2*(a - b)/3`` is fine, ``a*b``, ``1/a`` and a bare
number (``a + 1``) are errors. :func:`parse_expression` returns ``{name: weight}`` in first-use order, with equal names
collected (``a - a`` gives ``{"a": 0.0}``, an exact zero).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError

_TOKEN = re.compile(r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
                    r"|(?P<op>[-+*/()]))")


@dataclass
class _Value:
    """A scalar (``const``) plus a linear part ``{name: coefficient}``; exactly one side is meaningful."""

    const: float = 0.0
    linear: dict[str, float] | None = None

    @property
    def is_scalar(self) -> bool:
        return self.linear is None


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise ConfigError(f"Unexpected character {text[pos:].lstrip()[:1]!r} at position {pos} in "
                              f"expression {text!r}; allowed: numbers, adapter names, + - * / ( ).")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind), match.start(kind)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    def error(self, message: str) -> ConfigError:
        where = self.tokens[self.i][2] if self.i < len(self.tokens) else len(self.text)
        return ConfigError(f"{message} at position {where} in expression {self.text!r}.")

    def peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str, int]:
        if self.i >= len(self.tokens):
            raise self.error("Unexpected end")
        token = self.tokens[self.i]
        self.i += 1
        return token

    def parse(self) -> _Value:
        if not self.tokens:
            raise ConfigError("Empty adapter expression; write for example '0.7*math + 0.3*code'.")
        value = self.expr()
        if self.i != len(self.tokens):
            raise self.error(f"Unexpected {self.peek()!r}")
        return value

    def expr(self) -> _Value:
        value = self.term()
        while self.peek() in ("+", "-"):
            sign = 1.0 if self.take()[1] == "+" else -1.0
            value = self._add(value, self.term(), sign)
        return value

    def term(self) -> _Value:
        value = self.unary()
        while self.peek() in ("*", "/"):
            op = self.take()[1]
            right = self.unary()
            value = self._mul(value, right) if op == "*" else self._div(value, right)
        return value

    def unary(self) -> _Value:
        if self.peek() in ("+", "-"):
            sign = 1.0 if self.take()[1] == "+" else -1.0
            return self._mul(_Value(sign), self.unary())
        return self.atom()

    def atom(self) -> _Value:
        kind, text, _ = self.take()
        if kind == "num":
            return _Value(float(text))
        if kind == "name":
            return _Value(linear={text: 1.0})
        if text == "(":
            value = self.expr()
            if self.peek() != ")":
                raise self.error("Missing ')'")
            self.take()
            return value
        self.i -= 1
        raise self.error(f"Unexpected {text!r}")

    def _add(self, left: _Value, right: _Value, sign: float) -> _Value:
        if left.is_scalar or right.is_scalar:
            raise self.error("Cannot add a number to an adapter (only weighted adapters add up)")
        out = dict(left.linear)
        for name, coef in right.linear.items():
            out[name] = out.get(name, 0.0) + sign * coef
        return _Value(linear=out)

    def _mul(self, left: _Value, right: _Value) -> _Value:
        if not left.is_scalar and not right.is_scalar:
            raise self.error("Cannot multiply two adapters (the result would not be a weight delta)")
        if left.is_scalar and right.is_scalar:
            return _Value(left.const * right.const)
        scalar, lin = (left.const, right.linear) if left.is_scalar else (right.const, left.linear)
        return _Value(linear={n: c * scalar for n, c in lin.items()})

    def _div(self, left: _Value, right: _Value) -> _Value:
        if not right.is_scalar:
            raise self.error("Cannot divide by an adapter")
        if right.const == 0.0:
            raise self.error("Division by zero")
        return self._mul(left, _Value(1.0 / right.const))


def parse_expression(text: str) -> dict[str, float]:
    """``{adapter name: weight}`` of a linear expression (raises :class:`ConfigError` with the position on error)."""
    value = _Parser(text).parse()
    if value.is_scalar:
        raise ConfigError(f"Expression {text!r} names no adapter; write for example '0.7*math + 0.3*code'.")
    return value.linear
