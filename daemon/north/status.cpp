// status.json (for `fieldlink status`) and metrics.prom (Prometheus text format, e.g. for
// node_exporter's textfile collector), rewritten atomically every status period.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>

#include "north/north.hpp"

namespace fieldlink::north {
namespace {

void write_atomically(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".tmp";
    if (FILE* f = std::fopen(tmp.c_str(), "w")) {
        const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
        if (std::fclose(f) == 0 && ok) std::rename(tmp.c_str(), path.c_str());
    }
}

}  // namespace

void North::write_status(TimePoint now) {
    const double dt = std::chrono::duration<double>(now - last_status_).count();
    last_status_ = now;
    const std::vector<store::Outbox::DeviceQueue> none;
    const auto& queues = store_ ? store_->per_device() : none;
    const std::int64_t now_ms = loop_.unix_ms();
    last_samples_sent_.resize(sessions_.size());
    nlohmann::json sessions = nlohmann::json::array();
    std::string prom;
    auto metric = [&prom](const char* name, const std::string& session, double v) {
        fmt::format_to(std::back_inserter(prom), "{}{{session=\"{}\"}} {}\n", name, session, v);
    };
    std::int64_t oldest_all = 0;
    for (std::size_t i = 0; i < sessions_.size(); ++i) {
        const auto& s = *sessions_[i];
        const auto& c = s.counters();
        std::uint64_t queued = 0, dropped = 0;
        for (auto d : s.info().devices) {
            if (d >= queues.size()) continue;
            queued += queues[d].queued;
            dropped += queues[d].dropped;
        }
        const std::int64_t oldest = s.oldest_waiting_ms();
        if (oldest && (!oldest_all || oldest < oldest_all)) oldest_all = oldest;
        const double rate = dt > 0 ? static_cast<double>(c.samples_sent - last_samples_sent_[i]) / dt : 0;
        last_samples_sent_[i] = c.samples_sent;
        const double age_s = oldest ? static_cast<double>(now_ms - oldest) / 1000.0 : 0;
        sessions.push_back({{"name", s.name()}, {"cloud", s.info().cloud->name}, {"connected", s.connected()},
                            {"queued_on_disk", queued}, {"queued_in_memory", s.queued_in_memory()},
                            {"in_flight", s.in_flight()}, {"oldest_queued_age_s", age_s}, {"samples_sent_per_s", rate},
                            {"samples_sent", c.samples_sent}, {"messages_acked", c.messages_acked},
                            {"samples_dropped_budget", dropped}, {"samples_dropped_memory", c.samples_dropped},
                            {"commands", c.commands}, {"malformed", c.malformed}, {"error_replies", c.error_replies},
                            {"connect_failures", c.connect_failures}, {"resolve_failures", c.resolve_failures}});
        metric("fieldlink_session_connected", s.name(), s.connected() ? 1 : 0);
        metric("fieldlink_queued_batches", s.name(), static_cast<double>(queued));
        metric("fieldlink_oldest_queued_age_seconds", s.name(), age_s);
        metric("fieldlink_samples_sent_total", s.name(), static_cast<double>(c.samples_sent));
        metric("fieldlink_samples_dropped_total", s.name(), static_cast<double>(dropped + c.samples_dropped));
        metric("fieldlink_send_rate_samples_per_second", s.name(), rate);
        metric("fieldlink_platform_requests_total", s.name(), static_cast<double>(c.commands));
        metric("fieldlink_malformed_messages_total", s.name(), static_cast<double>(c.malformed));
    }
    nlohmann::json status = {{"time_ms", now_ms},
                             {"sessions_total", sessions_.size()},
                             {"sessions_connected", connected_},
                             {"sessions", sessions}};
    if (store_) {
        const auto st = store_->stats();
        status["store"] = {{"path", store_->path()}, {"queued_batches", st.records}, {"bytes_used", st.bytes_used},
                           {"oldest_queued_age_s", oldest_all ? static_cast<double>(now_ms - oldest_all) / 1000.0 : 0.0},
                           {"appended", st.appended}, {"acked", st.acked}, {"dropped_budget", st.dropped_budget},
                           {"dropped_unconfigured", st.dropped_unknown}, {"dropped_unwritable", st.dropped_full},
                           {"corrupt", st.corrupt}};
        fmt::format_to(std::back_inserter(prom),
                       "fieldlink_store_bytes {}\nfieldlink_store_queued_batches {}\nfieldlink_store_corrupt_total {}\n",
                       st.bytes_used, st.records, st.corrupt);
    }
    fmt::format_to(std::back_inserter(prom), "fieldlink_sessions {}\nfieldlink_sessions_connected {}\n", sessions_.size(),
                   connected_);
    write_atomically(cfg_.gateway.data_dir + "/status.json", status.dump(1));
    write_atomically(cfg_.gateway.data_dir + "/metrics.prom", prom);
}

}  // namespace fieldlink::north
