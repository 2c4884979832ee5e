#!/usr/bin/env bash
# The README's demo: installs what is missing, builds, then runs StreamTally end to end
# on this machine (everything on 127.0.0.1, free ports, a temp dir):
#   - streamtally-collector on SQLite, with the dashboard;
#   - Debian's nginx with nginx-rtmp and both StreamTally modules (RTMP ingest + HLS);
#   - a real ffmpeg publisher over RTMP, two ffmpeg RTMP players, three HLS viewers (curl);
#   - a GStreamer pipeline serving HTTP through streamtallyhttpsink, with two curl clients;
# then prints the collector's reports and the dashboard URL.
#
#   scripts/demo.sh [--keep]    --keep: leave the collector running for the dashboard
#                               until Ctrl-C (the default when run from a terminal)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${STREAMTALLY_BUILD_DIR:-$root/build}
keep=0
[ -t 0 ] && keep=1
[ "${1:-}" = "--keep" ] && keep=1
[ "${1:-}" = "--no-keep" ] && keep=0

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Installing what is missing and building"
"$root/scripts/setup-deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null

collector_bin="$build/collector/streamtally-collector"
rtmp_module=$(find "$build/nginx-module" -name 'ngx_rtmp_streamtally_module.so' | head -n1)
http_module=$(find "$build/nginx-module" -name 'ngx_http_streamtally_module.so' | head -n1)
gst_plugins="$build/gst-plugins"

work=$(mktemp -d /tmp/streamtally-demo.XXXXXX)
chmod 0777 "$work"
mkdir -p "$work/hls" "$work/nginx-temp"
chmod 0777 "$work/hls" "$work/nginx-temp"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {  # url, seconds
  for _ in $(seq 1 $(($2 * 10))); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "demo: $1 did not answer" >&2
  return 1
}

collector_port=$(free_port)
rtmp_port=$(free_port)
http_port=$(free_port)
gst_port=$(free_port)
collector="http://127.0.0.1:$collector_port"
ingest_token=demo-ingest-token

say "Collector on $collector (SQLite store in $work)"
"$collector_bin" --listen "127.0.0.1:$collector_port" --store "sqlite:$work/collector.db" \
  --ingest-token "$ingest_token" >"$work/collector.log" 2>&1 &
pids+=($!)
wait_http "$collector/healthz" 10

say "nginx with nginx-rtmp and the StreamTally modules (RTMP :$rtmp_port, HLS :$http_port)"
cat >"$work/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
load_module $rtmp_module;
load_module $http_module;
worker_processes 1;   # nginx-rtmp live streams need one worker (rtmp_auto_push is broken with the dynamic module)
daemon on;
pid $work/nginx.pid;
error_log $work/nginx-error.log info;
events { worker_connections 256; }

rtmp {
    streamtally_spool $work/edge-spool.db;
    streamtally_collector $collector;
    streamtally_collector_token $ingest_token;
    streamtally_interim 5s;
    streamtally_flush 1s;
    server {
        listen 127.0.0.1:$rtmp_port;
        application live {
            live on;
            hls on;
            hls_path $work/hls;
            hls_fragment 1s;
            hls_playlist_length 6s;
            streamtally on;
            streamtally_token_arg token;
            streamtally_user_arg user;
            streamtally_tag event demo;
        }
    }
}

http {
    streamtally_spool $work/edge-spool.db;
    streamtally_collector $collector;
    streamtally_collector_token $ingest_token;
    streamtally_interim 5s;
    streamtally_flush 1s;
    access_log off;
    client_body_temp_path $work/nginx-temp;
    proxy_temp_path $work/nginx-temp;
    fastcgi_temp_path $work/nginx-temp;
    uwsgi_temp_path $work/nginx-temp;
    scgi_temp_path $work/nginx-temp;
    types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
    # The stream of an HLS request: /hls/demo.m3u8 and /hls/demo-3.ts are live/demo.
    map \$uri \$hls_stream {
        ~^/hls/(?<name>[^/]+?)(-[0-9]+)?\.(m3u8|ts)\$  live/\$name;
        default                                     unknown;
    }
    server {
        listen 127.0.0.1:$http_port;
        # The demo's viewers all come from 127.0.0.1; they pose as clients behind a load
        # balancer that appends X-Forwarded-For (nginx's realip module), so the collector
        # has addresses to find countries for.
        set_real_ip_from 127.0.0.1;
        real_ip_header X-Forwarded-For;
        location /hls/ {
            alias $work/hls/;
            streamtally on;
            streamtally_protocol hls;
            streamtally_stream \$hls_stream;
            streamtally_token \$arg_token;
            streamtally_user_id \$arg_user;
            streamtally_session_timeout 5s;
        }
    }
}
EOF
/usr/sbin/nginx -t -c "$work/nginx.conf" -p "$work" 2>&1 | sed 's/^/  /'
/usr/sbin/nginx -c "$work/nginx.conf" -p "$work"

say "Publishing a test source over RTMP with ffmpeg (20 s)"
ffmpeg -nostdin -loglevel error -re -f lavfi -i testsrc=size=640x360:rate=25 -f lavfi -i sine=frequency=440 \
  -t 20 -c:v libx264 -preset veryfast -tune zerolatency -g 25 -c:a aac -b:a 64k \
  -f flv "rtmp://127.0.0.1:$rtmp_port/live/demo?token=publisher-secret&user=studio-1" &
publisher=$!
pids+=($publisher)
for _ in $(seq 1 100); do [ -f "$work/hls/demo.m3u8" ] && break; sleep 0.1; done

say "Two RTMP players (ffmpeg) and three HLS viewers (curl)"
for n in 1 2; do
  ffmpeg -nostdin -loglevel error -rtmp_pageurl "https://player$n.example.com/watch" \
    -rtmp_flashver "LNX 9,0,124,$n" -i "rtmp://127.0.0.1:$rtmp_port/live/demo?token=viewer-$n&user=user-$n" \
    -t 8 -f null - &
  pids+=($!)
done
hls_viewer() {  # user-agent referer token forwarded-for
  local end=$((SECONDS + 10))
  while [ $SECONDS -lt $end ]; do
    local playlist
    playlist=$(curl -fs -A "$1" -e "$2" -H "X-Forwarded-For: $4" \
      "http://127.0.0.1:$http_port/hls/demo.m3u8?token=$3&user=$3") || true
    for seg in $(printf '%s\n' "$playlist" | grep -v '^#' | tail -n 2); do
      curl -fs -o /dev/null -A "$1" -e "$2" -H "X-Forwarded-For: $4" \
        "http://127.0.0.1:$http_port/hls/$seg?token=$3&user=$3" || true
    done
    sleep 1
  done
}
hls_viewer "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1" \
  "https://m.example.com/live" hls-iphone 81.2.69.160 &
pids+=($!)
hls_viewer "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36" \
  "https://www.example.com/live" hls-desktop 193.99.144.80 &
pids+=($!)
hls_viewer "ExoPlayerLib/2.19.1" "" hls-android 200.147.67.142 &
pids+=($!)

say "A GStreamer pipeline serving HTTP with streamtallyhttpsink (:$gst_port) and two curl clients"
GST_PLUGIN_PATH="$gst_plugins" gst-launch-1.0 -q -e \
  videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=25/1 ! \
  x264enc tune=zerolatency speed-preset=ultrafast ! mpegtsmux ! \
  streamtallyhttpsink address=127.0.0.1 port="$gst_port" stream=gst/testcard trust-x-forwarded-for=true \
  spool="$work/gst-spool.db" collector="$collector" collector-token="$ingest_token" interim=5000 \
  >"$work/gst.log" 2>&1 &
gst=$!
pids+=($gst)
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$gst_port") 2>/dev/null && break; sleep 0.1; done
curl -s -o /dev/null --max-time 6 -A "VLC/3.0.18 LibVLC/3.0.18" -H "X-Forwarded-For: 133.242.0.3" \
  "http://127.0.0.1:$gst_port/gst/testcard?token=gst-a&user=alice" || true &
curl -s -o /dev/null --max-time 4 -A "Lavf/59.27.100" -e "https://tv.example.com/" -H "X-Forwarded-For: 8.8.8.8" \
  "http://127.0.0.1:$gst_port/gst/testcard?token=gst-b" || true &

wait "$publisher" || true
sleep 2
say "Stopping: nginx -s quit and EOS to the pipeline (open sessions are closed and flushed)"
/usr/sbin/nginx -c "$work/nginx.conf" -p "$work" -s quit
kill -INT "$gst" 2>/dev/null || true
for _ in $(seq 1 100); do [ -f "$work/nginx.pid" ] || break; sleep 0.1; done
wait "$gst" 2>/dev/null || true

# Wait until every session has arrived closed at the collector.
for _ in $(seq 1 60); do
  open=$(curl -fs "$collector/v1/sessions?group=all&limit=1000" | /usr/bin/python3 -c \
    'import json,sys; d=json.load(sys.stdin); print(sum(1 for r in d["rows"] if r.get("state")!="closed"))' 2>/dev/null || echo 1)
  [ "$open" = "0" ] && break
  sleep 0.5
done

report() {  # title path
  say "$1  (GET $2)"
  curl -fs "$collector$2" | /usr/bin/python3 "$root/scripts/print_report.py"
}
report "Sessions (Retroview: Playback all)" "/v1/sessions?group=all&order=started_at&limit=50"
report "By stream" "/v1/sessions?group=stream"
report "Views, unique viewers, viewtime and bytes per stream and protocol" \
  "/v1/events?dimensions=stream,protocol&metrics=views,unique_viewers,viewtime,bytes_out,bytes_in"
report "Views by country and device type" "/v1/events?dimensions=country,device_type&metrics=views,viewtime"
report "Top streams by bytes out this month" "/v1/top?by=bytes_out&of=stream&limit=10"
report "Month to date usage" "/v1/usage/month-to-date"

say "Dashboard: $collector/"
if [ "$keep" = 1 ]; then
  echo "The collector keeps running for the dashboard; Ctrl-C to stop (data in $work)."
  wait "${pids[0]}" || true
fi
