"""Check a script before it runs: every parse error the parser can recover from, and every
call to a function, module or parameter that the modules it will run with do not have.

``check(source, modules)`` returns the problems in source order, each a ``ParseError`` with
line, column and the source line (``render()`` shows a caret); an empty list means the
script parses and its calls fit. Parse errors come from ``tscript.parser.parse_all``; the
calls of what parsed are then compared with the builtins (always: a call without a module is
a builtin call) and, when ``modules`` is given, with those modules' ``ModuleSignature``:

* ``undefined_fn()``: no such builtin; ``nosuchmodule.fn()`` / ``nosuchmodule.value``: no such
  module; ``iputils.pong()``: the module has no such function; ``module.value`` the module
  does not show (when the module declares its values). A value inside ``exists( ... )`` is
  never reported: that is how a script asks whether it is there;
* ``len( arr=x )``: an unknown parameter, ``len()``: a missing required one, where the
  function's ``Signature`` is known.

``describe(module)`` builds the signature of a ``tscript.Module`` from its functions (a
plain callable's keyword parameters, an ``ExternalFunction``'s ``signature()``).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tscript.builtins import BUILTINS
from tscript.errors import ParseError
from tscript.lexer import source_line
from tscript.nodes import Block, Call, Item, Node, Variable, walk
from tscript.parser import parse_all
from tscript.plugins import ExternalFunction, FunctionFactory, Module, Signature

__all__ = [
    "ModuleSignature",
    "builtin_signatures",
    "check",
    "describe",
    "signature_of",
]


@dataclass(frozen=True, slots=True)
class ModuleSignature:
    """What a script may use of a module: ``functions`` by name (``None``: any function; a
    function's ``Signature.parameters`` ``None``: any parameters) and ``values`` (``None``:
    any value, as for ``config``, whose values depend on the target)."""

    name: str
    functions: Mapping[str, Signature] | None = None
    values: frozenset[str] | None = None

    def merged(self, other: ModuleSignature) -> ModuleSignature:
        """What a script may use when it may meet either module: a function both have takes
        what either takes."""
        if self.functions is None or other.functions is None:
            functions = None
        else:
            functions = dict(self.functions)
            for name, signature in other.functions.items():
                known = functions.get(name)
                if known is None:
                    functions[name] = signature
                elif known.parameters is None or signature.parameters is None:
                    functions[name] = Signature()
                else:
                    functions[name] = Signature(
                        known.parameters | signature.parameters,
                        known.required & signature.required,
                    )
        values = None
        if self.values is not None and other.values is not None:
            values = self.values | other.values
        return ModuleSignature(self.name, functions, values)


def signature_of(handler: object) -> Signature:
    """The parameters of what a function factory returned: a plain callable's named
    parameters (those without a default are required), an ``ExternalFunction``'s
    ``signature()``; ``Signature()`` (any parameters) when they cannot be told."""
    if isinstance(handler, tuple) and len(handler) == 2:
        handler = handler[1]
    if isinstance(handler, ExternalFunction):
        return handler.signature() or Signature()
    if not callable(handler):
        return Signature()
    try:
        parameters = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):
        return Signature()
    names: set[str] = set()
    required: set[str] = set()
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            return Signature()
        if parameter.kind in (
            inspect.Parameter.KEYWORD_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            names.add(parameter.name)
            if parameter.default is inspect.Parameter.empty:
                required.add(parameter.name)
    return Signature(frozenset(names), frozenset(required))


def _signatures(functions: Mapping[str, FunctionFactory]) -> dict[str, Signature]:
    result: dict[str, Signature] = {}
    for name, factory in functions.items():
        try:
            made = factory()
        except Exception:  # a factory that needs more than a description has
            result[name] = Signature()
            continue
        result[name] = signature_of(made)
    return result


def describe(module: Module, *, values: bool = True) -> ModuleSignature:
    """The signature of ``module``: its functions (each factory is called once, to see the
    function's parameters) and, with ``values``, its value names (``values=False``: any)."""
    return ModuleSignature(
        module.name,
        _signatures(module.functions()),
        frozenset(module.values()) if values else None,
    )


def builtin_signatures() -> dict[str, Signature]:
    """The builtin functions' parameters."""
    return _signatures(BUILTINS)


def check(source: str, modules: Iterable[ModuleSignature] | None = None) -> list[ParseError]:
    """Every problem found in ``source``, in source order (see the module docstring);
    ``modules=None`` leaves calls to modules unchecked."""
    script, problems = parse_all(source)
    if script is not None:
        known = None if modules is None else {module.name: module for module in modules}
        seen: set[tuple[int, int, str]] = set()
        for problem in _Calls(builtin_signatures(), known).walk(script.root):
            key = (problem.line, problem.column, problem.message)
            if key not in seen:
                seen.add(key)
                problem.source_line = source_line(source, problem.line)
                problems.append(problem)
        problems.sort(key=lambda problem: (problem.line, problem.column))
    return problems


def _names(names: Iterable[str]) -> str:
    return ", ".join(sorted(names)) or "none"


def _suggest(name: str, names: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(names), n=1)
    return f'; did you mean "{close[0]}"?' if close else ""


class _Calls:
    """Walks a script's tree and reports the calls and module values that do not fit."""

    def __init__(
        self, builtins: Mapping[str, Signature], modules: Mapping[str, ModuleSignature] | None
    ) -> None:
        self.builtins = builtins
        self.modules = modules
        self.problems: list[ParseError] = []

    def report(self, message: str, line: int, column: int) -> None:
        self.problems.append(ParseError(message, line, column))

    def walk(self, root: Block) -> list[ParseError]:
        for node, asked in walk(root):
            match node:
                case Variable(module=str() as module, name=name):
                    self.value(node, module, name, asked)
                case Item(module=str() as module, name=name):
                    self.value(node, module, name, asked)
                case Call():
                    self.call(node)
        return self.problems

    def module(self, node: Node, module: str) -> ModuleSignature | None:
        if self.modules is None:
            return None
        found = self.modules.get(module)
        if found is None:
            self.report(
                f'unknown module "{module}" (modules: {_names(self.modules)})'
                + _suggest(module, self.modules),
                node.line,
                node.column,
            )
        return found

    def value(self, node: Node, module: str, name: str, asking: bool) -> None:
        if asking:  # exists( module.value ) is how a script asks whether it is there
            return
        found = self.module(node, module)
        if found is None or found.values is None or name in found.values:
            return
        self.report(
            f'module "{module}" has no value "{name}" (values: {_names(found.values)})'
            + _suggest(name, found.values),
            node.line,
            node.column,
        )

    def call(self, node: Call) -> None:
        if node.module is None:
            signature = self.builtins.get(node.name)
            if signature is None:
                elsewhere = sorted(
                    f"{module.name}.{node.name}"
                    for module in (self.modules or {}).values()
                    if module.functions is not None and node.name in module.functions
                )
                hint = (
                    f"; did you mean {' or '.join(elsewhere)}?"
                    if elsewhere
                    else _suggest(node.name, self.builtins)
                )
                self.report(
                    f'unknown function "{node.name}" (builtins: {_names(self.builtins)}){hint}',
                    node.line,
                    node.column,
                )
                return
            title = f"{node.name}()"
        else:
            module = self.module(node, node.module)
            if module is None or module.functions is None:
                return
            found = module.functions.get(node.name)
            if found is None:
                self.report(
                    f'module "{node.module}" has no function "{node.name}" '
                    f"(functions: {_names(module.functions)})"
                    + _suggest(node.name, module.functions),
                    node.line,
                    node.column,
                )
                return
            signature = found
            title = f"{node.module}.{node.name}()"
        self.parameters(node, title, signature)

    def parameters(self, node: Call, title: str, signature: Signature) -> None:
        allowed = signature.parameters
        if allowed is None:
            return
        given = [name for name, _ in node.parameters]
        for index, name in enumerate(given):
            if name not in allowed:
                line, column = (
                    node.positions[index]
                    if index < len(node.positions)
                    else (node.line, node.column)
                )
                self.report(
                    f'{title} has no parameter "{name}" (parameters: {_names(allowed)})'
                    + _suggest(name, allowed),
                    line,
                    column,
                )
        missing = sorted(signature.required - set(given))
        if missing:
            words = ", ".join(f'"{name}"' for name in missing)
            plural = "s" if len(missing) > 1 else ""
            self.report(f"{title} needs the parameter{plural} {words}", node.line, node.column)
