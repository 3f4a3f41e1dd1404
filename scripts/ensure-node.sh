#!/bin/sh
# Runs before `npm start` and `npm test`: installs the npm packages when they are missing or older than
# package-lock.json. Node 22 arrives as the `node` npm package (node_modules/.bin/node), which npm puts
# first on the PATH of every npm script; the machine's own Node may be older.
set -eu
cd "$(dirname "$0")/.."
stamp=node_modules/.package-lock.json
if [ ! -x node_modules/.bin/node ] || [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  echo "ballast: installing npm packages (npm ci)" >&2
  if ! npm ci --no-audit --no-fund --loglevel=error; then
    echo "ballast: error: npm ci failed. Check the network access to the npm registry, then run: npm ci" >&2
    exit 1
  fi
fi
v=$(node_modules/.bin/node -p 'process.versions.node')
case "$v" in
  2[2-9].*|[3-9][0-9].*) ;;
  *) echo "ballast: error: node_modules/.bin/node is Node $v; ballast needs Node >= 22.18. Run: npm ci" >&2; exit 1 ;;
esac
