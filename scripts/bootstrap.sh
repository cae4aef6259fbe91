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
