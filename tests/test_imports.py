"""The package's own import graph: no circle, no import that climbs a floor, faces that hide nothing from the hash.

Every import counts, inside functions too: a rule's code hash (semantoks.provenance) follows them all, so an
upward import makes a one-line edit upstairs rerun the stages below it.
"""

import ast
import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_ROOT = ROOT / "src" / "semantoks"

# lowest first; a module may import its own floor and the floors below. The most specific pattern places a module;
# "=name" places only that module (a lazy package face sits low, so importing model.config never climbs)
FLOORS = [
    ("foundation: no semantoks imports but these, no torch", [
        "semantoks", "semantoks.errors", "semantoks.atomic", "semantoks.digest", "semantoks.lazy",
        "semantoks.bids_names", "semantoks.health_verdict", "semantoks.provenance", "semantoks.dataset.keys",
        "semantoks.model.config", "semantoks.cohorts.missing_values", "=semantoks.model", "=semantoks.probes",
        "semantoks.seeds", "semantoks.pretraining_verdict", "=semantoks.language"]),
    ("inputs: atlases, denoising presets, cohorts, the simulator, frozen text encoders", [
        "semantoks.atlas", "semantoks.confounds", "semantoks.run_record", "semantoks.cohorts", "semantoks.simulate",
        "semantoks.language.text_encoders"]),
    ("data: parcellation, the Parquet dataset, phenotypes, feature tables and baseline features", [
        "semantoks.parcellate", "semantoks.dataset", "semantoks.phenotypes", "semantoks.features"]),
    ("workflow configuration and planning (below every stage and the model: no torch)", [
        "semantoks.config", "semantoks.config_checks", "semantoks.workflow_plan", "semantoks.rule_runner",
        "semantoks.snakemake_threads", "semantoks.results_owner"]),
    ("model building blocks", ["semantoks.model"]),
    ("scan encoding and online evaluation", ["semantoks.model.encode", "semantoks.model.online_eval"]),
    ("the trainer", ["semantoks.model.train"]),
    ("stages on embeddings and features", ["semantoks.embed", "semantoks.probes"]),
    ("language-aligned tokens", ["semantoks.language"]),
    ("the report", ["semantoks.report"]),
    ("the public API and plugins", ["semantoks.api", "semantoks.brainmarks"]),
    ("entry points", ["semantoks.cli", "semantoks.__main__"]),
]


def module_files(package_root=PACKAGE_ROOT):
    """{dotted module name: file} of the package."""
    files = {}
    for path in package_root.rglob("*.py"):
        parts = ("semantoks",) + path.relative_to(package_root).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def _imported_names(path, module):
    """(line, dotted name, names imported from it) of every import in a file, at any depth of the tree."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            yield node.lineno, base, tuple(alias.name for alias in node.names)


def import_graph(files):
    """{(importer, imported module): first line} over the package's modules (a `from m import sub` names sub)."""
    edges = {}
    for module, path in files.items():
        for line, base, names in _imported_names(path, module):
            targets = [f"{base}.{name}" for name in names if f"{base}.{name}" in files] or [base]
            for target in targets:
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target != module:
                    edges.setdefault((module, target), line)
    return edges


def _shown(path):
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def floor_of(module):
    best = None
    for number, (_, patterns) in enumerate(FLOORS):
        for pattern in patterns:
            exact = pattern.startswith("=")
            if module == pattern.lstrip("=") or (not exact and pattern != "semantoks" and module.startswith(pattern + ".")):
                if best is None or len(pattern) > len(best[1]):
                    best = (number, pattern)
    return None if best is None else best[0]


def _runs_faces(importer, target):
    """The package faces Python runs to import `target`, beyond the importer's own packages."""
    parts = target.split(".")
    faces = [".".join(parts[:depth]) for depth in range(2, len(parts))]
    return [face for face in faces if not (importer == face or importer.startswith(face + "."))]


def upward_imports(files, edges):
    found = []
    for (importer, target), line in sorted(edges.items()):
        for reached in [target, *_runs_faces(importer, target)]:
            if reached in files and floor_of(reached) > floor_of(importer):
                found.append(f"{_shown(files[importer])}:{line}: {importer} ({FLOORS[floor_of(importer)][0]}) "
                             f"imports {reached} ({FLOORS[floor_of(reached)][0]})")
    return found


def circles(edges):
    """Strongly connected groups of two or more modules (Tarjan)."""
    graph = {}
    for importer, target in edges:
        graph.setdefault(importer, []).append(target)
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, []):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def _top_level_names(path):
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


def names_hidden_behind_faces(files, paths):
    """`from semantoks.x import name` where x binds no `name` itself (a lazy face): the code hash cannot see it."""
    found = []
    for path in paths:
        module = next((m for m, p in files.items() if p == path), path.stem)
        for line, base, names in _imported_names(path, module):
            if base not in files:
                continue
            bound = _top_level_names(files[base])
            hidden = [n for n in names if f"{base}.{n}" not in files and n not in bound and n != "*"]
            if hidden:
                found.append(f"{_shown(path)}:{line}: {', '.join(hidden)} from the face {base}")
    return found


def test_every_module_sits_on_a_floor():
    unplaced = sorted(m for m in module_files() if floor_of(m) is None)
    assert not unplaced, f"place these modules on a floor in tests/test_imports.py FLOORS: {unplaced}"


def test_the_package_imports_have_no_circle():
    assert circles(import_graph(module_files())) == []


def test_no_import_climbs_a_floor():
    files = module_files()
    assert upward_imports(files, import_graph(files)) == []


def test_rule_scripts_and_modules_import_names_from_the_module_that_binds_them():
    files = module_files()
    scripts = sorted((ROOT / "workflow" / "scripts").glob("*.py"))
    assert names_hidden_behind_faces(files, [*files.values(), *scripts]) == []


def test_the_checks_see_a_circle_a_climb_and_a_hidden_name(tmp_path):
    package = tmp_path / "semantoks"
    (package / "model").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "errors.py").write_text("def f():\n    from semantoks import cli\n")
    (package / "cli.py").write_text("from semantoks.errors import f\n")
    (package / "model" / "__init__.py").write_text("def __getattr__(name):\n    pass\n")
    (package / "model" / "train.py").write_text("from semantoks.model import hidden\n")
    files = module_files(package)
    edges = import_graph(files)
    assert circles(edges) == [["semantoks.cli", "semantoks.errors"]]
    assert [line.split(": ", 1)[1] for line in upward_imports(files, edges)] == [
        "semantoks.errors (foundation: no semantoks imports but these, no torch) imports semantoks.cli (entry points)"]
    assert [line.split(": ", 1)[1] for line in names_hidden_behind_faces(files, [package / "model" / "train.py"])] == [
        "hidden from the face semantoks.model"]


def test_check_config_on_the_demo_config_loads_no_torch():
    probe = ("import json, sys\nfrom semantoks.cli import main\nmain(['check-config', 'config/config.yaml'])\n"
             "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'semantoks'))))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.splitlines()[-1])
    assert "valid" in done.stdout and "torch" not in loaded
    assert not [m for m in loaded if fnmatch.fnmatch(m, "semantoks.model.*") and m != "semantoks.model.config"]


def test_the_modules_the_snakefile_imports_load_no_torch():
    statement = re.compile(r"^(?:from semantoks[\w.]* import (?:\([^)]*\)|.*)|import semantoks.*)$", re.M)
    imports = [match.group(0) for path in [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
               for match in statement.finditer(path.read_text())]
    assert any("workflow_plan" in line for line in imports)
    probe = "\n".join(["import sys", *imports, "print('torch' in sys.modules)"])
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "False"
