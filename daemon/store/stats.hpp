// The store's figures, declared once: the struct and the table status.json's "store" section,
// /metrics and the stop line are generated from (core/figures.hpp).
#pragma once

#include <array>
#include <cstdint>

#include "core/figures.hpp"

namespace fieldlink::store {

struct StoreStats {
    std::uint64_t records = 0;     // queued batches
    std::uint64_t bytes_used = 0;  // on disk: database pages in use, the WAL, the journal and the reserve
    std::uint64_t appended = 0;
    std::uint64_t acked = 0;
    std::uint64_t journaled = 0;        // batches that went through the journal only (acknowledged in time)
    std::uint64_t folded = 0;           // batches moved from the journal into SQLite (not acknowledged in time)
    std::uint64_t dropped_budget = 0;   // samples dropped by the disk budget / max age
    std::uint64_t dropped_unknown = 0;  // samples of devices no longer configured
    std::uint64_t dropped_full = 0;     // samples that could not be written (full disk)
    std::uint64_t corrupt = 0;          // records or files found corrupt and moved aside
};

namespace figures {
using S = StoreStats;
using core::MetricType;
inline constexpr std::array<core::Figure<StoreStats>, 10> kStore = {{
    {&S::records, "queued_batches", "fieldlink_store_queued_batches", "", MetricType::gauge,
     "Batches waiting in the store for their acknowledgement.", "batch(es) queued on disk"},
    {&S::bytes_used, "bytes_used", "fieldlink_store_bytes", "", MetricType::gauge,
     "Bytes the store holds on disk: pages in use, write-ahead log, journal and reserve.", "bytes"},
    {&S::appended, "appended", "fieldlink_store_appended_total", "", MetricType::counter,
     "Batches written to the store.", "appended"},
    {&S::acked, "acked", "fieldlink_store_acked_total", "", MetricType::counter,
     "Acknowledgements applied to the store.", "acknowledged"},
    {&S::journaled, "journaled", "fieldlink_store_journaled_total", "", MetricType::counter,
     "Batches acknowledged while still in the journal (never written to SQLite).",
     "acknowledged while still in the journal"},
    {&S::folded, "folded", "fieldlink_store_folded_total", "", MetricType::counter,
     "Batches moved from the journal into SQLite (not acknowledged within 5 s).", "moved into SQLite"},
    {&S::dropped_budget, "dropped_budget", "fieldlink_store_dropped_budget_total", "", MetricType::counter,
     "Samples dropped by the store's size budget or maximum age.", "samples dropped by the budget"},
    {&S::dropped_unknown, "dropped_unconfigured", "", "", MetricType::counter, "", "of unconfigured devices"},
    {&S::dropped_full, "dropped_unwritable", "fieldlink_store_dropped_unwritable_total", "", MetricType::counter,
     "Samples that could not be stored: the disk refused the write (full, read-only, failing).", "unwritable"},
    {&S::corrupt, "corrupt", "fieldlink_store_corrupt_total", "", MetricType::counter,
     "Records or files of the store found corrupt and moved aside.", "corrupt"},
}};
}  // namespace figures

}  // namespace fieldlink::store
