#!/usr/bin/python3
"""Prints a StreamTally collector JSON response (stdin) as plain-text tables, for the demo."""
import json
import sys
from datetime import datetime, timezone


def fmt(value):
    if isinstance(value, float):
        return f"{value:.1f}"
    if value is None:
        return "-"
    return str(value)


def when(ms):
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%H:%M:%S") if ms else "-"


def table(headers, rows):
    rows = [[fmt(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c[:60].ljust(min(w, 60)) for c, w in zip(cells, widths))
    print(line(headers))
    print(line(["-" * w for w in widths]))
    for r in rows:
        print(line(r))


def main():
    data = json.load(sys.stdin)
    if "rows" in data and "total" in data:  # sessions
        rows = data["rows"]
        if rows and "session_id" in rows[0]:
            table(["started", "type", "protocol", "stream", "client_ip", "country", "device", "bytes_in",
                   "bytes_out", "viewtime_s", "end_reason", "user_agent"],
                  [[when(r.get("started_at")), r.get("type"), r.get("protocol"), r.get("stream"),
                    r.get("client_ip"), r.get("country"), r.get("device_type"), r.get("bytes_in"),
                    r.get("bytes_out"), r.get("viewtime"), r.get("end_reason"), r.get("user_agent")]
                   for r in rows])
        elif rows:
            keys = list(rows[0].keys())
            table(keys, [[r.get(k) for k in keys] for r in rows])
        print(f"({data['total']} in all)")
    elif "data" in data:  # events
        rows = data["data"]
        if not rows:
            print("(no data)")
            return
        dims = list(rows[0]["dimensions"].keys())
        mets = list(rows[0]["totals"].keys())
        table(dims + mets, [[r["dimensions"][d] for d in dims] + [r["totals"][m] for m in mets] for r in rows])
    elif "by" in data and "rows" in data:  # top
        table([data["of"], data["by"]], [[r["key"], r["value"]] for r in data["rows"]])
    elif "current" in data:  # month to date
        parts = ["total", "playout", "ingest"]
        table(["", *parts], [["this month so far", *[data["current"][p] for p in parts]],
                             ["last month, same period", *[data["previous_same_period"][p] for p in parts]],
                             ["all of last month", *[data["previous_month"][p] for p in parts]],
                             ["change %", *[data["change_pct"].get(p) for p in parts]]])
    else:
        print(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()
