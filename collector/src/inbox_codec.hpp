// The inbox's row format: the records of one acknowledged batch (with what ingest
// derived from them), as the SQLite store keeps them until they are applied to the
// sessions, the update chains and the rollups (sqlite_store.hpp, "Inbox").
//
// A compact binary form rather than the NDJSON of the record codec: ingest encodes
// every accepted record on its hot path and the applier decodes it again, and JSON
// would cost ~3 µs a record both ways, more than the rest of ingest together. The
// rows never leave the store's file, so nothing else needs to read them.
//
// Layout (little-endian varints, zigzag for signed values; strings are a varint length
// and the bytes): a format byte, the record count, then per record its fields in the
// order of encode_inbox_records(). Decoding checks every length and enum against the
// row's end, so a damaged row is an error, never a crash or a wrong record.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "store.hpp"

namespace streamtally::collector {

// Appends the records to `out` as one inbox row.
void encode_inbox_records(const std::vector<const IngestRecord*>& records, std::string& out);

// The records of one inbox row; an error names what is damaged.
Result<std::vector<IngestRecord>> decode_inbox_records(std::string_view row);

}  // namespace streamtally::collector
