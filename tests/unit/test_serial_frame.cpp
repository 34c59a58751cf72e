// The serial-line driver's frame parser: splitting, checksums (with the published NMEA example
// sentence and the CRC-16/MODBUS check value), field extraction, and points placed by `field:`.
#include <doctest/doctest.h>
#include <fieldlink/crc16.hpp>

#include <string>
#include <vector>

#include "frame.hpp"
#include "helpers.hpp"

using namespace fieldlink::serial;

namespace {

std::vector<Splitter::Item> split(FrameSpec spec, const std::vector<std::string>& chunks) {
    Splitter s(std::move(spec));
    std::vector<Splitter::Item> out;
    for (const auto& c : chunks) s.feed(c.data(), c.size(), out);
    return out;
}

std::unique_ptr<Parser> parser(Format f, const std::string& pattern, const std::string& keys, Checksum c) {
    std::string error;
    auto p = Parser::make(f, pattern, keys, c, &error);
    INFO(error);
    REQUIRE(p);
    return p;
}

}  // namespace

TEST_CASE("option escapes") {
    std::string error;
    CHECK(*unescape("READ\\r\\n", &error) == "READ\r\n");
    CHECK(*unescape("\\x02T\\x03\\\\", &error) == std::string("\x02T\x03\\"));
    CHECK_FALSE(unescape("\\q", &error));
    CHECK(error == "unknown escape \\q; expected \\r, \\n, \\t, \\\\ or \\xHH");
    CHECK_FALSE(unescape("\\x4", &error));
    CHECK_FALSE(unescape("\\xZZ", &error));
    CHECK_FALSE(unescape("ends\\", &error));
}

TEST_CASE("frames split at the terminator, across reads, with a CR before LF dropped") {
    const auto items = split(FrameSpec{}, {"T=1\r", "\nT=", "2\r\n\r\nT=3"});
    REQUIRE(items.size() == 2);
    CHECK(items[0].frame == "T=1");
    CHECK(items[1].frame == "T=2");
}

TEST_CASE("a start sequence drops the bytes before it; a fixed length needs no terminator") {
    FrameSpec nmea;
    nmea.start = "$";
    nmea.terminator = "\r\n";
    auto items = split(nmea, {"noise$GP", "GGA,1*00\r\n$X\r\n"});
    REQUIRE(items.size() == 2);
    CHECK(items[0].frame == "GPGGA,1*00");
    CHECK(items[1].frame == "X");

    FrameSpec fixed;
    fixed.start = "\x02";
    fixed.length = 6;
    items = split(fixed, {"xx\x02+023.4\x02-00", "1.5"});
    REQUIRE(items.size() == 2);
    CHECK(items[0].frame == "+023.4");
    CHECK(items[1].frame == "-001.5");
}

TEST_CASE("an over-long line is reported once and the frame after it is read intact") {
    FrameSpec spec;
    spec.max_frame = 16;
    const std::string longline(100, 'X');
    auto items = split(spec, {longline.substr(0, 40), longline.substr(40), "\nT=5\n"});
    REQUIRE(items.size() == 2);
    CHECK(items[0].drop == Drop::too_long);
    CHECK(items[1].frame == "T=5");
    CHECK(items[1].drop == Drop::none);
    // a long line that arrives whole
    items = split(spec, {longline + "\nT=6\n"});
    REQUIRE(items.size() == 2);
    CHECK(items[0].drop == Drop::too_long);
    CHECK(items[1].frame == "T=6");
}

TEST_CASE("a sentence broken off before its terminator is dropped, and the next one is read intact") {
    FrameSpec spec;
    spec.start = "$";
    spec.terminator = "\r\n";
    // A sensor reset mid-sentence: no CR/LF, then the next sentence.
    auto items = split(spec, {"$WIMDA,29.86,I,0.5", "$WIMDA,29.87,I,1.0*4A\r\n"});
    REQUIRE(items.size() == 2);
    CHECK(items[0].drop == Drop::broken_off);
    CHECK(items[0].frame == "WIMDA,29.86,I,0.5");
    CHECK(items[1].drop == Drop::none);
    CHECK(items[1].frame == "WIMDA,29.87,I,1.0*4A");
    // The same arriving in one piece, and two broken ones in a row.
    items = split(spec, {"$A,1$B,2$C,3\r\n"});
    REQUIRE(items.size() == 3);
    CHECK(items[0].drop == Drop::broken_off);
    CHECK(items[1].drop == Drop::broken_off);
    CHECK(items[2].frame == "C,3");
    // A start inside a too long frame ends the dropping there.
    spec.max_frame = 8;
    items = split(spec, {"$" + std::string(40, 'X'), "$T=5\r\n"});
    REQUIRE(items.size() == 2);
    CHECK(items[0].drop == Drop::too_long);
    CHECK(items[1].drop == Drop::none);
    CHECK(items[1].frame == "T=5");
}

TEST_CASE("a start sequence inside a fixed-length frame is data") {
    FrameSpec fixed;
    fixed.start = "\x02";
    fixed.length = 4;
    const auto items = split(fixed, {"\x02"
                                     "a\x02"
                                     "bc"});
    REQUIRE(items.size() == 1);
    CHECK(items[0].frame ==
          "a\x02"
          "bc");
    CHECK(items[0].drop == Drop::none);
}

TEST_CASE("NMEA checksum: the published example sentence, and a wrong one") {
    auto p = parser(Format::regex, "GPGGA,[^,]*,(?<lat>[0-9.]+),N,(?<lon>[0-9.]+),E,\\d,\\d+,[0-9.]+,(?<alt>[0-9.]+)",
                    "", Checksum::nmea);
    std::vector<FieldValue> f;
    std::string detail;
    CHECK(p->parse("$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47", f, &detail) ==
          FrameError::none);
    REQUIRE(f.size() == 3);
    CHECK(f[0].value == doctest::Approx(4807.038));
    CHECK(f[1].value == doctest::Approx(1131.0));
    CHECK(f[2].value == doctest::Approx(545.4));
    CHECK(p->parse("GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47", f, &detail) ==
          FrameError::none);  // the start sequence already taken off
    CHECK(p->parse("$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*48", f, &detail) ==
          FrameError::checksum);
    CHECK(detail.find("wrong checksum (checksum 48, computed 47)") == 0);
    CHECK(p->parse("$GPGGA,123519", f, &detail) == FrameError::checksum);
    CHECK(detail.find("no *HH checksum") != std::string::npos);
}

TEST_CASE("sum8 and CRC-16 checksums as hex digits at the frame's end") {
    CHECK(fieldlink::modbus_crc16(reinterpret_cast<const std::uint8_t*>("123456789"), 9) == 0x4B37);
    auto s = parser(Format::kv, "", "T H", Checksum::sum8);
    std::vector<FieldValue> f;
    std::string detail;
    CHECK(s->parse("T=21.5 H=4060", f, &detail) == FrameError::none);
    CHECK(f[0].value == 21.5);
    CHECK(f[1].value == 40.0);
    CHECK(s->parse("T=21.5 H=4061", f, &detail) == FrameError::checksum);
    CHECK(s->parse("6", f, &detail) == FrameError::checksum);

    auto c = parser(Format::kv, "", "V", Checksum::crc16);
    const std::string body = "V=3.3;";
    char hex[8];
    std::snprintf(hex, sizeof hex, "%04X",
                  fieldlink::modbus_crc16(reinterpret_cast<const std::uint8_t*>(body.data()), body.size()));
    CHECK(c->parse(body + hex, f, &detail) == FrameError::none);
    CHECK(f[0].value == doctest::Approx(3.3));
    CHECK(c->parse(body + "0000", f, &detail) == FrameError::checksum);
}

TEST_CASE("fields: named groups in the order written, key=value pairs, numbers and words") {
    auto p = parser(Format::regex, "(?<b>\\d+)/(?<a>\\S+)(?: (?<c>\\d+))?", "", Checksum::none);
    CHECK(p->fields() == std::vector<std::string>{"b", "a", "c"});
    CHECK(p->index_of("a") == 1);
    CHECK(p->index_of("z") == -1);
    std::vector<FieldValue> f;
    std::string detail;
    CHECK(p->parse("12/ON", f, &detail) == FrameError::none);
    CHECK(f[0].value == 12);
    CHECK(f[1].value == 1);  // ON
    CHECK_FALSE(f[2].present);
    CHECK(p->parse("12/abc 7", f, &detail) == FrameError::none);
    CHECK(f[1].present);
    CHECK_FALSE(f[1].numeric);
    CHECK(f[2].value == 7);
    CHECK(p->parse("garbage", f, &detail) == FrameError::no_match);
    CHECK(detail == "frame 'garbage' does not match the pattern");

    auto kv = parser(Format::kv, "", "T,H P", Checksum::none);
    CHECK(kv->fields() == std::vector<std::string>{"T", "H", "P"});
    CHECK(kv->parse("T=-1.5e1;H:40,X=9 junk", f, &detail) == FrameError::none);
    CHECK(f[0].value == -15.0);
    CHECK(f[1].value == 40.0);
    CHECK_FALSE(f[2].present);
    CHECK(kv->parse("no pairs here", f, &detail) == FrameError::no_match);

    CHECK(field_number(" +21.50 ") == 21.5);
    CHECK(field_number("off") == 0.0);
    CHECK_FALSE(field_number("0x10"));
    CHECK_FALSE(field_number("nan"));
    CHECK_FALSE(field_number("1e999"));
    CHECK_FALSE(field_number(""));
}

TEST_CASE("bad parser options say which and what was expected") {
    std::string error;
    CHECK_FALSE(Parser::make(Format::regex, "(?<t>\\d+", "", Checksum::none, &error));
    CHECK(error == "pattern: missing closing parenthesis at offset 8");
    CHECK_FALSE(Parser::make(Format::regex, "(\\d+)", "", Checksum::none, &error));
    CHECK(error.find("pattern: has no named group") == 0);
    CHECK_FALSE(Parser::make(Format::regex, "", "", Checksum::none, &error));
    CHECK(error.find("pattern: required with format regex") == 0);
    CHECK_FALSE(Parser::make(Format::kv, "", "T T", Checksum::none, &error));
    CHECK(error == "keys: 'T' is listed twice");
    CHECK_FALSE(Parser::make(Format::kv, "", " ", Checksum::none, &error));
    CHECK(error.find("keys: required with format kv") == 0);
}

TEST_CASE("points named by field: are placed by the serial-line driver as input float64") {
    auto r = fieldlink::load_config_text(R"(
clouds:
  c: { platform: mqtt, host: 127.0.0.1, port: 1883, topic: "t/{device}/{point}" }
buses:
  wx: { driver: serial-line, device: /dev/null, pattern: 'T=(?<temp>\S+) H=(?<hum>\S+)' }
  plc: { driver: sim }
devices:
  - name: w1
    cloud: c
    bus: wx
    points:
      - { name: h, field: hum, deadband: 1 }
      - { name: t, field: temp }
  - { name: s1, cloud: c, bus: plc, points: [{ name: x, field: temp }] }
)",
                                         "t.yaml", &fieldlink::test::drivers());
    REQUIRE(r.errors.size() == 1);
    CHECK(fieldlink::config::format_error("t.yaml", r.errors[0])
              .find("devices[1].points[0].field: driver sim has no named fields") != std::string::npos);
    const auto& w1 = r.config.devices[0];
    CHECK(w1.points[0].address == 4);
    CHECK(w1.points[1].address == 0);
    CHECK(w1.points[0].area == fieldlink::config::Area::input);
    CHECK(w1.points[0].type == fieldlink::config::DataType::float64);
}
