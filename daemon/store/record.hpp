// The record codec: a batch's values as the store keeps them, in the journal and in SQLite's
// outbox table alike (docs/STORE_FORMAT.md): per value, the store's point id (varint), a tag and
// the value. Used by the outbox, its tests and the store's fuzz target.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/value.hpp"

namespace fieldlink::store {

// `point_ids`: the store's id of each point of the batch's device (config point index -> id).
std::string encode_record(const core::SampleBatch& b, const std::vector<std::uint32_t>& point_ids);
// Appends (store point id, value) pairs to `out`; false for a malformed blob (what came before
// the fault is left in `out`).
bool decode_record(const std::string& blob, std::vector<std::pair<std::uint32_t, core::Value>>& out);

}  // namespace fieldlink::store
