// The durable outbox: every sample batch is appended here before it is handed to MQTT and deleted
// only when the broker acknowledged it. An append-only journal takes every batch first; what the
// broker has not acknowledged within a few seconds moves into SQLite (WAL mode), where backlogs
// live. Format in docs/STORE_FORMAT.md. Used by the north thread only (not thread-safe).
#pragma once

#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/config.hpp"
#include "core/value.hpp"
#include "store/journal.hpp"
#include "store/logins.hpp"
#include "store/sqlite.hpp"
#include "store/stats.hpp"

namespace fieldlink::store {

struct RecordId {
    std::uint32_t device = 0;  // store device id (stable across restarts and config edits)
    std::int64_t id = 0;       // global append order
};

class Outbox {
  public:
    // Opens (or creates) <data_dir>/outbox.db. A file that is not a valid store is moved aside
    // (outbox.db.corrupt-<time>) and counted. Returns nullptr with `error` when the directory
    // cannot be used.
    // `disk`: set when the failure is the disk's (full, read-only, failing), so that the gateway
    // can run on without durability rather than not at all.
    static std::unique_ptr<Outbox> open(const config::Config& cfg, std::string* error, bool* disk = nullptr);
    // A reload (same gateway settings): maps the devices of `cfg`, aligned with the running
    // configuration (config/diff.hpp), and drops the records of devices it no longer has.
    void remap(const config::Config& cfg);
    // False while the store cannot write (a full, failing or read-only file system); true again
    // after a write succeeds. problem() says what failed, "" when nothing does.
    bool writable() const { return trouble_.empty(); }
    const std::string& problem() const { return trouble_; }
    ~Outbox();
    Outbox(const Outbox&) = delete;
    Outbox& operator=(const Outbox&) = delete;

    // Appends the batches to the journal in one write() (synced with store_sync: batch) and sets
    // their record ids; a batch that cannot be stored (full or failing disk) is counted and its id
    // left 0.
    void append(std::vector<core::SampleBatch*>& batches);
    // An acknowledged record (config device index, record id): one still in the journal is done
    // at once (its ack is journaled by maintain()); one in SQLite is deleted by maintain(), in one
    // transaction with the others.
    void ack(std::uint32_t device_index, std::int64_t id);
    // Journals acks, moves batches not acknowledged in time from the journal into SQLite, applies
    // acks, enforces the disk budget and age limit, asks for syncs per the configured interval.
    // Returns the newest record id dropped by the budget (0: none), so sessions can forget them.
    std::int64_t maintain(std::chrono::steady_clock::time_point now);

    // Oldest-first records of `devices` (config indices) with after < id < before.
    std::vector<core::SampleBatch> load(const std::vector<std::uint32_t>& devices, std::int64_t after,
                                        std::int64_t before, std::size_t limit);
    // Counters and sizes, without scanning the outbox (the oldest acquisition time is left 0:
    // the sessions know it).
    StoreStats stats();
    // Queued batches and samples dropped by the budget/age, per configured device (index); kept
    // in memory, exact (a delete counts only when it removed a row).
    struct DeviceQueue {
        std::uint64_t queued = 0;
        std::uint64_t dropped = 0;
    };
    const std::vector<DeviceQueue>& per_device() const { return per_device_; }
    const std::string& path() const { return path_; }
    // The acquisition time of the newest record at open or the last reload (0: none): a wall
    // clock before it is not to be trusted.
    std::int64_t newest_timestamp_ms() const { return newest_ts_; }
    // Connection attempts per session, kept across restarts (login-rate limit): recorded in
    // memory, written by flush_logins() in one transaction (the north loop calls it every turn).
    void record_login(const std::string& session, std::int64_t unix_ms) { logins_.record(session, unix_ms); }
    void flush_logins();
    // Every session's attempts since `since_unix_ms` (one query, at start).
    std::map<std::string, std::vector<std::int64_t>> recent_logins(std::int64_t since_unix_ms);
    // Tests: caps the database at its size now plus `extra_pages`, so that writes needing more
    // fail with SQLITE_FULL, as on a full file system (1 << 30: no cap).
    void limit_pages_for_test(int extra_pages);

  private:
    Outbox() = default;
    bool init(const config::Config& cfg, std::string* error);
    bool open_database(std::string* error);
    int open_and_check(std::string& check);
    void move_aside(int rc, const std::string& check);
    std::uint64_t share_budget();
    void tune(std::uint64_t wal_limit);
    void log_backlog();
    bool exec(const char* sql);
    // A disk problem (full, I/O error, read-only): the first of an episode is logged; the
    // episode ends with the next write that succeeds (resolved()), and for a full file system
    // only once it has room again (room_again(): the reserve's size free, at least 256 KiB).
    // `journal`: the journal failed (a journal write that works ends the episode), else SQLite
    // (a commit that works ends it).
    void trouble(const std::string& doing, const char* what, bool journal = false);
    void resolved();
    bool room_again() const;
    bool commit_or_rollback(const char* doing);
    // The reserve: a file of reserve_bytes_ kept beside the store and given up when a full disk
    // would otherwise stop acks and the budget's deletes (a WAL needs room to delete).
    void keep_reserve();
    bool release_reserve();
    void cut_wal_to_share();
    std::uint64_t wal_bytes() const;
    std::uint64_t on_disk_bytes();
    bool apply_acks();
    bool replay_journal(std::string* error);
    // Batches of the journal into SQLite (all of them, or none when SQLite refuses), then the
    // journal starts over. `force`: now, whatever their age.
    void fold(std::chrono::steady_clock::time_point now, bool force);
    bool insert_rows(const std::vector<const JournalBatch*>& rows);
    bool to_batch(std::uint32_t store_device, std::int64_t id, std::int64_t ts, const std::string& blob,
                  core::SampleBatch& b);
    void map_devices(const config::Config& cfg);
    void drop_oldest(std::uint64_t target_bytes);
    std::vector<std::pair<std::string, std::uint64_t>> corrupt_files() const;
    void count_corrupt_files();
    std::uint64_t drop_rows(const std::string& where, std::int64_t limit);
    void drop_unknown_devices();
    std::uint64_t used_bytes();
    void count_queued();
    void start_checkpoints();
    void stop_checkpoints();

    const config::Config* cfg_ = nullptr;
    std::string path_;
    sqlite3* db_ = nullptr;
    sql::Statement insert_;
    sql::Statement remove_;
    std::vector<std::uint32_t> device_ids_;                // config index -> store device id
    std::map<std::uint32_t, std::uint32_t> device_index_;  // store device id -> config index
    std::vector<std::vector<std::uint32_t>> point_ids_;    // config [device][point] -> store point id
    std::map<std::uint32_t, std::pair<std::uint32_t, std::uint32_t>> point_index_;  // store point -> (device, point)
    std::vector<RecordId> acks_;                                                    // (config device index, record id)
    std::vector<RecordId> discard_;  // corrupt records to delete: (store device id, record id)
    std::vector<DeviceQueue> per_device_;
    LoginLog logins_;
    std::int64_t next_id_ = 1;
    std::int64_t newest_ts_ = 0;
    std::uint64_t max_bytes_ = 0;
    std::int64_t max_age_ms_ = 0;
    std::chrono::milliseconds sync_interval_{1000};
    std::chrono::steady_clock::time_point last_budget_{};
    std::int64_t dropped_through_ = 0;
    std::uint64_t queued_ = 0;        // records on disk, tracked without COUNT(*)
    std::uint64_t backlog_high_ = 0;  // largest queue since it was last empty
    std::uint64_t episode_start_dropped_ = 0;
    std::string trouble_;  // the disk problem of the current episode, "" when none
    std::chrono::steady_clock::time_point trouble_since_{};
    std::uint64_t trouble_dropped_ = 0;  // dropped_full when the episode began
    std::uint64_t corrupt_bytes_ = 0;    // files moved aside as corrupt, beside the store
    std::string reserve_path_;
    std::uint64_t reserve_bytes_ = 0;
    StoreStats stats_;
    // The journal and what of it is not yet acknowledged (by record id), with when it came.
    struct Pending {
        std::uint32_t device_index = 0;
        std::chrono::steady_clock::time_point at{};
        JournalBatch record;
    };
    Journal journal_;
    std::map<std::int64_t, Pending> pending_;
    std::vector<JournalAck> journal_acks_;  // to be journaled by maintain()
    std::chrono::steady_clock::time_point last_reset_{};
    std::uint64_t fold_bytes_ = 1U << 20;  // the journal is folded past this size
    std::int64_t sync_asked_through_ = 0;  // the newest pending record a journal sync was asked for
    // WAL checkpoints (the file system syncs) run on their own thread and connection, so the
    // north loop never waits for the disk (except with store_sync: batch, which asks for it).
    std::thread checkpointer_;
    std::mutex checkpoint_mutex_;
    std::condition_variable checkpoint_cv_;
    int wal_limit_frames_ = 4096;
    std::atomic<bool> journal_sync_wanted_{false};
    bool checkpoint_stop_ = false;
    bool over_budget_logged_ = false;
    bool reserve_held_ = false;
    bool journal_trouble_ = false;
    bool trouble_full_ = false;  // the episode is a full file system (ends when there is room again)
    bool disk_failed_ = false;   // init failed for want of a writable disk
};

}  // namespace fieldlink::store
