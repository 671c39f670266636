"""No SQL is built by pasting values into strings in domain/, projections/ or adapters/.

Every piece of text that looks like SQL (a statement keyword at its start, an upper-case SQL
keyword anywhere, a value between double quotes, or `search_path`) and is made with an f-string, `str.format`, `%` or
`+` may only interpolate what is known to be safe: literals, ALL_CAPS module constants, the
result of a quoting function, a loop variable over literal constants, or a local name
every assignment of which is one of these. A function parameter, an attribute, or any
other call is refused: that is where a schema from a URL would come in. SQL that takes
values goes through bind parameters, psycopg.sql (`SQL(...).format(Identifier(...))`) or
SQLAlchemy, none of which this check sees as strings.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("domain", "projections", "adapters")

_STATEMENTS = (
    "select|insert|update|delete|create|drop|alter|truncate|grant|revoke|copy|lock|pragma|set|with|"
    "listen|notify|vacuum|analyze|comment|explain|reset|savepoint|begin|declare"
)
# A statement keyword first, all lower or all upper case ("Set a field ..." is prose).
STATEMENT_START = re.compile(rf"^\s*(?:{_STATEMENTS}|{_STATEMENTS.upper()})\b")
UPPER_KEYWORD = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|TRUNCATE|GRANT|REVOKE|COPY|LOCK|PRAGMA|FROM|WHERE|JOIN|"
    r"VALUES|SCHEMA|TABLE|TRIGGER|FUNCTION|RENAME|LIMIT|ORDER BY)\b"
)
HAND_QUOTED = re.compile(r'"\{\}"')  # an identifier quoted by hand around a value: "{schema}"
OPTION = re.compile(r"search_path")
# Functions whose result is a quoted identifier or literal (the names they are defined or
# imported under): the dialect's preparer, psycopg.sql, the store's helpers.
QUOTERS = {"quote", "quote_identifier", "quote_string", "Identifier", "Literal"}
CONSTANT_NAME = re.compile(r"^_?[A-Z][A-Z0-9_]*$")


def looks_like_sql(text: str) -> bool:
    patterns = (STATEMENT_START, UPPER_KEYWORD, HAND_QUOTED, OPTION)
    return any(pattern.search(text) for pattern in patterns)


class Scope:
    """What each local name of one function (or module) is assigned."""

    def __init__(self, node: ast.AST) -> None:
        self.assigned: dict[str, list[ast.expr | None]] = {}  # None: from something unknowable
        self.parameters: set[str] = set()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            args = node.args
            every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
            self.parameters = {a.arg for a in every if a is not None}
        for child in _own_nodes(node):
            if isinstance(child, ast.Assign):
                for target in child.targets:
                    self._bind(target, child.value)
            elif isinstance(child, ast.AnnAssign | ast.AugAssign | ast.NamedExpr):
                self._bind(child.target, child.value if not isinstance(child, ast.AugAssign) else None)
            elif isinstance(child, ast.For | ast.AsyncFor | ast.comprehension):
                self._bind_loop(child.target, child.iter)
            elif isinstance(child, ast.With | ast.AsyncWith):
                for item in child.items:
                    if item.optional_vars is not None:
                        self._bind(item.optional_vars, None)

    def _bind(self, target: ast.expr, value: ast.expr | None) -> None:
        if isinstance(target, ast.Name):
            self.assigned.setdefault(target.id, []).append(value)
        elif isinstance(target, ast.Tuple | ast.List):
            values = value.elts if isinstance(value, ast.Tuple | ast.List) else None
            for i, element in enumerate(target.elts):
                same_length = values is not None and len(values) == len(target.elts)
                self._bind(element, values[i] if same_length and values is not None else None)

    def _bind_loop(self, target: ast.expr, iterable: ast.expr) -> None:
        if isinstance(target, ast.Name) and isinstance(iterable, ast.Tuple | ast.List):
            for element in iterable.elts:
                self._bind(target, element)
        else:
            self._bind(target, None)


def _own_nodes(node: ast.AST) -> list[ast.AST]:
    """The nodes of `node` outside nested functions and classes (comprehensions count as
    the enclosing function's: their loop variables are bound there for this purpose)."""
    found: list[ast.AST] = []
    stack = list(ast.iter_child_nodes(node))
    while stack:
        child = stack.pop()
        found.append(child)
        if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            stack.extend(ast.iter_child_nodes(child))
    return found


def is_safe(node: ast.expr | None, scopes: list[Scope], seen: frozenset[str] = frozenset()) -> bool:
    if node is None:
        return False
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.FormattedValue):
        return node.conversion == -1 and is_safe(node.value, scopes, seen)
    if isinstance(node, ast.Name | ast.Attribute):
        name = node.id if isinstance(node, ast.Name) else node.attr
        if CONSTANT_NAME.match(name):
            return True
        if isinstance(node, ast.Attribute):
            return False
        return _safe_local(name, scopes, seen)
    if isinstance(node, ast.Call):
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name in QUOTERS:
            return True
        if name == "join" and len(node.args) == 1:
            (argument,) = node.args
            if isinstance(argument, ast.Call) and isinstance(argument.func, ast.Name) and argument.func.id == "map":
                mapped = argument.args[0] if argument.args else None
                return isinstance(mapped, ast.Name | ast.Attribute) and is_safe(ast.Call(mapped, [], []), scopes)
            if isinstance(argument, ast.GeneratorExp | ast.ListComp):
                return is_safe(argument.elt, scopes, seen)
        return False
    if isinstance(node, ast.JoinedStr):
        return all(is_safe(value, scopes, seen) for value in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return is_safe(node.left, scopes, seen) and is_safe(node.right, scopes, seen)
    return False


def _safe_local(name: str, scopes: list[Scope], seen: frozenset[str]) -> bool:
    if name in seen:
        return False
    for scope in reversed(scopes):  # the innermost scope that knows the name decides
        if name in scope.parameters:
            return False
        if name in scope.assigned:
            return all(is_safe(value, scopes, seen | {name}) for value in scope.assigned[name])
    return False


def _text(node: ast.expr) -> str | None:
    """The literal text of a string expression, `{}` for what is interpolated; None if it
    has no literal part at all."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = [v.value if isinstance(v, ast.Constant) else "{}" for v in node.values]
        return "".join(str(p) for p in parts)
    return None


def _added(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return [*_added(node.left), *_added(node.right)]
    return [node]


def unsafe_sql(source: str, filename: str = "<string>") -> list[str]:
    """`file:line: text` for each piece of SQL built from values not known to be safe."""
    tree = ast.parse(source, filename)
    found: list[str] = []

    def report(node: ast.AST, text: str) -> None:
        found.append(f"{filename}:{getattr(node, 'lineno', '?')}: {' '.join(text.split())[:100]}")

    def visit(node: ast.AST, scopes: list[Scope]) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.Module):
            scopes = [*scopes, Scope(node)]
        if isinstance(node, ast.JoinedStr):
            text = _text(node)
            if text and looks_like_sql(text) and not is_safe(node, scopes):
                report(node, text)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
            text = _text(node.func.value)
            values = [*node.args, *(k.value for k in node.keywords)]
            if text and looks_like_sql(text) and not all(is_safe(v, scopes) for v in values):
                report(node, text)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
            text = _text(node.left)
            right = node.right.elts if isinstance(node.right, ast.Tuple) else [node.right]
            if text and looks_like_sql(text) and not all(is_safe(v, scopes) for v in right):
                report(node, text)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            terms = _added(node)
            texts = [t for t in map(_text, terms) if t]
            if any(map(looks_like_sql, texts)) and not all(is_safe(t, scopes) for t in terms):
                report(node, " + ".join(texts))
            for term in terms:  # the chain is judged once, as a whole
                if not (isinstance(term, ast.BinOp) and isinstance(term.op, ast.Add)):
                    visit(term, scopes)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, scopes)

    visit(tree, [])
    return found


def test_no_sql_is_built_from_unquoted_values() -> None:
    files = sorted(path for folder in SCANNED for path in (ROOT / folder).rglob("*.py"))
    assert len(files) > 20  # the scan really reads the source tree
    found = [hit for path in files for hit in unsafe_sql(path.read_text(), str(path.relative_to(ROOT)))]
    assert found == [], "SQL built from values not known to be safe:\n" + "\n".join(found)


REFUSED = {
    "the reported injection": "def f(conn, schema):\n    conn.execute(f'CREATE SCHEMA IF NOT EXISTS \"{schema}\"')\n",
    "a qualified name": 'def f(schema, table):\n    q = f\'"{schema}"."{table}"\'\n',
    "lower-case statement": "def f(name):\n    return f'drop table {name}'\n",
    "implicit concatenation": "def f(s):\n"
    "    return (f'CREATE OR REPLACE FUNCTION \"{s}\".fn() '\n            'RETURNS trigger')\n",
    "a local from a parameter": "def f(url):\n"
    "    schema = url.split('=')[1]\n    return f'SET search_path = {schema}'\n",
    "str.format": "def f(t):\n    return 'DELETE FROM {}'.format(t)\n",
    "percent": "def f(t):\n    return 'SELECT * FROM %s' % t\n",
    "plus": "def f(t):\n    return 'TRUNCATE ' + t\n",
    "a search_path option": "def f(schema):\n    return {'options': f'-csearch_path={schema}'}\n",
    "repr is not quoting": "def f(schema):\n    return f'CREATE SCHEMA {quote(schema)!r}'\n",
    "a loop over values": "def f(names):\n    return [f'DROP TABLE {n}' for n in names]\n",
}

ACCEPTED = {
    "psycopg.sql": "def f(conn, schema):\n    conn.execute(SQL('CREATE SCHEMA {}').format(Identifier(schema)))\n",
    "quoted": "def f(name):\n    return f'ALTER TABLE {quote(name)} RENAME TO {quote(PREFIX + name)}'\n",
    "a constant": "LIMIT_ROWS = 5\ndef f():\n    return f'SELECT 1 LIMIT {LIMIT_ROWS}'\n",
    "a quoted local": "def f(t):\n    q = quote_identifier(t)\n    return f'DELETE FROM {q}'\n",
    "joined quoted names": "def f(t, cols):\n"
    "    return f'COPY {quote(t)} ({\", \".join(map(quote, cols))}) FROM STDIN'\n",
    "a loop over literals": "def f(t):\n    return [f'BEFORE {op} ON {quote(t)}' for op in ('UPDATE', 'DELETE')]\n",
    "prose": "def f(name):\n    raise ValueError(f'cannot create schema {name!r}')\n",
    "help text": "def f(names):\n    return f'Set a field to null: {names}.'\n",
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_the_check_finds_interpolated_sql(case: str) -> None:
    assert len(unsafe_sql(REFUSED[case])) == 1


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_the_check_accepts_quoted_sql(case: str) -> None:
    assert unsafe_sql(ACCEPTED[case]) == []
