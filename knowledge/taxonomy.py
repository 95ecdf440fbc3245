"""The configurable 3-level ticket category taxonomy (JSON: a tree of {code, name, children} and/or ``paths``).

The bundled ``taxonomy.json`` is the CC0 taxonomy of the project's synthetic
calls; a deployment points ``HOTLINE_TAXONOMY_PATH`` at its own.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from domain.errors import AppError

TAXONOMY_PATH = Path(__file__).with_name("taxonomy.json")


@dataclass(frozen=True)
class Taxonomy:
    name: str
    paths: tuple[str, ...]
    separator: str = "/"

    @classmethod
    def load(cls, path: Path | None = None) -> "Taxonomy":
        path = path or TAXONOMY_PATH
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise AppError("bad_taxonomy", f"无法读取分类体系文件 {path}：{e}") from e
        sep = data.get("path_separator", "/")
        paths = list(data.get("paths") or [])
        if not paths:  # derive from the tree
            def walk(nodes, prefix):
                for n in nodes:
                    p = prefix + [n["name"]]
                    if n.get("children"):
                        walk(n["children"], p)
                    else:
                        paths.append(sep.join(p))
            walk(data.get("categories", []), [])
        if not paths:
            raise AppError("bad_taxonomy", f"分类体系 {path} 没有任何分类")
        return cls(data.get("name", ""), tuple(paths), sep)

    def level(self, path: str, n: int) -> str:
        return self.separator.join(path.split(self.separator)[:n])

    def unknown(self, labels: list[str]) -> list[str]:
        known = set(self.paths)
        return sorted({label for label in labels if label not in known})
