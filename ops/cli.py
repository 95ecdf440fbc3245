"""`hotline backup DEST` and `hotline restore SRC`."""
from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("backup")
    def backup_cmd(
        dest: Path = typer.Argument(..., help="备份目录（新建或空目录）"),
        previous: Path = typer.Option(None, exists=True, file_okay=False,
                                      help="上一份备份：未变化的文件以硬链接复用（同一文件系统），只复制新增与变化的文件"),
    ) -> None:
        """在线备份：数据库一致性快照（SQLite 在线备份 / pg_dump）、录音、模型与安装密钥，附清单与校验和；通话进行中也可执行。"""
        from domain.json_output import emit
        from domain.settings import get_settings
        from ops.backup import backup

        st = get_settings()
        manifest = backup(dest, db_url=st.sqlalchemy_url, data_dir=st.data_dir, previous=previous)
        emit({"backup": str(dest), "taken_at": manifest["taken_at"], "backend": manifest["backend"],
              "files": len(manifest["files"]), "linked_from_previous": manifest["linked_from_previous"], "bytes": manifest["database"]["bytes"]
              + sum(f["bytes"] for f in manifest["files"].values()), "seconds": manifest["seconds"]}, None)

    @app.command("restore")
    def restore_cmd(src: Path = typer.Argument(..., exists=True, file_okay=False, help="备份目录")) -> None:
        """从备份恢复到全新的数据目录（HOTLINE_DATA_DIR）与空数据库（HOTLINE_DATABASE_URL），先逐个核对校验和。"""
        from domain.db import upgrade
        from domain.json_output import emit
        from domain.settings import get_settings
        from ops.backup import restore

        st = get_settings()
        summary = restore(src, db_url=st.sqlalchemy_url, data_dir=st.data_dir)
        upgrade(st.sqlalchemy_url)  # a backup of an older release is migrated to this one
        emit(summary, None)
