#!/usr/bin/env bash
# Installs everything StreamTally's build, tests and demo need on Debian (bookworm).
# Idempotent and quiet when all is present: only missing packages are installed.
# Also fetches nginx-rtmp's source (headers for the RTMP module) from Debian's
# source package, using deb-src lines derived from this machine's own apt sources.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

packages=(
  # toolchain
  build-essential cmake pkg-config ccache git xz-utils dpkg-dev
  # core libraries
  libsqlite3-dev sqlite3 libcurl4-openssl-dev zlib1g-dev libdeflate-dev nlohmann-json3-dev rapidjson-dev
  libcli11-dev libgtest-dev libgmock-dev
  # collector
  libcpp-httplib-dev libssl-dev libyaml-cpp-dev libpcre2-dev libmaxminddb-dev libabsl-dev
  libxlsxwriter-dev tor-geoipdb uap-core clickhouse-server clickhouse-client
  # nginx module
  nginx nginx-dev libnginx-mod-rtmp
  # GStreamer plugin
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstrtspserver-1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-rtsp gstreamer1.0-libav
  # real clients and load tools for tests, demo and benchmarks
  ffmpeg curl wrk openssl procps iproute2 psmisc valgrind python3 chromium
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

"$here/fetch-nginx-rtmp-source.sh"
