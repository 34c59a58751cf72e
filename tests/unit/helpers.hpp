// The unit tests' fixtures: configurations loaded through every stage with the built-in drivers
// and the fake one (fake_driver.hpp), temporary directories, and a bus worker on the fake line.
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include <chrono>
#include <condition_variable>
#include <memory>

#include "bus/bus_worker.hpp"
#include "bus/plugin_host.hpp"
#include "fake_driver.hpp"
#include "load.hpp"

extern "C" const fl_driver_v2* fl_sim_driver_table(void);
extern "C" const fl_driver_v2* fl_modbus_driver_table(void);
extern "C" const fl_driver_v2* fl_serial_driver_table(void);

namespace fieldlink::test {

// The sim, modbus and serial-line drivers, linked statically, and the fake one.
inline const bus::PluginRegistry& drivers() {
    static const bus::PluginRegistry* reg = [] {
        auto* r = new bus::PluginRegistry();
        r->add_static(fl_sim_driver_table());
        r->add_static(fl_modbus_driver_table());
        r->add_static(fl_serial_driver_table());
        r->add_static(fake_driver());
        return r;
    }();
    return *reg;
}

// Loads a configuration that must be valid (every error fails the test).
inline config::Config load_ok(const std::string& text) {
    auto r = load_config_text(text, "t.yaml", &drivers());
    for (const auto& e : r.errors) FAIL(config::format_error("t.yaml", e));
    return std::move(r.config);
}

// A fresh directory under $TMPDIR (or /tmp), removed with its contents when the test program
// exits, so repeated runs leave nothing behind.
inline std::string temp_dir(const char* prefix) {
    struct Dirs {
        std::mutex m;
        std::vector<std::filesystem::path> paths;
        ~Dirs() {
            std::error_code ec;
            for (const auto& p : paths) std::filesystem::remove_all(p, ec);
        }
    };
    static Dirs dirs;
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/" + prefix + "-XXXXXX";
    if (!mkdtemp(tmpl.data())) FAIL("mkdtemp " << tmpl);
    std::lock_guard<std::mutex> lock(dirs.m);
    dirs.paths.emplace_back(tmpl);
    return tmpl;
}

// A configuration on the fake line (its errors fail the test) and a worker on its first bus,
// whose batches are collected; writes run through it and are waited for.
struct WorkerRig {
    config::Config cfg;
    std::unique_ptr<bus::BusWorker> worker;
    std::mutex m;
    std::condition_variable cv;
    std::vector<core::SampleBatch> got;  // every batch handed over, guarded by m
    int finished = 0;                    // writes finished, guarded by m

    explicit WorkerRig(const std::string& text, FakeLine::Timing timing = FakeLine::Timing::serial) {
        reset_fake_line(timing);
        cfg = load_ok(text);
        std::string err;
        auto drv = bus::DriverInstance::create(fake_driver(), cfg.buses[0], &err);
        REQUIRE_MESSAGE(drv, err);
        worker =
            std::make_unique<bus::BusWorker>(cfg, 0, std::move(drv), [this](std::vector<core::SampleBatch>& round) {
                std::lock_guard<std::mutex> lock(m);
                for (auto& b : round) got.push_back(std::move(b));
                round.clear();
            });
    }
    config::Config load(const std::string& text) { return load_ok(text); }
    // Runs a write through the (started) worker and waits for it to finish.
    core::WriteJobPtr run(std::vector<core::PointValue> values,
                          std::chrono::milliseconds deadline = std::chrono::seconds(5)) {
        auto job = std::make_shared<core::WriteJob>();
        job->values = std::move(values);
        job->deadline = std::chrono::steady_clock::now() + deadline;
        job->done = [this](const core::WriteJobPtr&) {
            std::lock_guard<std::mutex> lock(m);
            ++finished;
            cv.notify_all();
        };
        std::unique_lock<std::mutex> lock(m);
        const int before = finished;
        lock.unlock();
        worker->submit(job);
        lock.lock();
        cv.wait_for(lock, std::chrono::seconds(10), [&] { return finished > before; });
        return job;
    }
};

}  // namespace fieldlink::test
