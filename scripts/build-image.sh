#!/usr/bin/env bash
# Builds crimg's own container image as an OCI image archive, offline:
#   scripts/build-image.sh [OUT.tar]      (default: target/image/crimg-<version>.oci.tar)
# The image holds a static crimg at /crimg and the CA certificates of Debian's
# ca-certificates package at /etc/ssl/certs/ca-certificates.crt (for export
# --fetch-missing), nothing else. Import it on a node with `crimg import OUT.tar`.
#
# Reproducible: the same source and toolchain give the same bytes and so the same image
# digest (entries sorted, owners and mtimes fixed, gzip without name or time, no dates in
# the config). Environment:
#   CRIMG_IMAGE_NAME  image name [default: localhost/crimg:<version>]
#   CRIMG_BINARY      use this static binary instead of building one
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C TZ=UTC

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
name=${CRIMG_IMAGE_NAME:-localhost/crimg:$version}
out=${1:-target/image/crimg-$version.oci.tar}
certs_dir=/usr/share/ca-certificates/mozilla

if [ -z "${CRIMG_BINARY:-}" ]; then
    # glibc's static mode (there is no musl target offline): a static-pie binary that
    # needs nothing from the image. It resolves host names with its own resolver.
    echo "==> building a static crimg (release)" >&2
    # In a clean, fixed environment: a build script that watches an environment variable
    # would otherwise rebuild everything whenever the caller's differs (a shell, a test).
    cargo_home=${CARGO_HOME:-$HOME/.cargo}
    env -i HOME="$HOME" CARGO_HOME="$cargo_home" \
        RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" \
        PATH="$cargo_home/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        RUSTFLAGS="-C target-feature=+crt-static" \
        cargo build --release --locked --target x86_64-unknown-linux-gnu
    CRIMG_BINARY=target/x86_64-unknown-linux-gnu/release/crimg
fi
if readelf -d "$CRIMG_BINARY" | grep -q '(NEEDED)'; then
    echo "build-image.sh: $CRIMG_BINARY is dynamically linked; the image has no libc" >&2
    exit 1
fi
if [ ! -d "$certs_dir" ]; then
    echo "build-image.sh: $certs_dir missing; apt-get install ca-certificates" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
layout=$work/layout
mkdir -p "$root/etc/ssl/certs" "$layout/blobs/sha256"
install -m 0755 "$CRIMG_BINARY" "$root/crimg"
# The package's certificates in name order, not the host's generated bundle (which
# local additions change).
find "$certs_dir" -name '*.crt' -type f | sort | xargs cat >"$root/etc/ssl/certs/ca-certificates.crt"
chmod 0644 "$root/etc/ssl/certs/ca-certificates.crt"

# blob FILE MEDIATYPE -> stores FILE as a blob, prints its descriptor JSON.
blob() {
    local digest size
    digest=$(sha256sum "$1" | cut -d' ' -f1)
    size=$(stat -c %s "$1")
    cp "$1" "$layout/blobs/sha256/$digest"
    printf '{"mediaType":"%s","digest":"sha256:%s","size":%s}' "$2" "$digest" "$size"
}

tar_fixed() {
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --mode=u+w,go-w,a+rX \
        --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
        "$@"
}

(cd "$root" && tar_fixed -cf "$work/layer.tar" crimg etc)
diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
gzip -n -9 <"$work/layer.tar" >"$work/layer.tar.gz"
layer=$(blob "$work/layer.tar.gz" application/vnd.oci.image.layer.v1.tar+gzip)

printf '%s' '{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/crimg"],"Env":["SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],"Labels":{"org.opencontainers.image.title":"crimg","org.opencontainers.image.version":"'"$version"'"}},"rootfs":{"type":"layers","diff_ids":["sha256:'"$diff_id"'"]}}' >"$work/config.json"
config=$(blob "$work/config.json" application/vnd.oci.image.config.v1+json)

printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":'"$config"',"layers":['"$layer"']}' >"$work/manifest.json"
manifest=$(blob "$work/manifest.json" application/vnd.oci.image.manifest.v1+json)

printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":['"${manifest%\}}"',"annotations":{"io.containerd.image.name":"'"$name"'","org.opencontainers.image.ref.name":"'"${name##*:}"'"}}]}' >"$layout/index.json"
printf '%s' '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"

mkdir -p "$(dirname "$out")"
(cd "$layout" && tar_fixed -cf "$work/image.tar" oci-layout index.json blobs)
mv "$work/image.tar" "$out"
manifest_digest=$(sha256sum "$work/manifest.json" | cut -d' ' -f1)
config_digest=$(sha256sum "$work/config.json" | cut -d' ' -f1)
echo "$out: $name, manifest sha256:$manifest_digest, image ID sha256:$config_digest" >&2
echo "sha256:$manifest_digest"
