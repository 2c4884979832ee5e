// NDJSON encoding of SessionRecord (one JSON object, no trailing newline) and the
// strict decoder the collector and `streamtally-spool import` use: every field is
// checked for type, enum, range, length and UTF-8; the error names the field.
#pragma once

#include <string>
#include <string_view>

#include "streamtally/record.hpp"
#include "streamtally/result.hpp"

namespace streamtally {

std::string encode_record(const SessionRecord&);
void encode_record(const SessionRecord&, std::string& append_to);

Result<SessionRecord> decode_record(std::string_view json_line);
// The same into `out`, a default-constructed record (a batch decodes into its own
// vector's slots); on an error `out` holds part of the line and is to be dropped.
Status decode_record(std::string_view json_line, SessionRecord& out);

// Checks the invariants of SPEC.md on a record (limits, seq >= 0, closed <=> ended_at,
// started_at <= updated_at, ...). decode_record applies it; hosts may use it too.
Status validate_record(const SessionRecord&);

}  // namespace streamtally
