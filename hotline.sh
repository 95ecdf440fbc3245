#!/usr/bin/env bash
# Set up (idempotently) and run the hotline platform.
#   ./hotline.sh up     bring the whole system up with embedded defaults (SQLite, local Ray, bundled models, demo data)
#   ./hotline.sh test   run the full test suite (extra arguments go to pytest)
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(python3-venv sox libsox-fmt-all espeak-ng sip-tester kamailio kamailio-extra-modules baresip chromium fonts-noto-cjk libsndfile1 prometheus)
VENV=.venv
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

need_apt=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
command -v npm >/dev/null 2>&1 || need_apt+=(npm)  # vendors the UI's chart library at install time
if ((${#need_apt[@]})); then
  if [ "$(id -u)" = 0 ]; then
    echo "==> 安装系统依赖: ${need_apt[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}"
  else
    echo "缺少系统依赖。请先以 root 运行：" >&2
    echo "  sudo apt-get install -y ${need_apt[*]}" >&2
    exit 1
  fi
fi

"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "需要 Python 3.11 或更高版本" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"

stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "==> 安装 Python 依赖（首次较慢）"
  python -m pip install -q --upgrade pip
  # torch first, pinned: an unpinned torch would pull a multi-GB CUDA build
  python -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null \
    || python -m pip install -q torch==2.13.0
  python -m pip install -q -e ".[all]"
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi
scripts/vendor_assets.sh

case "${1:-}" in
  up)
    shift
    exec hotline serve "$@"
    ;;
  test)
    shift
    exec python -m pytest "$@"
    ;;
  *)
    echo "用法: ./hotline.sh up | ./hotline.sh test [pytest 参数]" >&2
    exit 2
    ;;
esac
