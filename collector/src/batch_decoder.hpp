// Turns the body of POST /v1/batches into an IngestBatch: content encoding (gzip or
// identity, inflated with a hard cap against gzip bombs), NDJSON lines decoded and
// validated by streamtally::decode_record, then enriched. Any bad line rejects the
// whole batch with the line number (SPEC: nothing stored).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "store.hpp"

namespace streamtally::collector {

struct BatchError {
  int status = 400;                // 400 bad line, 413 too large, 415 bad encoding
  std::string message;
  std::optional<int64_t> line;     // 1-based, for 400 on a record
};

struct BatchLimits {
  std::size_t max_decompressed_bytes = 256u << 20;
  std::size_t max_records = 200'000;
};

// Returns the batch or the error to answer with. A gzip body is kept in the batch
// (IngestBatch::gzip_ndjson).
std::optional<BatchError> decode_batch(std::string_view content_encoding, std::string_view body,
                                       const BatchLimits& limits, const EnrichFn& enrich, IngestBatch& out);

// "example.com" from "https://example.com:8080/page" ("" when there is no host).
std::string referer_domain(std::string_view referer);

}  // namespace streamtally::collector
