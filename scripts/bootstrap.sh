# Sourced by start.sh and scripts/test.sh: make .venv and install a locked requirements file into it,
# again only when that file has changed.

ensure_venv() {  # ensure_venv REQUIREMENTS_FILE
    local python=${PYTHON:-python3}
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "Python 3.11 or newer is needed; point PYTHON at one (PYTHON=python3.12 $0)." >&2
        return 1
    fi
    if [ ! -x .venv/bin/python ]; then
        "$python" -m venv .venv || {
            echo "Could not create .venv (on Debian/Ubuntu: apt-get install python3-venv)." >&2
            return 1
        }
    fi
    local stamp=".venv/.installed-$(basename "$1")" wanted
    wanted=$(cat "$1" requirements.txt | sha256sum | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
        echo "Installing $1 into .venv ..."
        .venv/bin/python -m pip install --disable-pip-version-check --quiet -r "$1"
        echo "$wanted" > "$stamp"
    fi
}

ensure_promtool() {  # promtool (Debian's prometheus package) in .venv/bin, for `promtool check metrics`
    [ -x .venv/bin/promtool ] && return 0
    command -v apt-get >/dev/null || { echo "promtool needs Debian's apt-get; install promtool by hand." >&2; return 1; }
    local work
    work=$(mktemp -d)
    # Only the one binary: installing the package would also set up (and start) a Prometheus server.
    if ! (cd "$work" && apt-get download prometheus >/dev/null 2>&1); then
        apt-get update -qq >/dev/null && (cd "$work" && apt-get download prometheus >/dev/null)
    fi
    dpkg-deb --fsys-tarfile "$work"/prometheus_*.deb | tar -x -C "$work" ./usr/bin/promtool
    mv "$work/usr/bin/promtool" .venv/bin/promtool
    rm -rf "$work"
}

ensure_debian_packages() {  # ensure_debian_packages PACKAGE...: apt-get installs those not installed yet
    local missing=() package
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || { echo "Install these Debian packages (or their like): ${missing[*]}" >&2; return 1; }
    echo "Installing ${missing[*]} ..."
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}
