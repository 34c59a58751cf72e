// The outbox's journal: an append-only file in front of the SQLite store (docs/STORE_FORMAT.md).
// Every batch is written here with one write() before it goes to MQTT, so it survives kill -9
// (and, synced, power loss); the broker's acknowledgement is noted in the same file. Batches not
// acknowledged within a short window are moved into SQLite ("folded") and the journal starts over
// (truncated): with the broker answering, what was journaled is cut before the kernel ever writes
// it back, and the storage sees almost nothing. Used by the north thread (Outbox) only, except
// sync(), which the checkpoint thread may call.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fieldlink::store {

// One batch as journaled: store ids (stable across restarts), the acquisition time and the values
// encoded as in the outbox table (store/record.hpp).
struct JournalBatch {
    std::uint32_t device = 0;
    std::int64_t id = 0;
    std::int64_t ts = 0;
    std::string payload;
};

struct JournalAck {
    std::uint32_t device = 0;
    std::int64_t id = 0;
};

// What a journal file holds, in file order. `valid_bytes` ends at the last whole record whose
// checksum matches; anything after it (a write cut by a power loss, damage) is `torn_bytes`.
struct JournalContents {
    std::vector<JournalBatch> batches;  // not yet acknowledged, in append order
    std::vector<JournalAck> acks;       // acknowledgements of journaled batches, in file order
    std::int64_t max_id = 0;            // the largest id seen, acknowledged or not
    std::size_t valid_bytes = 0;
    std::size_t torn_bytes = 0;
};

class Journal {
  public:
    Journal() = default;
    ~Journal();
    Journal(const Journal&) = delete;
    Journal& operator=(const Journal&) = delete;

    // Opens (creates) the file. False with errno's text in `error`.
    bool open(const std::string& path, std::string* error);
    // Reads the whole file (at start, before anything is appended).
    bool read(JournalContents& out, std::string* error);
    // The batches, or the acks, as one write(). False (errno set, the file cut back to where it
    // was) when the file system refuses it, whole or in part.
    bool append(const std::vector<JournalBatch>& batches);
    bool append(const std::vector<JournalAck>& acks);
    // fdatasync: false (errno set) on failure.
    bool sync() const;
    // Starts over: the file is cut to nothing (pages not yet written back are never written).
    bool reset();
    std::uint64_t size() const { return size_; }
    // Tests: appends that would make the file longer than `bytes` fail with ENOSPC, as on a full
    // file system (UINT64_MAX: no limit).
    void limit_for_test(std::uint64_t bytes) { limit_ = bytes; }
    const std::string& path() const { return path_; }

    // The file format, for the reader, the tests and the fuzz target.
    static void encode(const JournalBatch& b, std::string& out);
    static void encode(const std::vector<JournalAck>& acks, std::string& out);
    static void parse(const std::string& data, JournalContents& out);

  private:
    bool write_all(const std::string& bytes);

    int fd_ = -1;
    std::string path_;
    std::uint64_t size_ = 0;
    std::uint64_t limit_ = UINT64_MAX;
};

}  // namespace fieldlink::store
