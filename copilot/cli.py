"""`hotline category ...`: retrain the ticket category model on a deployment's own tickets."""
from __future__ import annotations

from pathlib import Path

import typer

category_app = typer.Typer(help="工单分类模型：训练与评估。", no_args_is_help=True)


@category_app.command("train")
def train(
    data: Path = typer.Option(None, exists=True, dir_okay=False,
                              help="Historical tickets JSONL (text, label = taxonomy path); default: the shipped data we wrote."),
    out: Path = typer.Option(None, help="Model file; default: HOTLINE_CATEGORY_MODEL_PATH or <data_dir>/models/category_default.joblib."),
    allow_unknown_labels: bool = typer.Option(False, help="Accept labels that are not paths of the configured taxonomy."),
) -> None:
    """训练工单分类模型（标签必须是分类体系中的完整路径）。"""
    from copilot.category import (SHIPPED_TRAINED_ON, CategoryModel, Taxonomy, default_model_path, read_labelled,
                                  shipped_training_data)
    from domain.errors import AppError
    from domain.settings import get_settings
    from knowledge.embedding import configured_embedder

    settings = get_settings()
    if data:
        texts, labels = read_labelled(data)
        unknown = Taxonomy.load(settings.taxonomy_path).unknown(labels)
        if unknown and not allow_unknown_labels:
            raise AppError("unknown_labels", f"{len(unknown)} 个标签不在分类体系中：{'、'.join(unknown[:10])}")
        source = f"{data.name} ({len(texts)} examples)"
    else:
        texts, labels = shipped_training_data()
        source = SHIPPED_TRAINED_ON.format(n=len(texts))
    emb = configured_embedder(settings)
    model = CategoryModel.train(texts, labels, emb, trained_on=source)
    target = out or settings.category_model_path or default_model_path(settings.data_dir)
    model.save(target)
    typer.echo(f"category model ({len(set(labels))} labels, trained on {source}) written to {target}")


def register(app: typer.Typer) -> None:
    app.add_typer(category_app, name="category")
