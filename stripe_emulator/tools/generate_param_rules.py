"""Write ``stripe_emulator/param_rules.json`` from stripe-python's generated parameter types.

Run at development time, with stripe-python installed (the project's venv)::

    .venv/bin/python -m stripe_emulator.tools.generate_param_rules [--check]

stripe-python's ``stripe/params/**`` holds one ``*Params`` TypedDict per API method,
generated from Stripe's OpenAPI spec: the keys a method takes, which are required
(``NotRequired`` marks the others), their types (``str``, ``int``, ``bool``, ``Decimal``,
``List[...]``, ``Dict[str, ...]``, nested TypedDicts), enums (``Literal[...]``; the
trailing ``|str`` is the client's forward-compatibility escape, not a server rule) and
which may be posted empty to unset them (``Literal['']``). Its ``*_service.py`` modules
name the HTTP method and path of each. This script reads both as source text (``ast``:
stripe is never imported, so the emulator's "no stripe-python" contract holds), keeps the
endpoints the emulator serves, and writes the rules the emulator checks every request
against (``stripe_emulator/param_rules.py``). Length limits: the ones the docstrings state
("Maximum 22 characters", "This may be up to 200 characters"); any other string gets
Stripe's common OpenAPI ``maxLength`` of 5000 (see the README, Emulator).

``--check`` exits 1 when the committed file differs from what would be written.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "param_rules.json"
DEFAULT_MAX_LENGTH = 5000
_LIMIT_PATTERNS = (
    r"[Mm]aximum (\d+) characters",
    r"[Mm]ust be at most (\d+) characters",
    r"[Aa]t most (\d+) characters",
    r"[Mm]ay be up to (\d+) characters",
    r"[Uu]p to (\d+) characters",
)
_PLACEHOLDER = re.compile(r"\{[^}]+\}")


def stripe_root() -> Path:
    spec = importlib.util.find_spec("stripe")
    if spec is None or spec.origin is None:
        raise SystemExit("stripe-python is not installed: run with the project's venv")
    return Path(spec.origin).parent


def stripe_version(root: Path) -> str:
    text = (root / "_version.py").read_text()
    return re.search(r"VERSION\s*=\s*\"([^\"]+)\"", text).group(1)


# -- the services: (METHOD, path template) -> Params class name --------------------------
def service_endpoints(root: Path) -> dict[tuple[str, str], tuple[Path, str]]:
    """(METHOD, path) -> (the params module file, the Params class name). v1 and v2 reuse
    class names (``MeterEventCreateParams``), so the module comes from the service's
    own import of it."""
    found: dict[tuple[str, str], tuple[Path, str]] = {}
    for path in sorted(root.rglob("_*_service.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules = {
            alias.name: root.parent.joinpath(*node.module.split(".")).with_suffix(".py")
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("stripe.params")
            for alias in node.names
        }
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef):
                continue
            params_class = _params_annotation(fn)
            call = _request_call(fn)
            if params_class in modules and call:
                found.setdefault(call, (modules[params_class], params_class))
    return found


def _params_annotation(fn: ast.FunctionDef) -> str | None:
    for arg in fn.args.args + fn.args.kwonlyargs:
        if arg.arg == "params" and arg.annotation is not None:
            names = re.findall(r"\b(\w+Params)\b", ast.unparse(arg.annotation))
            return names[0] if names else None
    return None


def _request_call(fn: ast.FunctionDef) -> tuple[str, str] | None:
    for node in ast.walk(fn):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in ("_request", "_request_stream") or len(node.args) < 2:
            continue
        method, path = node.args[0], node.args[1]
        if isinstance(path, ast.Call) and isinstance(path.func, ast.Attribute):
            path = path.func.value  # "/v1/customers/{customer}".format(...)
        if isinstance(method, ast.Constant) and isinstance(path, ast.Constant):
            return method.value.upper(), _PLACEHOLDER.sub("{}", path.value)
    return None


# -- the params modules: class name -> (fields, required) --------------------------------
class ParamsIndex:
    """Every TypedDict of ``stripe/params/**`` under a qualified name: ``Name`` in the
    root package, ``v2.billing.Name`` in a subpackage (v1 and v2 share class names)."""

    def __init__(self, root: Path):
        self.params = root / "params"
        self.classes: dict[str, list[tuple[str, ast.expr, str]]] = {}
        self.totals: dict[str, bool] = {}
        self.file_of: dict[str, Path] = {}
        self.in_file: dict[Path, dict[str, str]] = {}
        self.in_package: dict[Path, dict[str, str]] = {}
        for path in sorted(self.params.rglob("*.py")):
            self._file = path
            self._read(ast.parse(path.read_text(encoding="utf-8")))

    def qualified(self, path: Path, name: str) -> str:
        package = ".".join(path.parent.relative_to(self.params).parts)
        return f"{package}.{name}" if package else name

    def resolve(self, name: str, context: Path) -> str | None:
        """The class ``name`` as seen from the module ``context``: the module's own, else
        its package's, else the root package's."""
        return (
            self.in_file.get(context, {}).get(name)
            or self.in_package.get(context.parent, {}).get(name)
            or self.in_package.get(self.params, {}).get(name)
        )

    def _define(self, name: str, fields: list, total: bool) -> None:
        key = self.qualified(self._file, name)
        self.in_file.setdefault(self._file, {})[name] = key
        self.in_package.setdefault(self._file.parent, {}).setdefault(name, key)
        if key not in self.classes:
            self.classes[key], self.totals[key], self.file_of[key] = fields, total, self._file

    def _read(self, tree: ast.Module) -> None:
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                fields = []
                body = node.body
                for i, stmt in enumerate(body):
                    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                        doc = ""
                        nxt = body[i + 1] if i + 1 < len(body) else None
                        if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
                            doc = str(nxt.value.value)
                        fields.append((stmt.target.id, stmt.annotation, doc))
                total = next((k.value for k in node.keywords if k.arg == "total"), None)
                self._define(
                    node.name,
                    fields,
                    not (isinstance(total, ast.Constant) and total.value is False),
                )
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                call = node.value  # X = TypedDict("X", {"in": ...}) for keyword names
                if getattr(call.func, "id", "") == "TypedDict" and len(call.args) == 2:
                    name = node.targets[0].id
                    keys = call.args[1]
                    if isinstance(keys, ast.Dict):
                        pairs = zip(keys.keys, keys.values, strict=True)
                        self._define(name, [(k.value, v, "") for k, v in pairs], True)


class Builder:
    """Turns annotations into rule nodes; nested TypedDicts go to ``defs`` by name."""

    def __init__(self, index: ParamsIndex):
        self.index = index
        self.defs: dict[str, dict] = {}

    def object_rule(self, name: str) -> dict:
        """The rule of the class with qualified ``name`` (kept once in ``defs``)."""
        if name not in self.defs:
            self.defs[name] = {}  # placeholder: recursive types
            context = self.index.file_of[name]
            fields, required = {}, []
            for key, annotation, doc in self.index.classes[name]:
                optional, node = self._strip_not_required(annotation)
                fields[key] = self.rule(node, context, doc)
                if not optional and self.index.totals.get(name, True):
                    required.append(key)
            self.defs[name] = {"t": "obj", "f": fields, "req": sorted(required)}
        return {"ref": name}

    @staticmethod
    def _parse(node: ast.expr) -> ast.expr:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return ast.parse(node.value, mode="eval").body
        return node

    def _strip_not_required(self, node: ast.expr) -> tuple[bool, ast.expr]:
        node = self._parse(node)
        if isinstance(node, ast.Subscript) and getattr(node.value, "id", "") in (
            "NotRequired",
            "Required",
        ):
            return node.value.id == "NotRequired", self._parse(node.slice)
        return False, node

    def _alternatives(self, node: ast.expr) -> list[ast.expr]:
        node = self._parse(node)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return self._alternatives(node.left) + self._alternatives(node.right)
        if isinstance(node, ast.Subscript) and getattr(node.value, "id", "") in (
            "Union",
            "Optional",
        ):
            inner = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            return [a for x in inner for a in self._alternatives(x)]
        return [node]

    def rule(self, annotation: ast.expr, context: Path, doc: str = "") -> dict:
        alternatives = self._alternatives(annotation)
        empty = False
        enum: list = []
        rules: list[dict] = []
        for alt in alternatives:
            if isinstance(alt, ast.Subscript) and getattr(alt.value, "id", "") == "Literal":
                values = alt.slice.elts if isinstance(alt.slice, ast.Tuple) else [alt.slice]
                for v in values:
                    if v.value == "":
                        empty = True
                    else:
                        enum.append(v.value)
            else:
                rules.append(self._single(alt, context, doc))
        if enum:
            if all(isinstance(v, bool) for v in enum):
                enum_rule = {"t": "bool"}
            else:
                enum_rule = {"t": "enum", "v": [str(v) for v in enum]}
            # "Literal[...]|str": the client's escape for values added later, not a rule
            rules = [r for r in rules if r.get("t") != "str"] + [enum_rule]
        unique: list[dict] = []
        for r in rules:
            if r not in unique:
                unique.append(r)
        out = unique[0] if len(unique) == 1 else {"t": "any", "of": unique}
        if empty:
            out = {**out, "empty": True}
        return out

    def _single(self, node: ast.expr, context: Path, doc: str) -> dict:
        node = self._parse(node)
        if isinstance(node, ast.Name):
            if node.id == "str":
                return {"t": "str", "max": _max_length(doc)}
            if node.id == "int":
                return {"t": "int"}
            if node.id == "bool":
                return {"t": "bool"}
            if node.id in ("float", "Decimal"):
                return {"t": "num"}
            if node.id in ("Any", "object"):
                return {"t": "any", "of": []}
            name = self.index.resolve(node.id, context)
            if name is not None:
                return self.object_rule(name)
            raise ValueError(f"unknown type {node.id}")
        if isinstance(node, ast.Subscript):
            head = getattr(node.value, "id", "")
            if head == "List":
                return {"t": "arr", "i": self.rule(node.slice, context)}
            if head in ("Dict", "UntypedStripeObject"):
                value = node.slice.elts[1] if isinstance(node.slice, ast.Tuple) else node.slice
                return {"t": "map", "v": self.rule(value, context, doc)}
        raise ValueError(f"unsupported annotation {ast.unparse(node)}")


def _max_length(doc: str) -> int:
    for pattern in _LIMIT_PATTERNS:
        found = re.search(pattern, doc)
        if found:
            return int(found.group(1))
    return DEFAULT_MAX_LENGTH


# -- the emulator's routes ---------------------------------------------------------------
def emulator_routes() -> list[tuple[str, str]]:
    from stripe_emulator import resources  # noqa: F401  (registers the routes)
    from stripe_emulator.routing import ROUTES

    return sorted(
        {(r.method, r.template) for r in ROUTES if r.template.startswith(("/v1/", "/v2/"))}
    )


def build() -> dict:
    root = stripe_root()
    endpoints = service_endpoints(root)
    index = ParamsIndex(root)
    builder = Builder(index)
    served, unmatched = {}, []
    for method, template in emulator_routes():
        found = endpoints.get((method, _PLACEHOLDER.sub("{}", template)))
        if found is None:
            unmatched.append(f"{method} {template}")
            continue
        name = index.resolve(found[1], found[0])
        builder.object_rule(name)
        served[f"{method} {template}"] = name
    return {
        "source": f"stripe-python {stripe_version(root)} (stripe/params/**, *_service.py)",
        "default_max_length": DEFAULT_MAX_LENGTH,
        "endpoints": served,
        "unchecked": unmatched,
        "defs": dict(sorted(builder.defs.items())),
    }


def render(rules: dict) -> str:
    return json.dumps(rules, indent=0, sort_keys=True, separators=(",", ":")) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    text = render(build())
    if args.check:
        current = OUT.read_text() if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is stale: regenerate it", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT} ({len(text):,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
