"""The selector parser: tokens to a tree, with Calico's grammar and precedence.

Grammar (``libcalico-go/lib/selector/parser/parser.go``)::

    selector := <blank>                        -> All()
              | or_expr
    or_expr  := and_expr ( "||" and_expr )*    -> Or when more than one operand
    and_expr := unary ( "&&" unary )*          -> And when more than one operand
    unary    := "!"* primary                   -> Not when the count of "!" is odd
    primary  := "has(" KEY ")" | "all()" | "global()" | "(" or_expr ")"
              | KEY ("==" | "!=" | "contains" | "starts with" | "ends with") STRING
              | KEY ("in" | "not in") "{" [ STRING ( "," STRING )* [","] ] "}"

``!`` binds tighter than ``&&``, which binds tighter than ``||``; ``!`` applies to the whole
comparison after it (``!a == "b"`` is ``!(a == "b")``). Parentheses only group: ``(x)`` gives
the tree of ``x``, so ``(a && b) && c`` is an AND whose first operand is an AND.

One limit that Calico does not have: the expression may nest at most :data:`MAX_NESTING` (64)
levels deep, counting ``!``, ``&&`` groups and ``||`` groups along the deepest path, and
parentheses at most as deep. Printing, compiling, hashing and the reference evaluator recurse
over the tree, so the limit keeps them far inside Python's recursion limit wherever they are
called from. It bounds the *tree*, not the text, so the canonical form of anything accepted
is accepted too (printing adds parentheses around every group). Real selectors are nowhere
near it (Calico caps selectors at 1024 characters; policies use a few levels at most).
"""

from __future__ import annotations

from egressguard.errors import SelectorError
from egressguard.selector.nodes import (
    All,
    And,
    Contains,
    EndsWith,
    Eq,
    Global,
    Has,
    In,
    Ne,
    Node,
    Not,
    NotIn,
    Or,
    StartsWith,
)
from egressguard.selector.tokens import Kind, Token, tokenize

__all__ = ["MAX_NESTING", "parse_node"]

#: Deepest expression nesting (and parenthesis nesting) accepted; an egressguard limit.
MAX_NESTING = 64

_COMPARISONS: dict[Kind, type[Eq | Ne | Contains | StartsWith | EndsWith]] = {
    Kind.EQ: Eq,
    Kind.NE: Ne,
    Kind.CONTAINS: Contains,
    Kind.STARTS_WITH: StartsWith,
    Kind.ENDS_WITH: EndsWith,
}


def parse_node(text: str) -> Node:
    """Parse selector text into a tree; raise ``SelectorError`` naming the column."""
    return _Parser(text).parse()


class _Parser:
    __slots__ = ("parens", "pos", "text", "tokens")

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0
        self.parens = 0

    def error(self, token: Token, message: str, hint: str | None = None) -> SelectorError:
        return SelectorError(message, selector=self.text, column=token.pos + 1, hint=hint)

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def next(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind is not Kind.EOF:
            self.pos += 1
        return token

    def parse(self) -> Node:
        if self.peek().kind is Kind.EOF:
            return All()
        node, _ = self.or_expr()
        token = self.peek()
        if token.kind is not Kind.EOF:
            if token.kind is Kind.RPAREN:
                raise self.error(token, "unbalanced ')'", "remove it or add the matching '('")
            raise self.error(
                token,
                f"unexpected {token.describe()} after a complete expression",
                "join expressions with && or ||",
            )
        return node

    # Each method returns the node and its depth (0 for a comparison, has(), all(), global();
    # one more than its deepest operand for !, && and ||), checked against MAX_NESTING.

    def check_depth(self, depth: int, start: Token) -> int:
        if depth > MAX_NESTING:
            raise self.error(
                start,
                f"expression nested more than {MAX_NESTING} levels deep",
                "egressguard limits nesting of !, &&, || and parentheses; simplify the selector",
            )
        return depth

    def or_expr(self) -> tuple[Node, int]:
        start = self.peek()
        node, depth = self.and_expr()
        if self.peek().kind is not Kind.OR:
            return node, depth
        operands = [node]
        while self.peek().kind is Kind.OR:
            self.next()
            operand, operand_depth = self.and_expr()
            operands.append(operand)
            depth = max(depth, operand_depth)
        return Or(tuple(operands)), self.check_depth(depth + 1, start)

    def and_expr(self) -> tuple[Node, int]:
        start = self.peek()
        node, depth = self.unary()
        if self.peek().kind is not Kind.AND:
            return node, depth
        operands = [node]
        while self.peek().kind is Kind.AND:
            self.next()
            operand, operand_depth = self.unary()
            operands.append(operand)
            depth = max(depth, operand_depth)
        return And(tuple(operands)), self.check_depth(depth + 1, start)

    def unary(self) -> tuple[Node, int]:
        start = self.peek()
        negated = False
        while self.peek().kind is Kind.NOT:
            self.next()
            negated = not negated
        node, depth = self.primary()
        if negated:
            return Not(node), self.check_depth(depth + 1, start)
        return node, depth

    def primary(self) -> tuple[Node, int]:
        token = self.next()
        kind = token.kind
        if kind is Kind.HAS:
            return Has(token.value), 0
        if kind is Kind.ALL:
            return All(), 0
        if kind is Kind.GLOBAL:
            return Global(), 0
        if kind is Kind.LABEL:
            return self.comparison(token), 0
        if kind is Kind.LPAREN:
            return self.group(token)
        raise self.unexpected_operand(token)

    def group(self, lparen: Token) -> tuple[Node, int]:
        self.parens += 1
        self.check_depth(self.parens, lparen)  # bounds the parser's own recursion
        if self.peek().kind is Kind.RPAREN:
            raise self.error(self.peek(), "empty parentheses", "write an expression inside")
        node, depth = self.or_expr()
        close = self.next()
        if close.kind is not Kind.RPAREN:
            raise self.error(
                close,
                f"expected ')' to close '(' at column {lparen.pos + 1}, found {close.describe()}",
            )
        self.parens -= 1
        return node, depth

    def comparison(self, label: Token) -> Node:
        operator = self.next()
        if operator.kind is Kind.EOF:
            raise self.error(
                operator,
                f"expected an operator after label {label.value!r}, found the end of the selector",
                f"to test presence write has({label.value})",
            )
        node_type = _COMPARISONS.get(operator.kind)
        if node_type is not None:
            literal = self.next()
            if literal.kind is not Kind.STRING:
                raise self.error(
                    literal,
                    f"expected a quoted string after {operator.kind.value}, "
                    f"found {literal.describe()}",
                    "the right-hand side is a literal: compare with \"value\" or 'value'; "
                    "labels cannot be compared with labels",
                )
            return node_type(label.value, literal.value)
        if operator.kind in (Kind.IN, Kind.NOT_IN):
            values = self.set_literal(operator)
            if operator.kind is Kind.IN:
                return In(label.value, values)
            return NotIn(label.value, values)
        raise self.error(
            operator,
            f"expected an operator after label {label.value!r}, found {operator.describe()}",
            "write one of ==, !=, in, not in, contains, starts with, ends with",
        )

    def set_literal(self, operator: Token) -> tuple[str, ...]:
        lbrace = self.next()
        if lbrace.kind is not Kind.LBRACE:
            raise self.error(
                lbrace,
                f"expected '{{' after {operator.kind.value}, found {lbrace.describe()}",
                'sets are written in braces: k in {"a", "b"}',
            )
        values: list[str] = []
        while self.peek().kind is Kind.STRING:
            values.append(self.next().value)
            if self.peek().kind is not Kind.COMMA:
                break
            self.next()
        rbrace = self.next()
        if rbrace.kind is not Kind.RBRACE:
            raise self.error(
                rbrace,
                f"expected a quoted string or '}}' in set, found {rbrace.describe()}",
                'separate members with commas: {"a", "b"}',
            )
        return tuple(values)

    def unexpected_operand(self, token: Token) -> SelectorError:
        if token.kind is Kind.EOF:
            return self.error(
                token,
                "expected an expression, found the end of the selector",
                "a selector may not end with '!', '&&', '||' or '('",
            )
        if token.kind is Kind.STRING:
            return self.error(
                token,
                f"unexpected {token.describe()}: a comparison starts with a label",
                'write label == "value", not "value" == label',
            )
        if token.kind is Kind.RPAREN:
            return self.error(token, "unbalanced ')'", "remove it or add the matching '('")
        return self.error(token, f"expected an expression, found {token.describe()}")
