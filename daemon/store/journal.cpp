#include "store/journal.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <unordered_map>

#include "store/varint.hpp"

namespace fieldlink::store {
namespace {

// A record: u8 type, u32 body length, u32 CRC-32 (zlib) of type, length and body, all little
// endian, then the body.
constexpr char kBatch = 'B';
constexpr char kAcks = 'A';
constexpr std::size_t kHeader = 9;
// A record longer than this is damage, not data (a batch of thousands of long strings is less).
constexpr std::uint32_t kMaxBody = 64U << 20;

void put_u32(std::string& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
}

std::uint32_t get_u32(const char* p) {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(static_cast<std::uint8_t>(p[i])) << (8 * i);
    return v;
}

std::uint32_t checksum(const char* header5, const char* body, std::size_t n) {
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(header5), 5);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(body), static_cast<uInt>(n));
    return static_cast<std::uint32_t>(crc);
}

void frame(char type, const std::string& body, std::string& out) {
    std::string head(1, type);
    put_u32(head, static_cast<std::uint32_t>(body.size()));
    out += head;
    put_u32(out, checksum(head.data(), body.data(), body.size()));
    out += body;
}

}  // namespace

Journal::~Journal() {
    if (fd_ >= 0) ::close(fd_);
}

bool Journal::open(const std::string& path, std::string* error) {
    path_ = path;
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd_ < 0) {
        *error = "cannot open " + path + ": " + std::strerror(errno);
        return false;
    }
    struct stat st {};
    ::fstat(fd_, &st);
    size_ = static_cast<std::uint64_t>(st.st_size);
    return true;
}

bool Journal::read(JournalContents& out, std::string* error) {
    if (size_ > SIZE_MAX / 2) {  // (a 32-bit target: no journal of the budget's size is near this)
        *error = "cannot read " + path_ + ": " + std::to_string(size_) + " bytes is more than this system can hold";
        return false;
    }
    std::string data(static_cast<std::size_t>(size_), '\0');
    std::size_t got = 0;
    while (got < data.size()) {
        const ssize_t n = ::pread(fd_, data.data() + got, data.size() - got, static_cast<off_t>(got));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            *error = "cannot read " + path_ + ": " + (n < 0 ? std::strerror(errno) : "shorter than its size");
            return false;
        }
        got += static_cast<std::size_t>(n);
    }
    parse(data, out);
    return true;
}

void Journal::encode(const JournalBatch& b, std::string& out) {
    std::string body;
    body.reserve(b.payload.size() + 16);
    put_varint(body, b.device);
    put_varint(body, static_cast<std::uint64_t>(b.id));
    put_varint(body, zigzag(b.ts));
    body += b.payload;
    frame(kBatch, body, out);
}

void Journal::encode(const std::vector<JournalAck>& acks, std::string& out) {
    std::string body;
    for (const auto& a : acks) {
        put_varint(body, a.device);
        put_varint(body, static_cast<std::uint64_t>(a.id));
    }
    frame(kAcks, body, out);
}

void Journal::parse(const std::string& data, JournalContents& out) {
    std::unordered_map<std::int64_t, std::size_t> where;  // id -> index in out.batches
    std::vector<bool> acked;
    std::size_t pos = 0;
    while (data.size() - pos >= kHeader) {
        const char type = data[pos];
        const std::uint32_t len = get_u32(data.data() + pos + 1);
        if ((type != kBatch && type != kAcks) || len > kMaxBody || len > data.size() - pos - kHeader) break;
        const char* body = data.data() + pos + kHeader;
        if (get_u32(data.data() + pos + 5) != checksum(data.data() + pos, body, len)) break;
        const std::string b(body, len);
        std::size_t p = 0;
        std::uint64_t device = 0, id = 0, ts = 0;
        if (type == kBatch) {
            if (!get_varint(b, p, device) || !get_varint(b, p, id) || !get_varint(b, p, ts) || device > UINT32_MAX ||
                id > INT64_MAX)
                break;
            const auto sid = static_cast<std::int64_t>(id);
            out.max_id = std::max(out.max_id, sid);
            where[sid] = out.batches.size();
            out.batches.push_back({static_cast<std::uint32_t>(device), sid, unzigzag(ts), b.substr(p)});
            acked.push_back(false);
        } else {
            bool ok = true;
            std::vector<JournalAck> acks;
            while (p < b.size()) {
                if (!get_varint(b, p, device) || !get_varint(b, p, id) || device > UINT32_MAX || id > INT64_MAX) {
                    ok = false;
                    break;
                }
                acks.push_back({static_cast<std::uint32_t>(device), static_cast<std::int64_t>(id)});
            }
            if (!ok) break;
            for (const auto& a : acks) {
                if (auto w = where.find(a.id); w != where.end() && out.batches[w->second].device == a.device)
                    acked[w->second] = true;
                out.acks.push_back(a);
            }
        }
        pos += kHeader + len;
    }
    out.valid_bytes = pos;
    out.torn_bytes = data.size() - pos;
    std::size_t keep = 0;
    for (std::size_t i = 0; i < out.batches.size(); ++i) {
        if (acked[i]) continue;
        if (keep != i) out.batches[keep] = std::move(out.batches[i]);
        ++keep;
    }
    out.batches.resize(keep);
}

bool Journal::write_all(const std::string& bytes) {
    if (bytes.size() > limit_ || size_ > limit_ - bytes.size()) {
        errno = ENOSPC;
        return false;
    }
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::pwrite(fd_, bytes.data() + done, bytes.size() - done, static_cast<off_t>(size_ + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            const int saved = n < 0 ? errno : ENOSPC;
            // A record cut in half would end the file for the reader: nothing of it stays. (Should
            // even that fail, the reader stops at the cut record and the next reset() removes it.)
            const int cut = done > 0 ? ::ftruncate(fd_, static_cast<off_t>(size_)) : 0;
            static_cast<void>(cut);
            errno = saved;
            return false;
        }
        done += static_cast<std::size_t>(n);
    }
    size_ += bytes.size();
    return true;
}

bool Journal::append(const std::vector<JournalBatch>& batches) {
    std::string bytes;
    for (const auto& b : batches) encode(b, bytes);
    return bytes.empty() || write_all(bytes);
}

bool Journal::append(const std::vector<JournalAck>& acks) {
    if (acks.empty()) return true;
    std::string bytes;
    encode(acks, bytes);
    return write_all(bytes);
}

bool Journal::sync() const {
    return ::fdatasync(fd_) == 0;
}

bool Journal::reset() {
    if (size_ == 0) return true;
    if (::ftruncate(fd_, 0) != 0) return false;
    size_ = 0;
    return true;
}

}  // namespace fieldlink::store
