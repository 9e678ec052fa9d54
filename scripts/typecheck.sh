#!/usr/bin/env bash
# mypy needs the installed layout (component folders mapped into `mxha`), which an
# editable install hides behind an import hook: build a symlink tree of it and check that.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=build/typecheck
rm -rf "$tree"
mkdir -p "$tree/mxha"
for f in mxha/*.py; do ln -s "../../../$f" "$tree/mxha/$(basename "$f")"; done
for c in exporter remediator lab alerts dashboards; do ln -s "../../../$c" "$tree/mxha/$c"; done
MYPYPATH="$tree" exec "${MYPY:-.venv/bin/mypy}" -p mxha "$@"
