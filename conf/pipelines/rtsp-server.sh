#!/usr/bin/env bash
# RTSP server for a test pattern with a StreamTally session per client
# (streamtally-rtsp-server, built in build/gst-plugin/):
#   ffplay rtsp://127.0.0.1:8554/live/cam   or   ffmpeg -rtsp_transport tcp -i ... -f null -
# Environment: SPOOL [/var/lib/streamtally/spool.db] COLLECTOR COLLECTOR_TOKEN
#   ADDRESS [127.0.0.1] PORT [8554] MOUNT [/live/cam] BIN [streamtally-rtsp-server]
set -euo pipefail
args=(--address "${ADDRESS:-127.0.0.1}" --port "${PORT:-8554}" --mount "${MOUNT:-/live/cam}"
      --spool "${SPOOL:-/var/lib/streamtally/spool.db}")
[ -n "${COLLECTOR:-}" ] && args+=(--collector "$COLLECTOR")
[ -n "${COLLECTOR_TOKEN:-}" ] && args+=(--collector-token "$COLLECTOR_TOKEN")
exec "${BIN:-streamtally-rtsp-server}" "${args[@]}" \
  "( videotestsrc is-live=true ! video/x-raw,width=640,height=360,framerate=25/1 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=50 ! rtph264pay name=pay0 pt=96 )"
