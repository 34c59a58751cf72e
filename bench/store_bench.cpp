// Store figures: append rate (samples/s) and bytes on disk per sample, for sample sets of 1 and
// 10 values, written the way the north loop writes them (one transaction per drained group).
// `store_bench prefill CONFIG N` fills the outbox of CONFIG with N samples for the replay test.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "load.hpp"
#include "store/outbox.hpp"

using namespace fieldlink;

namespace {

config::Config config_for(const std::string& dir, int points) {
    std::string pts;
    for (int i = 0; i < points; ++i)
        pts += (i ? ", " : "") + std::string("{ name: p") + std::to_string(i) +
               ", area: holding, address: " + std::to_string(i) + " }";
    auto r =
        load_config_text("gateway: { data_dir: " + dir +
                             ", store_max_bytes: 8GB }\nclouds: { c: { platform: mqtt, host: h } }\n"
                             "buses: { s: { driver: sim } }\ndevices:\n  - { name: d, cloud: c, bus: s, points: [ " +
                             pts + " ] }\n",
                         "bench.yaml", nullptr);
    return r.config;
}

// Appends `samples` values in sets of `per_batch`, 100 sets per transaction. Returns samples/s.
double fill(store::Outbox& o, const config::Config& cfg, std::size_t samples, std::size_t per_batch) {
    const auto points = cfg.devices[0].points.size();
    std::vector<core::SampleBatch> group(100);
    std::vector<core::SampleBatch*> ptrs;
    for (auto& b : group) ptrs.push_back(&b);
    std::int64_t ts = 1'700'000'000'000;
    std::uint32_t counter = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t done = 0; done < samples;) {
        for (auto& b : group) {
            b.values.clear();
            b.timestamp_ms = ts += 1000;
            for (std::size_t k = 0; k < per_batch; ++k) {
                core::PointValue pv;
                pv.point_index = static_cast<std::uint32_t>(k % points);
                if (k % 2)
                    pv.value = std::uint64_t{counter++ & 0xFFFF};
                else
                    pv.value = 230.0 + (counter++ % 100) / 10.0;
                b.values.push_back(std::move(pv));
            }
        }
        o.append(ptrs);
        done += group.size() * per_batch;
    }
    o.maintain(std::chrono::steady_clock::now());
    return static_cast<double>(samples) / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
    std::string err;
    if (argc == 4 && std::string(argv[1]) == "prefill") {
        auto parsed = load_config_file(argv[2], nullptr);
        auto o = store::Outbox::open(parsed.config, &err);
        if (!o) {
            std::fprintf(stderr, "%s\n", err.c_str());
            return 1;
        }
        const std::size_t n = std::strtoull(argv[3], nullptr, 10);
        const auto per = parsed.config.devices[0].points.size();
        std::printf("prefilled %zu samples at %.0f samples/s\n", n, fill(*o, parsed.config, n, per));
        return 0;
    }
    for (std::size_t per_batch : {1, 10}) {
        char tmpl[] = "/tmp/fl-store-bench-XXXXXX";
        const std::string dir = mkdtemp(tmpl);
        const auto cfg = config_for(dir, static_cast<int>(per_batch));
        auto o = store::Outbox::open(cfg, &err);
        const std::size_t samples = 1'000'000;
        const double rate = fill(*o, cfg, samples, per_batch);
        const auto st = o->stats();
        std::printf(
            "store append: %s samples/s, %.1f bytes on disk per sample (sets of %zu value%s, 1,000,000 samples; "
            "targets: >= 50,000 replayed/s, <= 40 bytes/sample)\n",
            std::to_string(static_cast<long>(rate)).c_str(), static_cast<double>(st.bytes_used) / samples, per_batch,
            per_batch == 1 ? "" : "s");
        o.reset();
        std::system(("rm -rf " + dir).c_str());
    }
    return 0;
}
