"""A small LaTeX-math parser producing a plain-tuple AST.

Our own converter instead of sympy's ``parse_latex``: that one needs antlr4 (an extra dependency)
and, worse, builds sympy objects while parsing, so ``10^{10^{10}}`` is already evaluated before any
guard can look at it. Here parsing is linear in the input, depth-limited, and builds inert tuples
that are cheap to compare, evaluate exactly, pickle to the worker, and turn into sympy only there.

AST nodes (all tuples, hashable):
    ('n', Fraction, tol)      number; ``tol`` is half a unit in the last written digit for decimal /
                              e-notation literals (used only when the literal is a gold answer), else None
    ('s', name)               symbol
    ('c', name)               constant: 'pi', 'e', 'i', 'oo'
    ('+', (terms...))   ('*', (factors...))   ('/', num, den)   ('neg', x)   ('^', base, exp)
    ('f', name, (args...))    function: sin, log (args: x[, base]), sqrt (x[, index]), fact, abs, binom ...
"""

from __future__ import annotations

from .latex_tokens import FUNCTIONS, ParseError, number_node, tokenize

MAX_DEPTH = 80

CONSTANT_COMMANDS = {"pi": ("c", "pi"), "infty": ("c", "oo"), "infinity": ("c", "oo"), "imath": ("c", "i")}
ACCENT_COMMANDS = frozenset("dot ddot hat bar vec tilde overline widehat mathbf boldsymbol".split())
MUL_COMMANDS = frozenset(("cdot", "times", "ast"))
DIV_COMMANDS = frozenset(("div",))


def parse_expression(text: str) -> tuple:
    parser = _Parser(tokenize(text))
    node = parser.expression()
    if parser.pos != len(parser.tokens):
        raise ParseError(f"unexpected {parser.peek()[1]!r}")
    return node


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]):
        self.tokens = tokens
        self.pos = 0
        self.depth = 0
        self.abs_depth = 0

    def peek(self, offset: int = 0) -> tuple[str, str]:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token[0] == "end":
            raise ParseError("unexpected end")
        self.pos += 1
        return token

    def expect(self, value: str) -> None:
        if self.take()[1] != value:
            raise ParseError(f"expected {value!r}")

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ParseError("nesting too deep")

    def expression(self) -> tuple:
        self._enter()
        terms = [self.unary()]
        while self.peek()[1] in ("+", "-"):
            op = self.take()[1]
            term = self.unary()
            terms.append(term if op == "+" else ("neg", term))
        self.depth -= 1
        return terms[0] if len(terms) == 1 else ("+", tuple(terms))

    def unary(self) -> tuple:
        if self.peek()[1] == "-":
            self.take()
            return ("neg", self.unary())
        if self.peek()[1] == "+":
            self.take()
            return self.unary()
        return self.term()

    def term(self) -> tuple:
        node = self.power()
        while True:
            kind, value = self.peek()
            if value == "*" or (kind == "cmd" and value[1:] in MUL_COMMANDS):
                self.take()
                node = _mul(node, self.signed_power())
            elif value == "/" or (kind == "cmd" and value[1:] in DIV_COMMANDS):
                self.take()
                node = ("/", node, self.signed_power())
            elif self.starts_atom():
                node = _mul(node, self.power())
            else:
                return node

    def signed_power(self) -> tuple:
        if self.peek()[1] == "-":
            self.take()
            return ("neg", self.signed_power())
        return self.power()

    def starts_atom(self) -> bool:
        kind, value = self.peek()
        if kind in ("num", "word"):
            return True
        if kind == "cmd":
            name = value[1:]
            return name not in MUL_COMMANDS and name not in DIV_COMMANDS
        if value == "|":
            return self.abs_depth == 0
        return value in ("(", "{", "[")

    def power(self) -> tuple:
        node = self.postfix(self.atom())
        if self.peek()[1] == "^":
            self.take()
            node = ("^", node, self.script_argument())
            node = self.postfix(node)
        return node

    def postfix(self, node: tuple) -> tuple:
        while self.peek()[1] in ("!", "'"):
            if self.take()[1] == "!":
                node = ("f", "fact", (node,))
            else:
                node = ("s", _symbol_text(node) + "'")
        return node

    def script_argument(self) -> tuple:
        """Argument of ^ or of \\frac: a braced group, or one character / token (x^23 is x^2 * 3)."""
        kind, value = self.peek()
        if value == "-":
            self.take()
            return ("neg", self.script_argument())
        if value == "{":
            return self.group("{", "}")
        if kind == "num":
            self.take()
            if len(value) > 1:
                self.tokens.insert(self.pos, ("num", value[1:]))
            return number_node(value[0])
        return self.postfix(self.atom())

    def group(self, opener: str, closer: str) -> tuple:
        self.expect(opener)
        if self.peek()[1] == closer:
            raise ParseError("empty group")
        node = self.expression()
        self.expect(closer)
        return node

    def raw_group_text(self) -> str:
        """Source text of a subscript (x_{10} -> '10'), kept as part of a symbol name."""
        if self.peek()[1] != "{":
            return self.take()[1]
        self.take()
        parts, level = [], 1
        while True:
            value = self.take()[1]
            level += {"{": 1, "}": -1}.get(value, 0)
            if level == 0:
                return "".join(parts)
            parts.append(value)

    def atom(self) -> tuple:
        self._enter()
        kind, value = self.take()
        if kind == "num":
            node = self.number_atom(value)
        elif kind == "word":
            node = self.symbol_atom(value)
        elif kind == "cmd":
            node = self.command(value[1:])
        elif value in ("(", "{", "["):
            self.pos -= 1
            node = self.group(value, {"(": ")", "{": "}", "[": "]"}[value])
        elif value == "|":
            self.abs_depth += 1
            node = ("f", "abs", (self.expression(),))
            self.abs_depth -= 1
            self.expect("|")
        else:
            raise ParseError(f"unexpected {value!r}")
        self.depth -= 1
        return node

    def number_atom(self, text: str) -> tuple:
        node = number_node(text)
        if self.peek()[1] == "_":
            self.take()
            return ("s", f"{text}_{self.raw_group_text()}")
        if node[2] is None and self.peek() == ("cmd", "\\frac"):
            fraction = self.mixed_fraction()
            if fraction is not None:
                return ("n", node[1] + fraction, None)
        if self.peek()[0] == "num":
            raise ParseError("two numbers side by side")
        return node

    def applied(self, name: str) -> tuple:
        """x(t), I(0), x_0(t): a function of one plain argument is a name of its own, not a product."""
        argument_kind = self.peek(1)[0]
        # f(2), I(0) name a value; a lowercase letter before a number in brackets, x(2), is a product
        numeric_ok = name[0].isupper() or name[0] in "fgh"
        if (
            self.peek()[1] == "("
            and self.peek(2)[1] == ")"
            and (argument_kind == "word" or (argument_kind == "num" and numeric_ok))
        ):
            argument = self.tokens[self.pos + 1][1]
            self.pos += 3
            return ("s", f"{name}({argument})")
        return ("s", name)

    def mixed_fraction(self):
        """2\\frac{1}{2} is the mixed number 5/2 when both parts are plain integers."""
        start = self.pos
        self.take()
        numerator, denominator = self.script_argument(), self.script_argument()
        if (
            numerator[0] == "n"
            and denominator[0] == "n"
            and numerator[2] is None
            and denominator[2] is None
            and denominator[1] != 0
        ):
            return numerator[1] / denominator[1]
        self.pos = start
        return None

    def symbol_atom(self, letter: str) -> tuple:
        if self.peek()[1] == "_":
            self.take()
            return self.applied(f"{letter}_{self.raw_group_text()}")
        if self.peek()[1] == "(" and letter not in "ei":
            return self.applied(letter)
        if letter == "e":
            return ("c", "e")
        if letter == "i":
            return ("c", "i")
        return ("s", letter)

    def command(self, name: str) -> tuple:
        if name == "frac" or name == "cfrac":
            numerator = self.script_argument()
            return ("/", numerator, self.script_argument())
        if name == "binom":
            top = self.script_argument()
            return ("f", "binom", (top, self.script_argument()))
        if name == "sqrt":
            index = self.group("[", "]") if self.peek()[1] == "[" else None
            radicand = self.script_argument()
            return ("f", "sqrt", (radicand,) if index is None else (radicand, index))
        if name in FUNCTIONS:
            return self.function(name)
        if name in CONSTANT_COMMANDS:
            return CONSTANT_COMMANDS[name]
        if name in ACCENT_COMMANDS:
            return ("s", f"{name}({self.raw_group_text()})")
        if name in ("cup", "cap", "in", "le", "ge", "lt", "gt", "ne", "begin", "end", "pm", "mp", "text"):
            raise ParseError(f"\\{name} is not part of an expression")
        symbol = ("s", name)
        if self.peek()[1] == "_":
            self.take()
            symbol = ("s", f"{name}_{self.raw_group_text()}")
        return symbol

    def function(self, name: str) -> tuple:
        base = None
        if self.peek()[1] == "_":
            self.take()
            base = self.script_argument()
        exponent = None
        if self.peek()[1] == "^":
            self.take()
            exponent = self.script_argument()
        argument = self.function_argument()
        name = {"lg": "log10"}.get(name, name)
        node = ("f", name, (argument,) if base is None else (argument, base))
        return node if exponent is None else ("^", node, exponent)

    def function_argument(self) -> tuple:
        """\\sin(x), \\sin{x}, or the implicit product that follows: \\sin 2x, \\ln 2 (not \\sin x \\cos x)."""
        if self.peek()[1] in ("(", "{"):
            opener = self.peek()[1]
            return self.group(opener, ")" if opener == "(" else "}")
        node = self.power()
        while self.starts_atom() and not (self.peek()[0] == "cmd" and self.peek()[1][1:] in FUNCTIONS):
            node = _mul(node, self.power())
        return node


def _mul(left: tuple, right: tuple) -> tuple:
    factors = left[1] if left[0] == "*" else (left,)
    return ("*", factors + (right,))


def _symbol_text(node: tuple) -> str:
    return node[1] if node[0] == "s" else repr(node)
