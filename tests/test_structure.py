"""The architecture's rules, checked on the source so that they cannot quietly erode.

- Imports point one way: api, actions, crmbot (and care) → knowledge → crm_store.
- No action module imports another; they share one helper module.
- No Chinese sentence in actions outside comments: users' words live in the domain.
- Services raise the error vocabulary of crm_store/errors.py, not bare ValueError/LookupError.
- Nothing reads outside the repository (the project must stand alone when cloned).
"""

import ast
import io
import re
import subprocess
import tokenize
from pathlib import Path

import pytest

from crm_store.settings import PROJECT_ROOT

# Who may import whom: a package not listed for another may not import it.
ALLOWED_IMPORTS = {
    "crm_store": {"crm_store"},
    "knowledge": {"knowledge", "crm_store"},
    "actions": {"actions", "knowledge", "crm_store"},
    "api": {"api", "knowledge", "crm_store"},
    "care": {"care", "knowledge", "crm_store"},
    "crmbot": {"crmbot", "care", "knowledge", "crm_store"},
}
ACTION_HELPERS = {"actions.support"}
CHINESE = re.compile(r"[\u4e00-\u9fff]")


def _tracked(pattern: str) -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", pattern],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [PROJECT_ROOT / name for name in listed if (PROJECT_ROOT / name).is_file()]


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


@pytest.mark.parametrize("package", sorted(ALLOWED_IMPORTS))
def test_imports_point_one_way(package: str) -> None:
    ours = set(ALLOWED_IMPORTS)
    wrong = sorted(
        f"{path.relative_to(PROJECT_ROOT)} imports {module}"
        for path in _tracked(f"{package}/*.py")
        for module in _imported_modules(path)
        if module.split(".")[0] in ours and module.split(".")[0] not in ALLOWED_IMPORTS[package]
    )
    assert wrong == []


def test_no_action_module_imports_another() -> None:
    wrong = []
    for path in _tracked("actions/*.py"):
        own = f"actions.{path.stem}"
        for module in _imported_modules(path):
            parts = module.split(".")
            if parts[0] != "actions" or len(parts) < 2:
                continue
            target = ".".join(parts[:2])
            if target != own and target not in ACTION_HELPERS and path.name != "__init__.py":
                wrong.append(f"{path.relative_to(PROJECT_ROOT)} imports {module}")
    assert wrong == []


def test_actions_hold_no_chinese_outside_comments() -> None:
    found = []
    for path in _tracked("actions/*.py"):
        source = path.read_text(encoding="utf-8")
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.STRING and CHINESE.search(token.string) and not _is_docstring(token):
                found.append(f"{path.relative_to(PROJECT_ROOT)}:{token.start[0]}: {token.string[:40]}")
    assert found == [], "user-facing Chinese belongs in bot/domain responses"


def _is_docstring(token: tokenize.TokenInfo) -> bool:
    # Docstrings are documentation, like comments: a triple-quoted string alone on its line.
    return token.string.startswith(('"""', "'''")) and token.line.strip().startswith(('"""', "'''"))


def test_services_raise_the_error_vocabulary() -> None:
    bare = re.compile(r"raise (ValueError|LookupError|KeyError|RuntimeError)\(")
    found = [
        f"{path.relative_to(PROJECT_ROOT)}:{number}"
        for path in _tracked("crm_store/*.py") + _tracked("crm_store/*/*.py")
        # Migrations are frozen history; settings validators must raise ValueError for pydantic.
        if "migrations" not in path.parts and path.name != "settings.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if bare.search(line) and "programming error" not in line
    ]
    assert found == []


def test_nothing_reads_outside_the_repository() -> None:
    outside = re.compile(r"\.\./shared|parent\s*/\s*[\"']shared[\"']|parents\[\d\]\s*/\s*[\"']eval")
    found = [
        str(path.relative_to(PROJECT_ROOT))
        for pattern in ("*.py", "*.sh", "*.yml", "*.toml", "Makefile")
        for path in _tracked(pattern)
        if outside.search(path.read_text(encoding="utf-8"))
    ]
    assert found == []
