"""The kinds of edit bbpatch makes. Each edit module in this package declares one instance.

An edit knows where it acts (a *scope*: the statement blocks it may touch), what it looks for there (an
*anchor*), how to tell that it is already applied (by matching its own inserted code), how to apply
itself and how to undo itself on a file the user may have edited since.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, NamedTuple

import libcst as cst

import bbpatch.engine.matchers as m
from bbpatch.engine.cst import (
    code,
    find_function,
    nested_blocks,
    rebuild,
    replace_function,
    same_code,
    template_statement,
    unwrap,
    wrap,
)

TASKS = "nn/tasks.py"
TORCH_UTILS = "utils/torch_utils.py"


class Block(NamedTuple):
    fn: cst.FunctionDef | None  # None: module level
    node: cst.CSTNode  # the node whose .body holds the statements (an IndentedBlock or the Module)
    path: tuple = ()  # the nodes from fn down to node's parent, so a change rebuilds only that chain


Scope = Callable[[cst.Module], Iterator[Block]]


class AnchorMissing(Exception):
    """The tree lacks a statement an edit must attach to: this ultralytics layout is not supported."""

    def __init__(self, file: str, where: str, expected: str):
        super().__init__(f"{file}: {where} has no {expected}; this layout is not supported")
        self.file, self.where, self.expected = file, where, expected


def replace_block(module: cst.Module, block: Block, new_body: list) -> cst.Module:
    new_node = block.node.with_changes(body=new_body)
    if block.fn is None:
        return new_node
    return replace_function(module, block.fn, rebuild((*block.path, block.node), new_node))


def replace_statement(module: cst.Module, block: Block, old: cst.CSTNode, new: cst.CSTNode) -> cst.Module:
    return replace_block(module, block, [new if statement is old else statement for statement in block.node.body])


def replace_inside(module: cst.Module, block: Block, old: cst.CSTNode, new: cst.CSTNode, statement=None) -> cst.Module:
    """Replace ``old``, found somewhere inside one statement of the block (``statement``, if known), by ``new``."""
    if statement is None:
        is_old = m.MatchIfTrue(lambda node: node is old)
        statement = next(s for s in block.node.body if s is old or m.findall(s, is_old))
    return replace_statement(module, block, statement, statement.deep_replace(old, new))


@dataclass(frozen=True)
class Edit:
    name: str
    file: str
    summary: str
    scope: Scope
    where: str  # for error messages: "parse_model", "DetectionModel.__init__"
    expected: str  # for error messages: what anchor was looked for
    optional: bool = False  # True: the anchor's absence means this release does not need the edit

    # --- to implement -------------------------------------------------------------------------------------------
    def anchors(self, module: cst.Module) -> list:
        """Places still waiting for this edit, as (block, node) pairs."""
        raise NotImplementedError

    def applied(self, module: cst.Module) -> list:
        """This edit's inserted code found in the module, as (block, node) pairs."""
        raise NotImplementedError

    def apply_at(self, module: cst.Module, block: Block, node: cst.CSTNode) -> cst.Module:
        raise NotImplementedError

    def revert_at(self, module: cst.Module, block: Block, node: cst.CSTNode) -> cst.Module:
        raise NotImplementedError

    # --- shared behaviour ---------------------------------------------------------------------------------------
    def status(self, module: cst.Module) -> str:
        """'applied', 'missing' (anchor waiting), 'partial', 'n/a' (not needed here) or 'unsupported'."""
        anchors, applied = self.anchors(module), self.applied(module)
        if applied and not anchors:
            return "applied"
        if applied:
            return "partial"
        if anchors:
            return "missing"
        return "n/a" if self.optional else "unsupported"

    def apply(self, module: cst.Module) -> cst.Module:
        return self.apply_with_status(module)[0]

    def apply_with_status(self, module: cst.Module) -> tuple[cst.Module, str]:
        """Apply; also say whether the edit is now 'applied' or was 'n/a' (optional and nothing to attach to)."""
        anchors = self.anchors(module)
        if not anchors and not self.applied(module):
            if self.optional:
                return module, "n/a"
            raise AnchorMissing(self.file, self.where, self.expected)
        for _ in range(64):  # re-locate after every change: blocks are immutable and get replaced
            if not anchors:
                return module, "applied"
            module = self.apply_at(module, *anchors[0])
            anchors = self.anchors(module)
        raise RuntimeError(f"{self.name}: too many anchors")

    def revert(self, module: cst.Module) -> cst.Module:
        for _ in range(64):
            applied = self.applied(module)
            if not applied:
                return module
            module = self.revert_at(module, *applied[0])
        raise RuntimeError(f"{self.name}: too many applied sites")


def statements(module: cst.Module, scope: Scope, matcher) -> list:
    return [
        (block, statement)
        for block in scope(module)
        for statement in block.node.body
        if (matcher(statement) if callable(matcher) else m.matches(statement, matcher))
    ]


@dataclass(frozen=True)
class InsertStatement(Edit):
    """Insert the template statement next to an anchor statement ('after', 'before', or 'first' in the block)."""

    template: str = ""
    anchor: m.BaseMatcherNode | None = None
    position: str = "after"

    def _neighbour(self, body, index):
        offset = {"after": 1, "before": -1}[self.position]
        j = index + offset
        return body[j] if 0 <= j < len(body) else None

    def _is_inserted(self, statement) -> bool:
        return same_code(statement, template_statement(self.template))

    def anchors(self, module):
        found = []
        for block in self.scope(module):
            body = block.node.body
            if self.position == "first":
                if body and not self._is_inserted(body[0]):
                    found.append((block, body[0]))
                continue
            for index, statement in enumerate(body):
                if m.matches(statement, self.anchor):
                    neighbour = self._neighbour(body, index)
                    if neighbour is None or not self._is_inserted(neighbour):
                        found.append((block, statement))
        return found

    def applied(self, module):
        return statements(module, self.scope, self._is_inserted)

    def apply_at(self, module, block, anchor):
        body = list(block.node.body)
        index = next(i for i, s in enumerate(body) if s is anchor)
        if self.position == "after":
            index += 1
        inserted = template_statement(self.template)
        if self.position != "after":  # the anchor's comments stay above whatever now comes first
            inserted = inserted.with_changes(leading_lines=anchor.leading_lines)
            body[index] = anchor.with_changes(leading_lines=())
        body.insert(index, inserted)
        return replace_block(module, block, body)

    def revert_at(self, module, block, inserted):
        body = list(block.node.body)
        index = next(i for i, s in enumerate(body) if s is inserted)
        del body[index]
        if self.position != "after" and index < len(body):
            body[index] = body[index].with_changes(leading_lines=inserted.leading_lines)
        return replace_block(module, block, body)


@dataclass(frozen=True)
class WrapStatement(Edit):
    """Wrap an anchor statement in the template's ``if``/``else``: the original stays byte-for-byte inside."""

    template: str = ""
    anchor: m.BaseMatcherNode | None = None
    earlier_tests: tuple = ()  # the wrapper's condition as earlier bbpatch releases wrote it: still applied

    def _is_wrapper(self, statement) -> bool:
        tests = {code(template_statement(self.template).test), *self.earlier_tests}
        return (
            isinstance(statement, cst.If) and code(statement.test) in tests and bool(m.findall(statement, self.anchor))
        )

    def anchors(self, module):
        return statements(module, self.scope, self.anchor)

    def applied(self, module):
        return statements(module, self.scope, self._is_wrapper)

    def apply_at(self, module, block, statement):
        return replace_statement(module, block, statement, wrap(statement, self.template))

    def revert_at(self, module, block, wrapper):
        return replace_statement(module, block, wrapper, unwrap(wrapper, self.anchor))


# --- scopes ----------------------------------------------------------------------------------------------------------


def module_level(module: cst.Module) -> Iterator[Block]:
    yield Block(None, module)


def function_body(*path: str) -> Scope:
    def scope(module):
        fn = find_function(module, path)
        if fn is not None:
            yield Block(fn, fn.body, (fn,))

    return scope


def blocks_of(fn: cst.FunctionDef) -> Iterator[Block]:
    for path, block in nested_blocks(fn):
        yield Block(fn, block, path)


def blocks_in(*path: str) -> Scope:
    """Every indented block inside a function, at any depth."""

    def scope(module):
        fn = find_function(module, path)
        if fn is not None:
            yield from blocks_of(fn)

    return scope


LAYER_LOOP = m.For(iter=m.Call(func=m.Name("enumerate")))


def layer_loop(module: cst.Module) -> Iterator[Block]:
    """The body of parse_model's ``for i, (f, n, m, args) in enumerate(...)`` loop."""
    fn = find_function(module, ("parse_model",))
    if fn is None:
        return
    for statement in fn.body.body:
        if m.matches(statement, LAYER_LOOP):
            yield Block(fn, statement.body, (fn, fn.body, statement))
            return


def single_statement(matcher: m.BaseMatcherNode) -> m.SimpleStatementLine:
    return m.SimpleStatementLine(body=[matcher])


ANY = m.DoNotCare()


def assign_to(name: str, value=ANY) -> m.SimpleStatementLine:
    return single_statement(m.Assign(targets=[m.AssignTarget(m.Name(name))], value=value))


def call_statement(obj: str, method: str, args=ANY) -> m.SimpleStatementLine:
    return single_statement(m.Expr(m.Call(func=m.Attribute(value=m.Name(obj), attr=m.Name(method)), args=args)))
