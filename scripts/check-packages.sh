#!/usr/bin/env bash
# Packaging lint of every published package: publint (exports, files, fields) and arethetypeswrong (the types each
# export subpath resolves to, ESM consumers). Both work on a local `npm pack` and need no network. Needs dist/
# (npm install builds it; so does `npx tsc -b`).
set -euo pipefail
cd "$(dirname "$0")/.."
for pkg in protocol server client react synchrod; do
  echo "== packages/$pkg"
  (cd "packages/$pkg" && npx --no-install publint --strict)
  npx --no-install attw --pack "packages/$pkg" --profile esm-only --format table-flipped
done

# What `npm install` promises a user's script: the built packages import with plain node (no tsx, no conditions).
for spec in @synchro/protocol @synchro/server @synchro/server/node @synchro/client @synchro/client/better-sqlite3 @synchro/react; do
  node --input-type=module -e "const m = await import('$spec'); if (!Object.keys(m).length) throw new Error('$spec exports nothing'); console.log('$spec: ' + Object.keys(m).length + ' exports')"
done
