"""Alert rules: a condition in a small, safe expression language, evaluated against a context.

A rule's condition is text from the operations config (``performance_change > 0.5``). It is
parsed once with ``ast.parse(mode="eval")`` and checked against a whitelist of syntax and the
documented context names (:data:`CONTEXT_FIELDS`), so a typo or an unsafe expression is refused
when the config is loaded, not at 3 a.m. Evaluation walks the checked tree itself; nothing is
ever handed to ``eval``.

The language: numbers, strings, ``True``/``False``; the names of :data:`CONTEXT_FIELDS` and
``check.<name>`` (the status word of health check ``<name>``); arithmetic ``+ - * / %`` and
unary ``-`` on numbers; comparisons ``== != < <= > >=`` (chains allowed), ``in`` / ``not in``
against a literal list or tuple; ``and``, ``or``, ``not``. Nothing else: no calls, no other
attributes, no subscripts, no lambdas, no comprehensions, no ``**``.

Missing data: if evaluating a condition needs a field that the context does not have (absent
or ``None``), the condition is false. An absent field is logged as a warning (the caller built a
context without it); ``None`` means "no data in this window" (e.g. no solves, so no p95) and is
logged at debug level only. Runtime faults (division by zero, a context value of the wrong
type) also make the condition false, with a warning.
"""

from __future__ import annotations

import ast
import logging
import operator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, NamedTuple

from fresh_solver.errors import InputError

log = logging.getLogger(__name__)

SEVERITIES = ("critical", "warning", "info")
STATUS_WORDS = ("healthy", "warning", "critical", "unknown")
MAX_CONDITION_CHARS = 1000


class ContextField(NamedTuple):
    """A name a condition may use: its kind (``number``, ``status`` or ``text``) and meaning."""

    kind: str
    doc: str


CONTEXT_FIELDS: dict[str, ContextField] = {
    "solves": ContextField(
        "number", "Production solves recorded in the window (all statuses)."),
    "median_solve_s": ContextField(
        "number", "Median solve wall time in the window, seconds."),
    "p95_solve_s": ContextField(
        "number", "95th percentile of solve wall time in the window, seconds."),
    "baseline_s": ContextField(
        "number", "The Production version's validated `performance_baseline_s`, seconds."),
    "performance_change": ContextField(
        "number", "Relative change of the window's median solve time against `baseline_s`: "
                  "(median - baseline) / baseline; 0.5 means 50 % slower, -0.2 20 % faster."),
    "slowdown": ContextField(
        "number", "The window's median solve time divided by `baseline_s` "
                  "(1 + performance_change)."),
    "error_rate": ContextField(
        "number", "Fraction (0-1) of the window's solves that found no solution or failed."),
    "fallbacks": ContextField(
        "number", "Parameter fallbacks in the window (registry unreachable or slow, invalid "
                  "set: served from the last good set or CP-SAT defaults)."),
    "fallback_rate": ContextField(
        "number", "Fraction (0-1) of the window's solves served with fallback parameters."),
    "refusals": ContextField(
        "number", "Production versions refused in the window (not validated, or evidence "
                  "that does not match), the previous good version served instead."),
    "health_score": ContextField(
        "number", "The monitor's health score, 0 (worst) to 100 (best)."),
    "status": ContextField(
        "status", "The overall health status: healthy, warning, critical or unknown."),
    "template_id": ContextField(
        "text", "The template the context describes; absent in the system-wide context."),
}
"""The documented names of a rule context. The monitor and health checks build contexts with
these keys (plus ``check``: a dict of health check name → status word, read as
``check.<name>``); a condition naming anything else is refused at load."""

_CHECK = "check"

_ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
               ast.Div: operator.truediv, ast.Mod: operator.mod}
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
            ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
            ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}
_KIND_NAMES = {"number": "a number", "text": "text", "status": "a status", "bool": "true/false"}
_ORDERING = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_REFUSED = {ast.Call: "function calls", ast.Lambda: "lambdas", ast.Subscript: "subscripts",
            ast.Pow: "'**'", ast.IfExp: "conditional expressions",
            ast.NamedExpr: "assignments", ast.ListComp: "comprehensions",
            ast.GeneratorExp: "comprehensions", ast.SetComp: "comprehensions",
            ast.DictComp: "comprehensions", ast.Dict: "dicts", ast.Set: "sets",
            ast.JoinedStr: "f-strings", ast.Starred: "'*'", ast.Await: "await"}


class ConditionError(InputError):
    """A condition that does not parse, uses syntax outside the whitelist or an unknown name.
    ``column`` is the 1-based column in the condition text where known."""

    def __init__(self, message: str, column: int | None = None):
        self.column = column
        super().__init__(message if column is None else f"{message} (column {column})")


class _Missing(Exception):
    """Evaluation needed a field the context lacks; the condition is false."""

    def __init__(self, name: str, absent: bool):
        self.name = name
        self.absent = absent
        super().__init__(name)


def compile_condition(condition: str) -> ast.Expression:
    """Parse and check a condition once, so evaluation can trust the tree. Raises
    :class:`ConditionError` naming what is wrong and where."""
    if not isinstance(condition, str) or not condition.strip():
        raise ConditionError("the condition is empty")
    if len(condition) > MAX_CONDITION_CHARS:
        raise ConditionError(f"the condition is longer than {MAX_CONDITION_CHARS} characters")
    try:
        tree = ast.parse(condition.strip(), mode="eval")
    except SyntaxError as exc:
        raise ConditionError(f"syntax error in condition {condition!r}: {exc.msg}",
                             exc.offset or None) from None
    _kind(tree.body)
    return tree


def _where(node: ast.AST) -> int | None:
    offset = getattr(node, "col_offset", None)
    return None if offset is None else offset + 1


def _kind(node: ast.AST) -> str:
    """The static kind of a sub-expression (number, text, status or bool); refuses anything
    outside the whitelist, unknown names, and comparisons that could never be meaningful."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool):
            return "bool"
        if isinstance(node.value, int | float):
            return "number"
        if isinstance(node.value, str):
            return "text"
        raise ConditionError(f"the literal {node.value!r} is not allowed", _where(node))
    if isinstance(node, ast.Name):
        if node.id in CONTEXT_FIELDS:
            return CONTEXT_FIELDS[node.id].kind
        if node.id in STATUS_WORDS:
            raise ConditionError(f"unknown name {node.id!r} (a status word is text: quote it, "
                                 f'"{node.id}")', _where(node))
        raise ConditionError(f"unknown name {node.id!r} (known: "
                             f"{', '.join(CONTEXT_FIELDS)}, check.<name>)", _where(node))
    if isinstance(node, ast.Attribute):
        if (isinstance(node.value, ast.Name) and node.value.id == _CHECK
                and not node.attr.startswith("_")):
            return "status"
        raise ConditionError("attribute access is not allowed (only check.<name>)",
                             _where(node))
    if isinstance(node, ast.BoolOp):
        for value in node.values:
            _kind(value)
        return "bool"
    if isinstance(node, ast.UnaryOp):
        operand = _kind(node.operand)
        if isinstance(node.op, ast.Not):
            return "bool"
        if isinstance(node.op, ast.USub | ast.UAdd) and operand == "number":
            return "number"
        raise ConditionError("unary '-' and '+' need a number", _where(node))
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _ARITHMETIC:
            what = _REFUSED.get(type(node.op), f"the operator {type(node.op).__name__}")
            raise ConditionError(f"{what} not allowed (arithmetic is + - * / %)", _where(node))
        if _kind(node.left) != "number" or _kind(node.right) != "number":
            raise ConditionError("arithmetic needs numbers on both sides", _where(node))
        return "number"
    if isinstance(node, ast.Compare):
        left = node.left
        for op, right in zip(node.ops, node.comparators):
            _check_comparison(left, op, right)
            left = right
        return "bool"
    what = _REFUSED.get(type(node), type(node).__name__)
    raise ConditionError(f"{what} not allowed in a condition", _where(node))


def _check_comparison(left: ast.AST, op: ast.cmpop, right: ast.AST) -> None:
    left_kind = _kind(left)
    if isinstance(op, ast.In | ast.NotIn):
        if not isinstance(right, ast.Tuple | ast.List):
            raise ConditionError("'in' needs a literal list or tuple on its right",
                                 _where(right))
        for element in right.elts:
            if not isinstance(element, ast.Constant):
                raise ConditionError("the list after 'in' may hold literals only",
                                     _where(element))
            _check_pair(left, left_kind, element, _kind(element), is_ordering=False)
        return
    _check_pair(left, left_kind, right, _kind(right), isinstance(op, _ORDERING))


def _check_pair(left: ast.AST, left_kind: str, right: ast.AST, right_kind: str,
                is_ordering: bool) -> None:
    """Kinds must agree (a status is text); statuses compare with status words, by equality."""
    text = {"text", "status"}
    if left_kind != right_kind and not {left_kind, right_kind} <= text:
        raise ConditionError(f"compares {_KIND_NAMES[left_kind]} with "
                             f"{_KIND_NAMES[right_kind]}, which is never true", _where(right))
    if "status" in (left_kind, right_kind):
        if is_ordering:
            raise ConditionError("status words compare with ==, != or in, not by order",
                                 _where(right))
        for node in (left, right):
            if isinstance(node, ast.Constant) and node.value not in STATUS_WORDS:
                raise ConditionError(f"{node.value!r} is not a status word (one of "
                                     f"{', '.join(STATUS_WORDS)})", _where(node))


def _value(node: ast.AST, context: dict[str, Any]) -> Any:
    """Evaluate a tree that :func:`compile_condition` accepted."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return _lookup(context, node.id, node.id)
    if isinstance(node, ast.Attribute):
        checks = context.get(_CHECK)
        name = f"{_CHECK}.{node.attr}"
        if not isinstance(checks, dict):
            raise _Missing(name, absent=True)
        return _lookup(checks, node.attr, name)
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            return all(_value(v, context) for v in node.values)
        return any(_value(v, context) for v in node.values)
    if isinstance(node, ast.UnaryOp):
        operand = _value(node.operand, context)
        if isinstance(node.op, ast.Not):
            return not operand
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.BinOp):
        left, right = _value(node.left, context), _value(node.right, context)
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right)):
            raise TypeError(f"arithmetic on {left!r} and {right!r}")
        return _ARITHMETIC[type(node.op)](left, right)
    if isinstance(node, ast.Compare):
        left = _value(node.left, context)
        for op, right_node in zip(node.ops, node.comparators):
            if isinstance(right_node, ast.Tuple | ast.List):
                right = tuple(e.value for e in right_node.elts)
            else:
                right = _value(right_node, context)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    raise AssertionError(f"unchecked node {type(node).__name__}")  # compile_condition bug


def _lookup(mapping: dict[str, Any], key: str, name: str) -> Any:
    if key not in mapping:
        raise _Missing(name, absent=True)
    if mapping[key] is None:
        raise _Missing(name, absent=False)
    return mapping[key]


@dataclass(frozen=True)
class Rule:
    """An alert rule: when ``condition`` holds for a context, alert ``name`` fires with
    ``severity`` to ``channels`` (``None``: every configured channel). ``template`` (an id or a
    glob such as ``bracket-*``) limits the rule to contexts of matching templates.
    ``cooldown_minutes`` and ``repeat_interval_minutes`` are read by the alert manager."""

    name: str
    condition: str
    severity: str = "warning"
    channels: tuple[str, ...] | None = None
    repeat_interval_minutes: float = 60.0
    cooldown_minutes: float = 15.0
    template: str | None = None
    description: str = ""
    _tree: ast.Expression = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise InputError(f"rule {self.name!r}: severity {self.severity!r} is not one of "
                             f"{', '.join(SEVERITIES)}")
        object.__setattr__(self, "_tree", compile_condition(self.condition))

    def applies_to(self, template_id: str | None) -> bool:
        """Whether the rule's template filter admits a context of ``template_id``; a rule
        without a filter admits every context, one with a filter only templates it matches."""
        if self.template is None:
            return True
        return template_id is not None and fnmatchcase(template_id, self.template)

    def evaluate(self, context: dict[str, Any]) -> bool:
        """Whether the rule fires for ``context`` (keys of :data:`CONTEXT_FIELDS`, plus
        ``check``). False when the template filter does not admit the context, or when the
        condition needs missing data or fails at run time (see the module doc)."""
        if not self.applies_to(context.get("template_id")):
            return False
        try:
            return bool(_value(self._tree.body, context))
        except _Missing as missing:
            level = logging.WARNING if missing.absent else logging.DEBUG
            log.log(level, "rule %s: the context has %s %s; condition taken as false",
                    self.name, "no field" if missing.absent else "no data for", missing.name)
        except (ArithmeticError, TypeError) as exc:
            log.warning("rule %s: condition %r failed on this context (%s); taken as false",
                        self.name, self.condition, exc)
        return False
