"""Per-rule code provenance: a hash of a rule script and the semantoks modules it imports, transitively.

A rule takes `code_hash_for_script(script)` as a param, so editing a module reruns exactly the rules
whose scripts reach it, and an edit elsewhere in the package reruns nothing.
"""

import ast
import hashlib
import json
from functools import lru_cache
from pathlib import Path

PACKAGE = "semantoks"
PACKAGE_ROOT = Path(__file__).resolve().parent


def code_hash_for_script(path):
    """A short hash of the script at `path` and every semantoks module it imports (at any depth)."""
    script = Path(path).resolve()
    digest = hashlib.sha256(script.read_bytes())
    for module in sorted(imported_modules(script)):
        digest.update(str(module.relative_to(PACKAGE_ROOT)).encode())
        digest.update(module.read_bytes())
    return digest.hexdigest()[:16]


def imported_modules(script):
    """The package's module files reachable from `script` through imports, its own files excluded."""
    seen = set()
    pending = list(_direct_imports(Path(script).resolve(), None))
    while pending:
        module = pending.pop()
        if module not in seen:
            seen.add(module)
            pending.extend(_direct_imports(module, _module_name(module)))
    return seen


@lru_cache(maxsize=None)
def _direct_imports(path, module_name):
    """Module files a file imports directly (parent packages included, as Python runs them)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module_name, is_package=path.name == "__init__.py")
            if base:
                names.add(base)
                # `from semantoks.x import y` may name a submodule y
                names.update(f"{base}.{alias.name}" for alias in node.names)
    files = set()
    for name in names:
        parts = name.split(".")
        if parts[0] != PACKAGE:
            continue
        for depth in range(1, len(parts) + 1):
            found = _module_file(parts[1:depth])
            if found:
                files.add(found)
    return frozenset(files)


def _absolute(node, module_name, is_package):
    if node.level == 0:
        return node.module
    if module_name is None:
        return None
    package = module_name.split(".") if is_package else module_name.split(".")[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def _module_file(parts):
    folder = PACKAGE_ROOT.joinpath(*parts)
    if (folder / "__init__.py").is_file():
        return folder / "__init__.py"
    if parts and folder.with_suffix(".py").is_file():
        return folder.with_suffix(".py")
    return None


def _module_name(path):
    relative = path.relative_to(PACKAGE_ROOT).with_suffix("")
    parts = [PACKAGE, *relative.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def canonical(value):
    """`value` with every mapping's keys sorted: Snakemake compares params by repr, so key order must not rerun jobs."""
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [canonical(item) for item in value]
    return value


def config_hash(config):
    """A short stable hash of the resolved config, recorded in outputs' metadata (never a rerun param)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
