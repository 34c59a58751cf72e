// Command-to-reply latency, two ways, for bench/control.py:
//
//   control_latency modbus tcp HOST PORT UNIT N        bare libmodbus: FC16 write of a float32 and
//   control_latency modbus rtu DEVICE BAUD UNIT N      a read-back of it, N times (the baseline)
//   control_latency mqtt PORT DEVICE N                 a command on fl/DEVICE/set through the
//                                                      gateway, until its reply on .../reply
//
// Each prints "p50_us P50 p99_us P99 max_us MAX n N failures F" on one line.
#include <modbus/modbus.h>
#include <mosquitto.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

void report(std::vector<double>& us, int failures) {
    std::sort(us.begin(), us.end());
    const auto at = [&](double q) {
        return us.empty() ? 0.0 : us[static_cast<std::size_t>(q * static_cast<double>(us.size() - 1))];
    };
    std::printf("p50_us %.0f p99_us %.0f max_us %.0f n %zu failures %d\n", at(0.5), at(0.99),
                us.empty() ? 0.0 : us.back(), us.size(), failures);
}

int modbus_bench(int argc, char** argv) {
    if (argc < 7) return 2;
    const std::string kind = argv[2];
    modbus_t* ctx = kind == "tcp" ? modbus_new_tcp(argv[3], std::atoi(argv[4]))
                                  : modbus_new_rtu(argv[3], std::atoi(argv[4]), 'N', 8, 1);
    if (!ctx || modbus_connect(ctx) != 0) {
        std::fprintf(stderr, "connect: %s\n", modbus_strerror(errno));
        return 1;
    }
    modbus_set_slave(ctx, std::atoi(argv[5]));
    modbus_set_response_timeout(ctx, 1, 0);
    const int n = std::atoi(argv[6]);
    std::vector<double> us;
    int failures = 0;
    for (int i = 0; i < n; ++i) {
        float f = static_cast<float>(i) / 4.0f;
        std::uint32_t raw = 0;
        std::memcpy(&raw, &f, sizeof raw);
        const std::uint16_t regs[2] = {static_cast<std::uint16_t>(raw >> 16), static_cast<std::uint16_t>(raw)};
        std::uint16_t back[2] = {};
        const auto t0 = Clock::now();
        const bool ok = modbus_write_registers(ctx, 10, 2, regs) == 2 && modbus_read_registers(ctx, 10, 2, back) == 2 &&
                        back[0] == regs[0] && back[1] == regs[1];
        const auto t1 = Clock::now();
        if (ok) {
            us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
        } else {
            ++failures;
        }
    }
    modbus_close(ctx);
    modbus_free(ctx);
    report(us, failures);
    return 0;
}

struct Waiter {
    std::mutex m;
    std::condition_variable cv;
    int replies = 0;
    bool ok = true;
};

int mqtt_bench(int argc, char** argv) {
    if (argc < 5) return 2;
    const int port = std::atoi(argv[2]);
    const std::string device = argv[3];
    const int n = std::atoi(argv[4]);
    mosquitto_lib_init();
    Waiter w;
    mosquitto* m = mosquitto_new(nullptr, true, &w);
    mosquitto_message_callback_set(m, [](mosquitto*, void* obj, const mosquitto_message* msg) {
        auto* waiter = static_cast<Waiter*>(obj);
        const std::string p(static_cast<const char*>(msg->payload), static_cast<std::size_t>(msg->payloadlen));
        std::lock_guard<std::mutex> lock(waiter->m);
        ++waiter->replies;
        waiter->ok = p.find("\"success\":true") != std::string::npos;
        waiter->cv.notify_all();
    });
    mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);  // the platform's side, as a latency-minded client
    if (mosquitto_connect(m, "127.0.0.1", port, 60) != MOSQ_ERR_SUCCESS) return 1;
    const std::string topic = "fl/" + device + "/set";
    const std::string reply = topic + "/reply";
    mosquitto_subscribe(m, nullptr, reply.c_str(), 0);
    mosquitto_loop_start(m);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the subscription is in place
    std::vector<double> us;
    int failures = 0;
    for (int i = 0; i < n; ++i) {
        const std::string payload = "{\"setpoint\":" + std::to_string(static_cast<double>(i) / 4.0) + "}";
        std::unique_lock<std::mutex> lock(w.m);
        const int before = w.replies;
        const auto t0 = Clock::now();
        mosquitto_publish(m, nullptr, topic.c_str(), static_cast<int>(payload.size()), payload.data(), 0, false);
        const bool got = w.cv.wait_for(lock, std::chrono::seconds(10), [&] { return w.replies > before; });
        const auto t1 = Clock::now();
        if (got && w.ok) {
            us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
        } else {
            ++failures;
        }
    }
    mosquitto_disconnect(m);
    mosquitto_loop_stop(m, false);
    mosquitto_destroy(m);
    mosquitto_lib_cleanup();
    report(us, failures);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc > 1 && std::strcmp(argv[1], "modbus") == 0) return modbus_bench(argc, argv);
    if (argc > 1 && std::strcmp(argv[1], "mqtt") == 0) return mqtt_bench(argc, argv);
    std::fprintf(
        stderr,
        "usage: control_latency modbus tcp HOST PORT UNIT N | modbus rtu DEV BAUD UNIT N | mqtt PORT DEVICE N\n");
    return 2;
}
