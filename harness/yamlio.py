"""YAML reading for config files and command-line values, safe against hostile input.

The loader is PyYAML's SafeLoader, plus:
- `1e-3` reads as a float (PyYAML's YAML 1.1 reads it as a string);
- limits, checked while the document is composed, before any value is built: nesting depth,
  the size of the document once aliases are expanded (a "billion laughs" of nested anchors is
  refused from its few hundred bytes, never expanded), the size of the file and the digits of
  an integer;
- a key given twice in one mapping is an error naming the key and both lines (YAML says keys
  are unique; PyYAML silently keeps the last).
"""

import re
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, ScalarNode

from harness.errors import UserError, cut

MAX_DEPTH = 32  # nesting of mappings and lists; experiments.yaml needs 5
MAX_NODES = 100_000  # values in the document with every alias expanded
MAX_BYTES = 1 << 20  # a config file is a few KB
MAX_INT_DIGITS = 30  # any setting fits in 20 (a seed below 2**64)


class LimitError(yaml.MarkedYAMLError):
    """The document breaks a limit above, or repeats a key: refused, never read as a string."""

    def __init__(self, problem: str, mark=None):
        super().__init__(None, None, problem, mark)


class _Loader(yaml.SafeLoader):
    _depth = 0

    def compose_node(self, parent, index):
        # PyYAML composes recursively: a document nested thousands deep would end in a
        # RecursionError, so the depth is counted on the way down.
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise LimitError(f"nested more than {MAX_DEPTH} levels deep", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self):
        node = super().compose_document()
        _check_expanded_size(node)
        return node

    def construct_mapping(self, node, deep=False):
        if isinstance(node, MappingNode):
            _check_duplicate_keys(node)
        return super().construct_mapping(node, deep=deep)


def _check_expanded_size(root) -> None:
    """Refuse a document whose node count, aliases expanded, exceeds MAX_NODES.

    Counted over the node graph with one memo per node, so a bomb costs its own size to check."""
    sizes: dict[int, int] = {}
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if isinstance(node, ScalarNode):
            sizes[id(node)] = 1
            continue
        kids = (
            [n for pair in node.value for n in pair]
            if isinstance(node, MappingNode)
            else list(node.value)
        )
        if children_done:
            sizes[id(node)] = 1 + sum(sizes.get(id(k), 0) for k in kids)
            if sizes[id(node)] > MAX_NODES:
                raise LimitError(
                    f"the document holds more than {MAX_NODES:,} values once its aliases are "
                    "expanded (an alias bomb?)"
                )
        else:
            stack.append((node, True))
            stack.extend((k, False) for k in kids if id(k) not in sizes)


def _check_duplicate_keys(node: MappingNode) -> None:
    seen: dict[tuple[str, str], int] = {}
    for key, _ in node.value:
        if not isinstance(key, ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        line, k = key.start_mark.line + 1, (key.tag, key.value)
        if k not in seen:
            seen[k] = line
        else:
            first = seen[k]
            both = f"twice on line {line}" if first == line else f"at line {first} and line {line}"
            raise LimitError(f"key {cut(key.value, 80)!r} is given {both}", key.start_mark)


def _construct_int(loader, node):
    digits = len(node.value.lstrip("+-").replace("_", ""))
    if digits > MAX_INT_DIGITS:
        raise LimitError(
            f"an integer of {digits} digits (at most {MAX_INT_DIGITS})", node.start_mark
        )
    return yaml.SafeLoader.construct_yaml_int(loader, node)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)

_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def _problem(e: yaml.YAMLError) -> str:
    """`at line L, column C: what` from any YAML error, one line."""
    mark = getattr(e, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(e, "problem", None) or (str(e).strip().splitlines() or ["?"])[0]
    return f"{where}: {problem}"


def _load(text: str):
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def parse_value(text: str, where: str = "command line"):
    """Parse one command-line value as YAML (`0.1` -> float, `true` -> bool, `[1, 2]` -> list).

    Text that is not valid YAML is kept as a string; a value beyond the limits (nested too
    deep, an alias bomb, an integer thousands of digits long) is a `UserError` naming `where`.
    """
    if len(text) > MAX_BYTES:
        raise UserError(f"{where}: value of {len(text):,} characters (at most {MAX_BYTES:,})")
    try:
        return _load(text)
    except LimitError as e:
        raise UserError(f"{where}: value refused{_problem(e)}") from None
    except yaml.YAMLError:
        return text


def read_yaml(path: Path) -> dict:
    """Read a YAML mapping; a missing file, a folder, a file that is not UTF-8 text, malformed
    YAML, a duplicate key, a document beyond the limits or a non-mapping is a `UserError`."""
    if path.is_dir():
        raise UserError(f"{path}: is a folder; expected a YAML file")
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise UserError(f"{path}: {size:,} bytes; a config file is at most {MAX_BYTES:,}")
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: cannot be read: {e.strerror or e}") from None
    if b"\0" in raw:
        raise UserError(f"{path}: a binary file (it holds NUL bytes); expected YAML text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(
            f"{path}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); "
            "save it as UTF-8"
        ) from None
    try:
        data = _load(text)
    except yaml.YAMLError as e:
        raise UserError(f"{path}: malformed YAML{_problem(e)}") from None
    if not isinstance(data, dict):
        raise UserError(
            f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}"
        )
    return data
