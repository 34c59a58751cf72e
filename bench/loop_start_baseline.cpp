// Baseline for the sessions benchmark: N device sessions the usual way, one libmosquitto client
// with its own credentials and its own mosquitto_loop_start() thread each, publishing 1 message/s
// at QoS 1. Prints "connect_ms X acked Y rss_kb Z threads T cpu C".
#include <mosquitto.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "platforms/onenet.hpp"

namespace {

std::atomic<int> g_connected{0};
std::atomic<long> g_acked{0};

void on_connect(mosquitto*, void*, int rc) {
    if (rc == 0) ++g_connected;
}
void on_publish(mosquitto*, void*, int) {
    ++g_acked;
}

long status_field(const char* key) {
    std::ifstream in("/proc/self/status");
    std::string k;
    long v = 0;
    while (in >> k) {
        if (k == key) {
            in >> v;
            return v;
        }
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 6) {
        std::fprintf(stderr, "usage: loop_start_baseline HOST PORT SESSIONS SECONDS PRODUCT_KEY\n");
        return 2;
    }
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    const int port = std::atoi(argv[2]), n = std::atoi(argv[3]);
    const double seconds = std::atof(argv[4]);
    mosquitto_lib_init();
    std::vector<mosquitto*> clients;
    int failed_threads = 0, failed_connects = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
        const std::string name = "base" + std::to_string(i);
        fieldlink::platforms::TokenRequest t;
        t.res = fieldlink::platforms::onenet_device_res("469948", name);
        t.expiry = 2524579200;
        t.key_base64 = argv[5];
        std::string err;
        const auto token = fieldlink::platforms::onenet_token(t, &err);
        mosquitto* m = mosquitto_new(name.c_str(), true, nullptr);
        mosquitto_username_pw_set(m, "469948", token->c_str());
        mosquitto_connect_callback_set(m, on_connect);
        mosquitto_publish_callback_set(m, on_publish);
        if (mosquitto_connect_async(m, argv[1], port, 60) != MOSQ_ERR_SUCCESS) ++failed_connects;
        if (mosquitto_loop_start(m) != MOSQ_ERR_SUCCESS) ++failed_threads;
        clients.push_back(m);
    }
    while (g_connected.load() < n && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const auto connect_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    const std::string payload = R"({"id":1,"dp":{"v":[{"v":123,"t":1700000000}]}})";
    const auto start = std::chrono::steady_clock::now();
    for (int s = 0; std::chrono::steady_clock::now() - start < std::chrono::duration<double>(seconds); ++s) {
        for (int i = 0; i < n; ++i) {
            const std::string topic = "$sys/469948/base" + std::to_string(i) + "/dp/post/json";
            mosquitto_publish(clients[i], nullptr, topic.c_str(), static_cast<int>(payload.size()), payload.data(), 1,
                              false);
        }
        std::this_thread::sleep_until(start + std::chrono::seconds(s + 1));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    const double cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                       static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    std::printf(
        "connect_ms %lld acked %ld rss_kb %ld threads %ld cpu %.3f connected %d thread_failures %d connect_failures "
        "%d\n",
        static_cast<long long>(connect_ms), g_acked.load(), status_field("VmRSS:"), status_field("Threads:"), cpu,
        g_connected.load(), failed_threads, failed_connects);
    std::fflush(stdout);
    _exit(0);  // skip tearing down N threads one by one
}
