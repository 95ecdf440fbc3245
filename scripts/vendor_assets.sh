#!/usr/bin/env bash
# Vendor the web UI's chart library (Apache ECharts) from the npm registry into serving/web/vendor/.
# The UI is served by the app itself (no CDN): the hotline runs on a government network without internet.
# Idempotent; verifies the tarball against its pinned registry integrity (sha512).
set -euo pipefail
cd "$(dirname "$0")/.."

ECHARTS_VERSION=5.6.0
ECHARTS_INTEGRITY="sha512-oTbVTsXfKuEhxftHqL5xprgLoc0k7uScAwtryCgWF6hPYFLRwOUHiFmHGCBKP5NPFNkDVopOieyUqYGH8Fa3kA=="
DEST=serving/web/vendor/echarts
STAMP="$DEST/.version-$ECHARTS_VERSION"

[ -f "$STAMP" ] && [ -f "$DEST/echarts.min.js" ] && exit 0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tarball="$work/echarts-$ECHARTS_VERSION.tgz"
echo "==> 获取图表库 echarts@$ECHARTS_VERSION"
(cd "$work" && npm pack --silent "echarts@$ECHARTS_VERSION" >/dev/null)
actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [ "$actual" != "$ECHARTS_INTEGRITY" ]; then
  echo "echarts 包校验失败：$actual" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$work" package/dist/echarts.min.js package/LICENSE package/NOTICE
rm -rf "$DEST"
mkdir -p "$DEST"
cp "$work/package/dist/echarts.min.js" "$work/package/LICENSE" "$work/package/NOTICE" "$DEST/"
touch "$STAMP"
echo "==> 已安装 $DEST/echarts.min.js"
