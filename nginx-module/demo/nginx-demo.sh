#!/usr/bin/env bash
# The nginx part of the StreamTally demo, for real: Debian's nginx with both
# StreamTally modules, an ffmpeg RTMP publisher with a token, two RTMP players
# (their own pageUrl / flashVer / token / user id) and an HLS viewer (curl) —
# then a graceful nginx quit, which closes and flushes every session.
#
#   nginx-demo.sh --build BUILD_DIR --collector URL [--token T] [--seconds N] [--workdir DIR]
#
# Called by scripts/demo.sh (which starts the collector and prints the report);
# runs alone as well (records then stay in WORKDIR/spool.db). Ports are free ones
# on 127.0.0.1; every wait is bounded; processes are stopped by their pid.
set -euo pipefail

build="" collector="" token="demo-ingest-token" seconds=12 workdir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --collector) collector=$2; shift 2 ;;
    --token) token=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --workdir) workdir=$2; shift 2 ;;
    *) echo "usage: $0 --build BUILD_DIR [--collector URL] [--token T] [--seconds N] [--workdir DIR]" >&2; exit 2 ;;
  esac
done
[ -n "$build" ] || { echo "nginx-demo: --build is required" >&2; exit 2; }
build=$(cd "$build" && pwd)
rtmp_mod="$build/nginx-module/ngx_rtmp_streamtally_module.so"
http_mod="$build/nginx-module/ngx_http_streamtally_module.so"
for f in "$rtmp_mod" "$http_mod"; do
  [ -f "$f" ] || { echo "nginx-demo: $f is missing: build the nginx modules first" >&2; exit 1; }
done

[ -n "$workdir" ] || workdir=$(mktemp -d /tmp/streamtally-nginx-demo.XXXXXX)
mkdir -p "$workdir/hls"
chmod 0777 "$workdir" "$workdir/hls"   # workers run as nobody

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rtmp_port=$(free_port)
http_port=$(free_port)

collector_lines=""
if [ -n "$collector" ]; then
  collector_lines="streamtally_collector $collector; streamtally_collector_token $token;"
fi

cat >"$workdir/nginx.conf" <<CONF
daemon off;
user nobody nogroup;
worker_processes 1;
pid $workdir/nginx.pid;
error_log $workdir/error.log notice;
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
load_module $rtmp_mod;
load_module $http_mod;
events { worker_connections 256; }
rtmp {
    streamtally_spool $workdir/spool.db;
    $collector_lines
    streamtally_interim 5s;
    streamtally_flush 1s;
    access_log $workdir/rtmp_access.log;
    server {
        listen 127.0.0.1:$rtmp_port;
        application live {
            live on;
            streamtally on;
            streamtally_tag region demo-eu;
            hls on;
            hls_path $workdir/hls;
            hls_fragment 1s;
            hls_playlist_length 6s;
        }
    }
}
http {
    access_log $workdir/http_access.log;
    client_body_temp_path $workdir/body; proxy_temp_path $workdir/proxy;
    fastcgi_temp_path $workdir/fastcgi; uwsgi_temp_path $workdir/uwsgi; scgi_temp_path $workdir/scgi;
    streamtally_spool $workdir/spool.db;
    $collector_lines
    streamtally_interim 5s;
    streamtally_flush 1s;
    map \$uri \$hls_stream {
        "~^/hls/(?<name>[^/]+?)(-[0-9]+)?\\.(m3u8|ts)\$" live/\$name;
        default live/unknown;
    }
    server {
        listen 127.0.0.1:$http_port;
        location /hls/ {
            types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
            alias $workdir/hls/;
            streamtally on;
            streamtally_stream \$hls_stream;
            streamtally_token \$arg_token;
            streamtally_user_id \$arg_user;
            streamtally_session_timeout 3s;
        }
    }
}
CONF

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "${nginx_pid:-}" ] && kill -0 "$nginx_pid" 2>/dev/null; then
    kill -TERM "$nginx_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

/usr/sbin/nginx -p "$workdir" -c "$workdir/nginx.conf" 2>"$workdir/nginx.stderr" &
nginx_pid=$!
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$http_port") 2>/dev/null && break
  sleep 0.2
done
echo "nginx-demo: nginx (pid $nginx_pid) rtmp://127.0.0.1:$rtmp_port/live  http://127.0.0.1:$http_port/hls/  spool $workdir/spool.db"

ffmpeg -nostdin -loglevel error -re -f lavfi -i testsrc=size=640x360:rate=25 -f lavfi -i sine=frequency=440 \
  -c:v libx264 -preset ultrafast -tune zerolatency -g 25 -c:a aac -t "$seconds" \
  -f flv "rtmp://127.0.0.1:$rtmp_port/live/demo?token=studio-key&user_id=studio" &
pids+=($!)
publisher=$!
for _ in $(seq 75); do [ -f "$workdir/hls/demo.m3u8" ] && break; sleep 0.2; done

play_for=$((seconds / 2))
ffmpeg -nostdin -loglevel error -rtmp_pageurl "https://shop.example/live" -rtmp_flashver "LNX 9,0,124,2" \
  -i "rtmp://127.0.0.1:$rtmp_port/live/demo?token=viewer-a&user_id=alice" -t "$play_for" -c copy -f null - &
pids+=($!)
ffmpeg -nostdin -loglevel error -rtmp_pageurl "https://news.example/watch" -rtmp_flashver "MAC 10,0,32,18" \
  -i "rtmp://127.0.0.1:$rtmp_port/live/demo?token=viewer-b&user_id=bob" -t "$play_for" -c copy -f null - &
pids+=($!)

# An HLS viewer: the playlist, then every segment it lists, once a second.
hls_bytes=0
end=$((SECONDS + play_for))
while [ $SECONDS -lt $end ]; do
  playlist=$(curl -s -A "AppleCoreMedia/1.0.0.20G75 (iPhone; CPU OS 16_6 like Mac OS X)" \
    -e "https://app.example/player" "http://127.0.0.1:$http_port/hls/demo.m3u8?token=viewer-c&user=carol" || true)
  for seg in $(printf '%s\n' "$playlist" | grep -v '^#' | tail -n 2); do
    n=$(curl -s -o /dev/null -w '%{size_download}' -A "AppleCoreMedia/1.0.0.20G75 (iPhone; CPU OS 16_6 like Mac OS X)" \
      -e "https://app.example/player" "http://127.0.0.1:$http_port/hls/$seg?token=viewer-c&user=carol" || echo 0)
    hls_bytes=$((hls_bytes + n))
  done
  sleep 1
done
echo "nginx-demo: HLS viewer downloaded $hls_bytes segment bytes"

wait "$publisher" 2>/dev/null || true
sleep 4   # the HLS session times out (3 s of silence)
kill -QUIT "$nginx_pid"
for _ in $(seq 100); do kill -0 "$nginx_pid" 2>/dev/null || break; sleep 0.1; done
echo "nginx-demo: nginx stopped; nginx-rtmp's access log:"
sed 's/^/  /' "$workdir/rtmp_access.log"
