// The store's writer connection and its prepared statements: it writes ApplyPlans
// (apply_plan.hpp). Only the thread that commits plans uses it (plan_committer.hpp),
// after open.
#pragma once

#include <array>
#include <string>

#include "apply_plan.hpp"
#include "sqlite_database.hpp"
#include "sqlite_schema.hpp"

namespace streamtally::collector {

struct SqliteWriter {
  SqliteDb db;
  Statement insert_session, update_session, update_session_fast, insert_update, set_meta, keep_damaged;
  std::array<Statement, kFamilyCount> insert_dims;
  std::array<std::array<Statement, kRollupLevelCount>, kFamilyCount> upsert_rollup;
  std::string chain_row;  // write_chain_row()'s buffer, reused

  Status prepare();
  // Inside an open transaction: the plan's new dimension combinations, session rows,
  // chain rows, rollup cells and damaged inbox rows (not the meta the caller keeps).
  Status write(const ApplyPlan& plan);
  // Resets every statement (after a failure left one mid-step).
  void reset_all();
};

}  // namespace streamtally::collector
