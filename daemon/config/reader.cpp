#include "reader.hpp"

#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "core/log.hpp"
#include "core/suggest.hpp"
#include "points_file.hpp"

namespace fieldlink::config {

std::string format_error(const std::string& file, const ConfigError& e) {
    std::ostringstream o;
    o << (e.mark.file ? *e.mark.file : file);
    if (e.mark.line > 0) o << ':' << e.mark.line << ':' << e.mark.column;
    o << ": ";
    if (!e.path.empty()) o << e.path << ": ";
    o << e.message;
    return o.str();
}

namespace {
// The file being read, stamped on every mark (null: the main file).
thread_local std::shared_ptr<const std::string> t_file;  // NOLINT(cppcoreguidelines-avoid-non-const-global-variables)
// The main file's directory (key files are checked against it).
thread_local std::string t_main_dir;  // NOLINT(cppcoreguidelines-avoid-non-const-global-variables)
}  // namespace

void Reader::set_main_file(const std::string& file) {
    t_main_dir = std::filesystem::path(file).parent_path().string();
}

const std::string& Reader::main_dir() {
    return t_main_dir;
}

Reader::FileScope::FileScope(std::shared_ptr<const std::string> file) : previous_(std::move(t_file)) {
    t_file = std::move(file);
}
Reader::FileScope::~FileScope() {
    t_file = std::move(previous_);
}

Mark Reader::mark_of(const YAML::Node& n) {
    auto m = n.Mark();
    if (m.is_null()) {
        Mark cell;
        if (RowMarks::find(n, cell)) return cell;  // a cell of a points file
        return Mark{0, 0, t_file};
    }
    return Mark{m.line + 1, m.column + 1, t_file};
}

void Reader::push(const std::string& part) {
    if (!path_.empty() && part.front() != '[') path_ += '.';
    path_ += part;
}

void Reader::error(const YAML::Node& at, const std::string& message) {
    errors_.push_back(ConfigError{mark_of(at), path_, message});
}

void Reader::error_at(const Mark& at, const std::string& path, const std::string& message) {
    errors_.push_back(ConfigError{at, path, message});
}

void Reader::unknown_key(const YAML::Node& key_node, const std::string& key, const std::vector<const char*>& expected) {
    std::string list;
    for (const auto* k : expected) {
        if (!list.empty()) list += ", ";
        list += k;
    }
    std::string where = path_.empty() ? "" : path_;
    const std::vector<std::string> choices(expected.begin(), expected.end());
    errors_.push_back(
        ConfigError{mark_of(key_node), where,
                    "unknown key '" + key + "'" + core::did_you_mean(key, choices) + "; expected one of: " + list});
}

std::string Reader::suggestion(const std::string& given, const char* choices) {
    return core::did_you_mean(given, core::words(choices ? choices : ""));
}

bool Reader::unique_keys(const YAML::Node& map) {
    if (!map.IsMap()) return true;
    std::unordered_map<std::string, Mark> seen;
    bool ok = true;
    for (const auto& kv : map) {
        if (!kv.first.IsScalar()) continue;
        const Mark here = mark_of(kv.first);
        const auto [it, fresh] = seen.emplace(kv.first.Scalar(), here);
        if (fresh) continue;
        ok = false;
        const Mark& first = it->second;
        errors_.push_back(ConfigError{here, path_,
                                      "key '" + kv.first.Scalar() + "' given twice: here and at line " +
                                          std::to_string(first.line) + ", column " + std::to_string(first.column) +
                                          "; a key may appear once in a mapping"});
    }
    return ok;
}

void Reader::missing_key(const YAML::Node& map, const char* key) {
    error(map, std::string("missing required key '") + key + "'");
}

std::optional<std::string> Reader::scalar(const YAML::Node& n, const char* expected) {
    if (!n.IsScalar()) {
        error(n, std::string("expected ") + expected);
        return std::nullopt;
    }
    const std::string& raw = n.Scalar();
    std::string out;
    if (raw.find("${") == std::string::npos) return raw;  // (one pass: a 50 MB scalar stays linear)
    for (std::size_t i = 0; i < raw.size(); ++i) {
        const auto close = raw.compare(i, 2, "${") == 0 ? raw.find('}', i) : std::string::npos;
        if (close == std::string::npos) {
            out += raw[i];
            continue;
        }
        const std::string var = raw.substr(i + 2, close - i - 2);
        const char* v = std::getenv(var.c_str());
        if (!v) {
            error(n, "environment variable " + var + " is not set; expected it to hold " + expected);
            return std::nullopt;
        }
        out += v;
        i = close;
    }
    return out;
}

std::optional<std::string> Reader::string(const YAML::Node& n) {
    return scalar(n, "a text value");
}

std::optional<std::int64_t> Reader::integer(const YAML::Node& n, std::int64_t min, std::int64_t max, const char* what) {
    const auto text = scalar(n, what);
    if (!text) return std::nullopt;
    const std::string& s = *text;
    errno = 0;
    char* end = nullptr;
    long long v = std::strtoll(s.c_str(), &end, 0);
    if (s.empty() || *end != '\0' || errno == ERANGE) {
        error(n, "'" + s + "' is not an integer; expected " + what);
        return std::nullopt;
    }
    if (v < min || v > max) {
        error(n, std::to_string(v) + " is out of range; expected " + what);
        return std::nullopt;
    }
    return v;
}

std::optional<double> Reader::number(const YAML::Node& n) {
    const auto text = scalar(n, "a number");
    if (!text) return std::nullopt;
    const std::string& s = *text;
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || !std::isfinite(v)) {
        error(n, "'" + s + "' is not a number; expected a finite decimal number like 0.1");
        return std::nullopt;
    }
    return v;
}

std::optional<bool> Reader::boolean(const YAML::Node& n) {
    if (n.IsScalar()) {
        const std::string& s = n.Scalar();
        if (s == "true" || s == "yes" || s == "on") return true;
        if (s == "false" || s == "no" || s == "off") return false;
    }
    error(n, "expected true or false");
    return std::nullopt;
}

std::optional<Duration> Reader::duration(const YAML::Node& n, Duration min, Duration max) {
    auto s = string(n);
    if (!s) return std::nullopt;
    auto d = core::parse_duration(*s);
    if (!d) {
        error(n, "'" + *s +
                     "' is not a duration; expected a number with a unit: ms, s, m, h "
                     "(e.g. 300ms, 5s, 1m)");
        return std::nullopt;
    }
    if (*d < min || *d > max) {
        error(n, "duration " + *s + " is out of range; expected " + core::format_duration(min) + " to " +
                     core::format_duration(max));
        return std::nullopt;
    }
    return d;
}

std::optional<std::uint64_t> Reader::size(const YAML::Node& n, std::uint64_t min) {
    auto s = string(n);
    if (!s) return std::nullopt;
    char* end = nullptr;
    const unsigned long long v = std::strtoull(s->c_str(), &end, 10);
    const std::string unit = end ? end : "";
    const std::uint64_t factor = unit.empty()   ? 1
                                 : unit == "KB" ? 1024
                                 : unit == "MB" ? 1024ULL * 1024
                                 : unit == "GB" ? 1024ULL * 1024 * 1024
                                                : 0;
    if (s->empty() || !std::isdigit(static_cast<unsigned char>((*s)[0])) || factor == 0) {
        error(n, "'" + *s + "' is not a size; expected bytes with an optional KB, MB or GB suffix (e.g. 512MB)");
        return std::nullopt;
    }
    if (v * factor < min) {
        error(n, "size " + *s + " is too small; expected at least " + std::to_string(min) + " bytes");
        return std::nullopt;
    }
    return v * factor;
}

std::optional<std::string> Reader::secret(const YAML::Node& n) {
    return scalar(n, "the secret");
}

// A key file others can read, or a symlink leading out of the configuration's directory, is
// accepted with a warning (at --check and at every start): a key is a secret.
void Reader::warn_key_file(const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const auto log = core::logger("config");
    struct stat lst {};
    if (::lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) {
        const auto target = fs::canonical(path, ec);
        const auto home = fs::canonical(fs::absolute(t_main_dir.empty() ? std::string(".") : t_main_dir), ec);
        const auto rel = target.lexically_relative(home);
        if (!ec && (rel.empty() || *rel.begin() == "..")) {
            log->warn(
                "key file '{}' is a symlink to '{}', outside the configuration's directory {}; keep keys beside "
                "the configuration",
                path, target.string(), home.string());
        }
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && (st.st_mode & (S_IROTH | S_IWOTH)) != 0) {
        log->warn(
            "key file '{}' can be read by every user of this machine (mode {:04o}); chmod 0640 it (owner and the "
            "fieldlink group)",
            path, st.st_mode & 07777);
    }
}

std::optional<std::string> Reader::secret_file(const YAML::Node& n) {
    auto path = string(n);
    if (!path) return std::nullopt;
    std::ifstream in(*path);
    if (!in) {
        error(n, "cannot read key file '" + *path + "'; expected a readable file holding the key");
        return std::nullopt;
    }
    warn_key_file(*path);
    std::string v;
    std::getline(in, v);
    while (!v.empty() && (v.back() == '\r' || v.back() == ' ')) v.pop_back();
    if (v.empty()) {
        error(n, "key file '" + *path + "' is empty; expected the key on its first line");
        return std::nullopt;
    }
    return v;
}

}  // namespace fieldlink::config
