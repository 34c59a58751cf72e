#include "outbox.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iterator>

#include "core/dir_lock.hpp"
#include "core/log.hpp"
#include "store/record.hpp"
#include "store/sqlite.hpp"

namespace fieldlink::store {
namespace {

const char* const kSchema = R"(
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS points (id INTEGER PRIMARY KEY, device INTEGER NOT NULL, name TEXT NOT NULL,
                                   UNIQUE (device, name));
CREATE TABLE IF NOT EXISTS outbox (device INTEGER NOT NULL, id INTEGER NOT NULL, ts INTEGER NOT NULL,
                                   payload BLOB NOT NULL, PRIMARY KEY (device, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS logins (session TEXT NOT NULL, at INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('format', '1');
)";

std::shared_ptr<spdlog::logger> log() {
    return core::logger("store");
}

// The write-ahead log is checkpointed back to this size (4 KiB pages: 16 MiB) at the latest.
constexpr int kWalLimitFrames = 4096;
// A journaled batch not acknowledged for this long moves into SQLite; a journal with nothing
// waiting starts over this often (well before the kernel writes dirty pages back, 30 s).
constexpr std::chrono::seconds kFoldAfter{5};
// A full file system counts as having room again with this much free (or the reserve's size).
constexpr std::uint64_t kRoomAgainBytes = std::uint64_t{256} * 1024;

// The file system's refusals, as opposed to a wrong path or permissions.
bool disk_errno(int e) {
    return e == ENOSPC || e == EROFS || e == EIO || e == EDQUOT;
}

// Who holds a lock on the file (SQLite's locks are POSIX record locks): "PID n", or "another
// process" when the kernel does not say.
std::string lock_holder(const std::string& path) {
    for (const std::string& p : {path, path + "-shm"}) {
        const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        struct flock fl {};
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        fl.l_start = 0;
        fl.l_len = 0;
        const bool got = ::fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK && fl.l_pid > 0;
        ::close(fd);
        if (got) return "PID " + std::to_string(fl.l_pid);
    }
    return "another process";
}

}  // namespace

std::unique_ptr<Outbox> Outbox::open(const config::Config& cfg, std::string* error, bool* disk) {
    std::unique_ptr<Outbox> o(new Outbox());
    if (!o->init(cfg, error)) {
        if (disk) *disk = o->disk_failed_;
        return nullptr;
    }
    return o;
}

Outbox::~Outbox() {
    stop_checkpoints();
    if (!db_) return;
    flush_logins();
    maintain(std::chrono::steady_clock::now());
    fold(std::chrono::steady_clock::now(), true);  // a clean stop leaves the journal empty
    insert_ = sql::Statement();
    remove_ = sql::Statement();
    sqlite3_close(db_);
}

bool Outbox::exec(const char* sql) {
    char* msg = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &msg) == SQLITE_OK) return true;
    trouble(std::string(sql).substr(0, 40), msg ? msg : sqlite3_errmsg(db_));
    sqlite3_free(msg);
    return false;
}

void Outbox::trouble(const std::string& doing, const char* what, bool journal) {
    if (!trouble_.empty()) return;  // one line per episode
    // (Asked first: errno, and SQLite's last code, are what the caller just failed with.)
    trouble_full_ = journal ? (errno == ENOSPC || errno == EDQUOT) : sqlite3_errcode(db_) == SQLITE_FULL;
    trouble_ = std::string(what) + " (" + doing + ")";
    journal_trouble_ = journal;
    trouble_since_ = std::chrono::steady_clock::now();
    trouble_dropped_ = stats_.dropped_full;
    log()->error(
        "store {}: cannot write: {}; polling goes on and live data is still sent, what cannot be stored is dropped "
        "and counted, and writing is tried again with every batch",
        path_, trouble_);
}

// A full disk's episode ends when there is room again, not with the first write that fits: a
// journal cut back, or an ack's delete, frees a few pages that the next batches fill again, and
// every such turn would be two more lines in the log (every 5 s on a disk that stays full).
bool Outbox::room_again() const {
    struct statvfs fs {};
    if (::statvfs(path_.c_str(), &fs) != 0) return true;  // cannot tell: the write that worked says so
    const std::uint64_t free_bytes = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
    return free_bytes >= std::max<std::uint64_t>(reserve_bytes_, kRoomAgainBytes);
}

void Outbox::resolved() {
    if (trouble_.empty()) return;
    if (trouble_full_ && !room_again()) return;
    const auto secs =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - trouble_since_).count();
    log()->info("store {}: writable again after {} s; {} sample(s) could not be stored meanwhile (counted as dropped)",
                path_, secs, stats_.dropped_full - trouble_dropped_);
    trouble_.clear();
}

// COMMIT, or ROLLBACK when it fails (nothing of the transaction happened). True when committed.
bool Outbox::commit_or_rollback(const char* doing) {
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK) return true;
    trouble(doing, sqlite3_errmsg(db_));
    if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    return false;
}

// The reserve file is made when there is room for it (at start, and again after a full disk gave
// it up), with its blocks allocated, so giving it up frees them for sure.
void Outbox::keep_reserve() {
    if (reserve_held_ || reserve_bytes_ == 0) return;
    const int fd = ::open(reserve_path_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) return;
    const int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(reserve_bytes_));
    ::close(fd);
    if (rc == 0) {
        reserve_held_ = true;
    } else {
        ::unlink(reserve_path_.c_str());  // no room yet: tried again later
    }
}

// A full disk: the reserve goes and the WAL is cut back, so that a delete has room. False when
// there was no reserve to give up (nothing changed: trying again is pointless).
bool Outbox::release_reserve() {
    if (!reserve_held_) return false;
    reserve_held_ = false;
    if (::unlink(reserve_path_.c_str()) != 0) return false;
    log()->warn(
        "store {}: the file system is full; the reserve ({} bytes) was given up so that acknowledged data "
        "can still be deleted",
        path_, reserve_bytes_);
    sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
    return true;
}

// The WAL past its share of the budget is copied back and cut now, not at the next turn of the
// checkpoint thread (under a steady stream of commits it may not catch up by itself).
void Outbox::cut_wal_to_share() {
    if (max_bytes_ > 0 && wal_bytes() > max_bytes_ / 8)
        sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
}

std::uint64_t Outbox::wal_bytes() const {
    struct stat st {};
    return ::stat((path_ + "-wal").c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
}

// What the store puts on disk: pages in use, the WAL and the reserve (free pages are reused).
std::uint64_t Outbox::on_disk_bytes() {
    return used_bytes() + wal_bytes() + journal_.size() + corrupt_bytes_ + (reserve_held_ ? reserve_bytes_ : 0);
}

// Opens outbox.db, checked: a file SQLite calls corrupt (or not a database) is moved aside and a
// fresh one made; a busy one is waited for, then refused; any other failure is an error.
// Opens the file and runs SQLite's quick check on it ("ok" in `check` when it is sound). Busy
// (another process holds the file locked) is waited for, 5 s at most. Returns SQLite's code.
int Outbox::open_and_check(std::string& check) {
    int rc = SQLITE_OK;
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    do {
        sqlite3_close(db_);
        db_ = nullptr;
        check.clear();
        rc = sqlite3_open(path_.c_str(), &db_);
        if (rc != SQLITE_OK) break;
        sqlite3_busy_timeout(db_, 1000);
        sql::Statement st(db_, "PRAGMA quick_check");
        if (st.next()) {
            check = st.text(0);
            st.reset();
            rc = SQLITE_OK;
        } else {
            rc = sqlite3_extended_errcode(db_);        // what the prepare or the step failed with
            if (rc == SQLITE_OK) rc = SQLITE_CORRUPT;  // no answer at all: not a sound file
        }
    } while (((rc & 0xFF) == SQLITE_BUSY || (rc & 0xFF) == SQLITE_LOCKED) &&
             std::chrono::steady_clock::now() < give_up);
    return rc;
}

// A file SQLite calls corrupt, or not a database, is moved aside (with what it held, as far as
// it can still be read, in the log) and counted.
void Outbox::move_aside(int rc, const std::string& check) {
    const std::int64_t rows = sql::query_int(db_, "SELECT COUNT(*) FROM outbox", -1);
    const std::string held = rows >= 0 ? std::to_string(rows) : "an unknown number of";
    sqlite3_close(db_);
    db_ = nullptr;
    const std::string aside = path_ + ".corrupt-" + std::to_string(std::time(nullptr));
    std::rename(path_.c_str(), aside.c_str());
    std::remove((path_ + "-wal").c_str());
    std::remove((path_ + "-shm").c_str());
    ++stats_.corrupt;
    log()->error(
        "store: {} is not a valid store ({}); moved aside to {} with {} queued batch(es), which are not "
        "replayed; it counts against store_max_bytes until removed",
        path_, check.empty() ? sqlite3_errstr(rc) : check.substr(0, 200), aside, held);
}

bool Outbox::open_database(std::string* error) {
    for (int attempt = 0; attempt < 2; ++attempt) {
        // Busy is waited for, then an error: only a file SQLite calls corrupt, or not a
        // database, is moved aside.
        std::string check;
        const int rc = open_and_check(check);
        if ((rc & 0xFF) == SQLITE_BUSY || (rc & 0xFF) == SQLITE_LOCKED) {
            *error = "store: " + path_ + " is locked by " + lock_holder(path_) +
                     " (waited 5 s); it is left as it is, not corrupt: stop that process, then start again";
            sqlite3_close(db_);
            db_ = nullptr;
            return false;
        }
        if (rc == SQLITE_OK && check == "ok") {
            // A valid store that cannot be set up (full disk, read-only file) is an error, not
            // corruption: its data must not be moved aside.
            if (exec("PRAGMA journal_mode=WAL") && exec(kSchema)) break;
            *error = "store: cannot initialise " + path_ + ": " + sqlite3_errmsg(db_) +
                     " (expected free space and a writable file)";
            disk_failed_ = true;
            sqlite3_close(db_);
            db_ = nullptr;
            return false;
        }
        if (rc != SQLITE_OK && (rc & 0xFF) != SQLITE_CORRUPT && (rc & 0xFF) != SQLITE_NOTADB) {
            *error = "store: cannot read " + path_ + ": " + sqlite3_errstr(rc) +
                     " (expected a store the fieldlink user can read and write)";
            disk_failed_ = disk_errno(db_ ? sqlite3_system_errno(db_) : 0);
            sqlite3_close(db_);
            db_ = nullptr;
            return false;
        }
        if (attempt == 1) {
            sqlite3_close(db_);
            db_ = nullptr;
            *error = "store: cannot open " + path_ + " even after moving the old file aside";
            return false;
        }
        move_aside(rc, check);
    }
    return true;
}

bool Outbox::init(const config::Config& cfg, std::string* error) {
    cfg_ = &cfg;
    const auto& g = cfg.gateway;
    max_bytes_ = g.store_max_bytes;
    max_age_ms_ = g.store_max_age.count();
    sync_interval_ = g.store_sync;
    const std::uint64_t wal_limit = share_budget();
    // Missing parents are made too (a relative ./run/data on a fresh checkout); the directory
    // itself is private to the service's user and group.
    if (std::string why; !core::make_data_dir(g.data_dir, &why)) {
        *error = "store: " + why;
        return false;
    }
    if (::access(g.data_dir.c_str(), W_OK | X_OK) != 0) {
        disk_failed_ = disk_errno(errno);
        *error = "store: data_dir " + g.data_dir + " is not writable: " + std::strerror(errno) +
                 " (expected a directory the fieldlink user can write)";
        return false;
    }
    path_ = g.data_dir + "/outbox.db";
    if (!open_database(error)) return false;
    count_corrupt_files();
    tune(wal_limit);
    insert_ = sql::Statement(db_, "INSERT OR IGNORE INTO outbox(device, id, ts, payload) VALUES (?1, ?2, ?3, ?4)");
    remove_ = sql::Statement(db_, "DELETE FROM outbox WHERE device = ?1 AND id = ?2");
    if (!insert_.ok() || !remove_.ok()) {
        *error = "store: " + path_ + ": " + (insert_.ok() ? remove_.error() : insert_.error());
        insert_ = sql::Statement();
        remove_ = sql::Statement();
        sqlite3_close(db_);
        db_ = nullptr;
        return false;
    }
    if (!replay_journal(error)) {
        insert_ = sql::Statement();
        remove_ = sql::Statement();
        sqlite3_close(db_);
        db_ = nullptr;
        return false;
    }
    map_devices(cfg);
    drop_unknown_devices();
    next_id_ = std::max<std::int64_t>(next_id_, sql::query_int(db_, "SELECT COALESCE(MAX(id), 0) FROM outbox") + 1);
    count_queued();
    backlog_high_ = queued_;
    reserve_path_ = g.data_dir + "/outbox.reserve";
    keep_reserve();
    if (queued_ > 0) log_backlog();
    start_checkpoints();
    return true;
}

// The reserve, the WAL and the journal take their share of the budget: an eighth each at most.
// Returns the WAL's limit in bytes.
std::uint64_t Outbox::share_budget() {
    constexpr std::uint64_t kKiB = 1024;
    reserve_bytes_ = max_bytes_ > 0 ? std::clamp<std::uint64_t>(max_bytes_ / 8, 16 * kKiB, kKiB * kKiB) : kKiB * kKiB;
    const std::uint64_t wal_limit =
        max_bytes_ > 0 ? std::clamp<std::uint64_t>(max_bytes_ / 8, 64 * kKiB, 16 * kKiB * kKiB) : 16 * kKiB * kKiB;
    wal_limit_frames_ = static_cast<int>(std::min<std::uint64_t>(wal_limit / 4096, kWalLimitFrames));
    fold_bytes_ = max_bytes_ > 0 ? std::clamp<std::uint64_t>(max_bytes_ / 8, 16 * kKiB, kKiB * kKiB) : kKiB * kKiB;
    return wal_limit;
}

void Outbox::tune(std::uint64_t wal_limit) {
    // Every commit is synced: rows reach SQLite only when the journal gives them up (a fold) or
    // are deleted, so commits are few, and the journal is cut only after its rows are safe.
    exec("PRAGMA synchronous=FULL");
    // Checkpoints (and their fsyncs) belong to the checkpoint thread, except with store_sync:
    // batch, where every commit syncs anyway and SQLite's own checkpoints are kept.
    exec(sync_interval_.count() == 0 ? "PRAGMA wal_autocheckpoint=4000" : "PRAGMA wal_autocheckpoint=0");
    // Up to 4 MiB of pages (taken only under load): deletes find the pages their rows were
    // appended to still cached instead of reading them back.
    exec("PRAGMA cache_size=-4096");
    // A log that restarted is cut back to its share of the budget.
    exec(("PRAGMA journal_size_limit=" + std::to_string(wal_limit)).c_str());
}

void Outbox::log_backlog() {
    const std::int64_t oldest = sql::query_int(db_, "SELECT ts FROM outbox ORDER BY id LIMIT 1");
    log()->info("store {}: {} queued batch(es) from before, oldest from {} ms ago, will be replayed in order", path_,
                queued_, core::unix_ms_now() - oldest);
}

// What the journal holds that was not acknowledged (a kill -9, a power loss) goes into SQLite, in
// one transaction, before anything else; then the journal starts over. A record cut short at the
// end (a power loss during a write) is ignored and said so.
bool Outbox::replay_journal(std::string* error) {
    const std::string jpath = cfg_->gateway.data_dir + "/outbox.journal";
    JournalContents jc;
    if (!journal_.open(jpath, error) || !journal_.read(jc, error)) {
        disk_failed_ = disk_errno(errno);
        *error = "store: " + *error + " (expected a readable, writable file)";
        return false;
    }
    next_id_ = std::max(next_id_, jc.max_id + 1);
    if (jc.torn_bytes > 0) {
        log()->warn(
            "store {}: the last {} byte(s) of the journal are not a whole record (a write cut short) and are "
            "ignored",
            jpath, jc.torn_bytes);
    }
    std::vector<const JournalBatch*> rows;
    rows.reserve(jc.batches.size());
    for (const auto& b : jc.batches) rows.push_back(&b);
    if (!rows.empty() && !insert_rows(rows)) {
        *error = "store: cannot move the " + std::to_string(rows.size()) + " batch(es) of " + jpath +
                 " into the store: " + trouble_ + " (expected free space and a writable file)";
        disk_failed_ = true;
        return false;
    }
    if (!rows.empty())
        log()->info("store {}: {} batch(es) the broker had not acknowledged were recovered from the journal", path_,
                    rows.size());
    if (!journal_.reset()) {
        *error = "store: cannot truncate " + jpath + ": " + std::strerror(errno);
        disk_failed_ = true;
        return false;
    }
    last_reset_ = std::chrono::steady_clock::now();
    return true;
}

// The rows in one transaction (a row already there, from a fold cut short before the journal was
// reset, is left as it is). False, rolled back, when SQLite refuses.
bool Outbox::insert_rows(const std::vector<const JournalBatch*>& rows) {
    if (!exec("BEGIN")) return false;
    for (const auto* r : rows) {
        if (!insert_.bind(1, r->device).bind(2, r->id).bind(3, r->ts).bind_blob(4, r->payload).run()) {
            trouble("storing a batch", insert_.error().c_str());
            sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
            return false;
        }
    }
    return commit_or_rollback("storing batches");
}

// With nothing waiting, the journal just starts over (what it held was never needed on disk).
// Batches waiting longer than kFoldAfter, or a journal past its size, move into SQLite.
void Outbox::fold(std::chrono::steady_clock::time_point now, bool force) {
    if (pending_.empty()) {
        if (journal_.size() > 0 && (force || now - last_reset_ >= kFoldAfter || journal_.size() > fold_bytes_)) {
            if (journal_.reset()) last_reset_ = now;
        }
        return;
    }
    // Ids grow with time: the first waiting batch is the oldest.
    if (!force && journal_.size() <= fold_bytes_ && now - pending_.begin()->second.at < kFoldAfter) return;
    std::vector<const JournalBatch*> rows;
    rows.reserve(pending_.size());
    for (const auto& [id, p] : pending_) rows.push_back(&p.record);
    // (Not with the reserve: it is there for acks and the budget's deletes, not for more data.)
    if (!insert_rows(rows)) return;  // still in the journal, which keeps them: tried again next turn
    stats_.folded += rows.size();
    pending_.clear();
    journal_acks_.clear();
    if (journal_.reset()) last_reset_ = now;
    if (!journal_trouble_) resolved();
}

// Stable ids for devices and points, so records survive config edits and restarts: one
// transaction and four prepared statements for all of them (thousands of points at start).
void Outbox::map_devices(const config::Config& cfg) {
    device_ids_.assign(cfg.devices.size(), 0);
    point_ids_.assign(cfg.devices.size(), {});
    device_index_.clear();
    point_index_.clear();
    sql::Statement add_device(db_, "INSERT OR IGNORE INTO devices(name) VALUES (?1)");
    sql::Statement get_device(db_, "SELECT id FROM devices WHERE name = ?1");
    sql::Statement add_point(db_, "INSERT OR IGNORE INTO points(device, name) VALUES (?1, ?2)");
    sql::Statement get_point(db_, "SELECT id FROM points WHERE device = ?1 AND name = ?2");
    // (A name that cannot be added, on a full disk, may still be there from before: the lookup says.)
    auto id_of = [this](sql::Statement& add, sql::Statement& get) {
        if (!add.run()) trouble("mapping a device's names", add.error().c_str());
        std::uint32_t id = 0;
        if (get.next()) id = static_cast<std::uint32_t>(get.int64(0));
        get.reset();
        return id;
    };
    exec("BEGIN");
    for (std::uint32_t d = 0; d < cfg.devices.size(); ++d) {
        const auto& dev = cfg.devices[d];
        if (dev.retired) continue;  // a removed device's index, kept by a reload
        add_device.bind(1, dev.name);
        get_device.bind(1, dev.name);
        device_ids_[d] = id_of(add_device, get_device);
        device_index_[device_ids_[d]] = d;
        for (std::uint32_t p = 0; p < dev.points.size(); ++p) {
            add_point.bind(1, std::int64_t{device_ids_[d]}).bind(2, dev.points[p].name);
            get_point.bind(1, std::int64_t{device_ids_[d]}).bind(2, dev.points[p].name);
            const std::uint32_t pid = id_of(add_point, get_point);
            point_ids_[d].push_back(pid);
            point_index_[pid] = {d, p};
        }
    }
    commit_or_rollback("mapping device and point names");
}

// A reload: the same store, the new configuration's devices (aligned: a device keeps its index).
// Records of devices no longer configured are dropped, as at start. Acks still queued are
// applied first, under the mapping they were made with.
void Outbox::remap(const config::Config& cfg) {
    maintain(std::chrono::steady_clock::now());
    fold(std::chrono::steady_clock::now(), true);  // the journal's batches too, under the old mapping
    cfg_ = &cfg;
    map_devices(cfg);
    drop_unknown_devices();
    count_queued();
}

// Queued records per configured device, counted once at start and then kept exactly.
// The same scan finds the newest acquisition time on disk.
void Outbox::count_queued() {
    per_device_.assign(device_ids_.size(), DeviceQueue{});
    queued_ = 0;
    newest_ts_ = 0;
    sql::Statement st(db_, "SELECT device, COUNT(*), MAX(ts) FROM outbox GROUP BY device");
    while (st.next()) {
        const auto n = static_cast<std::uint64_t>(st.int64(1));
        queued_ += n;
        newest_ts_ = std::max<std::int64_t>(newest_ts_, st.int64(2));
        auto d = device_index_.find(static_cast<std::uint32_t>(st.int64(0)));
        if (d != device_index_.end()) per_device_[d->second].queued += n;
    }
    if (!st.ok()) log()->warn("store {}: cannot count the queued batches: {}", path_, st.error());
}

void Outbox::start_checkpoints() {
    if (sync_interval_.count() == 0) return;
    checkpointer_ = std::thread([this] {
        pthread_setname_np(pthread_self(), "fl-checkpoint");
        sqlite3* db = nullptr;
        if (sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
            log()->error("store {}: cannot open a connection for checkpoints: {}; the WAL file grows until restart",
                         path_, db ? sqlite3_errmsg(db) : "?");
            sqlite3_close(db);
            return;
        }
        sqlite3_busy_timeout(db, 2000);
        // A connection learns the journal mode when it first reads the file; until then a
        // checkpoint is a no-op that reports "not in WAL mode".
        sqlite3_exec(db, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr);
        std::unique_lock<std::mutex> lock(checkpoint_mutex_);
        while (!checkpoint_cv_.wait_for(lock, sync_interval_, [this] { return checkpoint_stop_; })) {
            lock.unlock();
            // Batches the broker had not acknowledged at the north loop's last turn: to the disk.
            if (journal_sync_wanted_.exchange(false) && !journal_.sync())
                log()->warn("store {}: cannot sync the journal: {}", path_, std::strerror(errno));
            // PASSIVE copies (and syncs) what it can without holding writers up. Under a steady
            // stream of commits it never catches up completely, so the log never restarts and
            // grows: past kWalLimitFrames one TRUNCATE takes the write lock for the few frames
            // left (the loop may wait for that moment, and only then).
            int log_frames = 0, done = 0;
            sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log_frames, &done);
            if (log_frames > wal_limit_frames_)
                sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
            lock.lock();
        }
        lock.unlock();
        sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
        sqlite3_close(db);
    });
}

void Outbox::stop_checkpoints() {
    if (!checkpointer_.joinable()) return;
    {
        std::lock_guard<std::mutex> lock(checkpoint_mutex_);
        checkpoint_stop_ = true;
    }
    checkpoint_cv_.notify_all();
    checkpointer_.join();
}

// Records of devices that are no longer configured (renamed or removed) are dropped, counted.
void Outbox::drop_unknown_devices() {
    std::string known;
    for (auto id : device_ids_) known += (known.empty() ? "" : ",") + std::to_string(id);
    const std::string where = "device NOT IN (" + (known.empty() ? std::string("-1") : known) + ")";
    sql::Statement st(db_, "SELECT d.name, COUNT(*) FROM outbox o JOIN devices d ON d.id = o.device WHERE o." + where +
                               " GROUP BY d.name");
    std::uint64_t dropped = 0;
    while (st.next()) {
        const auto n = static_cast<std::uint64_t>(st.int64(1));
        log()->warn("store: {} queued batch(es) of device '{}', which is no longer configured, are dropped", n,
                    st.text(0));
        dropped += n;
    }
    // Counted once they are gone (a full disk may refuse the delete: they are tried at the next start).
    if (st.ok() && exec(("DELETE FROM outbox WHERE " + where).c_str())) stats_.dropped_unknown += dropped;
}

// Appends to the journal in one write(). What cannot be stored (a full, failing or read-only disk)
// is counted as dropped and goes on live without a record; nothing stored before is touched for it.
void Outbox::append(std::vector<core::SampleBatch*>& batches) {
    if (batches.empty()) return;
    std::vector<JournalBatch> records;
    records.reserve(batches.size());
    std::int64_t id = next_id_;
    for (auto* b : batches) {
        records.push_back(
            {device_ids_[b->device_index], id++, b->timestamp_ms, encode_record(*b, point_ids_[b->device_index])});
    }
    if (!journal_.append(records)) {
        trouble("journaling a batch", std::strerror(errno), true);
        std::uint64_t samples = 0;
        for (auto* b : batches) {
            b->record_id = 0;
            samples += b->values.size();
        }
        stats_.dropped_full += samples;
        return;
    }
    // store_sync: batch: on the disk before it goes out. (Should the sync fail, the batches are
    // still in the file: a crash of the process does not lose them.)
    const bool synced = sync_interval_.count() != 0 || journal_.sync();
    if (!synced) trouble("syncing the journal", std::strerror(errno), true);
    const auto now = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < batches.size(); ++i) {
        auto* b = batches[i];
        b->record_id = records[i].id;
        ++per_device_[b->device_index].queued;
        pending_.emplace(records[i].id, Pending{b->device_index, now, std::move(records[i])});
    }
    next_id_ = id;
    stats_.appended += batches.size();
    queued_ += batches.size();
    backlog_high_ = std::max(backlog_high_, queued_);
    if (synced && journal_trouble_) resolved();  // (SQLite's trouble ends with a fold that works)
}

void Outbox::ack(std::uint32_t device_index, std::int64_t id) {
    auto it = pending_.find(id);
    if (it == pending_.end() || it->second.device_index != device_index) {
        acks_.push_back({device_index, id});  // in SQLite (or gone): deleted by maintain()
        return;
    }
    journal_acks_.push_back({it->second.record.device, id});
    pending_.erase(it);
    auto& q = per_device_[device_index].queued;
    q -= std::min<std::uint64_t>(q, 1);
    queued_ -= std::min<std::uint64_t>(queued_, 1);
    ++stats_.acked;
    ++stats_.journaled;
}

std::uint64_t Outbox::used_bytes() {
    const std::int64_t pages = sql::query_int(db_, "PRAGMA page_count");
    const std::int64_t free_pages = sql::query_int(db_, "PRAGMA freelist_count");
    const std::int64_t size = sql::query_int(db_, "PRAGMA page_size");
    return static_cast<std::uint64_t>((pages - free_pages) * size);
}

// Deletes the rows matching `where` (at most `limit`, oldest first), counting their samples once
// the delete is done. Returns how many rows went.
std::uint64_t Outbox::drop_rows(const std::string& where, std::int64_t limit) {
    sql::Statement st(db_, "SELECT id, payload, device FROM outbox WHERE " + where + " ORDER BY id LIMIT ?1");
    st.bind(1, limit);
    std::int64_t newest = 0;
    std::uint64_t rows = 0, samples = 0;
    std::map<std::uint32_t, std::pair<std::uint64_t, std::uint64_t>> per_device;  // config index -> (rows, samples)
    while (st.next()) {
        newest = st.int64(0);
        std::vector<std::pair<std::uint32_t, core::Value>> values;
        decode_record(st.blob(1), values);
        samples += values.size();
        if (auto d = device_index_.find(static_cast<std::uint32_t>(st.int64(2))); d != device_index_.end()) {
            auto& n = per_device[d->second];
            ++n.first;
            n.second += values.size();
        }
        ++rows;
    }
    if (!st.ok()) trouble("choosing the oldest batches to drop", st.error().c_str());
    if (rows == 0) return 0;
    const std::string sql = "DELETE FROM outbox WHERE (" + where + ") AND id <= " + std::to_string(newest);
    bool done = exec(sql.c_str());
    if (!done && release_reserve()) done = exec(sql.c_str());  // a full disk: the WAL needs room to delete
    if (!done) return 0;                                       // nothing went: nothing is counted
    for (const auto& [d, n] : per_device) {
        auto& q = per_device_[d];
        q.dropped += n.second;
        q.queued -= std::min(q.queued, n.first);
    }
    stats_.dropped_budget += samples;
    queued_ -= std::min(queued_, rows);
    dropped_through_ = std::max(dropped_through_, newest);
    return rows;
}

// Files moved aside as corrupt (outbox.db.corrupt-<time>), oldest first: their bytes count against
// the budget.
std::vector<std::pair<std::string, std::uint64_t>> Outbox::corrupt_files() const {
    std::vector<std::pair<std::string, std::uint64_t>> out;
    std::error_code ec;
    const auto prefix = std::filesystem::path(path_).filename().string() + ".corrupt-";
    for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(path_).parent_path(), ec)) {
        if (e.path().filename().string().rfind(prefix, 0) != 0) continue;
        std::error_code size_ec;
        const auto size = e.file_size(size_ec);
        out.emplace_back(e.path().string(), size_ec ? 0 : size);
    }
    std::sort(out.begin(), out.end());  // the name ends with the time it was moved aside
    return out;
}

void Outbox::count_corrupt_files() {
    corrupt_bytes_ = 0;
    for (const auto& f : corrupt_files()) corrupt_bytes_ += f.second;
}

// Deletes the oldest batches (global append order) until the store uses at most target_bytes.
// Files moved aside as corrupt go first (nothing replays them).
void Outbox::drop_oldest(std::uint64_t target_bytes) {
    for (const auto& [file, size] : corrupt_files()) {
        if (used_bytes() + corrupt_bytes_ <= target_bytes) return;
        if (std::remove(file.c_str()) != 0) continue;
        corrupt_bytes_ -= std::min(corrupt_bytes_, size);
        log()->warn("store: removed {} ({} bytes, moved aside as corrupt) to stay within store_max_bytes", file, size);
    }
    for (int round = 0; round < 64 && used_bytes() + corrupt_bytes_ > target_bytes; ++round) {
        const auto n = std::max<std::uint64_t>(1, queued_ / 20);  // 5% per round
        if (drop_rows("1", static_cast<std::int64_t>(n)) == 0) break;
    }
}

// Deletes the acknowledged records (and corrupt ones) in one transaction. When the disk is full
// the reserve is given up and it is tried once more; acks that could not be applied stay queued
// for the next turn, so a record is never counted as acknowledged before it is gone.
bool Outbox::apply_acks() {
    for (int attempt = 0; attempt < 2; ++attempt) {
        if (!exec("BEGIN")) return false;
        bool ok = true;
        std::uint64_t removed = 0;
        std::vector<std::uint32_t> removed_of;  // config device index of each acknowledged row gone
        for (const auto& r : acks_) {
            ok = remove_.bind(1, std::int64_t{device_ids_[r.device]}).bind(2, r.id).run();
            if (!ok) break;
            // A record the budget dropped meanwhile is gone already: count only what went now.
            if (sqlite3_changes(db_) == 1) removed_of.push_back(r.device);
        }
        for (std::size_t i = 0; ok && i < discard_.size(); ++i) {
            ok = remove_.bind(1, std::int64_t{discard_[i].device}).bind(2, discard_[i].id).run();
            if (ok) removed += static_cast<std::uint64_t>(sqlite3_changes(db_));
        }
        if (!ok) trouble("deleting acknowledged batches", remove_.error().c_str());
        if (ok && commit_or_rollback("deleting acknowledged batches")) {
            for (auto d : removed_of) {
                auto& q = per_device_[d].queued;
                q -= std::min<std::uint64_t>(q, 1);
            }
            removed += removed_of.size();
            stats_.acked += acks_.size();
            queued_ -= std::min<std::uint64_t>(queued_, removed);
            acks_.clear();
            discard_.clear();
            if (!journal_trouble_) resolved();
            return true;
        }
        if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        if (attempt > 0 || !release_reserve()) break;
    }
    return false;
}

std::int64_t Outbox::maintain(std::chrono::steady_clock::time_point now) {
    // An ack that cannot be journaled (a full disk) costs nothing but a resend after a crash.
    if (!journal_acks_.empty()) {
        journal_.append(journal_acks_);
        journal_acks_.clear();
    }
    fold(now, false);
    // What is still waiting for the broker reaches the disk within the sync interval (power loss);
    // what the broker acknowledged first never needs to.
    if (sync_interval_.count() != 0 && !pending_.empty() && pending_.rbegin()->first > sync_asked_through_) {
        sync_asked_through_ = pending_.rbegin()->first;
        journal_sync_wanted_ = true;
    }
    if ((!acks_.empty() || !discard_.empty()) && apply_acks()) {
        // Drained: back to what live data keeps queued (a small fraction of the backlog's peak).
        if (backlog_high_ >= 1000 && queued_ <= std::max<std::uint64_t>(100, backlog_high_ / 100)) {
            log()->info("store {}: drained: a backlog of {} batch(es) has been delivered ({} queued now)", path_,
                        backlog_high_, queued_);
            backlog_high_ = queued_;
        }
        if (queued_ == 0) backlog_high_ = 0;
    }
    if (now - last_budget_ >= std::chrono::seconds(1)) {
        last_budget_ = now;
        keep_reserve();  // given up on a full disk: taken again once there is room
        const std::uint64_t before = stats_.dropped_budget;
        if (max_age_ms_ > 0) drop_rows("ts < " + std::to_string(core::unix_ms_now() - max_age_ms_), INT64_MAX);
        cut_wal_to_share();
        if (max_bytes_ > 0 && on_disk_bytes() > max_bytes_) {
            // The pages in use make room for the WAL (at most its share) and the reserve.
            const std::uint64_t others =
                std::min<std::uint64_t>(wal_bytes(), max_bytes_ / 8) + (reserve_held_ ? reserve_bytes_ : 0);
            drop_oldest(max_bytes_ * 9 / 10 > others ? max_bytes_ * 9 / 10 - others : 0);
            cut_wal_to_share();  // the deletes went through the WAL too
        }
        // One warning per episode; the episode ends when the backlog has drained below half the budget.
        if (stats_.dropped_budget != before && !over_budget_logged_) {
            log()->warn("store {}: over its budget ({} bytes{}); dropping the oldest queued data (counted)", path_,
                        max_bytes_, max_age_ms_ > 0 ? " or max age" : "");
            over_budget_logged_ = true;
            episode_start_dropped_ = before;
        } else if (over_budget_logged_ && stats_.dropped_budget == before && used_bytes() < max_bytes_ / 2) {
            log()->info("store {}: back within budget; {} sample(s) dropped in this episode", path_,
                        stats_.dropped_budget - episode_start_dropped_);
            over_budget_logged_ = false;
        }
    }
    const std::int64_t dropped = dropped_through_;
    dropped_through_ = 0;
    return dropped;
}

// A stored record as a batch of the running configuration: false (counted, queued for deletion)
// when its device is unknown or its values cannot be decoded.
bool Outbox::to_batch(std::uint32_t store_device, std::int64_t id, std::int64_t ts, const std::string& blob,
                      core::SampleBatch& b) {
    const auto dev = device_index_.find(store_device);
    std::vector<std::pair<std::uint32_t, core::Value>> values;
    b.record_id = id;
    b.timestamp_ms = ts;
    if (dev == device_index_.end() || !decode_record(blob, values)) {
        ++stats_.corrupt;
        discard_.push_back({store_device, id});  // out of the way
        return false;
    }
    b.device_index = dev->second;
    for (auto& [pid, v] : values) {
        auto p = point_index_.find(pid);
        if (p != point_index_.end() && p->second.first == dev->second)
            b.values.push_back({p->second.second, std::move(v)});
    }
    return true;
}

// SQLite's rows and the journal's, merged in id order.
std::vector<core::SampleBatch> Outbox::load(const std::vector<std::uint32_t>& devices, std::int64_t after,
                                            std::int64_t before, std::size_t limit) {
    std::vector<core::SampleBatch> out;
    std::string ids;
    for (auto d : devices) ids += (ids.empty() ? "" : ",") + std::to_string(device_ids_[d]);
    sql::Statement st(db_, "SELECT device, id, ts, payload FROM outbox WHERE device IN (" + ids +
                               ") AND id > ?1 AND id < ?2 ORDER BY id LIMIT ?3");
    st.bind(1, after).bind(2, before).bind(3, static_cast<std::int64_t>(limit));
    while (st.next()) {
        core::SampleBatch b;
        if (to_batch(static_cast<std::uint32_t>(st.int64(0)), st.int64(1), st.int64(2), st.blob(3), b))
            out.push_back(std::move(b));
    }
    // (The journal's part below is still offered; the rest is read again at the next turn.)
    if (!st.ok()) log()->warn("store {}: cannot read the backlog: {}", path_, st.error());
    std::vector<core::SampleBatch> journaled;
    for (auto it = pending_.upper_bound(after); it != pending_.end() && it->first < before && journaled.size() < limit;
         ++it) {
        if (std::find(devices.begin(), devices.end(), it->second.device_index) == devices.end()) continue;
        core::SampleBatch b;
        const auto& r = it->second.record;
        if (to_batch(r.device, r.id, r.ts, r.payload, b)) journaled.push_back(std::move(b));
    }
    if (journaled.empty()) return out;
    std::vector<core::SampleBatch> merged;
    merged.reserve(std::min(limit, out.size() + journaled.size()));
    std::merge(std::make_move_iterator(out.begin()), std::make_move_iterator(out.end()),
               std::make_move_iterator(journaled.begin()), std::make_move_iterator(journaled.end()),
               std::back_inserter(merged),
               [](const core::SampleBatch& a, const core::SampleBatch& b) { return a.record_id < b.record_id; });
    if (merged.size() > limit) merged.resize(limit);
    return merged;
}

// Login attempts survive crashes, so a daemon restarted in a loop still honours the platform's
// login-rate rule. Written in one small transaction per loop turn that had attempts.
void Outbox::flush_logins() {
    if (logins_.empty() || !exec("BEGIN")) return;
    if (std::string why; !logins_.write(db_, &why)) {
        trouble("recording login attempts", why.c_str());
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        return;
    }
    if (commit_or_rollback("recording login attempts")) logins_.written();
}

std::map<std::string, std::vector<std::int64_t>> Outbox::recent_logins(std::int64_t since_unix_ms) {
    return LoginLog::recent(db_, since_unix_ms);
}

void Outbox::limit_pages_for_test(int extra_pages) {
    const std::int64_t pages = sql::query_int(db_, "PRAGMA page_count");
    exec(("PRAGMA max_page_count = " + std::to_string(pages + extra_pages)).c_str());
    journal_.limit_for_test(
        extra_pages >= (1 << 30) ? UINT64_MAX : journal_.size() + static_cast<std::uint64_t>(extra_pages) * 4096);
}

StoreStats Outbox::stats() {
    stats_.records = queued_;
    stats_.bytes_used = on_disk_bytes();
    return stats_;
}

}  // namespace fieldlink::store
