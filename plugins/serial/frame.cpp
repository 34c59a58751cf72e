#include "frame.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8  // NOLINT(cppcoreguidelines-macro-usage): pcre2.h's own switch
#include <pcre2.h>
#include <fieldlink/crc16.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace fieldlink::serial {

namespace {

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// The value of a run of hex digits, or -1.
long hex_value(std::string_view s) {
    long v = 0;
    for (char c : s) {
        const int d = hex_digit(c);
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

bool is_separator(char c) {
    return c == ' ' || c == '\t' || c == ',' || c == ';';
}

bool iequals(std::string_view a, const char* b) {
    const std::size_t n = std::strlen(b);
    if (a.size() != n) return false;
    for (std::size_t i = 0; i < n; ++i) {
        if (std::tolower(static_cast<unsigned char>(a[i])) != b[i]) return false;
    }
    return true;
}

std::string printable(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 48)) {
        if (std::isprint(static_cast<unsigned char>(c))) {
            out += c;
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02X", static_cast<unsigned char>(c));
            out += buf;
        }
    }
    if (s.size() > 48) out += "...";
    return out;
}

}  // namespace

std::optional<std::string> unescape(std::string_view text, std::string* error) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '\\') {
            out += text[i];
            continue;
        }
        if (++i == text.size()) {
            if (error) *error = R"(a backslash ends the text; expected \r, \n, \t, \\ or \xHH)";
            return std::nullopt;
        }
        switch (text[i]) {
            case 'r':
                out += '\r';
                break;
            case 'n':
                out += '\n';
                break;
            case 't':
                out += '\t';
                break;
            case '\\':
                out += '\\';
                break;
            case 'x': {
                const long v = i + 2 < text.size() ? hex_value(text.substr(i + 1, 2)) : -1;
                if (v < 0) {
                    if (error) *error = "\\x must be followed by two hex digits";
                    return std::nullopt;
                }
                out += static_cast<char>(v);
                i += 2;
                break;
            }
            default:
                if (error)
                    *error = std::string(R"(unknown escape \)") + text[i] + R"(; expected \r, \n, \t, \\ or \xHH)";
                return std::nullopt;
        }
    }
    return out;
}

// ---- splitting -----------------------------------------------------------------------------

void Splitter::reset() {
    buf_.clear();
    in_frame_ = false;
    discarding_ = false;
}

void Splitter::feed(const char* data, std::size_t n, std::vector<Item>& out) {
    buf_.append(data, n);
    split(out);
}

void Splitter::split(std::vector<Item>& out) {
    for (;;) {
        if (!find_start()) return;
        if (spec_.length > 0) {
            if (buf_.size() < spec_.length) return;
            out.push_back({buf_.substr(0, spec_.length), Drop::none});
            buf_.erase(0, spec_.length);
            in_frame_ = false;
            continue;
        }
        const auto end = buf_.find(spec_.terminator);
        if (broken_off(end, out)) continue;
        if (end == std::string::npos) {
            hold(out);
            return;
        }
        take(end, out);
    }
}

// Drops what comes before a start sequence (none: every byte belongs to a frame). False while
// no start sequence has come.
bool Splitter::find_start() {
    if (spec_.start.empty() || in_frame_ || discarding_) return true;
    const auto at = buf_.find(spec_.start);
    if (at == std::string::npos) {  // keep what may be the beginning of a start sequence
        if (buf_.size() >= spec_.start.size()) buf_.erase(0, buf_.size() - (spec_.start.size() - 1));
        return false;
    }
    buf_.erase(0, at + spec_.start.size());
    in_frame_ = true;
    return true;
}

// A start sequence before the terminator (at `end`): what came before it was broken off, and a
// new frame opens there. True when that happened.
bool Splitter::broken_off(std::size_t end, std::vector<Item>& out) {
    const auto again = spec_.start.empty() ? std::string::npos : buf_.find(spec_.start);
    if (again == std::string::npos || (end != std::string::npos && again > end)) return false;
    if (!discarding_) out.push_back({printable(buf_.substr(0, again)), Drop::broken_off});
    discarding_ = false;
    buf_.erase(0, again + spec_.start.size());
    in_frame_ = true;
    return true;
}

// No terminator yet: a frame past max_frame is reported once and dropped as it comes.
void Splitter::hold(std::vector<Item>& out) {
    if (buf_.size() <= spec_.max_frame + spec_.terminator.size()) return;
    if (!discarding_) out.push_back({printable(buf_), Drop::too_long});
    discarding_ = true;
    // Keep what may be the beginning of a terminator or of a start sequence.
    const std::size_t keep = std::max(spec_.terminator.size(), spec_.start.size()) - 1;
    buf_.erase(0, buf_.size() - std::min(keep, buf_.size()));
}

// The frame up to its terminator at `end`.
void Splitter::take(std::size_t end, std::vector<Item>& out) {
    std::string frame = buf_.substr(0, end);
    buf_.erase(0, end + spec_.terminator.size());
    in_frame_ = false;
    if (discarding_) {  // the tail of a too long frame
        discarding_ = false;
        return;
    }
    if (spec_.terminator == "\n" && !frame.empty() && frame.back() == '\r') frame.pop_back();
    if (frame.size() > spec_.max_frame) {
        out.push_back({printable(frame), Drop::too_long});
    } else if (!frame.empty() || !spec_.start.empty()) {  // blank lines between frames are skipped
        out.push_back({std::move(frame), Drop::none});
    }
}

// ---- checking and extracting ---------------------------------------------------------------

std::optional<Checksum> parse_checksum(std::string_view s) {
    if (s == "none") return Checksum::none;
    if (s == "nmea") return Checksum::nmea;
    if (s == "sum8") return Checksum::sum8;
    if (s == "crc16") return Checksum::crc16;
    return std::nullopt;
}

std::optional<Format> parse_format(std::string_view s) {
    if (s == "regex") return Format::regex;
    if (s == "kv") return Format::kv;
    return std::nullopt;
}

std::optional<double> field_number(std::string_view text) {
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
    if (iequals(text, "on") || iequals(text, "true") || iequals(text, "yes")) return 1.0;
    if (iequals(text, "off") || iequals(text, "false") || iequals(text, "no")) return 0.0;
    if (text.empty() || text.size() > 64) return std::nullopt;
    // Digits, sign, point and exponent only: strtod would also take hex, "inf" and "nan".
    for (char c : text) {
        if (!std::isdigit(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.' && c != 'e' && c != 'E')
            return std::nullopt;
    }
    const std::string s(text);
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (end != s.c_str() + s.size() || !std::isfinite(v)) return std::nullopt;
    return v;
}

struct Parser::Regex {
    pcre2_code* code = nullptr;
    pcre2_match_data* match = nullptr;
    ~Regex() {
        if (match) pcre2_match_data_free(match);
        if (code) pcre2_code_free(code);
    }
};

Parser::~Parser() = default;

// format kv: the keys to read, separated by spaces or commas.
bool Parser::take_keys(const std::string& keys, std::string* error) {
    std::string key;
    for (std::size_t i = 0; i <= keys.size(); ++i) {
        const char c = i < keys.size() ? keys[i] : ' ';
        if (c == ' ' || c == ',') {
            if (!key.empty()) {
                if (index_of(key) >= 0) {
                    *error = "keys: '" + key + "' is listed twice";
                    return false;
                }
                fields_.push_back(key);
            }
            key.clear();
        } else if (c == '=' || std::iscntrl(static_cast<unsigned char>(c))) {
            *error = "keys: a key may not contain '=' or control characters";
            return false;
        } else {
            key += c;
        }
    }
    if (fields_.empty()) {
        *error = "keys: required with format kv; expected the keys to read, like \"T H P\"";
        return false;
    }
    return true;
}

std::unique_ptr<Parser> Parser::make(Format format, const std::string& pattern, const std::string& keys,
                                     Checksum checksum, std::string* error) {
    std::unique_ptr<Parser> p(new Parser());
    p->format_ = format;
    p->checksum_ = checksum;
    if (format == Format::kv) return p->take_keys(keys, error) ? std::move(p) : nullptr;
    if (pattern.empty()) {
        *error =
            "pattern: required with format regex; expected a regular expression with named groups, like "
            "\"T=(?<temp>\\S+)\"";
        return nullptr;
    }
    p->re_ = std::make_unique<Regex>();
    int code = 0;
    PCRE2_SIZE offset = 0;
    p->re_->code =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), 0, &code, &offset, nullptr);
    if (!p->re_->code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof msg);
        *error = "pattern: " + std::string(reinterpret_cast<const char*>(msg)) + " at offset " + std::to_string(offset);
        return nullptr;
    }
    uint32_t count = 0;
    uint32_t entry = 0;
    PCRE2_SPTR table = nullptr;
    pcre2_pattern_info(p->re_->code, PCRE2_INFO_NAMECOUNT, &count);
    pcre2_pattern_info(p->re_->code, PCRE2_INFO_NAMEENTRYSIZE, &entry);
    pcre2_pattern_info(p->re_->code, PCRE2_INFO_NAMETABLE, &table);
    std::vector<std::pair<int, std::string>> named;
    for (uint32_t i = 0; i < count; ++i) {
        const auto* e = table + static_cast<std::size_t>(i) * entry;
        named.emplace_back((e[0] << 8) | e[1], reinterpret_cast<const char*>(e + 2));
    }
    std::sort(named.begin(), named.end());  // group order: the order they are written in
    for (auto& [group, name] : named) {
        p->groups_.push_back(group);
        p->fields_.push_back(std::move(name));
    }
    if (p->fields_.empty()) {
        *error = "pattern: has no named group; expected a group like (?<temp>[-0-9.]+) for each field";
        return nullptr;
    }
    p->re_->match = pcre2_match_data_create_from_pattern(p->re_->code, nullptr);
    return p;
}

int Parser::index_of(std::string_view field) const {
    for (std::size_t i = 0; i < fields_.size(); ++i) {
        if (fields_[i] == field) return static_cast<int>(i);
    }
    return -1;
}

// Checks the checksum at the frame's end and leaves the text it covers in `body`.
bool Parser::verify(std::string_view frame, std::string_view& body, std::string* detail) const {
    body = frame;
    switch (checksum_) {
        case Checksum::none:
            return true;
        case Checksum::nmea: {  // $GPGGA,...*47: XOR of the bytes between '$' and '*'
            const auto star = frame.rfind('*');
            if (star == std::string_view::npos || frame.size() - star != 3) {
                *detail = "no *HH checksum at the end";
                return false;
            }
            std::string_view covered = frame.substr(0, star);
            if (!covered.empty() && covered.front() == '$') covered.remove_prefix(1);
            unsigned x = 0;
            for (char c : covered) x ^= static_cast<unsigned char>(c);
            const long want = hex_value(frame.substr(star + 1));
            body = frame.substr(0, star);
            if (want < 0 || static_cast<unsigned>(want) != x) {
                char buf[64];
                std::snprintf(buf, sizeof buf, "checksum %s, computed %02X",
                              std::string(frame.substr(star + 1)).c_str(), x);
                *detail = buf;
                return false;
            }
            return true;
        }
        case Checksum::sum8:
        case Checksum::crc16: {
            const std::size_t digits = checksum_ == Checksum::sum8 ? 2 : 4;
            if (frame.size() < digits) {
                *detail = "shorter than its checksum";
                return false;
            }
            body = frame.substr(0, frame.size() - digits);
            unsigned computed = 0;
            if (checksum_ == Checksum::sum8) {
                for (char c : body) computed = (computed + static_cast<unsigned char>(c)) & 0xFF;
            } else {
                computed = modbus_crc16(reinterpret_cast<const std::uint8_t*>(body.data()), body.size());
            }
            const long want = hex_value(frame.substr(body.size()));
            if (want < 0 || static_cast<unsigned>(want) != computed) {
                char buf[64];
                std::snprintf(buf, sizeof buf, "checksum %s, computed %0*X",
                              std::string(frame.substr(body.size())).c_str(), static_cast<int>(digits), computed);
                *detail = buf;
                return false;
            }
            return true;
        }
    }
    return true;
}

FrameError Parser::parse(std::string_view frame, std::vector<FieldValue>& out, std::string* detail) const {
    out.assign(fields_.size(), FieldValue{});
    std::string_view body;
    std::string why;
    if (!verify(frame, body, &why)) {
        if (detail) *detail = "wrong checksum (" + why + ") in frame '" + printable(frame) + "'";
        return FrameError::checksum;
    }
    auto set = [&](std::size_t i, std::string_view text) {
        out[i].present = true;
        out[i].text.assign(text.data(), text.size());
        if (auto v = field_number(text)) {
            out[i].numeric = true;
            out[i].value = *v;
        }
    };
    if (format_ == Format::kv) {
        // Pairs separated by spaces, tabs, commas or semicolons; key and value by '=' or ':'.
        std::size_t i = 0;
        bool any = false;
        while (i < body.size()) {
            while (i < body.size() && is_separator(body[i])) ++i;
            std::size_t j = i;
            while (j < body.size() && !is_separator(body[j])) ++j;
            const std::string_view pair = body.substr(i, j - i);
            const auto eq = pair.find_first_of("=:");
            if (eq != std::string_view::npos && eq > 0) {
                any = true;
                const int f = index_of(pair.substr(0, eq));
                if (f >= 0) set(static_cast<std::size_t>(f), pair.substr(eq + 1));
            }
            i = j;
        }
        if (!any) {
            if (detail) *detail = "no key=value pair in frame '" + printable(frame) + "'";
            return FrameError::no_match;
        }
        return FrameError::none;
    }
    const int rc =
        pcre2_match(re_->code, reinterpret_cast<PCRE2_SPTR>(body.data()), body.size(), 0, 0, re_->match, nullptr);
    if (rc < 0) {
        if (detail) *detail = "frame '" + printable(frame) + "' does not match the pattern";
        return FrameError::no_match;
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(re_->match);
    const std::size_t pairs = pcre2_get_ovector_count(re_->match);
    for (std::size_t i = 0; i < fields_.size(); ++i) {
        const auto g = static_cast<std::size_t>(groups_[i]);
        if (g >= pairs || ov[2 * g] == PCRE2_UNSET) continue;
        set(i, body.substr(ov[2 * g], ov[2 * g + 1] - ov[2 * g]));
    }
    return FrameError::none;
}

}  // namespace fieldlink::serial
