"""``solo-co-upstream``: writes the CO methods into a solo-learn checkout, in the shape of a
solo-learn pull request that adds a method.

    solo-co-upstream SOLO_LEARN_DIR [--dry-run]

solo-learn's own contributions of a method (e.g. All4One, #382) add ``solo/methods/<m>.py``,
``solo/losses/<m>.py``, ``scripts/pretrain/<dataset>/<m>.yaml``, ``tests/methods/test_<m>.py``,
``docs/source/solo/{methods,losses}/<m>.rst`` and a README line, and extend ``METHODS``. This
command writes the same for every CO method. Everything is generated at run time from this
package's own source files, by moving modules and rewriting their imports: no copy of the CO
code is kept anywhere in this repository, so the package stays the one source of truth.

Where each part goes (why, when it is not obvious):

- ``methods/co_<m>.py`` and ``methods/co_base.py`` (``CoMixin``) -> ``solo/methods/``, unchanged
  but for their imports; the names come from ``METHODS`` in ``methods/__init__.py``.
- ``core/losses.py`` is split, one loss file per method as solo-learn has them: each
  ``co_<m>_local_loss`` (with the helpers only it uses) -> ``solo/losses/co_<m>.py``; the helpers
  several methods share (``co_loss``, ``cross_view_pairs``, ``per_position_loss``, ...) and the
  module docstring (the choices behind the losses) -> ``solo/losses/co.py``. A private helper
  that several loss files import loses its leading underscore (solo-learn's loss files import
  only public names from each other, e.g. ``vibcreg`` from ``vicreg``).
- the rest of the pure-torch core (``core/{config,feature_maps,heads,lean_heads,rng,...}.py``)
  -> the package ``solo/utils/co/``; its ``__init__`` re-exports what stays in it, not the
  losses (``solo.losses`` imports ``solo.utils``; the reverse would be an import cycle).
- ``backbones/receptive_field.py`` -> ``solo/utils/receptive_field.py``: a tool for any
  ResNet-like backbone, used by ``CoMixin`` (a utility module like All4One's
  ``positional_encodings.py``); ``backbones/<x>.py`` (RF-ResNets, small-image ResNets) ->
  ``solo/backbones/<x>/<x>.py`` with an ``__init__.py``, as solo-learn's backbone families are
  laid out, and their constructors are added to ``BaseMethod._BACKBONES`` by editing
  ``solo/methods/base.py`` (and ``solo/backbones/__init__.py``), not by a run-time registration.
- registries: ``solo/methods/__init__.py`` (imports, ``METHODS`` entries, ``__all__``),
  ``solo/losses/__init__.py`` (the public ``*_loss`` functions), ``solo/utils/__init__.py``
  (``co``, ``receptive_field``) are edited: only missing lines are inserted, so running the
  command twice gives the same tree.
- configs: ``scripts/pretrain/<dataset>/co_*.yaml`` are copied (not our ``augmentations/`` and
  ``wandb/`` copies: every one a CO config names must already exist in solo-learn's folder,
  except for a dataset that solo-learn has no folder for, Tiny-ImageNet, whose groups are copied
  too; ``data.val_crop_size``, which this package's validation callback reads, is dropped);
  ``pkg://solo_coplugin...`` search-path entries and the entries that target this package
  (its Hydra callbacks, e.g. the preflight check) are removed.
- tests: ``tests/methods/test_co_<m>.py`` from ``upstream_templates/test_co_method.py.tmpl``, in
  solo-learn's test style; the base method's ``method_kwargs`` and ``gen_base_cfg`` arguments are
  read from the checkout's own ``tests/methods/test_<base>.py`` (head widths capped at
  :data:`TEST_HEAD_DIM_CAP`), so a new CO method gets a test without a table to keep here.
- docs: ``docs/source/solo/methods/co_base.rst`` and ``co_<m>.rst`` (automethod/autoattribute
  sections, as solo-learn's pages), ``docs/source/solo/losses/co.rst`` and ``co_<m>.rst``
  (autofunction), the entries of ``docs/source/index.rst``'s Methods and Losses toctrees, and
  one line in the README's "Methods available" list.
- not written: ``registration.py`` and the Hydra search-path plugin (the ``METHODS`` and
  ``_BACKBONES`` edits replace them), ``preflight`` and ``data_checks`` (the plugin's start-up
  checks), ``solo_compat``, ``third_party_warnings``, ``dali_cpu``, ``export``, ``bench``,
  ``eval``, and ``methods/__init__.py``'s ``UNSUPPORTED``/``co_method``.

Text is rewritten where it names this package: dotted references in docstrings
(``solo_coplugin.core.X`` -> the module that now holds ``X``), ``core.X`` references, and the few
phrases in :data:`PROSE_REWRITES`. Before anything is written the command checks the whole new
tree and stops with the file and line when one of these fails: every module the CO methods import
from this package has a place in solo-learn's layout; no ``solo_coplugin``, ``solo-coplugin`` or
design-note reference is left; every ``from solo.x import y`` in a written file resolves, in the
checkout as it will be, to a module that defines ``y``; every config's augmentations exist.
"""

import argparse
import ast
import re
import shlex
import string
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

import yaml

PACKAGE = "solo_coplugin"
PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = PACKAGE_DIR / "upstream_templates"
CONFIGS_DIR = PACKAGE_DIR / "configs"

LINE_LENGTH = 100
PAPER_URL = "https://arxiv.org/abs/2501.02860"
LOSSES_SOURCE = f"{PACKAGE}.core.losses"
#: module of the helpers that several loss files share (and of the losses module's docstring)
SHARED_LOSSES = "solo.losses.co"
#: a ``co_<m>_local_loss`` function goes to ``solo/losses/co_<m>.py``
METHOD_LOSS = re.compile(r"^(co_\w+?)_local_loss$")

#: the generated tests cap the base test's head widths (``*_dim`` method_kwargs): the local heads
#: and losses run at each of the 49 positions of a 224 px image, so Barlow Twins' and VICReg's
#: 2048-wide cross-correlation/covariance per position took 92 s and 42 s of a test (46 s and
#: 14 s with 512) against 2 to 4 s for the others
TEST_HEAD_DIM_CAP = 256

#: the tests that ``main`` says to run next, relative to the checkout (a shell glob): the written
#: CO method tests, which pass with solo-coplugin installed or not (tests/integration/
#: test_upstream.py runs both)
NEXT_TESTS = "tests/methods/test_co_*.py"

#: the files whose presence makes a directory a solo-learn checkout
CHECKOUT_FILES = (
    "setup.py",
    "README.md",
    "solo/methods/__init__.py",
    "solo/methods/base.py",
    "solo/losses/__init__.py",
    "solo/backbones/__init__.py",
    "solo/utils/__init__.py",
    "tests/methods/utils.py",
    "docs/source/index.rst",
)

#: phrases of this package's prose that would be wrong in solo-learn: (pattern, replacement)
PROSE_REWRITES: Tuple[Tuple[str, str], ...] = (
    (r" \(see ``shared/design/co-ssl\.md`` and the README\)", ""),
    (
        r"the losses themselves live in ``solo_coplugin\.core``",
        "the losses themselves live in ``solo.losses``",
    ),
    (
        r"The CO-SSL core: feature-map access, local heads and local losses, in pure torch\.",
        "The CO-SSL core: feature-map access and local heads, in pure torch (the local losses\n"
        "are in ``solo.losses.co`` and ``solo.losses.co_<method>``).",
    ),
    (r"solo-coplugin's RF-ResNets", "the RF-ResNets"),
    (r"feature map that solo-coplugin \"", 'feature map that the CO methods "'),
    # the checkpoint key of the random generators' states (a key of solo-learn's own)
    (r'"solo_coplugin_rng_states"', '"co_rng_states"'),
    # config comments
    (r"\(see the README: ", "(see solo/methods/co_base.py: "),
)
#: what must not be left in the written tree
FORBIDDEN = re.compile(r"solo_coplugin|solo-coplugin|shared/design")
DOTTED_REFERENCE = re.compile(rf"\b{PACKAGE}(?:\.[A-Za-z_]\w*)+")
#: ``core.config.CO_SETTINGS``-style references (relative to this package) in prose
CORE_REFERENCE = re.compile(r"(?<![\w.])core\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")

STDLIB_FALLBACK = {"abc", "argparse", "ast", "collections", "contextlib", "copy", "dataclasses"}
STDLIB = set(getattr(sys, "stdlib_module_names", STDLIB_FALLBACK))


class UpstreamError(RuntimeError):
    """The tree cannot be written as asked; the message says where and what to do."""


# ---------------------------------------------------------------------------------------------
# this package's sources


def source_path(module: str) -> Optional[Path]:
    """The file of one of this package's modules (a package's ``__init__.py``), or None."""

    relative = Path(*module.split(".")[1:])
    for candidate in (PACKAGE_DIR / relative / "__init__.py", PACKAGE_DIR / f"{relative}.py"):
        if candidate.is_file():
            return candidate
    return None


def is_package(module: str) -> bool:
    path = source_path(module)
    return path is not None and path.name == "__init__.py"


def read_source(module: str) -> str:
    path = source_path(module)
    if path is None:
        raise UpstreamError(f"{module} is imported but has no source file under {PACKAGE_DIR}")
    return path.read_text()


def reexports(package: str) -> Dict[str, Tuple[str, str]]:
    """``{name: (module, name there)}`` for what a package's ``__init__`` imports from this
    package."""

    table = {}
    for node in ast.parse(read_source(package)).body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE):
            for alias in node.names:
                table[alias.asname or alias.name] = (node.module, alias.name)
    return table


def literal_assignment(tree: ast.Module, name: str) -> Optional[ast.expr]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return node.value
    return None


def registry(package: str, dict_name: str) -> Dict[str, Tuple[str, str]]:
    """``{registry key: (module, object name)}`` from a ``{"key": Object}`` dict of a package's
    ``__init__`` (``METHODS``, ``BACKBONES``)."""

    tree = ast.parse(read_source(package))
    value = literal_assignment(tree, dict_name)
    if not isinstance(value, ast.Dict):
        raise UpstreamError(f"{package} has no {dict_name} = {{...}} dict to read")
    table = reexports(package)
    entries = {}
    for key, obj in zip(value.keys, value.values):
        entries[ast.literal_eval(key)] = table[obj.id]
    return entries


# ---------------------------------------------------------------------------------------------
# where things go


def target_module(module: str) -> Optional[str]:
    """solo-learn's module for one of this package's modules (None: not upstreamed)."""

    parts = module.split(".")
    if module == LOSSES_SOURCE:
        return SHARED_LOSSES
    if parts[:2] == [PACKAGE, "core"]:
        return ".".join(["solo", "utils", "co", *parts[2:]])
    if module == f"{PACKAGE}.backbones.receptive_field":
        return "solo.utils.receptive_field"
    if parts[:2] == [PACKAGE, "backbones"] and len(parts) == 3:
        return f"solo.backbones.{parts[2]}.{parts[2]}"
    if parts[:2] == [PACKAGE, "methods"] and len(parts) == 3:
        return f"solo.methods.{parts[2]}"
    return None


def module_file(module: str, package: bool = False) -> str:
    """The path, relative to the checkout, of a solo-learn module."""

    relative = "/".join(module.split("."))
    return f"{relative}/__init__.py" if package else f"{relative}.py"


@dataclass
class LossSplit:
    """``core/losses.py`` cut into solo-learn loss files."""

    #: solo-learn module -> its top-level statements' source, in order
    statements: Dict[str, List[str]] = field(default_factory=dict)
    #: name defined in losses.py -> (solo-learn module, name there)
    names: Dict[str, Tuple[str, str]] = field(default_factory=dict)
    #: solo-learn module -> the names it uses from other loss files
    uses: Dict[str, Set[str]] = field(default_factory=dict)


def defined_names(node: ast.stmt) -> List[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    return []


def used_names(node: ast.AST) -> Set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def statement_source(lines: List[str], node: ast.stmt) -> str:
    """A top-level statement's source with its decorators and the comments right above it."""

    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
    while start > 0 and lines[start - 1].lstrip().startswith("#"):
        start -= 1
    return "\n".join(lines[start : node.end_lineno])


def split_losses() -> LossSplit:
    """Assigns each statement of ``core/losses.py`` to a solo-learn loss file.

    A ``co_<m>_local_loss`` goes to ``solo/losses/co_<m>.py``; another definition goes with the
    one method file whose definitions use it, else (used by several, or by none: API of its own)
    to ``solo/losses/co.py``.
    """

    text = read_source(LOSSES_SOURCE)
    tree = ast.parse(text)
    lines = text.split("\n")
    definitions = [node for node in tree.body if defined_names(node)]
    home: Dict[int, Optional[str]] = {}
    for i, node in enumerate(definitions):
        match = METHOD_LOSS.match(defined_names(node)[0])
        home[i] = f"solo.losses.{match.group(1)}" if match else None
    users = {
        i: [
            j
            for j, other in enumerate(definitions)
            if j != i and set(defined_names(node)) & used_names(other)
        ]
        for i, node in enumerate(definitions)
    }
    # a helper's home: its users' common method file, once all of them are placed
    settled = {i for i, h in home.items() if h is not None}
    changed = True
    while changed:
        changed = False
        for i in range(len(definitions)):
            if i in settled or any(j not in settled for j in users[i]):
                continue
            homes = {home[j] for j in users[i]}
            home[i] = homes.pop() if len(homes) == 1 else SHARED_LOSSES
            settled.add(i)
            changed = True
    for i in range(len(definitions)):
        if i not in settled:  # mutual recursion: nothing sensible but the shared file
            home[i] = SHARED_LOSSES

    split = LossSplit()
    for i, node in enumerate(definitions):
        for name in defined_names(node):
            split.names[name] = (home[i], name)
    # a private name that crosses files becomes public: solo-learn imports only public names
    renames = {}
    for i, node in enumerate(definitions):
        for name in defined_names(node):
            crosses = any(home[j] != home[i] for j in users[i])
            if name.startswith("_") and crosses:
                public = name.lstrip("_")
                if public in split.names:
                    raise UpstreamError(
                        f"{LOSSES_SOURCE}: the private helper {name} is used by several loss "
                        f"files and would become {public}, which is already defined there; "
                        "rename one of them"
                    )
                renames[name] = public
    for name, public in renames.items():
        split.names[name] = (split.names[name][0], public)
    for i, node in enumerate(definitions):
        source = statement_source(lines, node)
        for name, public in renames.items():
            source = re.sub(rf"\b{re.escape(name)}\b", public, source)
        split.statements.setdefault(home[i], []).append(source)
        foreign = {
            split.names[name][1]
            for name in used_names(node)
            if name in split.names and split.names[name][0] != home[i]
        }
        split.uses.setdefault(home[i], set()).update(foreign)
    return split


class Resolver:
    """Where a name of this package lives in solo-learn."""

    def __init__(self, losses: LossSplit):
        self.losses = losses

    def name(self, module: str, name: str) -> Tuple[str, str]:
        """``(solo-learn module, name)`` for ``from module import name``."""

        if module == LOSSES_SOURCE and name in self.losses.names:
            return self.losses.names[name]
        if is_package(module):
            table = reexports(module)
            if name in table:
                return self.name(*table[name])
        if is_package(module) or source_path(module) is None:
            raise UpstreamError(
                f"{module}.{name} has no place in solo-learn's layout: it is neither a module "
                f"nor re-exported by {module}"
            )
        target = target_module(module)
        if target is None:
            raise UpstreamError(
                f"{module} is used by the CO methods but has no place in solo-learn's layout; "
                "give it one in solo_coplugin.upstream.target_module"
            )
        return target, name

    def dotted(self, reference: str) -> str:
        """A dotted reference (``solo_coplugin.core.spatial_stages``) in solo-learn's layout;
        unchanged when it is not upstreamed (the final check then names it)."""

        parts = reference.split(".")
        for cut in range(len(parts), 1, -1):
            module, rest = ".".join(parts[:cut]), parts[cut:]
            if source_path(module) is None:
                continue
            if not rest:
                return target_module(module) or reference
            try:
                target, name = self.name(module, rest[0])
            except UpstreamError:
                return reference
            return ".".join([target, name, *rest[1:]])
        return reference


# ---------------------------------------------------------------------------------------------
# Python rendering


@dataclass
class Import:
    """One import statement: ``import module [as alias]`` or ``from module import names``."""

    module: str
    names: Tuple[Tuple[str, Optional[str]], ...] = ()  # (name, asname); empty: ``import module``
    alias: Optional[str] = None

    def bound(self) -> List[str]:
        if not self.names:
            return [self.alias or self.module.split(".")[0]]
        return [asname or name for name, asname in self.names]


def name_order(name: str):
    # isort's order_by_type: CONSTANTS, Classes, functions
    kind = 0 if name.isupper() else (1 if name[0].isupper() else 2)
    return kind, name.lower()


def render_imports(imports: Iterable[Import]) -> str:
    """isort/black-style import section: standard library, then the rest (solo-learn's files keep
    ``solo`` with the third-party imports); ``import x`` before ``from x import``; one ``from``
    statement per module, names on one line when it fits in 100 columns."""

    plain: Dict[str, Set[Tuple[str, Optional[str]]]] = {}
    froms: Dict[str, Set[Tuple[str, Optional[str]]]] = {}
    for imp in imports:
        if imp.names:
            froms.setdefault(imp.module, set()).update(imp.names)
        else:
            plain.setdefault(imp.module, set()).add((imp.module, imp.alias))
    sections: List[List[str]] = [[], []]
    for module in sorted(plain, key=str.lower):
        section = sections[module.split(".")[0] not in STDLIB]
        for _, alias in sorted(plain[module], key=lambda item: item[1] or ""):
            section.append(f"import {module}" + (f" as {alias}" if alias else ""))
    later: List[List[str]] = [[], []]
    for module in sorted(froms, key=str.lower):
        section = later[module.split(".")[0] not in STDLIB]
        names = sorted(froms[module], key=lambda item: name_order(item[0]))
        plain_names = [name for name, asname in names if asname is None]
        if plain_names:
            section.append(render_from(module, plain_names))
        for name, asname in names:
            if asname is not None:
                section.append(f"from {module} import {name} as {asname}")
    blocks = ["\n".join(sections[i] + later[i]) for i in (0, 1) if sections[i] or later[i]]
    return "\n\n".join(blocks)


def render_from(module: str, names: Sequence[str]) -> str:
    line = f"from {module} import {', '.join(names)}"
    if len(line) <= LINE_LENGTH:
        return line
    return f"from {module} import (\n" + "".join(f"    {n},\n" for n in names) + ")"


def render_list(name: str, items: Sequence[str]) -> str:
    line = f"{name} = [{', '.join(repr_str(i) for i in items)}]"
    if len(line) <= LINE_LENGTH:
        return line
    return f"{name} = [\n" + "".join(f"    {repr_str(i)},\n" for i in items) + "]"


def repr_str(value) -> str:
    """A Python literal as black writes it (double-quoted strings)."""

    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def imports_of(node: ast.stmt) -> List[Import]:
    if isinstance(node, ast.Import):
        return [Import(alias.name, alias=alias.asname) for alias in node.names]
    module = "." * node.level + (node.module or "")
    return [Import(module, tuple((a.name, a.asname) for a in node.names))]


class ModuleRewriter:
    """Rewrites one of this package's modules for its place in solo-learn."""

    def __init__(self, resolver: Resolver):
        self.resolver = resolver

    def rewrite_import(self, imp: Import) -> List[Import]:
        if not imp.module.startswith(PACKAGE):
            return [imp]
        if not imp.names:
            raise UpstreamError(
                f"`import {imp.module}`: the CO sources must import names "
                "(`from ... import name`) for their imports to be rewritten"
            )
        rewritten = []
        for name, asname in imp.names:
            target, new_name = self.resolver.name(imp.module, name)
            if asname is None and new_name != name:
                asname = name
            rewritten.append(Import(target, ((new_name, asname),)))
        return rewritten

    def rewrite(self, text: str, origin: str, keep=None) -> str:
        """The module's text with its imports (and the references in its prose) rewritten.

        Args:
            text (str): the module's source.
            origin (str): its file, for messages.
            keep (Callable[[Import], bool], optional): which rewritten ``from`` imports to keep
                (a package ``__init__`` keeps its own modules' names only).
        """

        tree = ast.parse(text)
        lines = text.split("\n")
        body = list(tree.body)
        first = 1 if body and _is_docstring(body[0]) else 0
        top = []
        for node in body[first:]:
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                break
            top.append(node)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and node not in top:
                if any(imp.module.startswith(PACKAGE) for imp in imports_of(node)):
                    raise UpstreamError(
                        f"{origin}:{node.lineno}: an import of {PACKAGE} that is not at the top "
                        "of the module; move it there so that it can be rewritten"
                    )
        out = text
        if top:
            region = lines[top[0].lineno - 1 : top[-1].end_lineno]
            if any("#" in line for line in region):
                raise UpstreamError(
                    f"{origin}:{top[0].lineno}: a comment among the imports, which are rendered "
                    "anew in solo-learn's layout and would lose it; move it out of the imports"
                )
            imports = [
                new for node in top for imp in imports_of(node) for new in self.rewrite_import(imp)
            ]
            if keep is not None:
                imports = [imp for imp in imports if keep(imp)]
            section = render_imports(imports).split("\n")
            out = "\n".join(lines[: top[0].lineno - 1] + section + lines[top[-1].end_lineno :])
        return self.rewrite_prose(out)

    def rewrite_prose(self, text: str) -> str:
        for pattern, replacement in PROSE_REWRITES:
            text = re.sub(pattern, replacement, text)

        def core_reference(match: re.Match) -> str:
            reference = f"{PACKAGE}.core.{match.group(1)}"
            resolved = self.resolver.dotted(reference)
            return match.group(0) if resolved == reference else resolved

        text = CORE_REFERENCE.sub(core_reference, text)
        return DOTTED_REFERENCE.sub(lambda m: self.resolver.dotted(m.group(0)), text)


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(getattr(node, "value", None), ast.Constant)


def docstring_summary(text: str) -> str:
    doc = ast.get_docstring(ast.parse(text)) or ""
    return doc.split("\n\n")[0].replace("\n", " ").strip()


# ---------------------------------------------------------------------------------------------
# the tree


@dataclass
class Method:
    """One CO method as solo-learn will have it."""

    name: str  # co_byol
    cls: str  # CoBYOL
    source: str  # solo_coplugin.methods.co_byol
    text: str  # its source text

    @property
    def base(self) -> str:
        return self.name[len("co_") :]

    @property
    def title(self) -> str:
        """``CO-BYOL``, from the module docstring's ``CO-BYOL: ...``."""

        summary = docstring_summary(self.text)
        return summary.split(":")[0].strip() if ":" in summary else self.cls

    def class_node(self) -> ast.ClassDef:
        for node in ast.parse(self.text).body:
            if isinstance(node, ast.ClassDef) and node.name == self.cls:
                return node
        raise UpstreamError(f"{self.source} does not define {self.cls}")

    def local_heads(self) -> Dict[str, str]:
        """``local_head_names``: ``{output key: global head attribute}``."""

        for node in self.class_node().body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "local_head_names" for t in node.targets
            ):
                return ast.literal_eval(node.value)
        raise UpstreamError(f"{self.source}.{self.cls} does not set local_head_names")


@dataclass
class Plan:
    """The files to write, by path relative to the checkout."""

    files: Dict[str, str] = field(default_factory=dict)

    def add(self, path: str, text: str) -> None:
        if path in self.files and self.files[path] != text:
            raise UpstreamError(f"two different texts for {path}")
        self.files[path] = text if text.endswith("\n") else text + "\n"


class Upstream:
    """Builds the plan for one solo-learn checkout."""

    def __init__(self, checkout: Path):
        self.checkout = checkout
        self.plan = Plan()
        self.losses = split_losses()
        self.resolver = Resolver(self.losses)
        self.rewriter = ModuleRewriter(self.resolver)
        self.license = license_header(checkout)
        self.methods = [
            Method(name, cls, module, read_source(module))
            for name, (module, cls) in registry(f"{PACKAGE}.methods", "METHODS").items()
        ]
        self.backbones = registry(f"{PACKAGE}.backbones", "BACKBONES")

    def current(self, path: str) -> str:
        """A file of the checkout as the plan leaves it so far."""

        if path in self.plan.files:
            return self.plan.files[path]
        return (self.checkout / path).read_text()

    def python(self, path: str, text: str) -> None:
        self.plan.add(path, f"{self.license}\n{text.lstrip()}")

    # -- code -------------------------------------------------------------------------------

    def build(self) -> Plan:
        self.write_modules()
        self.write_losses()
        self.write_backbones()
        self.edit_registries()
        self.write_configs()
        self.write_tests()
        self.write_docs()
        check_plan(self)
        return self.plan

    def modules_to_write(self) -> List[str]:
        """This package's modules that the CO methods and backbones need (and the modules they
        need), except the losses."""

        roots = [m.source for m in self.methods] + sorted({m for m, _ in self.backbones.values()})
        seen, queue = set(), list(roots)
        while queue:
            module = queue.pop()
            if module in seen:
                continue
            seen.add(module)
            for node in ast.parse(read_source(module)).body:
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE):
                    for alias in node.names:
                        self.resolver.name(node.module, alias.name)  # has a place, or stops
                        queue.append(self.source_of(node.module, alias.name))
        return sorted(seen - {LOSSES_SOURCE})  # the losses are split (write_losses)

    def source_of(self, module: str, name: str) -> str:
        """The module of this package that defines ``name`` imported from ``module``."""

        if is_package(module):
            table = reexports(module)
            if name in table:
                return self.source_of(*table[name])
        return module

    def write_modules(self) -> None:
        modules = self.modules_to_write()
        packages = set()
        for module in modules:
            target = target_module(module)
            self.python(module_file(target), self.rewriter.rewrite(read_source(module), module))
            if target.startswith("solo.utils.co."):
                packages.add(f"{PACKAGE}.core")
        for package in packages:  # solo/utils/co/__init__.py: what stays in the package
            own = target_module(package)
            text = self.rewriter.rewrite(
                read_source(package),
                package,
                keep=lambda imp, own=own: imp.module.startswith(own + "."),
            )
            text = self.filter_all(text)
            self.python(module_file(own, package=True), text)

    def filter_all(self, text: str) -> str:
        """Keeps in ``__all__`` the names that the module still binds."""

        tree = ast.parse(text)
        value = literal_assignment(tree, "__all__")
        if value is None:
            return text
        bound = {
            name
            for node in tree.body
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for imp in imports_of(node)
            for name in imp.bound()
        } | {name for node in tree.body for name in defined_names(node)}
        names = [n for n in ast.literal_eval(value) if n in bound]
        node = next(n for n in tree.body if isinstance(n, ast.Assign) and n.value is value)
        lines = text.split("\n")
        return "\n".join(
            lines[: node.lineno - 1] + [render_list("__all__", names)] + lines[node.end_lineno :]
        )

    def write_losses(self) -> None:
        source = read_source(LOSSES_SOURCE)
        tree = ast.parse(source)
        original_imports = [
            imp
            for node in tree.body
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for imp in imports_of(node)
        ]
        for module, statements in sorted(self.losses.statements.items()):
            body = "\n\n\n".join(statements)
            used = used_names(ast.parse(body))
            imports = []
            for imp in original_imports:
                kept = tuple((n, a) for n, a in imp.names if (a or n) in used)
                if not imp.names and imp.bound()[0] in used:
                    imports.append(imp)
                elif kept:
                    imports.extend(self.rewriter.rewrite_import(Import(imp.module, kept)))
            foreign = sorted(self.losses.uses.get(module, ()))
            by_module: Dict[str, List[str]] = {}
            for name in foreign:
                home = next(m for m, n in self.losses.names.values() if n == name)
                by_module.setdefault(home, []).append(name)
            imports += [
                Import(m, tuple((n, None) for n in names)) for m, names in by_module.items()
            ]
            if module == SHARED_LOSSES:
                doc = ast.get_docstring(tree)
            else:
                main = next(s for s in statements if METHOD_LOSS.match(_def_name(s) or ""))
                doc = function_summary(main)
                doc += (
                    f"\n\nSee :mod:`{SHARED_LOSSES}` for how the local losses combine with the "
                    "base method's loss."
                )
            text = f'"""{doc}\n"""\n\n{render_imports(imports)}\n\n\n{body}\n'
            self.python(module_file(module), self.rewriter.rewrite_prose(text))

    def loss_modules(self) -> List[str]:
        return sorted(self.losses.statements, key=lambda m: (m != SHARED_LOSSES, m))

    def write_backbones(self) -> None:
        by_module: Dict[str, List[str]] = {}
        for name, (module, constructor) in self.backbones.items():
            if constructor != name:
                raise UpstreamError(
                    f"backbone {name!r} is built by {module}.{constructor}: solo-learn names a "
                    "backbone after its constructor"
                )
            by_module.setdefault(target_module(module), []).append(name)
        for module, names in sorted(by_module.items()):
            package, leaf = module.rsplit(".", 1)
            text = f"from .{leaf} import {', '.join(names)}\n\n{render_list('__all__', names)}\n"
            self.python(module_file(package, package=True), text)

    # -- solo-learn's registries ------------------------------------------------------------

    def edit_registries(self) -> None:
        path = "solo/methods/__init__.py"
        text = self.current(path)
        text = insert_after_last(
            text,
            path,
            r"^from solo\.methods\.",
            [f"from solo.methods.{m.name} import {m.cls}" for m in self.methods],
        )
        text = insert_into_block(
            text,
            path,
            r"^METHODS = \{",
            r"^\}",
            [f'    "{m.name}": {m.cls},' for m in self.methods],
            key=r'^\s*"[^"]+":',
        )
        text = insert_into_block(
            text, path, r"^__all__ = \[", r"^\]", [f'    "{m.cls}",' for m in self.methods]
        )
        self.plan.add(path, text)

        path = "solo/losses/__init__.py"
        text = self.current(path)
        exported = []
        for module in self.loss_modules():
            names = [
                public
                for (home, public) in self.losses.names.values()
                if home == module and public.endswith("_loss") and not public.startswith("_")
            ]
            if names:
                exported.append((module, names))
        text = insert_after_last(
            text, path, r"^from solo\.losses\.", [render_from(m, names) for m, names in exported]
        )
        text = insert_into_block(
            text,
            path,
            r"^__all__ = \[",
            r"^\]",
            [f'    "{n}",' for _, names in exported for n in names],
        )
        self.plan.add(path, text)

        names = sorted(self.backbones)
        path = "solo/methods/base.py"
        text = self.current(path)
        text = insert_into_block(
            text,
            path,
            r"^from solo\.backbones import \($",
            r"^\)",
            [f"    {n}," for n in names],
            sort=True,
        )
        text = insert_into_block(
            text,
            path,
            r"^    _BACKBONES = \{",
            r"^    \}",
            [f'        "{n}": {n},' for n in names],
            key=r'^\s*"[^"]+":',
        )
        self.plan.add(path, text)

        path = "solo/backbones/__init__.py"
        text = self.current(path)
        by_module: Dict[str, List[str]] = {}
        for name, (module, _) in sorted(self.backbones.items()):
            by_module.setdefault(target_module(module).split(".")[2], []).append(name)
        text = insert_after_last(
            text,
            path,
            r"^from \.",
            [f"from .{m} import {', '.join(ns)}" for m, ns in sorted(by_module.items())],
        )
        text = insert_into_block(
            text, path, r"^__all__ = \[", r"^\]", [f'    "{n}",' for n in names]
        )
        self.plan.add(path, text)

        path = "solo/utils/__init__.py"
        text = self.current(path)
        utils = sorted(
            {
                target_module(m).split(".")[2]
                for m in self.modules_to_write()
                if target_module(m).startswith("solo.utils.")
            }
        )
        text = insert_into_block(
            text,
            path,
            r"^from solo\.utils import \($",
            r"^\)",
            [f"    {u}," for u in utils],
            sort=True,
        )
        text = insert_into_block(
            text, path, r"^__all__ = \[", r"^\]", [f'    "{u}",' for u in utils]
        )
        self.plan.add(path, text)

    # -- configs, tests, docs ---------------------------------------------------------------

    def write_configs(self) -> None:
        if not CONFIGS_DIR.is_dir():
            raise UpstreamError(f"no configs at {CONFIGS_DIR}")
        for config in sorted(CONFIGS_DIR.glob("*/co_*.yaml")):
            dataset = config.parent.name
            text = "\n".join(
                line
                for line in config.read_text().split("\n")
                if not re.match(rf"^\s*-\s*pkg://{PACKAGE}", line)
            )
            text = self.rewriter.rewrite_prose(without_package_targets(text))
            # data.val_crop_size is read by this package's validation callback, removed above
            text = "\n".join(
                line for line in text.split("\n") if not re.match(r"^\s*val_crop_size:", line)
            )
            # a dataset solo-learn has no folder for (tiny-imagenet) brings its own groups
            new_dataset = not (self.checkout / f"scripts/pretrain/{dataset}").is_dir()
            defaults = (yaml.safe_load(text) or {}).get("defaults", [])
            for entry in defaults:
                if isinstance(entry, dict):
                    for group, option in entry.items():
                        if group.startswith("override ") or option is None:
                            continue
                        needed = f"scripts/pretrain/{dataset}/{group}/{option}"
                        if new_dataset and (CONFIGS_DIR / dataset / group / option).is_file():
                            self.plan.add(
                                needed, (CONFIGS_DIR / dataset / group / option).read_text()
                            )
                        elif not (self.checkout / needed).is_file():
                            raise UpstreamError(
                                f"{config} uses {group}: {option}, which solo-learn does not have "
                                f"({needed}): use one of solo-learn's {group} files"
                            )
            self.plan.add(f"scripts/pretrain/{dataset}/{config.name}", text)

    def write_tests(self) -> None:
        template = string.Template((TEMPLATES_DIR / "test_co_method.py.tmpl").read_text())
        for method in self.methods:
            base_test = f"tests/methods/test_{method.base}.py"
            if not (self.checkout / base_test).is_file():
                raise UpstreamError(
                    f"{method.name}: its test reuses the base method's test settings from "
                    f"{base_test}, which this checkout does not have"
                )
            kwargs, cfg_args = base_test_settings(self.checkout / base_test)
            kwargs = {
                key: min(value, TEST_HEAD_DIM_CAP) if key.endswith("_dim") else value
                for key, value in kwargs.items()
            }
            heads = method.local_heads()
            checks, previous = [], 'out["feats"]'
            for key, head in heads.items():
                checks.append(f"    {key} = model.{head}({previous})")
                checks.append(
                    f'    assert out["local_{key}"].size() == '
                    f"(cfg.optimizer.batch_size, num_positions, {key}.size(1))"
                )
                previous = key
            groups = "{" + ", ".join(f'"local_{head}"' for head in heads.values()) + "}"
            cfg_args = [repr_str(method.name)] + [f"{k}={repr_str(v)}" for k, v in cfg_args.items()]
            text = template.substitute(
                name=method.name,
                cls=method.cls,
                method_kwargs=render_dict(kwargs, indent=4),
                gen_base_cfg_args=", ".join(cfg_args),
                local_param_groups=groups,
                local_output_checks="\n".join(checks),
            )
            self.python(f"tests/methods/test_{method.name}.py", text)

    def write_docs(self) -> None:
        base = next(
            (m for m in self.modules_to_write() if m.endswith(".co_base")),
            f"{PACKAGE}.methods.co_base",
        )
        base_text = read_source(base)
        mixin = next(n.name for n in ast.parse(base_text).body if isinstance(n, ast.ClassDef))
        pages = [("co_base", mixin, f"solo.methods.co_base.{mixin}", base_text, mixin)]
        pages += [
            (m.name, m.title, f"solo.methods.{m.name}.{m.cls}", m.text, m.cls) for m in self.methods
        ]
        for page, title, dotted, text, cls in pages:
            self.plan.add(
                f"docs/source/solo/methods/{page}.rst", method_page(title, dotted, text, cls)
            )
        titles = {f"solo.losses.{m.name}": m.title for m in self.methods}
        for module in self.loss_modules():
            functions = [
                public
                for (home, public) in self.losses.names.values()
                if home == module and not public.startswith("_")
            ]
            title = titles.get(module, "CO-SSL" if module == SHARED_LOSSES else module)
            leaf = module.rsplit(".", 1)[1]
            self.plan.add(
                f"docs/source/solo/losses/{leaf}.rst", loss_page(title, module, functions)
            )

        path = "docs/source/index.rst"
        text = self.current(path)
        methods = ["co_base"] + [m.name for m in self.methods]
        text = insert_into_toctree(text, path, "Methods", [f"solo/methods/{m}" for m in methods])
        losses = [m.rsplit(".", 1)[1] for m in self.loss_modules()]
        text = insert_into_toctree(text, path, "Losses", [f"solo/losses/{m}" for m in losses])
        self.plan.add(path, text)

        path = "README.md"
        titles = ", ".join(m.title for m in self.methods)
        line = f"* [CO-SSL]({PAPER_URL}) on top of a base method: {titles}"
        self.plan.add(path, insert_readme_method(self.current(path), path, line))


def function_summary(source: str) -> str:
    """The first paragraph of the docstring of the function defined in ``source``."""

    function = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef))
    doc = ast.get_docstring(function) or function.name
    return doc.split("\n\n")[0].replace("\n", " ").strip()


def _def_name(source: str) -> Optional[str]:
    match = re.search(r"^def (\w+)", source, re.M)
    return match.group(1) if match else None


def license_header(checkout: Path) -> str:
    """solo-learn's license header, as its own files carry it (read from the checkout)."""

    lines = []
    for line in (checkout / "solo" / "methods" / "base.py").read_text().split("\n"):
        if line.startswith("#") or (line == "" and lines):
            lines.append(line)
        else:
            break
    while lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise UpstreamError(f"{checkout}/solo/methods/base.py has no license header to reuse")
    return "\n".join(lines) + "\n"


def without_package_targets(text: str) -> str:
    """A YAML config without the entries whose ``_target_`` is in this package (e.g. its Hydra
    callbacks), and without a parent mapping that they leave empty."""

    lines = text.split("\n")

    def indent(line: str) -> int:
        return len(line) - len(line.lstrip())

    def block_end(start: int) -> int:
        end = start + 1
        while end < len(lines) and (
            lines[end].strip() == "" or indent(lines[end]) > indent(lines[start])
        ):
            end += 1
        while end > start + 1 and lines[end - 1].strip() == "":
            end -= 1  # the blank lines after a block belong to what follows
        return end

    def parent(i: int) -> Optional[int]:
        j = i - 1
        while j >= 0 and (lines[j].strip() == "" or indent(lines[j]) >= indent(lines[i])):
            j -= 1
        return j if j >= 0 else None

    target = re.compile(rf"^\s*_target_:\s*[\"']?{PACKAGE}\.")
    while True:
        hit = next((i for i, line in enumerate(lines) if target.match(line)), None)
        if hit is None:
            return "\n".join(lines)
        entry = parent(hit)
        if entry is None:
            raise UpstreamError(f"a top-level _target_ in {PACKAGE} in a config:\n{text}")
        start, end = entry, block_end(entry)
        above = parent(entry)
        # the mapping that held only this entry (``callbacks:``) goes too
        if above is not None and block_end(above) == end and above + 1 == entry:
            start = above
        del lines[start:end]


def base_test_settings(path: Path) -> Tuple[dict, dict]:
    """The ``method_kwargs`` dict and the ``gen_base_cfg`` keyword arguments of a solo-learn
    method test."""

    kwargs, cfg_args = None, None
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            kwargs is None
            and isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "method_kwargs" for t in node.targets)
        ):
            kwargs = ast.literal_eval(node.value)
        if (
            cfg_args is None
            and isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "gen_base_cfg"
        ):
            cfg_args = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
    if kwargs is None or cfg_args is None:
        raise UpstreamError(f"{path} has no literal method_kwargs dict and gen_base_cfg call")
    return kwargs, cfg_args


def render_dict(values: dict, indent: int) -> str:
    pad = " " * indent
    items = "".join(f"{pad}    {repr_str(k)}: {repr_str(v)},\n" for k, v in values.items())
    return "{\n" + items + pad + "}"


# ---------------------------------------------------------------------------------------------
# docs pages (solo-learn's RST conventions)


def rst_title(title: str, underline: str) -> str:
    return f"{title}\n{underline * len(title)}\n"


def rst_section(name: str, directive: str, target: str) -> str:
    return f"{rst_title(name, '~')}.. {directive}:: {target}\n   :noindex:\n"


def method_page(title: str, dotted: str, text: str, cls: str) -> str:
    """A methods page: ``__init__`` first, then one section per documented member."""

    node = next(n for n in ast.parse(text).body if isinstance(n, ast.ClassDef) and n.name == cls)
    own = [
        n.name for n in node.body if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")
    ]
    properties = {
        n.name
        for n in node.body
        if isinstance(n, ast.FunctionDef)
        and any(getattr(d, "id", None) == "property" for d in n.decorator_list)
    }
    members = ["add_and_assert_specific_cfg", "learnable_params", "forward", "training_step"]
    members += [m for m in own if m not in members]
    properties |= {"learnable_params"}
    sections = [rst_title(title, "="), f".. automethod:: {dotted}.__init__\n   :noindex:\n"]
    for member in members:
        directive = "autoattribute" if member in properties else "automethod"
        sections.append(rst_section(member, directive, f"{dotted}.{member}"))
    return "\n".join(sections)


def loss_page(title: str, module: str, functions: Sequence[str]) -> str:
    blocks = [f".. autofunction:: {module}.{f}\n   :noindex:\n" for f in functions]
    return rst_title(title, "-") + "\n" + "\n".join(blocks)


# ---------------------------------------------------------------------------------------------
# edits of solo-learn's files: insert what is missing, nothing else


def _find(lines: List[str], pattern: str, path: str, start: int = 0) -> int:
    for i in range(start, len(lines)):
        if re.match(pattern, lines[i]):
            return i
    raise UpstreamError(
        f"{path}: no line matching {pattern!r}; is this solo-learn's layout? (solo-learn 1.0.6 "
        "has one)"
    )


def insert_after_last(text: str, path: str, pattern: str, new: Sequence[str]) -> str:
    lines = text.split("\n")
    last = [i for i, line in enumerate(lines) if re.match(pattern, line)]
    if not last:
        _find(lines, pattern, path)
    present = set(lines)
    missing = []
    for statement in new:
        if statement not in text and statement.split("\n")[0] not in present:
            missing.extend(statement.split("\n"))
    end = last[-1]
    if lines[end].rstrip().endswith("("):  # a parenthesized import: insert after its ")"
        end = _find(lines, r"^\)", path, end)
    return "\n".join(lines[: end + 1] + missing + lines[end + 1 :])


def insert_into_block(
    text: str,
    path: str,
    start: str,
    end: str,
    new: Sequence[str],
    sort: bool = False,
    key: Optional[str] = None,
) -> str:
    """Inserts the missing ``new`` lines into the block between the lines matching ``start`` and
    ``end``: at its end, or in sorted position. With ``key`` (a regex of an entry's key), an
    entry whose key is there with another value is an error."""

    lines = text.split("\n")
    first = _find(lines, start, path)
    last = _find(lines, end, path, first + 1)
    block = lines[first + 1 : last]
    for line in new:
        if line in block:
            continue
        if key is not None:
            line_key = re.match(key, line).group(0)
            clash = [b for b in block if b.startswith(line_key)]
            if clash:
                raise UpstreamError(
                    f"{path}: {clash[0].strip()} is already there and is not "
                    f"{line.strip()}; solo-learn already has an entry of that name"
                )
        position = len(block)
        if sort:
            position = next(
                (i for i, b in enumerate(block) if _sort_key(b) > _sort_key(line)), len(block)
            )
        block.insert(position, line)
    return "\n".join(lines[: first + 1] + block + lines[last:])


def _sort_key(line: str) -> str:
    return line.strip().rstrip(",").lower()


def insert_into_toctree(text: str, path: str, caption: str, entries: Sequence[str]) -> str:
    lines = text.split("\n")
    i = _find(lines, rf"^\s+:caption: {re.escape(caption)}\s*$", path)
    last = None
    for j in range(i + 1, len(lines)):
        line = lines[j]
        if line.strip() == "" or line.strip().startswith(":"):
            continue
        if not line.startswith(" "):
            break
        last = j
    if last is None:
        raise UpstreamError(f"{path}: the {caption} toctree has no entries to extend")
    indent = re.match(r"^\s*", lines[last]).group(0)
    present = {line.strip() for line in lines}
    missing = [indent + e for e in entries if e not in present]
    return "\n".join(lines[: last + 1] + missing + lines[last + 1 :])


def insert_readme_method(text: str, path: str, line: str) -> str:
    """Puts ``line`` in the README's method list, in alphabetical position (replacing an older
    version of it)."""

    lines = text.split("\n")
    i = _find(lines, r"^## Methods available", path)
    prefix = line.split("]")[0] + "]"
    items = []
    for j in range(i + 1, len(lines)):
        if lines[j].startswith("* ["):
            items.append(j)
        elif items:
            break
    if not items:
        raise UpstreamError(f"{path}: no list under '## Methods available'")
    for j in items:
        if lines[j].startswith(prefix):
            lines[j] = line
            return "\n".join(lines)
    position = next((j for j in items if lines[j].lower() > line.lower()), items[-1] + 1)
    return "\n".join(lines[:position] + [line] + lines[position:])


# ---------------------------------------------------------------------------------------------
# checks


def check_plan(upstream: Upstream) -> None:
    """Stops with the file and line if the planned tree names this package or imports a name
    that does not exist in it."""

    problems = []
    for path, text in sorted(upstream.plan.files.items()):
        for number, line in enumerate(text.split("\n"), 1):
            if FORBIDDEN.search(line):
                problems.append(f"{path}:{number}: {line.strip()}")
    if problems:
        raise UpstreamError(
            "the written tree would still name this package (reword the source, or add a rule "
            "to solo_coplugin.upstream.PROSE_REWRITES):\n  " + "\n  ".join(problems)
        )

    def module_text(module: str) -> Optional[str]:
        for path in (module_file(module), module_file(module, package=True)):
            if path in upstream.plan.files:
                return upstream.plan.files[path]
            if (upstream.checkout / path).is_file():
                return (upstream.checkout / path).read_text()
        return None

    for path, text in sorted(upstream.plan.files.items()):
        if not path.endswith(".py"):
            continue
        tree = ast.parse(text, filename=path)
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("solo."):
                continue
            source = module_text(node.module)
            if source is None:
                problems.append(f"{path}:{node.lineno}: no module {node.module}")
                continue
            defined = set()
            for top in ast.parse(source).body:
                defined.update(defined_names(top))
                if isinstance(top, (ast.Import, ast.ImportFrom)):
                    for imp in imports_of(top):
                        defined.update(imp.bound())
            for alias in node.names:
                if alias.name not in defined and module_text(f"{node.module}.{alias.name}") is None:
                    problems.append(f"{path}:{node.lineno}: {node.module} has no {alias.name}")
    if problems:
        raise UpstreamError("imports that would not resolve:\n  " + "\n  ".join(problems))


def check_checkout(checkout: Path) -> None:
    if not checkout.is_dir():
        raise UpstreamError(f"{checkout} is not a folder")
    if (checkout / PACKAGE).is_dir():
        raise UpstreamError(f"{checkout} is solo-coplugin itself, not a solo-learn checkout")
    missing = [f for f in CHECKOUT_FILES if not (checkout / f).is_file()]
    setup = checkout / "setup.py"
    if missing or 'name="solo-learn"' not in setup.read_text():
        raise UpstreamError(
            f"{checkout} is not a solo-learn checkout"
            + (
                f" (missing: {', '.join(missing)})"
                if missing
                else " (setup.py is not solo-learn's)"
            )
            + ". Fix: give the root of a clone of https://github.com/vturrisi/solo-learn."
        )


def write_plan(checkout: Path, plan: Plan, dry_run: bool) -> Dict[str, str]:
    """Writes the files that differ; returns ``{path: new | changed | unchanged}``."""

    status = {}
    for path, text in sorted(plan.files.items()):
        target = checkout / path
        if not target.exists():
            status[path] = "new"
        elif target.read_text() != text:
            status[path] = "changed"
        else:
            status[path] = "unchanged"
        if not dry_run and status[path] != "unchanged":
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
    return status


def upstream(checkout: Path, dry_run: bool = False) -> Dict[str, str]:
    """Writes the CO methods into a solo-learn checkout (see the module docstring).

    Args:
        checkout (Path): the root of a solo-learn checkout.
        dry_run (bool): only say what would be written.

    Returns:
        Dict[str, str]: per written path (relative to ``checkout``): ``new``, ``changed`` or
        ``unchanged``.
    """

    checkout = Path(checkout).resolve()
    check_checkout(checkout)
    plan = Upstream(checkout).build()
    return write_plan(checkout, plan, dry_run)


def next_command(checkout: Path) -> str:
    """The shell command that runs the written CO method tests in ``checkout``: from its root, so
    that ``python -m`` imports that checkout's ``solo`` whichever solo-learn is installed."""

    return f"cd {shlex.quote(str(checkout))} && python -m pytest {NEXT_TESTS}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="solo-co-upstream",
        description="Write the CO methods into a solo-learn checkout, in the shape of a "
        "solo-learn pull request that adds a method (methods, losses, utils, backbones, "
        "configs, tests, docs, README line). See docs/upstream.md.",
    )
    parser.add_argument("solo_learn_dir", type=Path, help="root of a solo-learn checkout")
    parser.add_argument("--dry-run", action="store_true", help="say what would be written")
    args = parser.parse_args(argv)
    try:
        status = upstream(args.solo_learn_dir, dry_run=args.dry_run)
    except UpstreamError as error:
        print(f"solo-co-upstream: {error}", file=sys.stderr)
        return 2
    verb = "would write" if args.dry_run else "wrote"
    for path, state in status.items():
        if state != "unchanged":
            print(f"{state:9s} {path}")
    counts = {s: sum(v == s for v in status.values()) for s in ("new", "changed", "unchanged")}
    print(
        f"solo-co-upstream: {verb} {counts['new']} new and {counts['changed']} changed files "
        f"in {args.solo_learn_dir} ({counts['unchanged']} already up to date)"
    )
    if not args.dry_run:
        print(f"Next: {next_command(args.solo_learn_dir)}")
        print(
            "  (solo-learn's CO method tests, with its own solo/; solo-coplugin may stay "
            "installed.) docs/upstream.md says how to submit the pull request."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
