#!/usr/bin/env bash
# Runs every test of Sluice. On a fresh Debian machine it first installs what
# the tests need (Debian packages as root, npm packages into tests/node).
# Usage: scripts/test.sh            everything
#        SKIP_INSTALL=1 scripts/test.sh   no installs, for a machine already set up
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }

install_debian() {
  local missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v curl >/dev/null 2>&1 || missing+=(curl) # ui.test.js posts to /live with it
  command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
  [ ${#missing[@]} -eq 0 ] && return
  say "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

if [ -z "${SKIP_INSTALL:-}" ]; then
  install_debian
  say "installing npm packages (tests/node)"
  (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
fi

say "go vet"
go vet ./...

say "go test -race"
go test -race -count=1 ./...

# A count, not a duration: with -fuzztime=<duration>, Go 1.26's fuzzing
# coordinator can fail a target with "context deadline exceeded" at the
# deadline although it found nothing (golang/go#75804, fixed in Go 1.27).
say "fuzzing briefly (seed corpora in the tests and */testdata/fuzz)"
go list -f '{{.Dir}} {{.ImportPath}}' ./... | while read -r dir pkg; do
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    go test -run='^$' -fuzz="^$f\$" -fuzztime="${FUZZTIME:-20000x}" "$pkg"
  done
done

say "node tests (official SDKs, headless Chromium)"
# One build for every test file, instead of one in each file's process.
bin_dir=$(mktemp -d)
trap 'rm -rf "$bin_dir"' EXIT
go build -o "$bin_dir/sluice" ./cmd/sluice
(cd tests/node && SLUICE_BIN="$bin_dir/sluice" npm test)
