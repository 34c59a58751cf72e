// Declared-table reading of YAML mappings: each section lists its keys once (key, required,
// parser); unknown keys, missing keys and wrong types become ConfigErrors with file positions.
#pragma once

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config.hpp"

namespace fieldlink::config {

class Reader;

template <typename T>
struct Field {
    const char* key;
    bool required;
    void (*parse)(T& out, const YAML::Node& value, Reader& r);
};

class Reader {
  public:
    explicit Reader(std::vector<ConfigError>& errors) : errors_(errors) {}

    // Path management: "devices[2].points[0]" style, used in every message.
    struct Scope {
        Scope(Reader& r, const std::string& part) : r_(r), size_(r.path_.size()) { r.push(part); }
        ~Scope() { r_.path_.resize(size_); }
        Scope(const Scope&) = delete;
        Scope& operator=(const Scope&) = delete;

      private:
        Reader& r_;
        std::size_t size_;
    };

    void error(const YAML::Node& at, const std::string& message);
    void error_at(const Mark& at, const std::string& path, const std::string& message);
    const std::string& path() const { return path_; }
    static Mark mark_of(const YAML::Node& n);

    // The scalar's text with ${VAR} references expanded from the environment; nullopt (error
    // recorded) when the node is not a scalar or a variable is unset.
    std::optional<std::string> scalar(const YAML::Node& n, const char* expected);

    // Typed scalar readers: on mismatch they record an error and return nullopt.
    std::optional<std::string> string(const YAML::Node& n);
    std::optional<std::int64_t> integer(const YAML::Node& n, std::int64_t min, std::int64_t max, const char* what);
    std::optional<double> number(const YAML::Node& n);
    std::optional<bool> boolean(const YAML::Node& n);
    std::optional<Duration> duration(const YAML::Node& n, Duration min, Duration max);
    // Bytes: a whole number with an optional KB, MB or GB suffix (powers of 1024).
    std::optional<std::uint64_t> size(const YAML::Node& n, std::uint64_t min);
    // A secret: literal, or ${ENV_VAR} expanded from the environment.
    std::optional<std::string> secret(const YAML::Node& n);
    std::optional<std::string> secret_file(const YAML::Node& n);
    static void warn_key_file(const std::string& path);
    // The configuration file being read (its directory is where key files should live).
    static void set_main_file(const std::string& file);

    template <typename E>
    std::optional<E> enumeration(const YAML::Node& n, std::optional<E> (*parse)(std::string_view),
                                 const char* choices) {
        auto s = string(n);
        if (!s) return std::nullopt;
        auto v = parse(*s);
        if (!v) error(n, "unknown value '" + *s + "'" + suggestion(*s, choices) + "; expected one of: " + choices);
        return v;
    }

    // Reads a mapping through its table. Returns false if `node` is not a mapping.
    template <typename T, std::size_t N>
    bool map(const YAML::Node& node, const Field<T> (&fields)[N], T& out) {
        if (!node.IsMap()) {
            error(node, "expected a mapping (key: value lines)");
            return false;
        }
        std::vector<const char*> keys;
        for (const auto& f : fields) keys.push_back(f.key);
        unique_keys(node);
        for (const auto& kv : node) {
            auto key = kv.first.as<std::string>("");
            const Field<T>* match = nullptr;
            for (const auto& f : fields) {
                if (key == f.key) match = &f;
            }
            if (!match) {
                unknown_key(kv.first, key, keys);
                continue;
            }
            Scope s(*this, key);
            match->parse(out, kv.second, *this);
        }
        for (const auto& f : fields) {
            if (f.required && !node[f.key]) missing_key(node, f.key);
        }
        return true;
    }

    // While it lives, marks name this file (a conf.d fragment) instead of the main one.
    struct FileScope {
        explicit FileScope(std::shared_ptr<const std::string> file);
        ~FileScope();
        FileScope(const FileScope&) = delete;
        FileScope& operator=(const FileScope&) = delete;

      private:
        std::shared_ptr<const std::string> previous_;
    };
    // The main file's directory: files the configuration names (points files) are relative to it.
    static const std::string& main_dir();

    // A key given twice in one mapping is an error at the second, naming the first (YAML readers
    // differ on which one wins: `address: 0, address: 5` must not quietly read register 5).
    // False when there was one.
    bool unique_keys(const YAML::Node& map);
    void unknown_key(const YAML::Node& key_node, const std::string& key, const std::vector<const char*>& expected);
    void missing_key(const YAML::Node& map, const char* key);
    // " (did you mean 'x'?)" when one of the comma-separated `choices` is close to `given`.
    static std::string suggestion(const std::string& given, const char* choices);

  private:
    void push(const std::string& part);

    std::vector<ConfigError>& errors_;
    std::string path_;
};

}  // namespace fieldlink::config
