// The write audit log: every write the platform asked for, and how it ended (done, failed,
// refused, expired, superseded), one JSON object per line in `data_dir/audit.log`. It survives
// restarts (appended with O_APPEND; the page cache outlives the daemon, a power cut may take the
// last lines) and is bounded: past `max_bytes` the file becomes `audit.log.1` (the previous one
// is dropped), so at most twice that is kept. A disk that refuses is reported once and the
// gateway goes on; the entries that could not be written are counted.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/value.hpp"

namespace fieldlink::store {

struct AuditEntry {
    std::int64_t at_ms = 0;                    // Unix ms when it ended
    std::string cloud;                         // who: the cloud it came from,
    std::string from;                          // ... the platform's request (kind and id)
    std::optional<std::int64_t> requested_ms;  // when the platform issued it, where it says
    std::string device;
    std::vector<std::pair<std::string, core::Value>> asked;      // point = value, in order
    std::string text;                                            // what came, when it was not understood
    std::string result;                                          // done, failed, refused, expired, superseded
    std::string reason;                                          // why not done
    std::vector<std::pair<std::string, core::Value>> read_back;  // the device's values after the write
};

class AuditLog {
  public:
    static constexpr std::uint64_t kDefaultMaxBytes = std::uint64_t{1} << 20;
    explicit AuditLog(std::string path, std::uint64_t max_bytes = kDefaultMaxBytes);
    ~AuditLog();
    AuditLog(const AuditLog&) = delete;
    AuditLog& operator=(const AuditLog&) = delete;

    // False when the disk refused (problem() says why; logged by the caller once).
    bool append(const AuditEntry& e);
    const std::string& problem() const { return problem_; }
    std::uint64_t lost() const { return lost_; }
    const std::string& path() const { return path_; }
    // One entry as its line (without the newline).
    static std::string line(const AuditEntry& e);
    // The newest `n` lines of the log at `path` (its rotated part first), oldest first.
    static std::vector<std::string> tail(const std::string& path, std::size_t n);

  private:
    bool open();
    bool rotate();

    std::string path_;
    std::uint64_t max_bytes_;
    int fd_ = -1;
    std::uint64_t size_ = 0;
    std::uint64_t lost_ = 0;
    std::string problem_;
};

}  // namespace fieldlink::store
