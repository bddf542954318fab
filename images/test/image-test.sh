#!/usr/bin/env bash
# `make image-test`: build images/Dockerfile for real, unchanged (build arguments only), with buildah
# and no daemon (chroot isolation, vfs storage), on a stand-in Ray base (standin-base.sh); then run
# the CLI in the image as uid 1000:100 with /data and /results mounted from host directories, as the
# chart's pods do, and check what it wrote. Everything buildah stores lives in one scratch directory
# that is removed at the end, pass or fail. Needs root; installs buildah and debootstrap with apt when
# they are missing. Prints the wall time and the peak disk use at the end. See DEVELOPERS.md.
#
# Environment (images/image.mk sets these from its variables):
#   RAY_VERSION             Ray of the stand-in base (default 2.60.0, pyproject's pin)
#   IMAGE_TEST_TMPDIR       parent of the scratch directory (default /var/tmp; needs ~32 GiB free:
#                           vfs keeps a full copy of the root filesystem per container and layer)
#   IMAGE_TEST_CACHE        where the stand-in base is kept between runs ("" = rebuild it every run)
#   IMAGE_TEST_WHEEL_MIRROR a local PEP 503 index holding the torch wheels (e.g. /opt/pypi-more/simple),
#                           bind-mounted read-only into the build and passed as TORCH_INDEX_URL; its
#                           parent directory is mounted, since such indexes link to ../../files/
#   IMAGE_TEST_FID_WEIGHTS  FETCH_FID_WEIGHTS for the build (default 0: GitHub is often unreachable)
#   DEBIAN_MIRROR           for debootstrap (default http://deb.debian.org/debian)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"

RAY_VERSION=${RAY_VERSION:-2.60.0}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
IMAGE_TEST_TMPDIR=${IMAGE_TEST_TMPDIR:-/var/tmp}
IMAGE_TEST_CACHE=${IMAGE_TEST_CACHE-build/image-test}
IMAGE_TEST_WHEEL_MIRROR=${IMAGE_TEST_WHEEL_MIRROR-}
IMAGE_TEST_FID_WEIGHTS=${IMAGE_TEST_FID_WEIGHTS:-0}
HOST_CA_BUNDLE=${HOST_CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}
STANDIN=localhost/ray-standin:$RAY_VERSION-py311
IMAGE=localhost/cifar100-k8s:image-test

t0=$(date +%s)
say() { printf 'image-test [%4ss] %s\n' "$(($(date +%s) - t0))" "$*" >&2; }
fail() { printf 'image-test: FAILED: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || fail "needs root (buildah's chroot isolation with vfs storage, debootstrap); run it as root, as CI does"
missing=()
command -v buildah >/dev/null || missing+=(buildah)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || fail "missing ${missing[*]} and no apt-get to install them"
  say "installing ${missing[*]} (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
say "$(buildah --version)"

# --- scratch directory, storage, and the cleanup that always runs ---------------------------------
mkdir -p "$IMAGE_TEST_TMPDIR"
WORK=$(mktemp -d "$IMAGE_TEST_TMPDIR/cifar-image-test.XXXXXX")
export WORK TMPDIR=$WORK/tmp  # buildah stages layer copies in $TMPDIR (/var/tmp otherwise)
mkdir -p "$TMPDIR"
BUILDAH_GLOBAL="--storage-driver vfs --root $WORK/storage --runroot $WORK/runroot"
export BUILDAH_GLOBAL RAY_VERSION DEBIAN_MIRROR HOST_CA_BUNDLE
read -r -a bah <<<"buildah $BUILDAH_GLOBAL"

disk_used() { df -B1 --output=used "$IMAGE_TEST_TMPDIR" | tail -1; }
disk_start=$(disk_used)
# df, not du: cheap enough to sample every 2 s while vfs copies whole root filesystems. Other
# processes' writes on the same filesystem count too, so the figure is an upper bound.
( while sleep 2; do disk_used; done ) >"$WORK/disk.samples" 2>/dev/null &
sampler=$!

cleanup() {
  local rc=$?
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  local peak
  peak=$( { disk_used; cat "$WORK/disk.samples"; } | sort -n | tail -1)
  "${bah[@]}" rm --all >/dev/null 2>&1 || true
  "${bah[@]}" rmi --all --force >/dev/null 2>&1 || true
  # A bind mount left behind would make rm -rf delete through it into the host (same filesystem, so
  # --one-file-system would not stop it): unmount whatever is still mounted below WORK first.
  findmnt -rn -o TARGET | grep "^$WORK/" | sort -r | xargs -r -n1 umount -l || true
  if findmnt -rn -o TARGET | grep -q "^$WORK/"; then
    echo "image-test: mounts remain under $WORK; not removing it" >&2
  else
    rm -rf "$WORK"
  fi
  say "$([ $rc = 0 ] && echo passed || echo failed) in $(($(date +%s) - t0)) s; peak disk use $(((peak - disk_start) / 1048576)) MiB above the start (df of $IMAGE_TEST_TMPDIR); storage removed"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the stand-in Ray base: from the cache, or debootstrap'd ----------------------------------------
key=$( { cat "$here/standin-base.sh"; echo "$RAY_VERSION $DEBIAN_MIRROR"; if [ -f "$HOST_CA_BUNDLE" ]; then cat "$HOST_CA_BUNDLE"; fi; } \
  | sha256sum | cut -c1-16)
cached=${IMAGE_TEST_CACHE:+$IMAGE_TEST_CACHE/standin-$RAY_VERSION-$key.tar}
if [ -n "$cached" ] && [ -f "$cached" ]; then
  say "stand-in base from the cache: $cached"
  id=$("${bah[@]}" pull --quiet "oci-archive:$cached")
  "${bah[@]}" tag "$id" "$STANDIN"
else
  say "stand-in base: debootstrap bookworm, Python 3.11, Ray $RAY_VERSION, user 1000:100"
  "$here/standin-base.sh" "$STANDIN"
  if [ -n "$cached" ]; then
    mkdir -p "$IMAGE_TEST_CACHE"
    rm -f "$IMAGE_TEST_CACHE"/standin-*.tar
    "${bah[@]}" push --quiet --disable-compression "$STANDIN" "oci-archive:$cached.part"
    mv "$cached.part" "$cached"
    say "stand-in base cached: $cached"
  fi
fi

# --- build images/Dockerfile as it is: only build arguments differ from `make image` ----------------
build_args=(--build-arg BASE_IMAGE="$STANDIN" --build-arg FETCH_FID_WEIGHTS="$IMAGE_TEST_FID_WEIGHTS")
if [ -n "$IMAGE_TEST_WHEEL_MIRROR" ]; then
  [ -d "$IMAGE_TEST_WHEEL_MIRROR" ] || fail "IMAGE_TEST_WHEEL_MIRROR=$IMAGE_TEST_WHEEL_MIRROR is not a directory"
  mirror_root=$(dirname "$IMAGE_TEST_WHEEL_MIRROR")
  build_args+=(-v "$mirror_root:$mirror_root:ro" --build-arg TORCH_INDEX_URL="file://$IMAGE_TEST_WHEEL_MIRROR")
  say "torch wheels also from the local mirror $IMAGE_TEST_WHEEL_MIRROR"
fi
say "building images/Dockerfile"
"${bah[@]}" bud --isolation chroot --network host --pull=never --layers=false \
  -f images/Dockerfile "${build_args[@]}" -t "$IMAGE" .
say "built: $("${bah[@]}" images --format '{{.Size}}' "$IMAGE"), storage now $(du -sxh "$WORK" | cut -f1)"

# --- the image's own settings -------------------------------------------------------------------
config=$("${bah[@]}" inspect --type image --format '{{.OCIv1.Config.User}}|{{range .OCIv1.Config.Env}}{{.}};{{end}}' "$IMAGE")
user=${config%%|*}
env_list=${config#*|}
[ "$user" = "1000:100" ] || fail "image USER is '$user', expected 1000:100 (the chart's runAsUser/runAsGroup)"
required_cuda=$(tr ';' '\n' <<<"$env_list" | sed -n 's/^NVIDIA_REQUIRE_CUDA=cuda>=//p')
[ -n "$required_cuda" ] || fail "image sets no NVIDIA_REQUIRE_CUDA=cuda>=X.Y"

# --- the CLI as the chart runs it: uid 1000:100, /data and /results from host directories ------------
data=$WORK/volumes/data
results=$WORK/volumes/results
mkdir -p "$data" "$results"
chown 1000:100 "$data" "$results"
ctr=$("${bah[@]}" from --pull=never --quiet "$IMAGE")
in_image() {
  say "\$ $*"
  "${bah[@]}" run --isolation chroot --user 1000:100 -v "$data:/data" -v "$results:/results" "$ctr" -- "$@"
}

facts=$(in_image python -c 'import sys, torch; from jobs.chart import find_chart; print(sys.prefix, find_chart(), torch.version.cuda or "none")')
read -r prefix chart torch_cuda <<<"$facts"
case $chart in
  "$prefix"/share/*) ;;
  *) fail "cifar finds its chart at $chart, not in the installed copy under $prefix/share" ;;
esac
# The image's CUDA is torch's: the driver floor the image declares is the CUDA its torch was built with.
if [ "$torch_cuda" != none ] && [ "$torch_cuda" != "$required_cuda" ]; then
  fail "torch is built for CUDA $torch_cuda but the image declares NVIDIA_REQUIRE_CUDA=cuda>=$required_cuda"
fi
say "chart: $chart; torch CUDA $torch_cuda, image requires cuda>=$required_cuda"

in_image cifar --version
in_image cifar data synth --train 500 --test 100
in_image cifar train --model tinycnn --steps 5 --batch-size 32 --run-name image-test
in_image cifar gan train --run-name image-test --steps 4 --batch-size 32 --log-every 2 --sample-every 2 --checkpoint-every 2
in_image cifar report

for path in "$data"/cifar-100-python/{train,test,meta} \
    "$results"/train/image-test/{summary.json,best.pt,last.pt,metrics.jsonl} \
    "$results"/gan/image-test/{summary.json,metrics.jsonl} \
    "$results"/report/{index.html,report.md}; do
  [ -s "$path" ] || fail "missing or empty after the CLI run: ${path#"$WORK"/volumes/}"
done
strangers=$(find "$data" "$results" \( ! -uid 1000 -o ! -gid 100 \) -printf '%u:%g %P\n' | head -5 || true)
[ -z "$strangers" ] || fail "files not owned by 1000:100 on the volumes: $strangers"
say "CLI outputs present, all $(find "$data" "$results" | wc -l) paths owned by 1000:100"
