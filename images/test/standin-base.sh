#!/usr/bin/env bash
# A stand-in for rayproject/ray:<RAY_VERSION>-py311-*, built without a registry: Debian bookworm
# (debootstrap, minbase) with Python 3.11 and Ray from PyPI, keeping the contract images/Dockerfile
# relies on: user 1000:100 named ray, HOME=/home/ray, and a Python whose pip is on PATH and writable
# by that user (Ray's images use a conda tree under /home/ray; a venv there does the same job).
#
#   standin-base.sh IMAGE_REF       commits the stand-in as IMAGE_REF in the buildah storage given by
#                                   $BUILDAH_GLOBAL (e.g. "--storage-driver vfs --root R --runroot RR")
#
# Environment: RAY_VERSION, DEBIAN_MIRROR, WORK (scratch directory, emptied here), HOST_CA_BUNDLE
# (copied in, with PIP_CERT pointing at it, so pip trusts what the host trusts; "" skips).
# Called by image-test.sh, which caches the result keyed by this file's content.
set -euo pipefail

ref=$1
: "${RAY_VERSION:?}" "${DEBIAN_MIRROR:?}" "${WORK:?}" "${BUILDAH_GLOBAL:?}"
HOST_CA_BUNDLE=${HOST_CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}
read -r -a bah <<<"buildah $BUILDAH_GLOBAL"
rootfs=$WORK/standin-rootfs
ray_path=/home/ray/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# python3-venv brings ensurepip; the rest of Ray's needs come from PyPI wheels.
debootstrap --variant=minbase --include=python3,python3-venv bookworm "$rootfs" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1 \
  || { tail -20 "$WORK/debootstrap.log" >&2; echo "standin-base: debootstrap failed (log above)" >&2; exit 1; }
if findmnt -rn -o TARGET | grep -q "^$rootfs/"; then
  echo "standin-base: debootstrap left mounts under $rootfs; not copying a root with the host's /proc in it" >&2
  exit 1
fi

ctr=$("${bah[@]}" from scratch)
"${bah[@]}" add "$ctr" "$rootfs/" / >/dev/null
rm -rf "$rootfs"
run=("${bah[@]}" run --isolation chroot --network host)
"${run[@]}" "$ctr" -- useradd --uid 1000 --gid 100 --home-dir /home/ray --create-home --shell /bin/bash ray

env_cert=()
if [ -n "$HOST_CA_BUNDLE" ] && [ -f "$HOST_CA_BUNDLE" ]; then
  "${bah[@]}" copy "$ctr" "$HOST_CA_BUNDLE" /etc/ssl/certs/ca-certificates.crt >/dev/null
  env_cert=(--env PIP_CERT=/etc/ssl/certs/ca-certificates.crt)
fi
"${run[@]}" --user 1000:100 --env HOME=/home/ray "${env_cert[@]}" "$ctr" -- sh -ec "
  python3 -m venv /home/ray/venv
  /home/ray/venv/bin/pip install --no-cache-dir --progress-bar off --quiet 'ray==$RAY_VERSION'
  /home/ray/venv/bin/python -c 'import ray, sys; print(\"stand-in base: Python\", sys.version.split()[0], \"Ray\", ray.__version__)'"

"${bah[@]}" config --user 1000:100 --workingdir /home/ray --cmd /bin/bash \
  --env HOME=/home/ray --env PATH="$ray_path" --env LANG=C.UTF-8 --env LC_ALL=C.UTF-8 "${env_cert[@]}" \
  --label org.opencontainers.image.title="stand-in for rayproject/ray:$RAY_VERSION-py311 (cifar100-k8s image test)" \
  "$ctr"
"${bah[@]}" commit --quiet --rm "$ctr" "$ref" >/dev/null
