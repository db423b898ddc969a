#!/usr/bin/env bash
# Builds the base image every qserv image starts from, with no registry: a minimal Debian root
# made by debootstrap (with MariaDB and Galera), imported with 'docker import'. The tag carries a hash of
# the recipe, so a second run finds the image and returns at once.
set -euo pipefail

suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=mariadb-server,mariadb-client,galera-4,rsync,ca-certificates,iproute2,procps
tag=$(printf '%s %s %s' "$suite" "$packages" v1 | sha256sum | cut -c1-12)
image=qserv-base:$tag

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image"
  exit 0
fi

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
command -v debootstrap >/dev/null 2>&1 || {
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}

root=$(mktemp -d /tmp/qserv-rootfs.XXXXXX)
trap 'as_root rm -rf "$root"' EXIT
echo "debootstrap $suite into $root (once per machine)" >&2
as_root debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >/dev/null
# A smaller image: no package lists, docs or caches.
as_root rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
as_root tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
echo "$image"
