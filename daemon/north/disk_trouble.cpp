#include "disk_trouble.hpp"

namespace fieldlink::north {

bool DiskTrouble::status_files(const std::string& why) {
    if (why == status_files_) return false;
    status_files_ = why;
    return true;
}

void DiskTrouble::update(const std::string& store_cannot_write) {
    std::string p;
    if (!store_cannot_write.empty()) p = "the store cannot write: " + store_cannot_write;
    if (!store_unopened_.empty()) p = "the store could not be opened: " + store_unopened_;
    if (!status_files_.empty()) p += (p.empty() ? "" : "; ") + status_files_;
    const std::lock_guard<std::mutex> lock(mutex_);
    text_ = std::move(p);
}

std::string DiskTrouble::text() const {
    const std::lock_guard<std::mutex> lock(mutex_);
    return text_;
}

}  // namespace fieldlink::north
