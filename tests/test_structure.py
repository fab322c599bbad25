"""The package's shape: no import cycles, no production module importing the test fixtures, small modules,
and one task registry from which every per-task fact comes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from fade_hub.tasks import CORRECTION_KINDS, TASKS

PACKAGE = Path(__file__).resolve().parent.parent / "fade_hub"
MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def import_graph() -> dict[str, set[str]]:
    """Module -> the fade_hub modules it imports, at any depth of the file (lazy imports included)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, path, node)
                for alias in node.names:  # `from pkg import module` imports the module, else the package
                    edges.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        graph[module] = {edge for edge in edges if edge in modules and edge != module}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycles():
    cycle = _cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert _cycle(graph) == ["a", "b", "c", "a"]


def test_no_production_module_imports_the_test_fixtures():
    offenders = sorted(
        module for module, edges in import_graph().items()
        if not module.startswith("fade_hub.testing") and any(edge.startswith("fade_hub.testing") for edge in edges)
    )
    assert offenders == []


REGISTRY_FACTS = ("task", "modality")  # names whose values only tasks.py may compare with a literal


def _compared_name(node: ast.expr) -> str | None:
    """``task`` for ``task``, ``self.task``, ``space.modality``...: the last name of a compared expression."""
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else None


def _literal(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    return isinstance(node, ast.Tuple | ast.List | ast.Set) and any(_literal(item) for item in node.elts)


def registry_comparisons(source: str) -> list[int]:
    """Lines of ``source`` that compare a task or modality with a string literal (``task == "text-to-image"``)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            named = any(_compared_name(side) in REGISTRY_FACTS for side in sides)
            if named and any(_literal(side) for side in sides):
                lines.append(node.lineno)
    return lines


def test_task_and_modality_facts_come_from_the_registry():
    """Outside tasks.py (and testing/, whose fake endpoints speak each task's wire format), code asks a TaskSpec or
    ModalitySpec for a fact instead of comparing a task or modality name."""
    offenders = {
        name: lines for name, path in _modules().items()
        if name != "fade_hub.tasks" and not name.startswith("fade_hub.testing")
        and (lines := registry_comparisons(path.read_text()))
    }
    assert offenders == {}


def test_the_registry_check_finds_planted_comparisons():
    planted = 'if task == "text-to-image": pass\nif space.modality in ("image",): pass\nif self.name == "x": pass\n'
    assert registry_comparisons(planted) == [1, 2]


def test_no_two_classes_share_a_name():
    where: dict[str, list[str]] = {}
    for name, path in _modules().items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef):
                where.setdefault(node.name, []).append(name)
    assert {name: modules for name, modules in where.items() if len(modules) > 1} == {}


ORCHESTRATOR = "fade_hub.explore.runner"
ENTRY_POINTS = {"explore", "explore_loaded"}  # what a module that runs an exploration may import from it


def test_the_explore_orchestrator_is_no_helper_library():
    """Modules that run an exploration (commands, the demo, the re-check) import its entry points; the parts it is
    built from (target, space, seeds, judge) come from fade_hub.assembly, which mitigate, compare and rejudge share."""
    borrowed = {}
    for module, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and _resolve(module, path, node) == ORCHESTRATOR:
                names = {alias.name for alias in node.names} - ENTRY_POINTS
                if names:
                    borrowed[module] = sorted(names)
    assert borrowed == {}


def test_modules_stay_small():
    long = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


@pytest.mark.parametrize("task", list(TASKS))
def test_registry_gives_every_task_its_parts(task):
    from fade_hub.judges import JUDGES
    from fade_hub.perturb import load_space
    from fade_hub.seeds import list_builtin_seeds
    from fade_hub.targets.base import Target
    from fade_hub.testing.tiny import KINDS

    spec = TASKS[task]
    target = spec.target_class()
    assert issubclass(target, Target) and target.task == task and target.modality == spec.modality
    assert spec.judges and all(kind in JUDGES for kind in spec.judges)
    assert task in KINDS  # every task has a tiny model to test with
    assert spec.correction in CORRECTION_KINDS
    assert spec.card_category
    assert load_space(spec.default_space).modality == spec.modality
    if spec.default_seeds:
        assert spec.default_seeds.removeprefix("builtin:") in list_builtin_seeds()


def test_the_cli_starts_without_the_model_stack():
    """Building every subcommand's parser loads neither torch nor the Hub client's settings (the demo starts its
    own Hub before huggingface_hub reads HF_ENDPOINT)."""
    import subprocess
    import sys

    code = ("import sys; from fade_hub.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'transformers', 'huggingface_hub.constants', 'datasets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


# Config field names still declared in more than one config dataclass, each with the classes that may declare it: a
# new copy (another class, or a new name) fails. Options of one meaning are declared once, in a section that each
# command's tree composes (``section(...)`` fields are not counted); what is left are homonyms, one phrase each.
SHARED_FIELDS = {
    "alpha": {"ErrorRateOptions", "LoraOptions"},  # the tests' error rate; LoRA's scaling factor
    "batch_size": {"TargetOptions", "TrainingOptions"},  # inputs per forward pass (or auto); examples per optimizer step
    "feedback": {"FadeDataOptions", "ReportOptions"},  # mitigate trains on a list of sources; report reads one
    "json": {"CompareConfig", "ReportOptions"},  # a file to write the comparison to; a switch to print JSON
    "learning_rate": {"PPOOptions", "TrainingOptions"},  # the search policy's; the LoRA adapter's
    "seed": {"SearchOptions", "TargetConfig", "TrainingOptions"},  # the random seed of the search; of a target's
    # sampling (runtime, set from the search's); of the adapter's training
    "temperature": {"GRPOSearchConfig", "TargetOptions"},  # the search policy's sampling; the model under test's
}


def _is_section(value: ast.expr | None) -> bool:
    """Whether a field's value is ``section(...)``: a tree composing a section, not an option of its own."""
    return isinstance(value, ast.Call) and ast.unparse(value.func) == "section"


def config_fields(sources: dict[str, str]) -> dict[str, set[str]]:
    """Field name -> the config dataclasses (``*Config``/``*Options`` decorated with ``@dataclass``) declaring it in
    their own body (inherited fields are the base's; ``ClassVar`` annotations are no fields)."""
    declared: dict[str, set[str]] = {}
    for source in sources.values():
        for node in ast.walk(ast.parse(source)):
            if not (isinstance(node, ast.ClassDef) and node.name.endswith(("Config", "Options"))):
                continue
            decorators = [ast.unparse(d) for d in node.decorator_list]
            if not any(d.startswith(("dataclass", "dataclasses.dataclass")) for d in decorators):
                continue
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) \
                        and "ClassVar" not in ast.unparse(item.annotation) and not _is_section(item.value):
                    declared.setdefault(item.target.id, set()).add(node.name)
    return declared


def copied_fields(sources: dict[str, str]) -> dict[str, set[str]]:
    """The field names declared in two config dataclasses beyond what ``SHARED_FIELDS`` still allows."""
    return {name: owners for name, owners in config_fields(sources).items()
            if len(owners) > 1 and not owners <= SHARED_FIELDS.get(name, set())}


def test_no_config_field_is_declared_in_two_config_dataclasses():
    sources = {module: path.read_text(encoding="utf-8") for module, path in _modules().items()
               if not module.startswith("fade_hub.testing")}
    assert copied_fields(sources) == {}


def test_the_copied_field_check_finds_a_planted_copy():
    planted = {"a": "@dataclass\nclass SeedOptions:\n    num_seeds: int = 1\n",
               "b": "@dataclass\nclass SeedConfig(SeedOptions):\n    num_seeds: int = 2\n    token_env: ClassVar[str] = 'X'\n"}
    assert copied_fields(planted) == {"num_seeds": {"SeedOptions", "SeedConfig"}}
    inherited = {"a": planted["a"], "b": "@dataclass\nclass SeedConfig(SeedOptions):\n    shuffle: bool = False\n"}
    assert copied_fields(inherited) == {}
    composed = {"a": planted["a"], **{name: f"@dataclass(init=False)\nclass {name}Config(ConfigTree):\n"
                                       "    inputs: SeedOptions = section(SeedOptions, only=('num_seeds',))\n"
                                       for name in ("Explore", "Mitigate")}}
    assert copied_fields(composed) == {}  # two trees composing one section share its options, copying none


def test_a_config_tree_refuses_an_option_declared_in_two_sections():
    from dataclasses import dataclass

    from fade_hub.config.seeds import SeedOptions
    from fade_hub.options import ConfigTree, section

    @dataclass
    class MoreSeeds:
        split: str = "test"

    @dataclass(init=False)
    class Twice(ConfigTree):
        inputs: SeedOptions = section(SeedOptions)
        more: MoreSeeds = section(MoreSeeds)

    with pytest.raises(TypeError, match="'split' is declared in two sections"):
        Twice()
