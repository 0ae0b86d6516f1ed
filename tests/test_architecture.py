"""The layout holds: imports point one way, parts meet through protocols, and one process
serves speech without any of the cluster's code.

Read from the source (``ast``), so the answers do not depend on what a run imported.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

SRC = Path(__file__).parents[1] / "src" / "voicepocket"

BELOW: dict[str, set[str]] = {
    "errors": set(),
    "settings": set(),
    "chunks": set(),
    "logs": set(),
    "children": set(),
    "text": {"errors"},
    "audio": {"chunks", "errors"},
    "voices": {"children", "chunks", "errors"},
    "pool": {"errors"},
    "store": {"errors", "settings"},
    "admission": {"errors"},
    "metrics": {"pool"},
    "registry": {"errors", "settings", "store", "voices"},
    "speech": {"chunks", "errors", "pool", "registry", "settings", "text", "voices"},
    "archive": {"errors", "registry", "store"},
    "engine": {"archive", "chunks", "errors", "registry", "settings", "speech", "store"},
    "synthesizer": {"admission", "audio", "chunks", "errors", "metrics", "speech"},
    "cache": {"chunks", "errors", "registry", "speech", "store"},
    "jobs": {"archive", "chunks", "errors", "registry", "synthesizer"},
    "training": {"children", "engine", "errors", "registry", "settings", "store", "text",
                 "voices"},
}
"""Each part below the API, and the parts it may import: nothing above itself."""

TOP = {"api", "cluster", "cli"}
"""Above every part in ``BELOW``: the HTTP API, the cluster, the command line."""

CLUSTER_MAY_USE_FROM_API = {"voicepocket.api.app", "voicepocket.api.state"}
"""What the cluster takes from the API: only what builds the ASGI app."""


def _modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(), filename=str(path))
    return found


def _imports(tree: ast.Module) -> set[str]:
    """Every ``voicepocket`` module a module imports, at any depth (lazy ones too)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n == "voicepocket" or n.startswith("voicepocket.")}


def _part(module: str) -> str:
    return module.split(".")[1] if "." in module else "voicepocket"


def test_every_module_is_in_a_known_part() -> None:
    parts = {_part(name) for name in _modules()}
    assert parts <= set(BELOW) | TOP | {"voicepocket", "__main__"}, parts - set(BELOW) - TOP


def test_imports_point_one_way() -> None:
    wrong = []
    for module, tree in _modules().items():
        part = _part(module)
        for imported in _imports(tree):
            target = _part(imported)
            if target in (part, "voicepocket"):
                continue
            if part in BELOW and target not in BELOW[part]:
                wrong.append(f"{module} imports {imported}")
            if part == "api" and target in {"cluster", "cli"}:
                wrong.append(f"{module} imports {imported}")
            if part == "cluster" and target == "api" and imported not in CLUSTER_MAY_USE_FROM_API:
                wrong.append(f"{module} imports {imported}")
    assert wrong == []


def test_no_class_subclasses_another_parts_concrete_class() -> None:
    """Parts meet through protocols: a class may extend a ``Protocol`` or an error from
    ``voicepocket.errors``, never another part's concrete class."""
    modules = _modules()
    protocols: dict[tuple[str, str], bool] = {}
    for module, tree in modules.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = {b.id for b in node.bases if isinstance(b, ast.Name)}
                protocols[(module, node.name)] = "Protocol" in bases
    wrong = []
    for module, tree in modules.items():
        origin = {
            alias.asname or alias.name: node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
            for alias in node.names
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            for base in node.bases:
                name = base.id if isinstance(base, ast.Name) else None
                source = origin.get(name or "")
                if source is None or not source.startswith("voicepocket"):
                    continue
                if _part(source) in (_part(module), "errors"):
                    continue
                if not protocols.get((source, name or ""), False):
                    wrong.append(f"{module}.{node.name} extends {source}.{name}")
    assert wrong == []


def test_no_override_or_pool_isinstance_work_arounds() -> None:
    text = "\n".join(p.read_text() for p in SRC.rglob("*.py"))
    assert "type: ignore[override]" not in text
    assert "isinstance(self.pool" not in text


def test_one_process_serves_speech_without_the_cluster(tmp_path: Path) -> None:
    """A speech request through the whole app (lifespan included) in a fresh interpreter,
    which then has imported no ``voicepocket.cluster`` module and no Ray."""
    program = textwrap.dedent(
        f"""
        import asyncio, sys
        import httpx
        from voicepocket.api.app import create_app
        from voicepocket.settings import Settings

        async def main():
            app = create_app(Settings(home={str(tmp_path / "home")!r}, workers=1))
            async with app.router.lifespan_context(app):
                services = app.state.services
                _, key = services.engine.registry.keys.create("alice")
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                    r = await c.post("/v1/audio/speech",
                                     headers={{"Authorization": "Bearer " + key}},
                                     json={{"voice": "joe", "input": "One process.",
                                            "response_format": "pcm"}})
                    assert r.status_code == 200 and len(r.content) > 10_000, r.text
            loaded = sorted(m for m in sys.modules if m.startswith("voicepocket.cluster")
                            or m == "ray" or m.startswith("ray."))
            print("LOADED", loaded)

        asyncio.run(main())
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "LOADED []" in completed.stdout, completed.stdout
