#!/usr/bin/env bash
# Builds qserv-agent and qserv-coordinator images from the locally made base image and the
# binaries in BIN_DIR (default: target/release). No registry is involved.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin_dir=${1:-$here/../../target/release}
base=$("$here/build-base.sh")

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "$bin_dir/qserv-agent" "$bin_dir/qserv-coordinator" "$bin_dir/qserv" "$bin_dir/qserv-standin" "$context/"
cp "$here/node-entrypoint.sh" "$here/store-entrypoint.sh" "$context/"
for image in agent coordinator; do
  docker build -q --build-arg BASE="$base" -f "$here/Dockerfile.$image" -t "qserv-$image:dev" "$context" >/dev/null
  echo "qserv-$image:dev"
done
