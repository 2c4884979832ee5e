// The inbox's row format: the records of one acknowledged batch (with what ingest
// derived from them), as the SQLite store keeps them until they are applied to the
// sessions, the update chains and the rollups (sqlite_store.hpp, "Inbox").
//
// A compact binary form rather than the NDJSON of the record codec: ingest encodes
// every accepted record on its hot path and the applier decodes it again, and JSON
// would cost ~3 µs a record both ways, more than the rest of ingest together. The
// rows never leave the store's file, so nothing else needs to read them.
//
// Two forms, told apart by their first byte (varints are little-endian LEB128, zigzag
// for signed values; strings are a varint length and the bytes):
//  1  records: the record count, then per record its fields in the order of
//     encode_inbox_records(), derived fields included. For batches sent uncompressed.
//  2  gzip: the batch's record count, the length of a bitmap of which of them were
//     new (0: all were) and the bitmap, then the body exactly as the client sent it.
//     Reading it back decodes and enriches the batch again (batch_decoder.hpp). A
//     client's gzip NDJSON is about a fifth of form 1 (~40 bytes a record against
//     ~200): that much less for ingest to write to the inbox file, twice (its WAL,
//     then the checkpoint), on the path that acknowledges.
// Decoding checks every length and enum against the row's end, so a damaged row is an
// error, never a crash or a wrong record.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "store.hpp"

namespace streamtally::collector {

// Appends the records to `out` as one inbox row (form 1).
void encode_inbox_records(const std::vector<const IngestRecord*>& records, std::string& out);

// Appends the batch, which has a gzip_ndjson, as one inbox row (form 2) holding the
// records of `fresh`: pointers into batch.records, in batch order.
void encode_inbox_gzip_row(const IngestBatch& batch, const std::vector<const IngestRecord*>& fresh,
                           std::string& out);

// The records of one inbox row; an error names what is damaged. `enrich` derives the
// fields of the records of a form 2 row.
Result<std::vector<IngestRecord>> decode_inbox_records(std::string_view row, const EnrichFn& enrich);

}  // namespace streamtally::collector
