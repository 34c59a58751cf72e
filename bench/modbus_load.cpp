// The Modbus server's own ceiling: a libmodbus client issuing the same read back to back for a
// fixed time. Prints "requests N seconds S cpu C".
#include <modbus/modbus.h>
#include <sys/resource.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
    if (argc < 6) {
        std::fprintf(stderr, "usage: modbus_load HOST PORT UNIT COUNT SECONDS\n");
        return 2;
    }
    modbus_t* ctx = modbus_new_tcp(argv[1], std::atoi(argv[2]));
    if (!ctx || modbus_connect(ctx) != 0) {
        std::fprintf(stderr, "modbus_load: cannot connect: %s\n", modbus_strerror(errno));
        return 1;
    }
    modbus_set_slave(ctx, std::atoi(argv[3]));
    const int count = std::atoi(argv[4]);
    const double seconds = std::atof(argv[5]);
    uint16_t regs[125];
    long n = 0;
    const auto t0 = std::chrono::steady_clock::now();
    double elapsed = 0;
    while (elapsed < seconds) {
        if (modbus_read_registers(ctx, 0, count, regs) == count) ++n;
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
