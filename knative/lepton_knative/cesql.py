"""CESQL v1 as Knative Eventing parses it: accept or refuse an expression, and say where.

Knative's Trigger webhook checks a `cesql` filter with `ValidateCESQLExpression`
(https://github.com/knative/eventing/blob/knative-v1.22.2/pkg/apis/eventing/v1/trigger_validation.go),
which calls `parser.Parse` of the CloudEvents Go SDK's `sql/v2` module (eventing v1.22 vendors
github.com/cloudevents/sdk-go/sql/v2 v2.0.0-20240712172937-3ce6b2f1f011). That parser is ANTLR
generated from https://github.com/cloudevents/sdk-go/blob/3ce6b2f1f011/sql/v2/CESQLLexer.g4 and
https://github.com/cloudevents/sdk-go/blob/3ce6b2f1f011/sql/v2/CESQLParser.g4, lexed through an
upper-casing character stream (sql/v2/parser/case_changing_stream.go) and then visited by
sql/v2/parser/expression_visitor.go. This module is a hand port of exactly those pieces:

- the lexer: longest match wins, ties go to the rule defined first, so `a-5` lexes as `a` and the
  integer `-5` (a syntax error, as in Go), `1a` is an identifier, `and`/`AND` are keywords;
- the parser: ANTLR's left-recursion precedences (NOT 11, unary - 10, LIKE 9, IN 7, * / % 6,
  + - 5, comparisons 4, AND/OR/XOR 3 and right-associative), `LIKE` needs a quoted pattern,
  `IN` a non-empty parenthesised list, `EXISTS` a bare attribute name;
- the visitor's one parse-time check: integer literals must fit in an int32.

One deliberate difference: the Go lexer has no error listener, so a character it cannot lex
(`;`, `.`, `!` alone, `_` at the start of a word, non-ASCII letters) is dropped silently and
`type = 'a';` is accepted as `type = 'a'`. `parse` refuses such characters instead.

`problems` adds what Knative only finds per event, when the filter then never matches: unknown
functions or wrong argument counts (`runtime/functions_resolver.go`, resolved at evaluation), and
expressions that cannot be boolean (the broker's filter asserts `res.(bool)` on the result,
pkg/eventfilter/subscriptionsapi/cesql_filter.go, so a string or integer result panics).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Function name -> (fewest arguments, most arguments or None when variadic, result type), from
# https://github.com/cloudevents/sdk-go/blob/3ce6b2f1f011/sql/v2/runtime/functions_resolver.go init()
# and sql/v2/function/*.go.
FUNCTIONS: dict[str, tuple[int, int | None, str]] = {
    "INT": (1, 1, "int"),
    "BOOL": (1, 1, "bool"),
    "STRING": (1, 1, "string"),
    "IS_BOOL": (1, 1, "bool"),
    "IS_INT": (1, 1, "bool"),
    "ABS": (1, 1, "int"),
    "LENGTH": (1, 1, "int"),
    "CONCAT": (0, None, "string"),
    "CONCAT_WS": (1, None, "string"),
    "LOWER": (1, 1, "string"),
    "UPPER": (1, 1, "string"),
    "TRIM": (1, 1, "string"),
    "LEFT": (2, 2, "string"),
    "RIGHT": (2, 2, "string"),
    "SUBSTRING": (2, 3, "string"),
}

INT32 = (-(2**31), 2**31 - 1)


class CESQLError(ValueError):
    """An expression Knative would refuse (or never match with); `position` is 0-based."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.message = message
        self.position = position

    def __str__(self) -> str:
        return f"{self.message} (at character {self.position + 1})"


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int


@dataclass(frozen=True)
class Node:
    """One parsed expression: `kind` is bool, int, string, identifier, function, not, negate,
    like, exists, in or binary; `op` the operator or upper-cased function name."""

    kind: str
    pos: int
    op: str = ""
    value: Any = None
    args: tuple[Node, ...] = ()


# Lexer rules in CESQLLexer.g4 order (ties between equally long matches go to the earlier rule).
_FIXED = [
    ("LR_BRACKET", "("),
    ("RR_BRACKET", ")"),
    ("COMMA", ","),
    ("SINGLE_QUOTE_SYMB", "'"),
    ("DOUBLE_QUOTE_SYMB", '"'),
    ("AND", "AND"),
    ("OR", "OR"),
    ("XOR", "XOR"),
    ("NOT", "NOT"),
    ("STAR", "*"),
    ("DIVIDE", "/"),
    ("MODULE", "%"),
    ("PLUS", "+"),
    ("MINUS", "-"),
    ("EQUAL", "="),
    ("NOT_EQUAL", "!="),
    ("GREATER", ">"),
    ("GREATER_OR_EQUAL", ">="),
    ("LESS", "<"),
    ("LESS_GREATER", "<>"),
    ("LESS_OR_EQUAL", "<="),
    ("LIKE", "LIKE"),
    ("EXISTS", "EXISTS"),
    ("IN", "IN"),
    ("TRUE", "TRUE"),
    ("FALSE", "FALSE"),
]
_PATTERNS = [
    ("DQUOTED_STRING_LITERAL", re.compile(r'"(?:\\.|""|[^"\\])*"', re.S)),
    ("SQUOTED_STRING_LITERAL", re.compile(r"'(?:\\.|''|[^'\\])*'", re.S)),
    ("INTEGER_LITERAL", re.compile(r"[+-]?[0-9]+")),
    ("IDENTIFIER", re.compile(r"[a-zA-Z]+")),
    ("IDENTIFIER_WITH_NUMBER", re.compile(r"[a-zA-Z0-9]+")),
    ("FUNCTION_IDENTIFIER_WITH_UNDERSCORE", re.compile(r"[A-Z][A-Z_]*")),
]
_SPACE = re.compile(r"[ \t\r\n]+")
_STRINGS = ("DQUOTED_STRING_LITERAL", "SQUOTED_STRING_LITERAL")
_NAMES = ("IDENTIFIER", "IDENTIFIER_WITH_NUMBER")
_COMPARISONS = {
    "EQUAL": "=",
    "NOT_EQUAL": "!=",
    "LESS_GREATER": "<>",
    "GREATER_OR_EQUAL": ">=",
    "LESS_OR_EQUAL": "<=",
    "LESS": "<",
    "GREATER": ">",
}
_OPERATORS = {"STAR": "*", "DIVIDE": "/", "MODULE": "%", "PLUS": "+", "MINUS": "-", "AND": "AND", "OR": "OR", "XOR": "XOR", **_COMPARISONS}


def _upper(text: str) -> str:
    # CaseChangingStream upper-cases rune by rune (unicode.ToUpper), never changing the length.
    return "".join(u if len(u := c.upper()) == 1 else c for c in text)


def tokens(expr: str) -> list[Token]:
    """The lexer's tokens, then an EOF token; raises CESQLError on a character it cannot lex."""
    view = _upper(expr)
    out: list[Token] = []
    pos = 0
    while pos < len(view):
        space = _SPACE.match(view, pos)
        if space:
            pos = space.end()
            continue
        best, length = "", 0
        for kind, literal in _FIXED:
            if view.startswith(literal, pos) and len(literal) > length:
                best, length = kind, len(literal)
        for kind, pattern in _PATTERNS:
            found = pattern.match(view, pos)
            if found and found.end() - pos > length:
                best, length = kind, found.end() - pos
        if not length:
            raise CESQLError(f"character {expr[pos]!r} is not part of CESQL (Knative's lexer would drop it silently)", pos)
        out.append(Token(best, expr[pos : pos + length], pos))
        pos += length
    out.append(Token("EOF", "", len(expr)))
    return out


def _describe(token: Token) -> str:
    return "the end of the expression" if token.kind == "EOF" else repr(token.text)


class _Parser:
    def __init__(self, expr: str) -> None:
        self.tokens = tokens(expr)
        self.i = 0

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def take(self, *kinds: str, wanted: str) -> Token:
        token = self.peek()
        if token.kind not in kinds:
            raise CESQLError(f"CESQL syntax error: expected {wanted}, found {_describe(token)}", token.pos)
        self.i += 1
        return token

    def cesql(self) -> Node:
        node = self.expression(0)
        token = self.peek()
        if token.kind != "EOF":
            raise CESQLError(f"CESQL syntax error: unexpected {_describe(token)} after a complete expression", token.pos)
        return node

    def expression(self, p: int) -> Node:
        left = self.primary()
        while True:
            token, nxt = self.peek(), self.peek(1)
            negated = token.kind == "NOT" and nxt.kind in ("LIKE", "IN")
            kind = nxt.kind if negated else token.kind
            if kind == "LIKE" and p <= 9:
                self.i += 2 if negated else 1
                pattern = self.take(*_STRINGS, wanted="a quoted LIKE pattern")
                left = Node("like", token.pos, "NOT LIKE" if negated else "LIKE", _unquote(pattern.text), (left,))
            elif kind == "IN" and p <= 7:
                self.i += 2 if negated else 1
                self.take("LR_BRACKET", wanted="'(' opening the IN list")
                items = [self.expression(0)]
                while self.peek().kind == "COMMA":
                    self.i += 1
                    items.append(self.expression(0))
                self.take("RR_BRACKET", wanted="',' or ')' in the IN list")
                left = Node("in", token.pos, "NOT IN" if negated else "IN", None, (left, *items))
            elif kind in ("STAR", "DIVIDE", "MODULE") and p <= 6:
                self.i += 1
                left = Node("binary", token.pos, _OPERATORS[kind], None, (left, self.expression(7)))
            elif kind in ("PLUS", "MINUS") and p <= 5:
                self.i += 1
                left = Node("binary", token.pos, _OPERATORS[kind], None, (left, self.expression(6)))
            elif kind in _COMPARISONS and p <= 4:
                self.i += 1
                left = Node("binary", token.pos, _OPERATORS[kind], None, (left, self.expression(5)))
            elif kind in ("AND", "OR", "XOR") and p <= 3:
                self.i += 1
                left = Node("binary", token.pos, _OPERATORS[kind], None, (left, self.expression(3)))
            else:
                return left

    def primary(self) -> Node:
        token = self.peek()
        kind = token.kind
        if kind in ("IDENTIFIER", "FUNCTION_IDENTIFIER_WITH_UNDERSCORE") and self.peek(1).kind == "LR_BRACKET":
            self.i += 2
            args: list[Node] = []
            if self.peek().kind != "RR_BRACKET":
                args.append(self.expression(0))
                while self.peek().kind == "COMMA":
                    self.i += 1
                    args.append(self.expression(0))
            self.take("RR_BRACKET", wanted="',' or ')' closing the function call")
            return Node("function", token.pos, token.text.upper(), None, tuple(args))
        self.i += 1
        if kind == "NOT":
            return Node("not", token.pos, "NOT", None, (self.expression(11),))
        if kind == "MINUS":
            return Node("negate", token.pos, "-", None, (self.expression(10),))
        if kind == "EXISTS":
            name = self.take(*_NAMES, wanted="an attribute name after EXISTS")
            return Node("exists", token.pos, "EXISTS", name.text.lower())
        if kind == "LR_BRACKET":
            inner = self.expression(0)
            self.take("RR_BRACKET", wanted="')'")
            return inner
        if kind in ("TRUE", "FALSE"):
            return Node("bool", token.pos, value=kind == "TRUE")
        if kind == "INTEGER_LITERAL":
            value = int(token.text)
            if not INT32[0] <= value <= INT32[1]:
                raise CESQLError(f"integer {token.text} does not fit in 32 bits (CESQL integers are int32)", token.pos)
            return Node("int", token.pos, value=value)
        if kind in _STRINGS:
            return Node("string", token.pos, value=_unquote(token.text))
        if kind in _NAMES:
            return Node("identifier", token.pos, value=token.text.lower())
        if kind == "FUNCTION_IDENTIFIER_WITH_UNDERSCORE":
            raise CESQLError(
                f"CESQL syntax error: {token.text!r} is not an attribute name (attribute names are letters and digits)", token.pos
            )
        self.i -= 1
        raise CESQLError(
            f"CESQL syntax error: expected a value, an attribute, a function call, NOT, -, EXISTS or '(', found {_describe(token)}",
            token.pos,
        )


def _unquote(text: str) -> str:
    # expression_visitor.go dQuotedStringToString / sQuotedStringToString: only \" and \' are unescaped.
    quote = text[0]
    return text[1:-1].replace("\\" + quote, quote)


def parse(expr: str) -> Node:
    """The expression's tree, as the Go SDK's `parser.Parse` would accept it; raises CESQLError."""
    return _Parser(expr).cesql()


def result_type(node: Node) -> str:
    """bool, int, string, or any (an attribute's value) — what evaluating `node` returns."""
    if node.kind in ("bool", "not", "like", "exists", "in"):
        return "bool"
    if node.kind in ("int", "negate"):
        return "int"
    if node.kind == "string":
        return "string"
    if node.kind == "binary":
        return "int" if node.op in {"*", "/", "%", "+", "-"} else "bool"
    if node.kind == "function":
        return FUNCTIONS.get(node.op, (0, 0, "any"))[2]
    return "any"


def _walk(node: Node) -> list[Node]:
    return [node, *(n for child in node.args for n in _walk(child))]


def check(node: Node) -> list[CESQLError]:
    """What Knative accepts but then fails on for every event: unknown functions, wrong argument
    counts, and a result that is never boolean."""
    found = []
    for n in _walk(node):
        if n.kind != "function":
            continue
        if n.op not in FUNCTIONS:
            found.append(CESQLError(f"unknown CESQL function {n.op} (Knative knows {', '.join(sorted(FUNCTIONS))})", n.pos))
            continue
        low, high, _ = FUNCTIONS[n.op]
        if len(n.args) < low or (high is not None and len(n.args) > high):
            wanted = f"{low}" if low == high else f"{low} or more" if high is None else f"{low} to {high}"
            found.append(CESQLError(f"{n.op} takes {wanted} argument{'s' * (wanted != '1')}, got {len(n.args)}", n.pos))
    kind = result_type(node)
    if kind not in ("bool", "any"):
        found.append(
            CESQLError(
                f"a filter must be true or false, but this expression gives {'an' if kind == 'int' else 'a'} {kind} "
                "(Knative's broker would fail on every event)",
                node.pos,
            )
        )
    return found


def problems(expr: str) -> list[str]:
    """Each reason a Trigger's `cesql` filter would be refused by Knative or never match, one line each."""
    try:
        node = parse(expr)
    except CESQLError as error:
        return [str(error)]
    return [str(error) for error in check(node)]
