#include "audit.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <fstream>
#include <nlohmann/json.hpp>
#include <utility>

namespace fieldlink::store {
namespace {

using Json = nlohmann::ordered_json;  // keys in the order written: ts first

Json value_json(const core::Value& v) {
    return std::visit([](const auto& x) { return Json(x); }, v);
}

Json values_json(const std::vector<std::pair<std::string, core::Value>>& values) {
    Json out = Json::object();
    for (const auto& [name, v] : values) out[name] = value_json(v);
    return out;
}

}  // namespace

AuditLog::AuditLog(std::string path, std::uint64_t max_bytes) : path_(std::move(path)), max_bytes_(max_bytes) {}

AuditLog::~AuditLog() {
    if (fd_ < 0) return;
    ::fdatasync(fd_);
    ::close(fd_);
}

bool AuditLog::open() {
    if (fd_ >= 0) return true;
    fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd_ < 0) {
        problem_ = "cannot open " + path_ + ": " + std::strerror(errno);
        return false;
    }
    struct stat st {};
    size_ = ::fstat(fd_, &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
    return true;
}

// The full file becomes audit.log.1 (replacing the previous one) and a new one starts.
bool AuditLog::rotate() {
    ::fdatasync(fd_);
    ::close(fd_);
    fd_ = -1;
    if (::rename(path_.c_str(), (path_ + ".1").c_str()) != 0) {
        problem_ = "cannot rotate " + path_ + ": " + std::strerror(errno);
        return false;
    }
    return open();
}

std::string AuditLog::line(const AuditEntry& e) {
    Json j = Json::object();
    j["ts"] = e.at_ms;
    j["cloud"] = e.cloud;
    j["from"] = e.from;
    if (e.requested_ms) j["requested"] = *e.requested_ms;
    j["device"] = e.device;
    if (!e.asked.empty() || e.text.empty()) j["asked"] = values_json(e.asked);
    if (!e.text.empty()) j["text"] = e.text;
    j["result"] = e.result;
    if (!e.reason.empty()) j["reason"] = e.reason;
    if (!e.read_back.empty()) j["read_back"] = values_json(e.read_back);
    // (the platform's text is untrusted: invalid UTF-8 is replaced, never thrown on)
    return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

bool AuditLog::append(const AuditEntry& e) {
    if (!open() || (size_ >= max_bytes_ && !rotate())) {
        ++lost_;
        return false;
    }
    const std::string text = line(e) + '\n';
    const ssize_t n = ::write(fd_, text.data(), text.size());
    if (n != static_cast<ssize_t>(text.size())) {
        problem_ = "cannot append to " + path_ + ": " + (n < 0 ? std::strerror(errno) : "short write (disk full?)");
        if (n > 0) size_ += static_cast<std::uint64_t>(n);
        ++lost_;
        return false;
    }
    size_ += text.size();
    problem_.clear();
    return true;
}

std::vector<std::string> AuditLog::tail(const std::string& path, std::size_t n) {
    std::deque<std::string> lines;
    for (const std::string& file : {path + ".1", path}) {
        std::ifstream in(file);
        for (std::string l; std::getline(in, l);) {
            if (l.empty()) continue;
            lines.push_back(std::move(l));
            if (lines.size() > n) lines.pop_front();
        }
    }
    return {lines.begin(), lines.end()};
}

}  // namespace fieldlink::store
