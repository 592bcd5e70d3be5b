"""Reading the blog recipe's hand edits out of tasks.py and torch_utils.py, and taking exactly them out.

``bbpatch adopt`` turns a tree patched by hand with the recipe (../shared/seeds/001, 002 describe its steps) into
an ordinary bbpatch tree. This module does the first half without importing or running anything: it reads the
recipe's backbone branch(es) in ``parse_model`` (which names, ``m(*args)`` or ``m()``, ``c2`` from which attribute,
the flag's name) and removes the recipe's edits structurally, each by the inverse of what the recipe did:

- the ``elif m in {A, B}: m = m(*args); c2 = m.width_list; backbone = True`` branch (a set, tuple, list, or
  ``m is A``) goes; the user's other branches (GOLD-YOLO's ``elif m in (Low_FAM, ...)``) stay;
- the flag's ``backbone = False`` before the layer loop and ``t = m`` first in it go;
- ``if isinstance(c2, list): <recipe> else: <stock>`` in the loop tail becomes ``<stock>``, and so does
  ``if hasattr(m, "backbone"): <recipe> else: <stock>`` in the forward loops;
- the blog column's ``... and not goldyolo and not two_backbone`` and the other family's ``... and m not in {...}``
  beside ``isinstance(c2, list)`` go with it (the user's flags and the branches that set them stay);
- ``i + 4 if backbone else i`` becomes ``i``; ``s = 640`` in a model's ``__init__`` becomes ``s = 256`` where the
  release probes in eval mode (kept where the probe moves BatchNorm statistics);
- get_flops' ``stride = 640`` becomes upstream's line again where the recipe left it as a comment above.

Everything else in the files is the user's and stays byte for byte (their imports of their modules included).
Whatever the recipe's signs still show afterwards is a variant this module does not know: it is reported, with
its line, and nothing is changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

import bbpatch.engine.matchers as m
from bbpatch.engine import hand_patched
from bbpatch.engine.cst import StatementLines, code
from bbpatch.engine.edits.base import LAYER_LOOP, TASKS
from bbpatch.engine.edits.flops_full_size import PROBE_STRIDE
from bbpatch.engine.edits.forward_outputs import FORWARD_LOOP_FUNCTIONS, SAVE_OUTPUT

USER_IMPORT_SIGN = "imports an Addmodules package"  # the user's own import of their modules: it stays


@dataclass
class RecipeBackbone:
    name: str  # the name tasks.py binds it to (what the recipe's branch compared ``m`` with)
    channels: str  # the attribute c2 came from: "width_list", "channel"
    with_args: bool  # m(*args), or m() (seed 002)


@dataclass
class Recipe:
    backbones: dict[str, RecipeBackbone] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    removed: list[str] = field(default_factory=list)  # what was taken out, one line each (status, docs)
    kept: list[str] = field(default_factory=list)  # recipe lines left as they are, and why
    problems: list[str] = field(default_factory=list)  # what could not be recognised, one line each

    def removed_lines(self) -> list[str]:
        """What was taken out, each once: an edit made at two places (the index in m_.i and in save) says so."""
        counts: dict[str, int] = {}
        for line in self.removed:
            counts[line] = counts.get(line, 0) + 1
        return [line if n == 1 else f"{line} ({n} places)" for line, n in counts.items()]


class UnrecognisedRecipe(Exception):
    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


# --- patterns --------------------------------------------------------------------------------------------------------


ANY = m.DoNotCare()


def _assign(target, value=ANY):
    return m.SimpleStatementLine(body=[m.Assign(targets=[m.AssignTarget(target)], value=value)])


BUILD_LAYER = _assign(m.Name("m"), m.Call(func=m.Name("m")))
CHANNELS_FROM_LAYER = _assign(m.Name("c2"), m.Attribute(value=m.Name("m")))
FLAG_SET = _assign(m.Name(), m.Name("True"))
FLAG_CLEARED = _assign(m.Name(), m.Name("False"))
YAML_NAME = _assign(m.Name("t"), m.Name("m"))
IS_CHANNEL_LIST = m.Call(func=m.Name("isinstance"), args=[m.Arg(m.Name("c2")), m.Arg(m.Name("list"))])
SIXTY_FOUR = _assign(m.Name("s"), m.Integer("640"))
EVAL_MODE = m.Call(func=m.Attribute(attr=m.Name("eval")))


def _is_backbone_check(node: cst.CSTNode) -> bool:
    """``hasattr(m, "backbone")``, ``getattr(m, "backbone", False)``, ``m.backbone``: the recipe's forward test."""
    if isinstance(node, cst.Attribute):
        return m.matches(node, m.Attribute(value=m.Name("m"), attr=m.Name("backbone")))
    if isinstance(node, cst.Call) and m.matches(node.func, m.Name("hasattr") | m.Name("getattr")):
        args = node.args
        return (
            len(args) >= 2
            and m.matches(args[0].value, m.Name("m"))
            and isinstance(args[1].value, cst.SimpleString)
            and args[1].value.evaluated_value == "backbone"
        )
    return False


def _names_tested(test: cst.BaseExpression) -> list[str] | None:
    """The names in ``m in {A, B}`` / ``m in (A,)`` / ``m in [A]`` / ``m is A``; None for any other test."""
    if not (isinstance(test, cst.Comparison) and m.matches(test.left, m.Name("m")) and len(test.comparisons) == 1):
        return None
    target = test.comparisons[0]
    if isinstance(target.operator, cst.Is) and isinstance(target.comparator, cst.Name):
        return [target.comparator.value]
    if not isinstance(target.operator, cst.In):
        return None
    container = target.comparator
    if isinstance(container, cst.Call) and m.matches(container.func, m.Name("frozenset")) and container.args:
        container = container.args[0].value
    if isinstance(container, cst.Dict) and not container.elements:
        return []  # ``m in {}`` with every name taken out: a branch that never matches
    if not isinstance(container, (cst.Set, cst.Tuple, cst.List)):
        return None
    names = [element.value for element in container.elements]
    if not names or not all(isinstance(name, cst.Name) for name in names):
        return None
    return [name.value for name in names]


# --- parse_model -----------------------------------------------------------------------------------------------------


class _ParseModel:
    """Takes the recipe's edits out of one parse_model, recording what it read into ``recipe``."""

    def __init__(self, module: cst.Module, recipe: Recipe, index: int, lines: StatementLines):
        self.module, self.recipe = module, recipe
        self.index, self.lines = index, lines  # parse_model is module.body[index]
        self.flags: set[str] = set()  # parse_model's names only ever set to True or False
        self.assigned: set[str] = set()  # every name parse_model binds
        self.flag_branches: list[tuple[str, str]] = []  # (flag, message): branches setting a flag, building nothing

    def line(self, node: cst.CSTNode) -> int:
        return self.lines.line(self.index, node)

    def fn(self, fn: cst.FunctionDef) -> cst.FunctionDef:
        body = list(fn.body.body)
        loop_index = next((i for i, s in enumerate(body) if m.matches(s, LAYER_LOOP)), None)
        if loop_index is None:
            return fn
        loop = body[loop_index]
        self.flags, self.assigned = _flags_of(fn), _assigned_names(fn)
        self.recipe.flags |= _shift_flags(fn) & self.flags  # 'i + 4 if backbone else i' reads the recipe's flag
        loop_body = self.layer_loop(list(loop.body.body))
        body[loop_index] = loop.with_changes(body=loop.body.with_changes(body=loop_body))
        self.recipe.problems += [message for flag, message in self.flag_branches if flag in self.recipe.flags]
        body = [s for s in body if not self._is_flag_init(s)]
        fn = fn.with_changes(body=fn.body.with_changes(body=body))
        return fn.visit(_ShiftedIndexRemover(self.recipe))

    def _is_flag_init(self, statement) -> bool:
        if m.matches(statement, FLAG_CLEARED) and statement.body[0].targets[0].target.value in self.recipe.flags:
            self.recipe.removed.append(f"parse_model: '{code(statement).strip()}' before the layer loop")
            return True
        return False

    def layer_loop(self, body: list) -> list:
        if body and m.matches(body[0], YAML_NAME):
            self.recipe.removed.append("parse_model: 't = m' first in the layer loop")
            body = [body[1].with_changes(leading_lines=body[0].leading_lines), *body[2:]] if len(body) > 1 else []
        new_body = []
        for statement in body:
            if isinstance(statement, cst.If) and self._is_tail_test(statement.test):
                new_body += self._unwrapped_tail(statement)
            elif isinstance(statement, cst.If) and m.findall(statement.test, IS_CHANNEL_LIST):
                self.recipe.problems.append(
                    f"nn/tasks.py line {self.line(statement)}: the layer loop tests "
                    f"'{code(statement.test)[:90]}', not a recipe loop tail adopt knows"
                )
                new_body.append(statement)
            elif isinstance(statement, cst.If) and statement.orelse is not None:
                new_body.append(self._without_recipe_branches(statement))
            elif self._is_channel_list_sum(statement):
                new_body.append(
                    cst.parse_statement("ch.append(c2)\n").with_changes(leading_lines=statement.leading_lines)
                )
                self.recipe.removed.append("parse_model: 'ch += ...' of a channel list")
            else:
                new_body.append(statement)
        return new_body

    def _is_tail_test(self, test) -> bool:
        """``isinstance(c2, list)``, and beside it what keeps a layer with a list c2 that is no backbone apart: the
        blog column's ``not goldyolo and not two_backbone`` (flags that GOLD-YOLO's Split or YOLOv9's CBLinear branch
        sets), or another family's ``m not in {ChannelTransformer, ...}``. bbpatch's edits build such a layer as
        stock does (a backbone is a layer its branch built), so neither is needed once they are in."""
        terms = _and_terms(test)
        lists = [term for term in terms if m.matches(term, IS_CHANNEL_LIST)]
        others = [term for term in terms if term not in lists]
        return len(lists) == 1 and all(self._is_flag_test(t) or _excluded_names(t) is not None for t in others)

    def _is_flag_test(self, term) -> bool:
        """``not goldyolo``: a flag of parse_model's, or a name it never sets (then the test raised NameError)."""
        if not (
            isinstance(term, cst.UnaryOperation)
            and isinstance(term.operator, cst.Not)
            and isinstance(term.expression, cst.Name)
        ):
            return False
        name = term.expression.value
        if name not in self.flags and name in self.assigned:
            return False
        if name not in self.assigned:
            self.recipe.kept.append(
                f"parse_model line {self.line(term)}: 'not {name}' reads a name parse_model never sets: there the "
                "hand-patched tree raised NameError for any layer with a list c2; adopted, such layers build"
            )
        return True

    def _kept_apart_backbones(self, test) -> list[str]:
        """Recipe backbones that a tail's ``m not in {...}`` keeps apart: built in their branch, then built again."""
        excluded = [name for term in _and_terms(test) for name in _excluded_names(term) or ()]
        return [name for name in excluded if name in self.recipe.backbones]

    def _sets_flag(self, statement) -> bool:
        return statement.body[0].targets[0].target.value in self.flags

    @staticmethod
    def _is_channel_list_sum(statement) -> bool:
        return m.matches(
            statement,
            m.SimpleStatementLine(body=[m.AugAssign(target=m.Name("ch"), value=m.IfExp(test=IS_CHANNEL_LIST))]),
        )

    def _unwrapped_tail(self, wrapper: cst.If) -> list:
        """``if isinstance(c2, list): <recipe> else: <stock>`` -> the stock statements."""
        line = self.line(wrapper)
        if not isinstance(wrapper.orelse, cst.Else):
            self.recipe.problems.append(f"nn/tasks.py line {line}: 'if isinstance(c2, list):' without an else branch")
            return [wrapper]
        flag_sets = [s for s in wrapper.body.body if m.matches(s, FLAG_SET) and self._sets_flag(s)]
        strange = [s for s in wrapper.body.body if not _is_recipe_tail_statement(s) and s not in flag_sets]
        clash = self._kept_apart_backbones(wrapper.test)
        if clash:
            self.recipe.problems.append(
                f"nn/tasks.py line {line}: the loop tail keeps {', '.join(clash)} apart, which a recipe branch builds "
                "as a backbone: the tree cannot build that layer"
            )
            return [wrapper]
        if strange:
            self.recipe.problems.append(
                f"nn/tasks.py line {self.line(strange[0])}: the recipe's channel-list branch also runs "
                f"'{code(strange[0]).strip().splitlines()[0]}'"
            )
            return [wrapper]
        self.recipe.flags |= {s.body[0].targets[0].target.value for s in flag_sets}  # the other family's flag
        stock = list(wrapper.orelse.body.body)
        test = _shortened(code(wrapper.test))
        self.recipe.removed.append(f"parse_model line {line}: 'if {test}: ... else:' around the stock code")
        return [stock[0].with_changes(leading_lines=wrapper.leading_lines), *stock[1:]]

    def _without_recipe_branches(self, head: cst.If) -> cst.If:
        chain, node = [], head
        while isinstance(node, cst.If):
            chain.append(node)
            node = node.orelse
        kept = [branch for branch in chain if not self._read_branch(branch)]
        if len(kept) == len(chain):
            return head
        if not kept or kept[0] is not head:
            self.recipe.problems.append(
                f"nn/tasks.py line {self.line(head)}: the recipe's backbone branch heads the type dispatch"
            )
            return head
        tail = node  # the final else
        for branch in reversed(kept):
            tail = branch.with_changes(orelse=tail)
        return tail

    def _read_branch(self, branch: cst.If) -> bool:
        """True (and the branch read into the recipe) for a recipe backbone branch; problems for a mangled one."""
        statements = list(branch.body.body)
        builds = [s for s in statements if m.matches(s, BUILD_LAYER)]
        flags = [s for s in statements if m.matches(s, FLAG_SET)]
        if not builds:
            for flag in flags if _names_tested(branch.test) else ():  # a problem only if the flag is the recipe's
                message = (
                    f"nn/tasks.py line {self.line(branch)}: a branch sets '{code(flag).strip()}', the recipe's "
                    "backbone flag, without building the layer (m = m(*args))"
                )
                self.flag_branches.append((flag.body[0].targets[0].target.value, message))
            return False
        line = self.line(branch)
        names = _names_tested(branch.test)
        channels = [s for s in statements if m.matches(s, CHANNELS_FROM_LAYER)]
        other = [s for s in statements if s not in builds + flags + channels]
        problems = []
        if names is None:
            test = " ".join(code(branch.test).split())
            problems.append(f"nn/tasks.py line {line}: a backbone branch tests '{test}', not 'm in {{...}}'")
        if len(channels) != 1:
            problems.append(f"nn/tasks.py line {line}: a backbone branch without one 'c2 = m.<channels>'")
        if other:
            problems.append(f"nn/tasks.py line {line}: a backbone branch also runs '{code(other[0]).strip()}'")
        call = builds[0].body[0].value
        with_args = _star_args(call)
        if with_args is None:
            problems.append(f"nn/tasks.py line {line}: a backbone branch builds '{code(call)}', not m(*args) or m()")
        if problems:
            self.recipe.problems += problems
            return False
        attr = channels[0].body[0].value.attr.value
        for name in names:
            self.recipe.backbones[name] = RecipeBackbone(name, attr, with_args)
        self.recipe.flags |= {flag.body[0].targets[0].target.value for flag in flags}
        listed = ", ".join(names) or "no name ('m in {}' never matched)"
        self.recipe.removed.append(f"parse_model line {line}: the backbone branch for {listed}")
        return True


def _shortened(text: str, most: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= most else text[: most - 4] + " ..."


def _and_terms(test) -> list:
    if isinstance(test, cst.BooleanOperation) and isinstance(test.operator, cst.And) and not test.lpar:
        return [*_and_terms(test.left), *_and_terms(test.right)]
    return [test]


def _excluded_names(term) -> list[str] | None:
    """The names of ``m not in {A, B}`` (a set, tuple or list of names); None for any other test."""
    if not (isinstance(term, cst.Comparison) and m.matches(term.left, m.Name("m")) and len(term.comparisons) == 1):
        return None
    target = term.comparisons[0]
    container = target.comparator
    if not isinstance(target.operator, cst.NotIn) or not isinstance(container, (cst.Set, cst.Tuple, cst.List)):
        return None
    names = [element.value for element in container.elements]
    return [n.value for n in names] if names and all(isinstance(n, cst.Name) for n in names) else None


def _flags_of(fn: cst.FunctionDef) -> set[str]:
    """Names that every assignment in ``fn`` sets to True or False (``backbone``, ``goldyolo``, ``two_backbone``)."""
    values: dict[str, set] = {}
    for assign in m.findall(fn, m.Assign(targets=[m.AssignTarget(m.Name())])):
        value = assign.value
        literal = value.value if isinstance(value, cst.Name) and value.value in ("True", "False") else None
        values.setdefault(assign.targets[0].target.value, set()).add(literal)
    return {name for name, seen in values.items() if None not in seen}


def _assigned_names(fn: cst.FunctionDef) -> set[str]:
    """The names ``fn`` binds: its parameters, and the targets of its assignments and for loops."""
    bound = {param.name.value for param in fn.params.params}
    for node in m.findall(fn, m.AssignTarget() | m.For() | m.AugAssign()):
        bound |= {name.value for name in m.findall(node.target, m.Name())}
    return bound


SHIFTED = m.IfExp(
    body=m.BinaryOperation(left=m.Name("i"), operator=m.Add(), right=m.Integer("4")), test=m.Name(), orelse=m.Name("i")
)


def _shift_flags(fn: cst.FunctionDef) -> set[str]:
    return {node.test.value for node in m.findall(fn, SHIFTED)}


def _star_args(call: cst.Call) -> bool | None:
    if not call.args:
        return False
    if len(call.args) == 1 and call.args[0].star == "*" and m.matches(call.args[0].value, m.Name("args")):
        return True
    return None


def _is_recipe_tail_statement(statement) -> bool:
    """What the recipe's ``if isinstance(c2, list):`` branches hold: the layer kept, marked, ch grown and padded."""
    if isinstance(statement, cst.If):
        return all(_is_recipe_tail_statement(s) for s in statement.body.body) and statement.orelse is None
    if isinstance(statement, cst.For):  # ``for _ in range(5 - len(ch)): ch.insert(0, 0)``
        return (
            m.matches(statement.iter, m.Call(func=m.Name("range")))
            and statement.orelse is None
            and all(_is_recipe_tail_statement(s) for s in statement.body.body)
        )
    if not isinstance(statement, cst.SimpleStatementLine):
        return False
    return all(_is_recipe_small_statement(s) for s in statement.body)


def _is_recipe_small_statement(node) -> bool:
    if isinstance(node, cst.Assign):
        return all(
            m.matches(t.target, m.Name("m_") | m.Attribute(value=m.Name("m_")) | m.Subscript(value=m.Name("ch")))
            for t in node.targets
        )
    if isinstance(node, cst.Expr):
        return m.matches(node.value, m.Call(func=m.Attribute(value=m.Name("ch"))))
    if isinstance(node, cst.AugAssign):
        return m.matches(node.target, m.Name("ch"))
    return False


class _ShiftedIndexRemover(cst.CSTTransformer):
    """``i + 4 if backbone else i`` (any parentheses, the recipe's flag name) -> ``i``."""

    def __init__(self, recipe: Recipe):
        super().__init__()
        self.recipe = recipe

    def leave_IfExp(self, original: cst.IfExp, updated: cst.IfExp) -> cst.BaseExpression:
        shifted = m.BinaryOperation(left=m.Name("i"), operator=m.Add(), right=m.Integer("4"))
        if (
            m.matches(updated.body, shifted)
            and m.matches(updated.orelse, m.Name("i"))
            and isinstance(updated.test, cst.Name)
            and updated.test.value in self.recipe.flags
        ):
            self.recipe.removed.append(f"parse_model: '{code(updated.with_changes(lpar=(), rpar=()))}' -> 'i'")
            return cst.Name("i")
        return updated


# --- forward loops and the stride probe ------------------------------------------------------------------------------


class _ModelMethods(cst.CSTTransformer):
    """The forward loops' ``if hasattr(m, "backbone"): ... else: <stock>`` and ``s = 640`` in model __init__s."""

    def __init__(self, recipe: Recipe):
        super().__init__()
        self.recipe = recipe
        self.functions: list[str] = []

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self.functions.append(node.name.value)
        return True

    def leave_FunctionDef(self, original, updated):
        self.functions.pop()
        return updated

    def leave_IndentedBlock(self, original: cst.IndentedBlock, updated: cst.IndentedBlock) -> cst.IndentedBlock:
        if not self.functions:
            return updated
        body = []
        probes_in_eval_mode = any(m.findall(s, EVAL_MODE) for s in updated.body)
        for statement in updated.body:
            body += self._restored(statement, probes_in_eval_mode)
        return updated.with_changes(body=body)

    def _restored(self, statement, probes_in_eval_mode: bool) -> list:
        where = self.functions[-1]
        if (
            where in FORWARD_LOOP_FUNCTIONS
            and isinstance(statement, cst.If)
            and _is_backbone_check(statement.test)
            and isinstance(statement.orelse, cst.Else)
            and any(m.matches(s, SAVE_OUTPUT) for s in statement.orelse.body.body)
        ):
            self.recipe.removed.append(f"{where}: 'if {code(statement.test)}: ... else:' around the stock forward step")
            stock = list(statement.orelse.body.body)
            return [stock[0].with_changes(leading_lines=statement.leading_lines), *stock[1:]]
        if where == "__init__" and m.matches(statement, SIXTY_FOUR) and not probes_in_eval_mode:
            # the probe's forward updates BatchNorm statistics here: a fresh build keeps the hand-patched tree's
            self.recipe.kept.append("a model's stride probe 's = 640': this release probes in training mode")
        elif where == "__init__" and m.matches(statement, SIXTY_FOUR):
            self.recipe.removed.append("a model's stride probe 's = 640' -> 's = 256'")
            return [statement.with_changes(body=[statement.body[0].with_changes(value=cst.Integer("256"))])]
        return [statement]


# --- entry points ----------------------------------------------------------------------------------------------------


def remove_from_tasks(module: cst.Module, recipe: Recipe) -> cst.Module:
    """tasks.py with the recipe's edits taken out (``recipe`` records what it read and what it could not)."""
    body, lines = [], StatementLines(module)
    for index, statement in enumerate(module.body):
        if isinstance(statement, cst.FunctionDef) and statement.name.value == "parse_model":
            statement = _ParseModel(module, recipe, index, lines).fn(statement)
        body.append(statement)
    module = module.with_changes(body=body)
    module = module.visit(_ModelMethods(recipe))
    if not recipe.problems:  # what is left once the known edits are out: a variant this module does not know
        left = [e for e in hand_patched.evidence(module.bytes) if not e.endswith(USER_IMPORT_SIGN)]
        recipe.problems += [f"nn/{sign} (left once the recipe's known edits are out)" for sign in left]
    return module


class _FlopsStride(cst.CSTTransformer):
    """get_flops' ``stride = 640`` with upstream's line commented out above it -> upstream's line."""

    def __init__(self, recipe: Recipe):
        super().__init__()
        self.recipe = recipe
        self.depth = 0

    def visit_FunctionDef(self, node):
        if node.name.value == "get_flops" or self.depth:
            self.depth += 1
        return True

    def leave_FunctionDef(self, original, updated):
        if self.depth:
            self.depth -= 1
        return updated

    def leave_SimpleStatementLine(self, original, updated):
        if not self.depth or not m.matches(updated, _assign(m.Name("stride"), m.Integer())):
            return updated
        for index, line in enumerate(updated.leading_lines):
            upstream = _commented_statement(line)
            if upstream is not None and m.matches(upstream, PROBE_STRIDE):
                self.recipe.removed.append("get_flops: 'stride = 640' -> upstream's line, kept above it as a comment")
                lines = [*updated.leading_lines[:index], *updated.leading_lines[index + 1 :]]
                return upstream.with_changes(leading_lines=lines)
        return updated


def _commented_statement(line: cst.EmptyLine):
    if line.comment is None:
        return None
    text = line.comment.value.lstrip("#").strip()
    try:
        return cst.parse_statement(text + "\n")
    except cst.ParserSyntaxError:
        return None


def remove_from_torch_utils(module: cst.Module, recipe: Recipe) -> cst.Module:
    return module.visit(_FlopsStride(recipe))


def read(tasks: bytes, torch_utils: bytes) -> tuple[Recipe, bytes, bytes]:
    """The recipe read from the two files, and the files without its edits; UnrecognisedRecipe if it cannot."""
    recipe = Recipe()
    try:
        tasks_module, utils_module = cst.parse_module(tasks), cst.parse_module(torch_utils)
    except cst.ParserSyntaxError as error:
        raise UnrecognisedRecipe([f"not valid Python ({error.message}, line {error.raw_line})"]) from None
    tasks_module = remove_from_tasks(tasks_module, recipe)
    utils_module = remove_from_torch_utils(utils_module, recipe)
    if recipe.problems:
        raise UnrecognisedRecipe(list(dict.fromkeys(recipe.problems)))
    return recipe, tasks_module.bytes, utils_module.bytes


def recipe_removed(key: str, data: bytes) -> bytes:
    """A recorded hand-patched file without the recipe's edits: what bbpatch's edits apply to in an adopted tree."""
    found = Recipe()
    module = cst.parse_module(data)
    remove = remove_from_tasks if key == TASKS else remove_from_torch_utils
    return remove(module, found).bytes
