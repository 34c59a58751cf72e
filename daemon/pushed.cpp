#include "pushed.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <regex>

#include "config/parser.hpp"
#include "core/clock.hpp"
#include "core/crypto.hpp"
#include "load.hpp"

namespace fieldlink::pushed {

namespace fs = std::filesystem;

std::optional<std::string> target_of(const std::string& main_file, const std::string& file, std::string* why) {
    const fs::path main(main_file);
    if (file.empty() || file == main.filename().string()) return main_file;
    static const std::regex fragment(R"(conf\.d/[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\.ya?ml)");
    if (std::regex_match(file, fragment)) return (main.parent_path() / file).string();
    *why = "\"file\": '" + file.substr(0, 120) + "' is not a file a pushed configuration may replace; expected '" +
           main.filename().string() + "' (the main file, also when omitted) or conf.d/NAME.yaml";
    return std::nullopt;
}

namespace {

bool literal(const YAML::Node& v) {
    return v.IsScalar() && !v.Scalar().empty() && v.Scalar().find("${") == std::string::npos;
}

struct SecretWalk {
    std::shared_ptr<const std::string> file;
    std::vector<config::ConfigError>& errors;

    void refuse(const YAML::Node& at, const std::string& path, const std::string& key) {
        const auto m = at.Mark();
        config::Mark mark{m.is_null() ? 0 : m.line + 1, m.is_null() ? 0 : m.column + 1, file};
        errors.push_back(config::ConfigError{
            mark, path,
            key + " is written out in a configuration pushed from the platform; a secret must not travel that "
                  "way: give it as ${ENV_VAR} (from the service's environment) or as a key_file: on the gateway"});
    }
    void walk(const YAML::Node& n, const std::string& path, int depth) {
        if (depth > 64) return;
        if (n.IsSequence()) {
            for (std::size_t i = 0; i < n.size(); ++i) walk(n[i], path + "[" + std::to_string(i) + "]", depth + 1);
            return;
        }
        if (!n.IsMap()) return;
        bool thingsboard = false;
        for (const auto& kv : n) {
            if (kv.first.IsScalar() && kv.first.Scalar() == "platform" && kv.second.IsScalar()) {
                thingsboard = kv.second.Scalar() == "thingsboard";
            }
        }
        for (const auto& kv : n) {
            if (!kv.first.IsScalar()) continue;
            const std::string& key = kv.first.Scalar();
            std::string here = path;
            if (!here.empty()) here += '.';
            here += key;
            const bool secret =
                key == "password" || key == "product_key" || key == "key" || (key == "username" && thingsboard);
            if (secret && literal(kv.second)) {
                refuse(kv.second, here, key);
            } else {
                walk(kv.second, here, depth + 1);
            }
        }
    }
};

std::string errno_text(const std::string& what, const std::string& path) {
    return what + " " + path + ": " + std::strerror(errno);
}

}  // namespace

std::vector<config::ConfigError> literal_secrets(const std::string& text, const std::string& file) {
    std::vector<config::ConfigError> errors;
    YAML::Node root;
    try {
        root = YAML::Load(text);
    } catch (const YAML::Exception&) {
        return errors;  // (the parser reports what is wrong with it)
    }
    SecretWalk w{std::make_shared<const std::string>(file), errors};
    w.walk(root, "", 0);
    return errors;
}

bool write_atomic(const std::string& path, const std::string& text, std::string* why, bool durable) {
    const fs::path target(path);
    const fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
    std::error_code ec;
    fs::create_directories(dir, ec);
    mode_t mode = 0640;
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) mode = st.st_mode & 07777;
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        *why = errno_text("cannot create", tmp);
        return false;
    }
    (void)::fchmod(fd, mode);  // (the umask may have taken bits away)
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            *why = errno_text("cannot write", tmp);
            ::close(fd);
            ::unlink(tmp.c_str());
            return false;
        }
        done += static_cast<std::size_t>(n);
    }
    if (durable && ::fsync(fd) != 0) {
        *why = errno_text("cannot sync", tmp);
        ::close(fd);
        ::unlink(tmp.c_str());
        return false;
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        *why = errno_text("cannot rename onto", path);
        ::unlink(tmp.c_str());
        return false;
    }
    if (const int dfd = durable ? ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1; dfd >= 0) {
        (void)::fsync(dfd);
        ::close(dfd);
    }
    return true;
}

std::string version_of(const std::string& text) {
    return "sha256:" + core::sha256_hex(text);
}

std::string running_version(const std::string& main_file) {
    std::string all, text, why;
    if (!config::read_file(main_file, text, &why)) return {};
    all = version_of(text);
    const auto names = fragment_files(main_file);
    for (const auto& n : names) {
        if (config::read_file(n, text, &why)) all += "\n" + fs::path(n).filename().string() + " " + version_of(text);
    }
    return names.empty() ? all : version_of(all);
}

bool History::save(const std::string& what, const std::string& file, const std::string& text, std::string* why) {
    std::string name = fs::path(file).filename().string();
    const std::string path =
        (fs::path(dir_) / (std::to_string(core::unix_ms_now()) + "-" + what + "-" + name)).string();
    if (!write_atomic(path, text, why, false)) return false;
    auto kept = files();
    // (pairs: what replaced a file and what it replaced)
    while (kept.size() > 2 * keep_) {
        std::error_code ec;
        fs::remove(fs::path(dir_) / kept.front(), ec);
        kept.erase(kept.begin());
    }
    return true;
}

std::vector<std::string> History::files() const {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_, ec)) {
        const std::string n = e.path().filename().string();
        if (n != "state.json" && n.find(".tmp") == std::string::npos) out.push_back(n);
    }
    // Unix ms has 13 digits until 2286: by name is by time.
    std::sort(out.begin(), out.end());
    return out;
}

bool History::save_state(const north::ConfigReport& r, std::string* why) {
    const nlohmann::json j = {{"id", r.id},       {"file", r.file},       {"version", r.version}, {"result", r.result},
                              {"error", r.error}, {"running", r.running}, {"at_ms", r.at_ms}};
    return write_atomic((fs::path(dir_) / "state.json").string(),
                        j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", why);
}

std::optional<north::ConfigReport> History::load_state() const {
    std::string text, why;
    if (!config::read_file((fs::path(dir_) / "state.json").string(), text, &why)) return std::nullopt;
    const auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return std::nullopt;
    north::ConfigReport r;
    const auto str = [&](const char* k) {
        const auto it = j.find(k);
        return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    r.id = str("id");
    r.file = str("file");
    r.version = str("version");
    r.result = str("result");
    r.error = str("error");
    r.running = str("running");
    if (const auto it = j.find("at_ms"); it != j.end() && it->is_number_integer()) r.at_ms = it->get<std::int64_t>();
    if (r.result.empty()) return std::nullopt;
    return r;
}

}  // namespace fieldlink::pushed
