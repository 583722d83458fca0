"""The README's layout section is the package's tree: every module listed exists, and every
module of the package is listed (a folder listed without its files covers them)."""

from __future__ import annotations

import re

from tests.helpers.paths import ROOT


def listed_paths() -> set[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    paths: set[str] = set()
    stack: list[tuple[int, str]] = []  # (indent, folder) of the folders above the current line
    for line in block.splitlines():
        m = re.match(r"^( *)(\S+)", line)
        if not m or line.startswith(" " * 20):  # blank, or the continuation of a description
            continue
        indent, name = len(m.group(1)), m.group(2).rstrip(",")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = "".join(folder for _, folder in stack) + name
        paths.add(path)
        if name.endswith("/"):
            stack.append((indent, name))
    return paths


def test_readme_layout_matches_the_package():
    listed = listed_paths()
    for path in sorted(listed):
        assert (ROOT / path).exists(), f"README lists {path}, which does not exist"
    folders = {p for p in listed if p.endswith("/")}
    for module in sorted((ROOT / "eeg_emotion").rglob("*.py")):
        rel = module.relative_to(ROOT).as_posix()
        if module.name in ("__init__.py", "__main__.py"):
            continue
        parent = rel.rsplit("/", 1)[0] + "/"
        leaf = parent in folders and not any(p.startswith(parent) and p != parent for p in listed)
        assert rel in listed or leaf, f"{rel} is not in the README's layout section"


PACKAGES = ["data", "model", "training", "evaluation", "baselines", "data.readers"]


def test_every_package_exports_its_public_names():
    import importlib

    for name in PACKAGES:
        pkg = importlib.import_module(f"eeg_emotion.{name}")
        exported = getattr(pkg, "__all__", [])
        assert exported, f"eeg_emotion.{name} re-exports nothing"
        for attr in exported:
            assert getattr(pkg, attr) is not None, f"eeg_emotion.{name}.{attr}"
