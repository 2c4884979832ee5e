#!/usr/bin/env bash
# Accounts an MPEG-TS ingest arriving on UDP (bytes_in of one publish session) and
# records it to a file. Send something with e.g.
#   gst-launch-1.0 videotestsrc is-live=true ! x264enc tune=zerolatency ! mpegtsmux \
#     ! udpsink host=127.0.0.1 port=5000
# Environment: SPOOL [/var/lib/streamtally/spool.db] COLLECTOR COLLECTOR_TOKEN
#   PORT [5000] STREAM [ingest/cam2] OUT [/tmp/ingest.ts]
# The session closes ("server") when this pipeline stops (Ctrl-C: EOS with -e).
set -euo pipefail
args=(spool="${SPOOL:-/var/lib/streamtally/spool.db}" type=publish protocol=udp
      stream="${STREAM:-ingest/cam2}")
[ -n "${COLLECTOR:-}" ] && args+=(collector="$COLLECTOR")
[ -n "${COLLECTOR_TOKEN:-}" ] && args+=(collector-token="$COLLECTOR_TOKEN")
exec gst-launch-1.0 -e -m \
  udpsrc port="${PORT:-5000}" caps=video/mpegts \
  ! streamtally "${args[@]}" \
  ! filesink location="${OUT:-/tmp/ingest.ts}"
