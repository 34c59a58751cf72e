// Any byte stream from a serial sensor, in any chunking, under every framing, checksum and field
// format of the serial-line driver: frames, refusals or fields, never a crash, a read out of
// bounds or a buffer that grows without bound.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "frame.hpp"

using namespace fieldlink::serial;

namespace {

const std::unique_ptr<Parser>& parser(unsigned which) {
    static const std::unique_ptr<Parser> parsers[] = {
        [] {
            std::string e;
            return Parser::make(Format::regex, "T=(?<temp>[-+0-9.eE]+),H=(?<hum>\\d+)(?:,P=(?<press>\\S+))?", "",
                                Checksum::nmea, &e);
        }(),
        [] {
            std::string e;
            return Parser::make(Format::kv, "", "T H P X", Checksum::sum8, &e);
        }(),
        [] {
            std::string e;
            return Parser::make(Format::kv, "", "V,I", Checksum::crc16, &e);
        }(),
        [] {
            std::string e;
            return Parser::make(Format::regex, "^(?<a>\\S+)\\s+(?<b>\\S+)?", "", Checksum::none, &e);
        }(),
    };
    return parsers[which % 4];
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 3) return 0;
    FrameSpec spec;
    const unsigned mode = data[0];
    spec.start = (mode & 1) ? "$" : (mode & 2) ? "\x02" : "";
    spec.terminator = (mode & 4) ? "\r\n" : "\n";
    spec.length = (mode & 8) ? 1 + data[1] % 32 : 0;
    spec.max_frame = 8 + data[1] % 64;
    if (spec.length > spec.max_frame) spec.length = spec.max_frame;
    const auto& p = parser(mode >> 4);
    const std::size_t chunk = 1 + data[2] % 17;

    // Option text goes through the same escapes as the driver's options.
    std::string error;
    (void)unescape(std::string(reinterpret_cast<const char*>(data + 3), std::min<std::size_t>(size - 3, 16)), &error);

    Splitter s(spec);
    std::vector<Splitter::Item> items;
    std::vector<FieldValue> fields;
    std::string detail;
    for (std::size_t at = 3; at < size; at += chunk) {
        items.clear();
        s.feed(reinterpret_cast<const char*>(data + at), std::min(chunk, size - at), items);
        for (const auto& it : items) {
            if (it.drop != Drop::none) continue;                 // reported, with a shortened copy
            if (it.frame.size() > spec.max_frame) std::abort();  // frames stay bounded
            if (p->parse(it.frame, fields, &detail) == FrameError::none && fields.size() != p->fields().size())
                std::abort();
            for (const auto& f : fields) (void)field_number(f.text);
        }
    }
    return 0;
}
