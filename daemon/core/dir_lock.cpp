#include "core/dir_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

namespace fieldlink::core {

bool make_data_dir(const std::string& dir, std::string* error) {
    std::error_code ec;
    if (const auto parent = std::filesystem::path(dir).parent_path(); !parent.empty())
        std::filesystem::create_directories(parent, ec);
    if (::mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) {
        *error = "cannot create data_dir " + dir + ": " + std::strerror(errno);
        return false;
    }
    struct stat st {};
    if (::stat(dir.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
        *error = "data_dir " + dir + " is not a directory (expected a directory the fieldlink user can write)";
        return false;
    }
    return true;
}

std::unique_ptr<DirLock> DirLock::acquire(const std::string& dir, std::chrono::milliseconds wait, std::string* error) {
    if (!make_data_dir(dir, error)) return nullptr;
    const std::string path = dir + "/fieldlinkd.lock";
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0 && errno == EROFS) {
        // A read-only file system (a failing card): nothing can be written there by a second
        // daemon either; the caller runs on and says so.
        *error = "cannot lock " + path + ": " + std::strerror(errno) + " (not guarded against a second daemon)";
        return std::unique_ptr<DirLock>(new DirLock(-1));
    }
    if (fd < 0) {
        *error =
            "cannot open " + path + ": " + std::strerror(errno) + " (expected a data_dir the fieldlink user can write)";
        return nullptr;
    }
    const auto give_up = std::chrono::steady_clock::now() + wait;
    while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) {
            *error = "cannot lock " + path + ": " + std::strerror(errno);
            ::close(fd);
            return nullptr;
        }
        if (std::chrono::steady_clock::now() >= give_up) {
            char pid[32] = {};
            const ssize_t n = ::pread(fd, pid, sizeof pid - 1, 0);
            std::string holder = n > 0 ? std::string(pid, static_cast<std::size_t>(n)) : std::string();
            while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
            *error = "data_dir " + dir + " in use by PID ";
            *error += holder.empty() ? std::string("?") : holder;
            *error += " (another fieldlinkd; " + path + "): stop it, or give this one a data_dir of its own";
            ::close(fd);
            return nullptr;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    // The PID is for the message of a second daemon only; the lock holds without it.
    const bool told = ::ftruncate(fd, 0) == 0 && ::pwrite(fd, pid.data(), pid.size(), 0) > 0;
    static_cast<void>(told);
    return std::unique_ptr<DirLock>(new DirLock(fd));
}

DirLock::~DirLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock
}

}  // namespace fieldlink::core
