#!/usr/bin/env bash
# Unpacks nginx-rtmp-module's source (the exact version Debian's libnginx-mod-rtmp
# is built from) into third_party/nginx-rtmp-module, for its headers.
# No Debian package ships those headers; the source package does. deb-src lines
# are derived from this machine's own apt sources, in a private apt state dir, so
# the system's apt configuration is left untouched.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest="$root/third_party/nginx-rtmp-module"
[ -f "$dest/ngx_rtmp.h" ] && exit 0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/sources.list.d" "$work/lists/partial" "$work/download"

# deb822 sources: Types: deb -> deb-src; one-line sources: deb -> deb-src.
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] && sed -E 's/^Types:.*$/Types: deb-src/' "$f" >"$work/sources.list.d/$(basename "$f")"
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  [ -f "$f" ] && sed -nE 's/^deb[[:space:]]/deb-src /p' "$f" >>"$work/sources.list.d/derived.list"
done

apt_opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/sources.list.d"
          -o "Dir::State::Lists=$work/lists")
apt-get "${apt_opts[@]}" update -qq >/dev/null 2>&1 || true
# The .debian.tar.xz may be missing from the mirror (apt then exits non-zero);
# only the .orig tarball is needed.
(cd "$work/download" && apt-get "${apt_opts[@]}" source --download-only libnginx-mod-rtmp >/dev/null 2>&1) || true

orig=$(ls "$work"/download/*.orig.tar.* 2>/dev/null | head -n1 || true)
if [ -z "$orig" ]; then
  echo "fetch-nginx-rtmp-source: could not download the libnginx-mod-rtmp source package" >&2
  echo "  (needs deb-src access to this machine's Debian mirror)" >&2
  exit 1
fi
mkdir -p "$work/unpack"
tar -xf "$orig" -C "$work/unpack"
src=$(dirname "$(find "$work/unpack" -name ngx_rtmp.h | head -n1)")
mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
cp -r "$src" "$dest"
echo "fetch-nginx-rtmp-source: nginx-rtmp source in $dest ($(basename "$orig"))"
