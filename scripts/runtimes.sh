# Sourced by scripts/test.sh (and the benchmark's users): the containerd releases the
# end-to-end tests run besides the host's own, taken from Debian's newer releases as
# packages and extracted into a cache directory. The machine's apt configuration is never
# touched: a private source list and state directory per release.
#
#   containerd_bin RELEASE   prints the directory holding that release's containerd,
#                            containerd-shim-runc-v2 and ctr, fetching it once
#
# The host's runc serves every release (Debian's newer runc packages need a newer glibc).

RUNTIME_CACHE=${CRIMG_RUNTIME_CACHE:-/var/cache/crimg/runtimes}

containerd_bin() {
    local rel=$1 d="$RUNTIME_CACHE/$1"
    local bin="$d/root/usr/bin"
    if [ ! -x "$bin/containerd" ] || [ ! -x "$bin/containerd-shim-runc-v2" ] || [ ! -x "$bin/ctr" ]; then
        echo "==> fetching containerd from Debian $rel into $d" >&2
        local uri
        # The machine's own Debian mirror, as its deb822 or one-line sources name it.
        uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null)
        [ -n "$uri" ] || uri=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null)
        [ -n "$uri" ] || uri=http://deb.debian.org/debian
        rm -rf "$d"
        mkdir -p "$d/lists/partial" "$d/deb"
        echo "deb $uri $rel main" >"$d/sources.list"
        local o=(-o "Dir::Etc::SourceList=$d/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
            -o "Dir::State::Lists=$d/lists" -o "Dir::Cache=$d/cache" -o "Debug::NoLocking=1")
        apt-get "${o[@]}" update -qq >&2
        # Into the current directory; its warning that _apt cannot write there is harmless.
        (cd "$d/deb" && apt-get "${o[@]}" download containerd >&2)
        dpkg-deb -x "$d"/deb/containerd_*.deb "$d/root"
    fi
    "$bin/containerd" --version >&2
    echo "$bin"
}
