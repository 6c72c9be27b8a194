#!/usr/bin/env bash
# Copies each image listed in LIST from registry SRC to registry DST with skopeo, all
# tags and platforms kept; writes the ones that failed to FAILED (default
# LIST.failed) and exits non-zero if any did.
#
#   bash hack/sync-images.sh LIST SRC DST [FAILED]
#
# LIST: one repo:tag a line (blank lines and # comments skipped). SRC, DST: host[:port]
# of the registries; loopback ones are spoken to over plain http, others over TLS
# (set TLS_VERIFY=false for self-signed certificates).
set -euo pipefail
list=${1:?usage: sync-images.sh LIST SRC DST [FAILED]}
src=${2:?usage: sync-images.sh LIST SRC DST [FAILED]}
dst=${3:?usage: sync-images.sh LIST SRC DST [FAILED]}
failed_file=${4:-$list.failed}
command -v skopeo >/dev/null || { echo "sync-images: skopeo is missing: run bash hack/setup-host.sh" >&2; exit 1; }

tls_flag() {
    case $1 in
    127.*|localhost|localhost:*) echo false ;;
    *) echo "${TLS_VERIFY:-true}" ;;
    esac
}

: >"$failed_file"
copied=0
failed=0
while IFS= read -r image || [ -n "$image" ]; do
    image=${image%%#*}
    image=$(echo "$image" | tr -d '[:space:]')
    [ -n "$image" ] || continue
    if skopeo copy -q --all --src-tls-verify="$(tls_flag "$src")" --dest-tls-verify="$(tls_flag "$dst")" \
        "docker://$src/$image" "docker://$dst/$image"; then
        echo "sync-images: $image ok"
        copied=$((copied + 1))
    else
        echo "sync-images: $image FAILED" >&2
        echo "$image" >>"$failed_file"
        failed=$((failed + 1))
    fi
done <"$list"
echo "sync-images: $copied copied, $failed failed"
if [ "$failed" -gt 0 ]; then
    echo "sync-images: the failed images are listed in $failed_file; fix and run again with that file as LIST" >&2
    exit 1
fi
rm -f "$failed_file"
