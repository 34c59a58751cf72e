// `fieldlink scan`'s parsers: Read Device Identification answers (FC 43/14) over TCP and RTU, cut
// at every length, damaged, from the wrong unit; late answers found in what a line left behind;
// unit id lists; the profile library's `# match:` rules and the matching itself.
#include <doctest/doctest.h>
#include <fieldlink/crc16.hpp>

#include <string>
#include <vector>

#include "cli/scan_frames.hpp"

using namespace fieldlink::cli;
using Status = DeviceIdAnswer::Status;

namespace {

// The PDU of an answer with the basic objects, the layout of the Modbus Application Protocol
// specification's example (V1.1b3, 6.21): conformity 0x01, no more, 3 objects.
std::vector<std::uint8_t> basic_pdu(bool more = false, int next = 0) {
    std::vector<std::uint8_t> p{
        0x2B, 0x0E, 0x01, 0x01, static_cast<std::uint8_t>(more ? 0xFF : 0), static_cast<std::uint8_t>(next), 0x03};
    for (auto [id, text] : std::vector<std::pair<int, std::string>>{
             {0, "Company identification"}, {1, "Product code XX"}, {2, "V2.11"}}) {
        p.push_back(static_cast<std::uint8_t>(id));
        p.push_back(static_cast<std::uint8_t>(text.size()));
        p.insert(p.end(), text.begin(), text.end());
    }
    return p;
}

std::vector<std::uint8_t> rtu(int unit, std::vector<std::uint8_t> pdu) {
    pdu.insert(pdu.begin(), static_cast<std::uint8_t>(unit));
    const auto crc = fieldlink::modbus_crc16(pdu.data(), pdu.size());
    pdu.push_back(static_cast<std::uint8_t>(crc & 0xFF));
    pdu.push_back(static_cast<std::uint8_t>(crc >> 8));
    return pdu;
}

std::vector<std::uint8_t> tcp(int unit, const std::vector<std::uint8_t>& pdu) {
    std::vector<std::uint8_t> a{0x00,
                                0x07,
                                0x00,
                                0x00,
                                static_cast<std::uint8_t>((pdu.size() + 1) >> 8),
                                static_cast<std::uint8_t>(pdu.size() + 1),
                                static_cast<std::uint8_t>(unit)};
    a.insert(a.end(), pdu.begin(), pdu.end());
    return a;
}

void check_cut_short(const std::vector<std::uint8_t>& adu, bool is_rtu) {
    for (std::size_t n = 0; n < adu.size(); ++n)
        CHECK_MESSAGE(parse_device_id(adu.data(), n, is_rtu, 17).status == Status::incomplete, n);
}

// Incomplete at every shorter length, then the three objects.
void check_whole(const std::vector<std::uint8_t>& adu, bool is_rtu) {
    check_cut_short(adu, is_rtu);
    const auto a = parse_device_id(adu.data(), adu.size(), is_rtu, 17);
    REQUIRE(a.status == Status::complete);
    CHECK(a.length == adu.size());
    CHECK(a.conformity == 1);
    CHECK_FALSE(a.more);
    REQUIRE(a.objects.size() == 3);
    CHECK(a.objects[0] == std::make_pair(0, std::string("Company identification")));
    CHECK(a.objects[1].second == "Product code XX");
    CHECK(a.objects[2].second == "V2.11");
}

}  // namespace

TEST_CASE("a device identification answer is read whole over TCP and RTU, and not before") {
    for (bool is_rtu : {false, true}) check_whole(is_rtu ? rtu(17, basic_pdu()) : tcp(17, basic_pdu()), is_rtu);
    CHECK(device_id_request(17, 1, 0) == std::vector<std::uint8_t>{17, 0x2B, 0x0E, 1, 0});
}

TEST_CASE("a device identification answer that is damaged or not ours is refused with what is wrong") {
    auto adu = rtu(17, basic_pdu());
    adu.back() ^= 0x01;
    CHECK(parse_device_id(adu.data(), adu.size(), true, 17).error == "CRC error");
    const auto other = rtu(18, basic_pdu());
    CHECK(parse_device_id(other.data(), other.size(), true, 17).error == "answer from unit 18, expected 17");
    auto pdu = basic_pdu();
    pdu[1] = 0x0D;
    const auto mei = tcp(17, pdu);
    CHECK(parse_device_id(mei.data(), mei.size(), false, 17).error == "MEI type 13, expected 14");
    pdu = basic_pdu();
    pdu[4] = 0x01;
    const auto more = tcp(17, pdu);
    CHECK(parse_device_id(more.data(), more.size(), false, 17).error == "more-follows byte 1, expected 0 or 255");
    auto longer = tcp(17, basic_pdu());
    longer[5] += 1;  // the MBAP length says one byte more than the PDU holds
    CHECK(parse_device_id(longer.data(), longer.size(), false, 17).error ==
          "MBAP length " + std::to_string(longer[5]) + ", the PDU is " + std::to_string(basic_pdu().size()) + " bytes");
    // An object running past the largest PDU.
    std::vector<std::uint8_t> big{0x2B, 0x0E, 0x01, 0x01, 0x00, 0x00, 0x02, 0x00, 200};
    big.resize(big.size() + 200, 'a');
    big.push_back(0x01);
    big.push_back(100);
    const auto huge = rtu(17, big);
    CHECK(parse_device_id(huge.data(), huge.size(), true, 17).error.find("past the largest PDU") != std::string::npos);
}

TEST_CASE("an exception and a stream that continues are told apart") {
    const auto ex = rtu(5, {0xAB, 0x01});
    const auto a = parse_device_id(ex.data(), ex.size(), true, 5);
    CHECK(a.status == Status::exception);
    CHECK(a.exception == 1);
    CHECK(a.length == ex.size());
    const auto cont = tcp(5, basic_pdu(true, 3));
    const auto b = parse_device_id(cont.data(), cont.size(), false, 5);
    CHECK(b.status == Status::complete);
    CHECK(b.more);
    CHECK(b.next_object == 3);
}

TEST_CASE("late answers are found in what a line left behind, noise is not") {
    std::vector<std::uint8_t> bytes{0xFF, 0x00, 0x13};
    const auto answer = rtu(7, {0x03, 0x02, 0x12, 0x34});
    const auto exception = rtu(9, {0x83, 0x02});
    bytes.insert(bytes.end(), answer.begin(), answer.end());
    bytes.insert(bytes.end(), exception.begin(), exception.end());
    CHECK(late_answer_units(bytes) == std::vector<int>{7, 9});
    auto damaged = answer;
    damaged[3] ^= 0x40;
    CHECK(late_answer_units(damaged).empty());
    CHECK(late_answer_units({0x07, 0x03}).empty());
}

TEST_CASE("unit id lists: ranges and single ids in 1..247, each once") {
    std::string err;
    CHECK(parse_unit_list("1-247", err)->size() == 247);
    CHECK(*parse_unit_list(" 20-22, 3,17,3 ", err) == std::vector<int>{3, 17, 20, 21, 22});
    for (const char* bad : {"0-5", "5-3", "248", "abc", "1-", "7x", ""}) {
        CHECK_MESSAGE(!parse_unit_list(bad, err), bad);
        CHECK(!err.empty());
    }
    parse_unit_list("1-300", err);
    CHECK(err == "'1-300' is not a unit id or range in 1..247 (e.g. 1-247 or 3,17,20-30)");
}

TEST_CASE("profile rules: vendor and product, or SunSpec models at a base") {
    std::vector<std::string> errors;
    const auto meter = read_profile_rules("meter",
                                          "# A meter\n# match: vendor=Schneider Electric; product=iEM3\n"
                                          "# match: vendor=Schneider Electric; product=A9MEM3\nname,area,address\n",
                                          errors);
    const auto inverter = read_profile_rules("inverter", "# match: sunspec=101,102,103; base=40000\n", errors);
    CHECK(errors.empty());
    REQUIRE(meter.rules.size() == 2);
    CHECK(inverter.rules.at(0).sunspec_models == std::vector<int>{101, 102, 103});
    const std::vector<Profile> library{meter, inverter};

    FoundUnit u;
    u.vendor = "SCHNEIDER ELECTRIC";
    u.product = "a9mem3155";
    CHECK(match_profile(library, u) == "meter");
    u.product = "PM5560";
    CHECK(match_profile(library, u).empty());
    u.model_name = "iEM3255";  // the regular objects' ModelName counts too
    CHECK(match_profile(library, u) == "meter");

    FoundUnit s;
    s.sunspec_base = 40000;
    s.sunspec_models = {1, 103};
    CHECK(match_profile(library, s) == "inverter");
    s.sunspec_base = 50000;  // the profile's addresses are for 40000
    CHECK(match_profile(library, s).empty());
    s.sunspec_base = 40000;
    s.sunspec_models = {1, 201};  // a meter model, not an inverter
    CHECK(match_profile(library, s).empty());

    read_profile_rules("broken", "x\n# match: colour=red\n# match: sunspec=1,abc\n# match: base=7\n", errors);
    REQUIRE(errors.size() == 3);
    CHECK(errors[0] == "broken:2: 'colour=red': expected vendor=TEXT; product=TEXT or sunspec=ID,ID; base=ADDRESS");
    CHECK(errors[1] == "broken:3: sunspec model 'abc' is not a model id in 1..65534");
    CHECK(errors[2] == "broken:4: a rule needs vendor= (with product=) or sunspec=");
}

TEST_CASE("the draft configuration: a template where a profile matched, a commented device where nothing read") {
    ScanReport r;
    r.rtu = true;
    r.device = "/dev/ttyUSB0";
    r.baud = 19200;
    r.parity = 'E';
    FoundUnit a;
    a.unit = 3;
    a.vendor = "Schneider Electric";
    a.product = "A9MEM3155";
    a.profile = "schneider-iem3000";
    FoundUnit b;
    b.unit = 9;
    b.exception = 2;
    FoundUnit c;
    c.unit = 12;
    r.units = {a, b, c};
    const auto y = scan_yaml(r, "site");
    CHECK(y.find("    driver: modbus-rtu\n    device: \"/dev/ttyUSB0\"\n    baud: 19200\n    parity: even\n") !=
          std::string::npos);
    CHECK(y.find("templates:\n  schneider-iem3000: { points_file: schneider-iem3000.csv }\n") != std::string::npos);
    CHECK(y.find("  - name: unit3  # Schneider Electric A9MEM3155\n    cloud: site\n    bus: line1\n    unit: 3\n"
                 "    template: schneider-iem3000\n") != std::string::npos);
    CHECK(y.find("  # - name: unit9\n") != std::string::npos);
    CHECK(y.find("  - name: unit12\n    cloud: site\n    bus: line1\n    unit: 12\n    points:\n"
                 "      - { name: holding_0, area: holding, address: 0, type: uint16 }\n") != std::string::npos);
    const auto t = scan_table(r);
    CHECK(t.find("3 units found on /dev/ttyUSB0 at 19200 8E1") != std::string::npos);
    CHECK(t.find("(register 0: exception 2)") != std::string::npos);
}
