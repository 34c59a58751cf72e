// A bare libmodbus read loop: a client issuing the same reads back to back for a fixed time
// (units 1..UNITS in turn, COUNT holding registers from address 0), nothing else. Gives the
// Modbus server's ceiling (requests/s) and the CPU a read costs the client alone.
// With INTERVAL_MS, the reads of all units are issued once per interval (a minimal poller on the
// same schedule as the gateway) instead of back to back.
// Prints "requests N seconds S cpu C".
#include <modbus/modbus.h>
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

int main(int argc, char** argv) {
    if (argc < 6) {
        std::fprintf(stderr, "usage: modbus_load HOST PORT UNITS COUNT SECONDS [INTERVAL_MS]\n");
        return 2;
    }
    modbus_t* ctx = modbus_new_tcp(argv[1], std::atoi(argv[2]));
    if (!ctx || modbus_connect(ctx) != 0) {
        std::fprintf(stderr, "modbus_load: cannot connect: %s\n", modbus_strerror(errno));
        return 1;
    }
    const int units = std::max(1, std::atoi(argv[3]));
    const int count = std::atoi(argv[4]);
    const double seconds = std::atof(argv[5]);
    const long interval_ms = argc > 6 ? std::atol(argv[6]) : 0;
    uint16_t regs[125];
    long n = 0;
    const auto t0 = std::chrono::steady_clock::now();
    double elapsed = 0;
    auto next_round = t0;
    while (elapsed < seconds) {
        modbus_set_slave(ctx, static_cast<int>(n % units) + 1);
        if (modbus_read_registers(ctx, 0, count, regs) == count) ++n;
        if (interval_ms > 0 && n % units == 0) {
            next_round += std::chrono::milliseconds(interval_ms);
            std::this_thread::sleep_until(next_round);
        }
        elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    const double cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                       static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    std::printf("requests %ld seconds %.3f cpu %.3f\n", n, elapsed, cpu);
    modbus_close(ctx);
    modbus_free(ctx);
    return 0;
}
