"""The selector tokenizer: Calico's lexical rules, with the column of every token.

Behaviour follows ``libcalico-go/lib/selector/tokenizer/tokenizer.go`` (Calico master):

* Blanks are spaces and tabs only. A newline or carriage return outside a string literal is
  an error, including the trailing newline a YAML ``|`` block leaves.
* A label key is 1..512 characters from ``[A-Za-z0-9_./-]``; it may start with any of them.
* A string literal runs from ``"`` or ``'`` to the next identical quote. There are no escapes;
  an unterminated literal is an error. Anything, newlines included, may appear inside.
* ``has(``, ``all(`` and ``global(`` are recognised only with the parenthesis directly after the
  word; blanks may follow inside (``has( a )``, ``all( )``). ``has()`` is an error.
* Word operators are recognised **only directly after a label**: ``contains``, ``starts with``
  / ``startswith``, ``ends with`` / ``endswith``, ``not in`` / ``notin`` and ``in`` (any number
  of blanks, none included, between the words), each followed by a character that cannot
  continue a label (so ``inf`` is not ``in``). Anywhere else those words are label keys:
  ``not in {"a"}`` tests the label ``not``.
* ``==``, ``!=``, ``!``, ``&&``, ``||``, ``(``, ``)``, ``{``, ``}`` and ``,`` are punctuation;
  a lone ``=``, ``&`` or ``|`` and every other character are errors.

Positions are 0-based character offsets into the text; errors report 1-based columns.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from egressguard.errors import SelectorError
from egressguard.selector.nodes import MAX_KEY_LENGTH

__all__ = ["Kind", "Token", "tokenize"]


class Kind(enum.Enum):
    """Token kinds (Calico's ``TokXxx`` constants)."""

    LABEL = "label"
    STRING = "string literal"
    LBRACE = "'{'"
    RBRACE = "'}'"
    COMMA = "','"
    EQ = "'=='"
    NE = "'!='"
    IN = "'in'"
    NOT = "'!'"
    NOT_IN = "'not in'"
    CONTAINS = "'contains'"
    STARTS_WITH = "'starts with'"
    ENDS_WITH = "'ends with'"
    ALL = "'all()'"
    HAS = "'has()'"
    LPAREN = "'('"
    RPAREN = "')'"
    AND = "'&&'"
    OR = "'||'"
    GLOBAL = "'global()'"
    EOF = "end of selector"


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind, its value (label key or literal content, else ``""``), its offset."""

    kind: Kind
    value: str
    pos: int

    def describe(self) -> str:
        """How an error message names this token."""
        if self.kind is Kind.LABEL:
            return f"label {self.value!r}"
        if self.kind is Kind.STRING:
            return f"string literal {self.value!r}"
        if self.kind is Kind.HAS:
            return f"'has({self.value})'"
        return str(self.kind.value)


_BLANKS = re.compile(r"[ \t]*")
_IDENT = re.compile(r"[A-Za-z0-9_./-]*")
_IDENT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-")

# Operators after a label, in the order Calico tries them; each must end at a word boundary.
_WORD_OPERATORS: tuple[tuple[re.Pattern[str], Kind], ...] = (
    (re.compile(r"contains"), Kind.CONTAINS),
    (re.compile(r"starts[ \t]*with"), Kind.STARTS_WITH),
    (re.compile(r"ends[ \t]*with"), Kind.ENDS_WITH),
    (re.compile(r"not[ \t]*in"), Kind.NOT_IN),
    (re.compile(r"in"), Kind.IN),
)

_PUNCTUATION = {
    "(": Kind.LPAREN,
    ")": Kind.RPAREN,
    "{": Kind.LBRACE,
    "}": Kind.RBRACE,
    ",": Kind.COMMA,
}

_NEWLINE_HINT = (
    "selectors may not contain line breaks; a YAML block scalar ('|' or '>') keeps a trailing "
    "newline: use '|-' or '>-', or a quoted string"
)
_KEY_HINT = "label keys are 1..512 characters from A-Z a-z 0-9 _ . / -"
_OPERATOR_HINT = (
    "after a label write one of ==, !=, in, not in, contains, starts with, ends with "
    '(e.g. app == "web"); to test presence use has(label)'
)


def _error(text: str, pos: int, message: str, hint: str | None = None) -> SelectorError:
    return SelectorError(message, selector=text, column=pos + 1, hint=hint)


def _unexpected_char(text: str, pos: int) -> SelectorError:
    char = text[pos]
    if char in "\r\n":
        name = "newline" if char == "\n" else "carriage return"
        return _error(text, pos, f"{name} in selector", _NEWLINE_HINT)
    if char == "=":
        return _error(text, pos, "unexpected '='", "use '==' to compare")
    if char == "&":
        return _error(text, pos, "unexpected '&'", "use '&&' for AND")
    if char == "|":
        return _error(text, pos, "unexpected '|'", "use '||' for OR")
    return _error(text, pos, f"unexpected character {char!r}", _KEY_HINT)


def _cut_identifier(text: str, pos: int) -> int:
    """End offset of the label key starting at ``pos``; raises when there is none or too long."""
    match = _IDENT.match(text, pos)
    end = match.end() if match else pos
    if end == pos:
        if pos >= len(text):
            raise _error(text, pos, "expected a label key, found the end of the selector")
        raise _unexpected_char(text, pos)
    if end - pos > MAX_KEY_LENGTH:
        raise _error(
            text,
            pos,
            f"label key is {end - pos} characters long, more than {MAX_KEY_LENGTH}",
            _KEY_HINT,
        )
    return end


def _skip_blanks(text: str, pos: int) -> int:
    match = _BLANKS.match(text, pos)
    return match.end() if match else pos


def _at_word_boundary(text: str, pos: int) -> bool:
    return pos >= len(text) or text[pos] not in _IDENT_CHARS


def _close_paren(text: str, pos: int, what: str) -> int:
    """Expect ``)`` after optional blanks; return the offset after it."""
    pos = _skip_blanks(text, pos)
    if pos < len(text) and text[pos] == ")":
        return pos + 1
    raise _error(text, pos, f"expected ')' to close '{what}('")


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an ``EOF`` token; raise ``SelectorError``."""
    tokens: list[Token] = []
    length = len(text)
    pos = 0
    while True:
        pos = _skip_blanks(text, pos)
        if pos >= length:
            tokens.append(Token(Kind.EOF, "", length))
            return tokens
        char = text[pos]
        start = pos
        kind = _PUNCTUATION.get(char)
        if kind is not None:
            tokens.append(Token(kind, "", start))
            pos += 1
        elif char in "\"'":
            close = text.find(char, pos + 1)
            if close < 0:
                raise _error(
                    text,
                    start,
                    "unterminated string literal",
                    "string literals have no escapes and end at the next identical quote; "
                    "quote a value containing \" with ' and vice versa",
                )
            tokens.append(Token(Kind.STRING, text[pos + 1 : close], start))
            pos = close + 1
        elif char == "=":
            if not text.startswith("==", pos):
                raise _unexpected_char(text, pos)
            tokens.append(Token(Kind.EQ, "", start))
            pos += 2
        elif char == "!":
            if text.startswith("!=", pos):
                tokens.append(Token(Kind.NE, "", start))
                pos += 2
            else:
                tokens.append(Token(Kind.NOT, "", start))
                pos += 1
        elif char == "&":
            if not text.startswith("&&", pos):
                raise _unexpected_char(text, pos)
            tokens.append(Token(Kind.AND, "", start))
            pos += 2
        elif char == "|":
            if not text.startswith("||", pos):
                raise _unexpected_char(text, pos)
            tokens.append(Token(Kind.OR, "", start))
            pos += 2
        elif tokens and tokens[-1].kind is Kind.LABEL:
            pos = _word_operator(text, pos, tokens)
        elif text.startswith("has(", pos):
            key_start = _skip_blanks(text, pos + 4)
            if key_start < length and text[key_start] == ")":
                raise _error(text, key_start, "expected a label key inside 'has()'", _KEY_HINT)
            key_end = _cut_identifier(text, key_start)
            pos = _close_paren(text, key_end, "has")
            tokens.append(Token(Kind.HAS, text[key_start:key_end], start))
        elif text.startswith("all(", pos):
            pos = _close_paren(text, pos + 4, "all")
            tokens.append(Token(Kind.ALL, "", start))
        elif text.startswith("global(", pos):
            pos = _close_paren(text, pos + 7, "global")
            tokens.append(Token(Kind.GLOBAL, "", start))
        else:
            pos = _cut_identifier(text, pos)
            tokens.append(Token(Kind.LABEL, text[start:pos], start))


def _word_operator(text: str, pos: int, tokens: list[Token]) -> int:
    """Match an operator word right after a label; append it and return the new offset."""
    for pattern, kind in _WORD_OPERATORS:
        match = pattern.match(text, pos)
        if match and _at_word_boundary(text, match.end()):
            tokens.append(Token(kind, "", pos))
            return match.end()
    if text[pos] in "\r\n":
        raise _unexpected_char(text, pos)
    raise _error(
        text,
        pos,
        f"expected an operator after label {tokens[-1].value!r}",
        _OPERATOR_HINT,
    )
