"""The package's imports run one way: no module reaches back to one that imports it, and no
layer of the flow imports a later one (:data:`LAYERS`).

The graph is built statically with ``ast`` from every ``import`` / ``from ... import`` of a
``songglm_jax`` module anywhere in a file (top level, inside functions, under ``if``), so an
import moved into a function to dodge a circle still counts as the circle it is.

An edge goes from a module to each ``songglm_jax`` module it names: ``import a.b`` and
``from a import b`` (``b`` a submodule) name ``a.b``; ``from a import name`` (``name`` not a
submodule) and ``from a.b import name`` name the module that defines ``name``. Python also runs
a package's ``__init__`` before any of its submodules; that implicit step is not an edge (the
package ``__init__`` files only re-export or load lazily).
"""

from __future__ import annotations

import ast
import pathlib
from typing import Dict, List, Optional, Set

PACKAGE = 'songglm_jax'
ROOT = pathlib.Path(__file__).resolve().parent.parent / PACKAGE

# The flow, first to last: a module imports only modules of its own layer or an earlier one.
# Each layer is the folders and top-level modules of the package it holds (a top-level
# module not listed here fails the test: give it a layer).
LAYERS = (
    ('plumbing', ('atomic', 'cli')),         # shared by every layer; imports nothing of ours
    ('music', ('music',)),
    ('metrics', ('metrics',)),               # depends on music only
    ('data', ('data',)),
    ('model', ('model',)),
    ('train', ('train', 'config')),          # config: every field, read by train and above
    ('inference', ('inference',)),
    ('job', ('job',)),                       # the main job's stages
    ('programs', ('main', 'prepare', 'lexicon', 'generate', 'evaluate')),
)


def _module_names(root: pathlib.Path) -> Dict[str, pathlib.Path]:
  """Dotted module name → file, for every ``.py`` under ``root`` (packages by ``__init__``)."""
  names = {}
  for path in sorted(root.rglob('*.py')):
    parts = list(path.relative_to(root.parent).with_suffix('').parts)
    if parts[-1] == '__init__':
      parts = parts[:-1]
    names['.'.join(parts)] = path
  return names


def _resolve_from(module: str, is_package: bool, node: ast.ImportFrom) -> Optional[str]:
  """The absolute module a ``from X import ...`` names (relative levels resolved)."""
  if not node.level:
    return node.module
  base = module.split('.') if is_package else module.split('.')[:-1]
  base = base[:len(base) - (node.level - 1)]
  return '.'.join(base + ([node.module] if node.module else []))


def import_graph(root: pathlib.Path = ROOT) -> Dict[str, Set[str]]:
  """Module → the ``songglm_jax`` modules it imports anywhere in its file."""
  modules = _module_names(root)
  graph: Dict[str, Set[str]] = {name: set() for name in modules}
  for name, path in modules.items():
    is_package = path.name == '__init__.py'
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
      targets: List[str] = []
      if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
      elif isinstance(node, ast.ImportFrom):
        base = _resolve_from(name, is_package, node)
        if base is None:
          continue
        for alias in node.names:
          sub = f'{base}.{alias.name}'
          targets.append(sub if sub in modules else base)
      for target in targets:
        # `import a.b.c` names a.b.c; keep the longest prefix that is one of ours.
        while target and target not in modules:
          target = target.rpartition('.')[0]
        if target and target != name:
          graph[name].add(target)
  return graph


def find_cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
  """Every strongly connected component with more than one module (Tarjan), each as a sorted
  list; a module importing itself is also reported."""
  index: Dict[str, int] = {}
  low: Dict[str, int] = {}
  stack: List[str] = []
  on_stack: Set[str] = set()
  cycles: List[List[str]] = []

  def visit(v: str) -> None:
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(graph.get(v, ())):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1 or v in graph.get(v, ()):
        cycles.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return sorted(cycles)


def layer_of(module: str) -> Optional[int]:
  """The index in :data:`LAYERS` of a ``songglm_jax`` module (None: the package itself)."""
  parts = module.split('.')
  if len(parts) == 1:
    return None
  for i, (_, members) in enumerate(LAYERS):
    if parts[1] in members:
      return i
  raise KeyError(f'{module}: in no layer of LAYERS (tests/test_imports.py)')


def upward_imports(graph: Dict[str, Set[str]]) -> List[str]:
  """``a -> b (layer of a < layer of b)`` for every import that reaches a later layer."""
  out = []
  for a in sorted(graph):
    for b in sorted(graph[a]):
      la, lb = layer_of(a), layer_of(b)
      if la is not None and lb is not None and lb > la:
        out.append(f'{a} -> {b} ({LAYERS[la][0]} < {LAYERS[lb][0]})')
  return out


def _describe(cycle: List[str], graph: Dict[str, Set[str]]) -> str:
  """One line per cycle: its modules and the import edges among them."""
  members = set(cycle)
  edges = [f'{a} -> {b}' for a in cycle for b in sorted(graph[a] & members)]
  return f"{' <-> '.join(cycle)}  ({'; '.join(edges)})"


def test_graph_sees_function_level_and_relative_imports(tmp_path):
  pkg = tmp_path / 'pkg'
  (pkg / 'sub').mkdir(parents=True)
  (pkg / '__init__.py').write_text('')
  (pkg / 'sub' / '__init__.py').write_text('')
  (pkg / 'sub' / 'a.py').write_text('from pkg.sub import b as b_lib\n')
  (pkg / 'sub' / 'b.py').write_text('def f():\n  from . import a\n  return a\n')
  (pkg / 'c.py').write_text('import pkg.sub.a\nfrom pkg.sub.b import f\n')
  graph = import_graph(pkg)
  assert graph['pkg.sub.a'] == {'pkg.sub.b'}
  assert graph['pkg.sub.b'] == {'pkg.sub.a'}
  assert graph['pkg.c'] == {'pkg.sub.a', 'pkg.sub.b'}
  assert find_cycles(graph) == [['pkg.sub.a', 'pkg.sub.b']]


def test_graph_finds_longer_cycles():
  graph = {'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}
  assert find_cycles(graph) == [['a', 'b', 'c']]
  assert find_cycles({'a': {'b'}, 'b': set()}) == []


def test_package_has_no_import_cycles():
  graph = import_graph()
  assert len(graph) > 50, sorted(graph)  # the walk found the package
  cycles = find_cycles(graph)
  assert not cycles, 'import cycles:\n' + '\n'.join(_describe(c, graph) for c in cycles)


def test_upward_imports_are_found():
  graph = {'songglm_jax.music.song': {'songglm_jax.atomic'},
           'songglm_jax.data.records': {'songglm_jax.music.song', 'songglm_jax.job.stages'},
           'songglm_jax.generate': {'songglm_jax.inference.generation'}}
  assert upward_imports(graph) == [
      'songglm_jax.data.records -> songglm_jax.job.stages (data < job)']


def test_every_module_has_a_layer():
  for module in import_graph():
    layer_of(module)  # KeyError names a module no layer holds


def test_imports_run_down_the_layers():
  upward = upward_imports(import_graph())
  assert not upward, 'imports of a later layer:\n' + '\n'.join(upward)
