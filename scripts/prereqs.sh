# Sourced by scripts/test.sh and scripts/try.sh: root, and the Debian packages they need,
# installed only when missing.

# require_root SCRIPT WHY: stops (exit 2) unless run as root.
require_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "$1: $2; run as root" >&2
        exit 2
    fi
}

missing=()
# want COMMAND PACKAGE: PACKAGE is installed when COMMAND is not on the PATH.
want() {
    command -v "$1" >/dev/null || missing+=("$2")
}

# The end-to-end harness's own needs: containerd, runc, and gcc with a static libc for
# its pause image.
want_harness() {
    want containerd containerd
    want ctr containerd
    want runc runc
    want gcc gcc
    [ -e "$(gcc -print-file-name=libc.a 2>/dev/null || echo /nonexistent)" ] || missing+=(libc6-dev)
}

install_missing() {
    if [ ${#missing[@]} -gt 0 ]; then
        echo "==> installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}
