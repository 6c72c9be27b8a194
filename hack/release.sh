#!/usr/bin/env bash
# Builds what a release engineer downloads, into OUT (default dist/release/VERSION):
#
#   airbin-VERSION-x86_64-linux-musl    static binaries (musl; each carries the stubs
#   airbin-VERSION-aarch64-linux-musl   for both arches, so either builds either's bundles)
#   airbin_VERSION_amd64.deb            /usr/bin/airbin and its README (dpkg-deb)
#   airbin_VERSION_arm64.deb
#   SHA256SUMS                          of all four (sha256sum -c SHA256SUMS)
#   *.minisig                           with SIGN_KEY: minisign signatures of each file
#                                       and of SHA256SUMS (minisign -Vm FILE -p KEY.pub)
#
#   bash hack/release.sh                          # both arches
#   ARCHES=x86_64 bash hack/release.sh            # one
#   SIGN_KEY=release.key bash hack/release.sh     # signed (minisign; asks for its password)
#   REPRODUCE=1 bash hack/release.sh              # build again from a copy of the source
#                                                 # elsewhere, and compare every byte
#
# Reproducible: the time is the commit's (SOURCE_DATE_EPOCH), the source and registry
# paths are remapped, no build ID is written, so the same commit gives the same bytes
# wherever it is built (REPRODUCE=1 shows it). Each binary is checked in a busybox chroot
# (the aarch64 one through qemu-user-static): --version, keygen, init and build a bundle.
# `cargo install --path builder` builds the same program for this host instead.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
out=${OUT:-$src/dist/release/$version}
arches=${ARCHES:-x86_64 aarch64}
mkdir -p "$src/target"
work=$(mktemp -d "$src/target/release-work.XXXXXX")
trap 'rm -rf "$work"' EXIT
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$src" log -1 --format=%ct 2>/dev/null || echo 0)}

need() { command -v "$1" >/dev/null || { echo "release: $1 is missing: $2" >&2; exit 1; }; }
need musl-gcc "apt-get install musl-tools (or bash hack/setup-host.sh)"
need dpkg-deb "it is part of dpkg"
for arch in $arches; do
    rustup target list --installed 2>/dev/null | grep -qx "$arch-unknown-linux-musl" || rustup target add "$arch-unknown-linux-musl"
done
case " $arches " in *" aarch64 "*)
    need aarch64-linux-musl-gcc "apt-get install gcc-aarch64-linux-gnu musl-dev:arm64 (bash hack/setup-host.sh)" ;;
esac

# build SRC TARGET_DIR ARCH: the static binary of ARCH built from SRC; prints its path.
build() {
    local source=$1 target_dir=$2 arch=$3 triple=$3-unknown-linux-musl
    local flags="--remap-path-prefix=$source=/airbin --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo -C link-arg=-Wl,--build-id=none -C target-feature=+crt-static"
    local env=(CC_x86_64_unknown_linux_musl=musl-gcc)
    if [ "$arch" = aarch64 ]; then
        env+=(CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc CC_aarch64_unknown_linux_musl=aarch64-linux-musl-gcc
            AR_aarch64_unknown_linux_musl=aarch64-linux-gnu-ar)
    fi
    local remap="--remap-path-prefix=$source=/airbin --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
    (cd "$source" && env "${env[@]}" CARGO_PROFILE_RELEASE_STRIP=true RUSTFLAGS="$flags" AIRBIN_STUB_RUSTFLAGS="$remap" \
        CARGO_TARGET_DIR="$target_dir" cargo build --release --locked -q -p airbin --target "$triple") >&2
    echo "$target_dir/$triple/release/airbin"
}

# check BINARY ARCH: static, and it works in a busybox chroot.
check() {
    local bin=$1 arch=$2 root=$work/chroot-$2
    if readelf -lW "$bin" | grep -q 'Requesting program interpreter'; then
        echo "release: $bin is not static" >&2
        exit 1
    fi
    rm -rf "$root" && mkdir -p "$root/bin" "$root/tmp"
    case $arch in
    x86_64) cp "$(command -v busybox)" "$root/bin/busybox" ;;
    aarch64) cp /usr/local/lib/airbin-test/arm64/busybox "$root/bin/busybox" ;;
    esac
    ln -s busybox "$root/bin/sh"
    cp "$bin" "$root/bin/airbin"
    chroot "$root" /bin/airbin --version | grep -q "^airbin $version " || { echo "release: $arch: --version in the chroot failed" >&2; exit 1; }
    chroot "$root" /bin/airbin -q keygen --no-password -o /tmp/key
    chroot "$root" /bin/airbin -q init /tmp/bundle
    chroot "$root" /bin/airbin -q build /tmp/bundle -o /tmp/dist
    ls "$root"/tmp/dist/*.bin >/dev/null
    echo "release: $arch: static; --version, keygen, init and build run in a busybox chroot" >&2
}

# deb BINARY ARCH OUTDIR: the package, with every time the commit's.
deb() {
    local bin=$1 debarch=$2 dir=$work/deb-$2
    rm -rf "$dir" && mkdir -p "$dir/DEBIAN" "$dir/usr/bin" "$dir/usr/share/doc/airbin"
    install -m 0755 "$bin" "$dir/usr/bin/airbin"
    install -m 0644 "$src/README.md" "$dir/usr/share/doc/airbin/README.md"
    cat >"$dir/DEBIAN/control" <<EOF
Package: airbin
Version: $version
Architecture: $debarch
Maintainer: airbin release engineering <release@airbin.invalid>
Section: admin
Priority: optional
Description: builds self-extracting offline installer bundles
 airbin packs a static runtime, container images, registry packs, tools and a
 config sample into one .bin that installs on air-gapped hosts with sh alone.
EOF
    find "$dir" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    dpkg-deb --root-owner-group -Zxz --build "$dir" "$3/airbin_${version}_${debarch}.deb" >/dev/null
}

# release SRC TARGET_DIR OUTDIR: every file, checked.
release() {
    local source=$1 target_dir=$2 dir=$3
    mkdir -p "$dir"
    for arch in $arches; do
        bin=$(build "$source" "$target_dir" "$arch")
        cp "$bin" "$dir/airbin-$version-$arch-linux-musl"
        case $arch in x86_64) debarch=amd64 ;; aarch64) debarch=arm64 ;; esac
        deb "$bin" "$debarch" "$dir"
    done
    (cd "$dir" && sha256sum airbin-* airbin_*.deb >SHA256SUMS)
}

rm -rf "$out"
release "$src" "$src/target/release-build" "$out"
for arch in $arches; do
    check "$out/airbin-$version-$arch-linux-musl" "$arch"
done
(cd "$out" && sha256sum -c --quiet SHA256SUMS)
for package in "$out"/*.deb; do
    dpkg-deb -x "$package" "$work/x" && [ -x "$work/x/usr/bin/airbin" ]
done

if [ -n "${REPRODUCE:-}" ]; then
    # Another checkout path and another target directory: nothing of either may show.
    mkdir -p "$work/elsewhere"
    git -C "$src" ls-files -z | (cd "$src" && xargs -0 cp --parents -t "$work/elsewhere")
    release "$work/elsewhere" "$work/target-again" "$work/again"
    if cmp -s "$out/SHA256SUMS" "$work/again/SHA256SUMS"; then
        echo "release: reproduced: a second build from $work/elsewhere gives the same bytes" >&2
    else
        diff "$out/SHA256SUMS" "$work/again/SHA256SUMS" >&2 || true
        echo "release: NOT reproducible: the second build differs (above)" >&2
        exit 1
    fi
fi

if [ -n "${SIGN_KEY:-}" ]; then
    need minisign "apt-get install minisign"
    for file in "$out"/airbin-* "$out"/*.deb "$out/SHA256SUMS"; do
        minisign -S -s "$SIGN_KEY" -m "$file" -t "airbin $version $(basename "$file")" >/dev/null
    done
fi
ls -l "$out" >&2
echo "$out"
