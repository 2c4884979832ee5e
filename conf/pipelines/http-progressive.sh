#!/usr/bin/env bash
# Serves a live test stream (H.264 in MPEG-TS) over progressive HTTP with one
# StreamTally session per viewer:
#   http://ADDRESS:PORT/live/cam1.ts?token=...&user=...
# Environment (defaults in brackets):
#   SPOOL [/var/lib/streamtally/spool.db]  COLLECTOR [none]  COLLECTOR_TOKEN [none]
#   ADDRESS [127.0.0.1]  PORT [8080]  STREAM [live/cam1.ts]  INTERIM_MS [60000]
#   NUM_BUFFERS [-1: forever]  GST_PLUGIN_PATH must contain libgststreamtally.so
set -euo pipefail
args=(spool="${SPOOL:-/var/lib/streamtally/spool.db}" address="${ADDRESS:-127.0.0.1}"
      port="${PORT:-8080}" stream="${STREAM:-live/cam1.ts}" interim="${INTERIM_MS:-60000}")
[ -n "${COLLECTOR:-}" ] && args+=(collector="$COLLECTOR")
[ -n "${COLLECTOR_TOKEN:-}" ] && args+=(collector-token="$COLLECTOR_TOKEN")
exec gst-launch-1.0 -e -m \
  videotestsrc is-live=true num-buffers="${NUM_BUFFERS:--1}" \
  ! video/x-raw,width=640,height=360,framerate=25/1 \
  ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=50 \
  ! mpegtsmux \
  ! streamtallyhttpsink "${args[@]}" sink::sync-method=latest-keyframe
