// A session's update chain as the SQLite store keeps it (table updates, see
// attribution.hpp for what the chain is): rows (session, seq, points), each holding the
// points one apply added to the session, keyed by the first one's seq.
//
// One row per session and apply instead of one per update: an apply of 25 000 records
// inserts a few thousand rows, not 25 000, and a point packed as varint deltas from the
// previous one (seq +1, t +60 000, bytes +n) takes ~10 bytes instead of a 40-byte row, so
// the chains of the open sessions sit in fewer pages. A late update (a seq below the
// chain's highest) gets a row of its own; readers merge the rows in seq order.
//
// Layout of points: a format byte, the point count, then per point zigzag varints of
// seq, t, bytes_in and bytes_out, the first point's as they are, the others' as
// wrap-around differences from the point before. Decoding checks the count against the
// end, so a damaged row is an error, never a crash or a wrong chain.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "attribution.hpp"
#include "sqlite_database.hpp"

namespace streamtally::collector {

// Prepare them to read a chain with read_chain() and to add a row with write_chain_row().
inline constexpr const char* kReadChainSql = "SELECT points FROM updates WHERE session = ?1";
inline constexpr const char* kInsertChainRowSql = "INSERT INTO updates VALUES (?1, ?2, ?3)";

// Appends the points as one row's points column.
void encode_chain_points(std::span<const UpdatePoint> points, std::string& out);

// Appends the points of one row's points column to out; an error names the damage
// (and out may then hold some of them).
Status decode_chain_points(std::string_view blob, std::vector<UpdatePoint>& out);

// The whole chain of a session in seq order, with a statement prepared from
// kReadChainSql: replaces the contents of chain.
Status read_chain(Statement& select_points, int64_t session, std::vector<UpdatePoint>& chain);

// Whether a chain read by read_chain() holds this seq.
bool chain_holds(const std::vector<UpdatePoint>& chain, int64_t seq);

// Adds the points (in seq order, none in the chain yet) as one row of the session's
// chain, keyed by the first one's seq, with a statement prepared from kInsertChainRowSql;
// buffer is reused for the encoding.
Status write_chain_row(Statement& insert, int64_t session, std::span<const UpdatePoint> points, std::string& buffer);

}  // namespace streamtally::collector
