#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus/plugin_host.hpp"
#include "core/low_fds.hpp"

using namespace fieldlink::bus;
using namespace fieldlink::config;

extern "C" const fl_driver_v2* fl_sim_driver_table(void);

TEST_CASE("plugins load from the plugin directory with ABI version 2") {
    PluginRegistry reg;
    std::vector<std::string> errors;
    reg.load_dir(TEST_PLUGIN_DIR, errors);
    CHECK(errors.empty());
    REQUIRE(reg.find("modbus-tcp") != nullptr);
    CHECK(reg.find("modbus-rtu") == reg.find("modbus-rtu-over-tcp"));
    REQUIRE(reg.find("sim") != nullptr);
    CHECK(reg.find("sim")->abi_version == FL_DRIVER_ABI_V2);
    CHECK(reg.find("nope") == nullptr);
}

TEST_CASE("a plugin built for an unknown ABI version is refused") {
    PluginRegistry reg;
    std::string err;
    CHECK_FALSE(reg.load_file(TEST_FUTURE_PLUGIN, &err));
    CHECK(err == std::string("plugin ") + TEST_FUTURE_PLUGIN +
                     ": refused: it supports none of the driver ABI versions this host speaks (2)");
    CHECK_FALSE(reg.load_file(TEST_V1_PLUGIN, &err));
    CHECK(err == std::string("plugin ") + TEST_V1_PLUGIN +
                     ": refused: it supports none of the driver ABI versions this host speaks (2)");
    CHECK_FALSE(reg.load_file("/nonexistent/fl_x.so", &err));
    CHECK(err.rfind("plugin /nonexistent/fl_x.so: cannot load:", 0) == 0);
}

TEST_CASE("the sim driver, linked statically, reads deterministic registers and takes writes") {
    PluginRegistry reg;
    reg.add_static(fl_sim_driver_table());
    BusConfig bus;
    bus.driver = "sim";
    std::string err;
    auto drv = DriverInstance::create(reg.find("sim"), bus, &err);
    REQUIRE(drv);
    std::uint16_t regs[3] = {};
    fl_read_v2 r{};
    r.struct_size = sizeof r;
    r.unit = 2;
    r.area = FL_AREA_HOLDING;
    r.address = 10;
    r.count = 3;
    r.registers = regs;
    fl_error_v2 e{};
    REQUIRE(drv->read(&r, &e) == FL_OK);
    CHECK(regs[0] == 210);
    CHECK(regs[2] == 212);
    std::uint16_t w = 4242;
    fl_write_v2 wr{};
    wr.struct_size = sizeof wr;
    wr.unit = 2;
    wr.area = FL_AREA_HOLDING;
    wr.address = 11;
    wr.count = 1;
    wr.registers = &w;
    REQUIRE(drv->write(&wr, &e) == FL_OK);
    REQUIRE(drv->read(&r, &e) == FL_OK);
    CHECK(regs[0] == 211);  // second read: the pattern moved on by one
    CHECK(regs[1] == 4242);
}

TEST_CASE("a driver table without sizes or entry points is refused") {
    PluginRegistry reg;
    fl_driver_v2 bad = *fl_sim_driver_table();
    bad.bus_model = nullptr;
    std::string err;
    CHECK_FALSE(reg.add_static(&bad, &err));
    CHECK(err == "static driver sim: driver table lacks names, create, read or bus_model");
    fl_driver_v2 small = *fl_sim_driver_table();
    small.struct_size = 16;
    CHECK_FALSE(reg.add_static(&small, &err));
    CHECK(err == "static driver sim: malformed driver table for ABI version 2");
}

TEST_CASE("option and key/value arrays are walked with each element's own size") {
    // A plugin built against a later header, whose option struct grew by 16 bytes.
    struct Grown {
        fl_option_v2 v2;
        std::uint64_t later[2];
    };
    static const Grown opts[] = {
        {{sizeof(Grown), FL_OPT_INT, "alpha", "1", "first", nullptr, 0, 9, nullptr, {}}, {7, 7}},
        {{sizeof(Grown), FL_OPT_STRING, "beta", nullptr, "second", nullptr, 0, 0, nullptr, {}}, {7, 7}},
    };
    fl_driver_v2 t = *fl_sim_driver_table();
    t.options = &opts[0].v2;
    t.option_count = 2;
    PluginRegistry reg;
    REQUIRE(reg.add_static(&t));
    Config cfg;
    BusConfig bus;
    bus.name = "b";
    bus.driver = "sim";
    bus.options = {{"beta", "x", {}}};
    cfg.buses.push_back(bus);
    std::vector<ConfigError> errors;
    reg.validate_buses(cfg, errors);
    REQUIRE(errors.empty());
    REQUIRE(cfg.buses[0].options.size() == 2);
    CHECK(cfg.buses[0].options[1].key == "alpha");  // the default, found past the grown first element
    CHECK(cfg.buses[0].options[1].value == "1");
}

TEST_CASE("the driver states its bus model; units outside its range are refused") {
    PluginRegistry reg;
    std::vector<std::string> load_errors;
    reg.load_dir(TEST_PLUGIN_DIR, load_errors);
    Config cfg;
    BusConfig rtu;
    rtu.name = "line";
    rtu.driver = "modbus-rtu";
    rtu.options = {{"device", "/dev/ttyS0", {}}, {"baud", "19200", {}}};
    BusConfig tcp;
    tcp.name = "plc";
    tcp.driver = "modbus-tcp";
    tcp.options = {{"host", "127.0.0.1", {}}};
    cfg.buses = {rtu, tcp};
    DeviceConfig d;
    d.name = "m";
    d.unit = 0;
    d.bus_index = 0;
    cfg.devices.push_back(d);
    d.bus_index = 1;
    cfg.devices.push_back(d);
    std::vector<ConfigError> errors;
    reg.validate_buses(cfg, errors);
    REQUIRE(errors.size() == 1);  // unit 0 is broadcast on a serial line, fine on TCP
    CHECK(format_error("t.yaml", errors[0]) ==
          "t.yaml: devices[0].unit: unit 0 is out of range for bus line (driver modbus-rtu); expected 1..247");
    const auto& t = cfg.buses[0].timing;
    CHECK(t.shared_line);
    CHECK(t.register_us == doctest::Approx(2 * 11e6 / 19200));
    CHECK(t.request_overhead_us == doctest::Approx(20 * 11e6 / 19200));
    CHECK_FALSE(cfg.buses[1].timing.shared_line);
    CHECK(cfg.buses[1].timing.register_us < 2.0);
}

TEST_CASE("descriptors for select()-based libraries are moved below FD_SETSIZE and given back atomically") {
    auto& low = fieldlink::core::LowFds::instance();
    REQUIRE(low.reserve(4) >= 4);
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    const int high = fcntl(sv[0], F_DUPFD_CLOEXEC, FD_SETSIZE + 100);
    REQUIRE_MESSAGE(high >= FD_SETSIZE, "needs a descriptor limit above FD_SETSIZE + 100");
    close(sv[0]);
    const std::size_t before = low.in_use();
    const int placed = low.place(high);
    REQUIRE(placed >= 0);
    CHECK(placed < FD_SETSIZE);
    CHECK(fcntl(high, F_GETFD) == -1);  // the high number was closed
    CHECK(low.in_use() == before + 1);
    CHECK(write(placed, "x", 1) == 1);  // the same socket under its low number
    char c = 0;
    CHECK(read(sv[1], &c, 1) == 1);
    CHECK(low.place(5) == 5);  // already low: unchanged, no reserved number used
    const int dup = low.release(placed);
    CHECK(dup != placed);
    CHECK(low.in_use() == before);
    struct stat st {};
    REQUIRE(fstat(placed, &st) == 0);  // the reserved number is held again, by its placeholder
    CHECK(S_ISCHR(st.st_mode));
    CHECK(write(dup, "y", 1) == 1);  // the socket lives on in the duplicate until the caller closes it
    close(dup);
    close(sv[1]);
    CHECK(low.release(42) == 42);  // not a reserved number: unchanged
}
