#!/usr/bin/env bash
# Runs every test of Sluice. First it checks what the tests need and, on
# Debian 12 or a machine already set up, installs what is missing: Debian
# packages (as root, or with sudo), a Node from the npm registry when the
# system's is too old, and the npm packages of tests/node. What it cannot
# install, it names, with what to do, and stops before running anything.
#
# Usage: scripts/test.sh                  check, install what is missing, test
#        SKIP_INSTALL=1 scripts/test.sh   check only: stop if anything is missing
# Environment: FUZZTIME (default 20000x), CHROMIUM (default /usr/bin/chromium).
set -euo pipefail
cd "$(dirname "$0")/.."

# The Debian packages the tests need, checked by name with dpkg: a name added
# here (a server that tests start, a tool they run) is installed when missing.
# gcc and libc6-dev: `go test -race` needs cgo, and Debian's gcc without its
# recommended packages cannot link a program (no C library headers or crt1.o).
# prometheus: its promtool lints what GET /metrics serves (cmd/sluice's
# metrics tests fail without it). The package also holds the Prometheus
# server, which the tests neither start nor use.
# openssl: tests/node makes the certificates its HTTPS server serves.
# redis-server (with redis-tools' redis-cli): the Redis store's tests start
# real servers and a three-master cluster; Debian 12's 7.0 has sharded pub/sub.
# nginx: tests/cluster runs three nodes behind it, as docs/scale-out.md
# configures it (started as a plain process; the package's service is not used).
# postgresql: the PostgreSQL conversation store's tests start real servers,
# initdb into a temporary directory (internal/testenv finds initdb and postgres
# in /usr/lib/postgresql/*/bin, where Debian puts them off PATH, and runs them
# as the package's postgres user when the tests run as root, which PostgreSQL
# refuses). The package's own cluster and service are not used.
DEBIAN_PACKAGES=(gcc libc6-dev chromium curl redis-server redis-tools prometheus openssl nginx postgresql)

# The Node for tests/node when the system has none new enough. Debian 12's
# nodejs is 18: playwright-core 1.62 and later refuse it, and its test runner
# lacks the --test-concurrency that package.json's test script uses. Keeping
# the tests on 18 would hold playwright-core at 1.61 while Debian's chromium
# moves on with every Chromium release, keep them on a Node out of support, and
# make them differ from the machines that have Node 20; so we fetch the Node
# they use. node-linux-<arch> is the npm registry's package of the official
# Node build (its bin/node is the release's, byte for byte); npm pack fetches
# it through whatever registry npm is set up for, running no install scripts,
# and its digest must match the one pinned here.
NODE_VERSION=20.20.2
declare -A NODE_SHA512=(
  [x64]=3de1d033cc007661ed640d66068732819c6ce4b8945adb097b3413901774898f7cecaa46ac3d4edad544c9dbcc662b9771e45a9f1b7bae34e70c407038fba3a1
  [arm64]=2c25c99cd4c58b21ae601c36819488e4e04531b92300fb7cb2a0ff34aad6a04d90983812b9b4ea16783a19a349f4427c1e9c413067165a96db72ce15a3e0a71a
)
NODE_HOME=${XDG_CACHE_HOME:-$HOME/.cache}/sluice/node-v$NODE_VERSION
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
export CHROMIUM

say() { printf '\n== %s\n' "$*"; }
die() {
  printf '\nscripts/test.sh: %s\n' "$1" >&2
  shift
  local line
  for line in "$@"; do printf '  %s\n' "$line" >&2; done
  exit 1
}
installing() { [ -z "${SKIP_INSTALL:-}" ]; }

# version_at_least HAVE WANT: true when dotted version HAVE >= WANT.
version_at_least() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

# The least Node that tests/node accepts, from its package.json's engines,
# so that the script and npm agree on one number.
node_min() {
  sed -n 's/^ *"node": *">=\([0-9.]*\)".*/\1/p' tests/node/package.json | head -n1
}

# node_ok: a node on PATH at least node_min.
node_ok() {
  command -v node >/dev/null 2>&1 || return 1
  local v
  v=$(node --version 2>/dev/null) || return 1
  version_at_least "${v#v}" "$(node_min)"
}

check_go() {
  # The Go tarball's usual home, for a shell (or sudo) whose PATH lacks it.
  if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
    PATH=/usr/local/go/bin:$PATH
  fi
  local want have
  want=$(sed -n 's/^go //p' go.mod)
  local todo="Sluice needs Go $want or newer (go.mod). Install the tarball from https://go.dev/dl/"
  todo+=" into /usr/local/go, put /usr/local/go/bin first on PATH, and run this again."
  command -v go >/dev/null 2>&1 || die "Go is not installed (or not on PATH)." "$todo"
  # Go 1.21 and later fetch the toolchain that go.mod asks for by themselves
  # (from the module proxy), so GOVERSION here is the one that will build;
  # an older Go (Debian 12's golang-go is 1.19) only fails obscurely on go.mod.
  have=$(go env GOVERSION 2>&1) || die "go cannot start here: $have" "$todo"
  case "$have" in
    devel*) ;;
    *) version_at_least "${have#go}" "$want" || die "$(command -v go) is $have, too old." "$todo" ;;
  esac
  say "$(go version)"
}

# The Debian packages to install: those of DEBIAN_PACKAGES not installed, and
# npm (which brings Debian's nodejs) when there is no npm to install with.
missing_debian_packages() {
  local p
  for p in "${DEBIAN_PACKAGES[@]}"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || echo "$p"
  done
  command -v npm >/dev/null 2>&1 || echo npm
}

install_debian() {
  command -v dpkg-query >/dev/null 2>&1 || return 0 # not Debian: the checks below say what is missing
  local missing
  mapfile -t missing < <(missing_debian_packages)
  [ ${#missing[@]} -eq 0 ] && return
  installing || die "these Debian packages are missing: ${missing[*]}" \
    "Install them (apt-get install ${missing[*]}), or run without SKIP_INSTALL."
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "these Debian packages are missing: ${missing[*]}" \
      "Run this script as root, or install sudo, or install them yourself: apt-get install ${missing[*]}"
    sudo=(sudo)
  fi
  say "installing Debian packages: ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# go test -race needs cgo, and cgo a C compiler that can link a program.
check_cgo() {
  local cc
  cc=$(go env CC)
  [ "$(go env CGO_ENABLED)" = 1 ] || die "cgo is off (go env CGO_ENABLED is not 1), and go test -race needs it." \
    "Install a C compiler (Debian: apt-get install gcc libc6-dev) and unset CGO_ENABLED" \
    "(also 'go env -u CGO_ENABLED' if it was set with go env -w), then run this again."
  command -v "$cc" >/dev/null 2>&1 || die "there is no C compiler '$cc' (go env CC), and go test -race needs cgo." \
    "Install gcc (Debian: apt-get install gcc libc6-dev), or set CC to a C compiler, and run this again."
  local out
  out=$(printf 'int main(void) { return 0; }\n' | "$cc" -x c -o /dev/null - 2>&1) ||
    die "the C compiler '$cc' cannot build a program, and go test -race needs cgo:" \
      "${out%%$'\n'*}" \
      "Install the C library's development files (Debian: apt-get install libc6-dev) and run this again."
}

# Puts a Node new enough on PATH: the system's, or the one fetched before
# into NODE_HOME, or one fetched now.
ensure_node() {
  node_ok && return
  if [ -x "$NODE_HOME/bin/node" ]; then
    PATH=$NODE_HOME/bin:$PATH
    node_ok && return
  fi
  local found="none"
  command -v node >/dev/null 2>&1 && found=$(node --version)
  local what
  what="tests/node needs Node $(node_min) or newer; found: $found."
  installing || die "$what" "Install Node $NODE_VERSION (or any $(node_min)+) first on PATH, or run without SKIP_INSTALL."
  local arch
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64) arch=arm64 ;;
    *) die "$what" "No Node build is pinned here for $(uname -m): install Node $(node_min) or newer first on PATH." ;;
  esac
  command -v npm >/dev/null 2>&1 || die "$what" "npm is needed to fetch Node from the npm registry: apt-get install npm."
  say "fetching Node $NODE_VERSION (node-linux-$arch from the npm registry) into $NODE_HOME"
  local tmp tgz
  tmp=$(mktemp -d)
  tgz=$tmp/node-linux-$arch-$NODE_VERSION.tgz
  (cd "$tmp" && npm pack --loglevel=error "node-linux-$arch@$NODE_VERSION" >/dev/null) ||
    { rm -rf "$tmp"; die "$what" "npm pack node-linux-$arch@$NODE_VERSION failed (see above): check that npm reaches its registry."; }
  if [ "$(sha512sum "$tgz" | cut -d' ' -f1)" != "${NODE_SHA512[$arch]}" ]; then
    rm -rf "$tmp"
    die "node-linux-$arch@$NODE_VERSION from the registry does not match the digest pinned in scripts/test.sh."
  fi
  mkdir -p "$tmp/node/bin" "$(dirname "$NODE_HOME")"
  tar -xzf "$tgz" -C "$tmp/node/bin" --strip-components=2 package/bin/node
  rm -rf "$NODE_HOME"
  mv "$tmp/node" "$NODE_HOME" # whole or not at all: a cut run leaves no half Node
  rm -rf "$tmp"
  PATH=$NODE_HOME/bin:$PATH
  node_ok || die "the Node fetched into $NODE_HOME does not run: $(node --version 2>&1 || true)"
}

# npm ci takes seconds even with nothing to change: skip it when the packages
# in node_modules were installed from this lock file by this Node.
install_npm_packages() {
  local stamp=tests/node/node_modules/.sluice-installed want
  want="$(sha256sum tests/node/package-lock.json | cut -d' ' -f1) $(node --version)"
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && return
  installing || die "the npm packages of tests/node are not installed: run 'npm ci' in tests/node."
  command -v npm >/dev/null 2>&1 || die "npm is missing: install it (Debian: apt-get install npm)."
  say "installing npm packages (tests/node)"
  # --engine-strict: a Node that package.json refuses is an error, not a
  # warning that --loglevel=error would hide.
  (cd tests/node && npm ci --engine-strict --no-audit --no-fund --loglevel=error)
  echo "$want" >"$stamp"
}

check_go
install_debian
check_cgo
ensure_node
install_npm_packages
[ -x "$CHROMIUM" ] || die "no Chromium at $CHROMIUM: the browser tests need one." \
  "Install Debian's chromium (apt-get install chromium), or set CHROMIUM to a Chromium binary."
say "node $(node --version), $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"

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
