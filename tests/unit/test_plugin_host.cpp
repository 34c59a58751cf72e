#include <doctest/doctest.h>

#include "core/plugin_host.hpp"

using namespace fieldlink::core;

extern "C" const fl_driver_v1* fl_sim_driver_table(void);

TEST_CASE("plugins load from the plugin directory with ABI version 1") {
    PluginRegistry reg;
    std::vector<std::string> errors;
    reg.load_dir(TEST_PLUGIN_DIR, errors);
    CHECK(errors.empty());
    REQUIRE(reg.find("modbus-tcp") != nullptr);
    CHECK(reg.find("modbus-rtu") == reg.find("modbus-rtu-over-tcp"));
    REQUIRE(reg.find("sim") != nullptr);
    CHECK(reg.find("sim")->abi_version == FL_DRIVER_ABI_V1);
    CHECK(reg.find("nope") == nullptr);
}

TEST_CASE("a plugin built for an unknown ABI version is refused") {
    PluginRegistry reg;
    std::string err;
    CHECK_FALSE(reg.load_file(TEST_FUTURE_PLUGIN, &err));
    CHECK(err == std::string("plugin ") + TEST_FUTURE_PLUGIN +
                     ": refused: it supports none of the driver ABI versions this host speaks (1)");
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
    fl_read_v1 r{};
    r.struct_size = sizeof r;
    r.unit = 2;
    r.area = FL_AREA_HOLDING;
    r.address = 10;
    r.count = 3;
    r.registers = regs;
    fl_error_v1 e{};
    REQUIRE(drv->read(&r, &e) == FL_OK);
    CHECK(regs[0] == 210);
    CHECK(regs[2] == 212);
    std::uint16_t w = 4242;
    fl_write_v1 wr{};
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
