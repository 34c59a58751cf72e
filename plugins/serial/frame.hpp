// Frames of ASCII serial sensors: the byte stream split into frames (a terminator or a fixed
// length, after an optional start sequence), each frame's checksum checked (NMEA XOR, 8-bit sum,
// CRC-16, all as hex digits at its end), and its fields extracted (a PCRE2 pattern with named
// groups, or key=value pairs) as numbers. No I/O: the driver feeds it bytes, the fuzz target feeds
// it anything.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fieldlink::serial {

// Option text with C escapes (\r \n \t \\ \xHH) as the bytes it stands for; nullopt with `error`
// saying what is wrong.
std::optional<std::string> unescape(std::string_view text, std::string* error);

struct FrameSpec {
    std::string start;             // bytes that open a frame; bytes before them are dropped ("" = none)
    std::string terminator{"\n"};  // bytes that close a frame (when length == 0); a CR before LF is dropped
    std::size_t length = 0;        // fixed frame length after `start` (0: frames end at the terminator)
    std::size_t max_frame = 256;   // a longer frame is dropped whole, up to its terminator
};

// Why the splitter dropped a frame (Item::drop).
enum class Drop {
    none,        // a frame
    too_long,    // longer than max_frame: reported once, its bytes dropped up to its terminator
    broken_off,  // a start sequence came before its terminator (sensor reset, lost CR/LF)
};

// Splits a byte stream into frames. A frame longer than max_frame is reported once (too_long) and
// its bytes dropped up to the next terminator, so the frame after it is read intact. With a start
// sequence, frames end at their terminator, a start seen before it drops what came since the
// previous start (broken_off) and opens a new frame there: a sentence broken off never takes the
// next one with it. (Fixed-length frames are binary: a start inside one is data.)
class Splitter {
  public:
    explicit Splitter(FrameSpec spec) : spec_(std::move(spec)) {}
    struct Item {
        std::string frame;  // without start and terminator; printable and shortened when dropped
        Drop drop = Drop::none;
    };
    void feed(const char* data, std::size_t n, std::vector<Item>& out);
    void reset();

  private:
    void split(std::vector<Item>& out);
    bool find_start();
    bool broken_off(std::size_t end, std::vector<Item>& out);
    void hold(std::vector<Item>& out);
    void take(std::size_t end, std::vector<Item>& out);
    FrameSpec spec_;
    std::string buf_;
    bool in_frame_ = false;    // the start sequence was seen (always true without one)
    bool discarding_ = false;  // inside a too long frame, dropping up to its terminator
};

enum class Checksum { none, nmea, sum8, crc16 };
enum class Format { regex, kv };

std::optional<Checksum> parse_checksum(std::string_view s);
std::optional<Format> parse_format(std::string_view s);

// One field of one frame: missing (an optional group that did not match, a key the frame lacks),
// or its text and, when it is a number (or on/off, true/false, yes/no), its value.
struct FieldValue {
    bool present = false;
    bool numeric = false;
    double value = 0.0;
    std::string text;
};

enum class FrameError { none, checksum, no_match };

// Checks a frame and extracts its fields. Built once per bus from its options.
class Parser {
  public:
    // nullptr with `error` saying which option is wrong and what was expected.
    static std::unique_ptr<Parser> make(Format format, const std::string& pattern, const std::string& keys,
                                        Checksum checksum, std::string* error);
    ~Parser();
    Parser(const Parser&) = delete;
    Parser& operator=(const Parser&) = delete;

    // The field names in address order (the pattern's named groups by group number, or `keys`).
    const std::vector<std::string>& fields() const { return fields_; }
    int index_of(std::string_view field) const;
    // Fills `out` (one entry per field) or says why the frame is refused, in `detail`.
    FrameError parse(std::string_view frame, std::vector<FieldValue>& out, std::string* detail) const;

  private:
    Parser() = default;
    bool verify(std::string_view frame, std::string_view& body, std::string* detail) const;
    bool take_keys(const std::string& keys, std::string* error);
    Format format_ = Format::regex;
    Checksum checksum_ = Checksum::none;
    std::vector<std::string> fields_;
    std::vector<int> groups_;  // regex: the group number of each field
    struct Regex;
    std::unique_ptr<Regex> re_;
};

// A field's text as a number: decimal or exponent notation with optional sign and surrounding
// spaces, or on/off, true/false, yes/no (1/0).
std::optional<double> field_number(std::string_view text);

}  // namespace fieldlink::serial
