// status.json (for `fieldlink status`) and metrics.prom (Prometheus text format, e.g. for
// node_exporter's textfile collector), rewritten atomically every status period. Both are
// streamed session by session: no document of all sessions is built in memory (10,000 sessions
// would make a transient 20 MB that malloc keeps).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <system_error>
#include <type_traits>
#include <variant>

#include "core/log.hpp"
#include "north/north.hpp"

namespace fieldlink::north {
namespace {

// A file replaced atomically when complete (write to .tmp, then rename). A write that fails (a
// full, failing or read-only disk) throws nothing: the file is left as it was, the .tmp removed
// (it would hold the space the disk lacks), and finish() says why.
class AtomicFile {
  public:
    explicit AtomicFile(std::string path)
        : path_(std::move(path)), tmp_(path_ + ".tmp"), f_(std::fopen(tmp_.c_str(), "w")) {
        if (!f_) error_ = errno;
    }
    ~AtomicFile() { finish(); }
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;
    template <typename... Args>
    void print(fmt::format_string<Args...> f, Args&&... args) {
        if (!f_ || error_) return;
        try {
            fmt::print(f_, f, std::forward<Args>(args)...);
        } catch (const std::system_error& e) {
            error_ = e.code().value() ? e.code().value() : EIO;
        }
    }
    // Closes and renames; "" when the file was replaced, else what went wrong.
    std::string finish() {
        if (f_) {
            if (!error_ && std::ferror(f_)) error_ = errno ? errno : EIO;
            if (std::fclose(f_) != 0 && !error_) error_ = errno ? errno : EIO;
            f_ = nullptr;
            if (!error_ && std::rename(tmp_.c_str(), path_.c_str()) != 0) error_ = errno;
            if (error_) std::remove(tmp_.c_str());
        }
        return error_ ? "cannot write " + path_ + ": " + std::strerror(error_) : std::string();
    }

  private:
    std::string path_, tmp_;
    std::FILE* f_;
    int error_ = 0;
};

std::string quoted(const std::string& s) {
    return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// One point of the devices section: its latest value, "fresh" when it came with the device's
// last batch, else "held", and its age.
nlohmann::json point_json(const std::string& name, const std::optional<core::Value>& value, std::int64_t at,
                          std::int64_t last, std::int64_t now_ms) {
    nlohmann::json pt{{"name", name}};
    if (!value) {
        pt["quality"] = "none";
        return pt;
    }
    std::visit(
        [&pt](const auto& v) {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, double>) {
                // 15 significant digits, as the platforms send it (10.1, not 10.100000000000001)
                pt["value"] =
                    std::isfinite(v) ? nlohmann::json(std::stod(fmt::format("{:.15g}", v))) : nlohmann::json();
            } else {
                pt["value"] = v;
            }
        },
        *value);
    pt["quality"] = at == last ? "fresh" : "held";
    pt["age_s"] = static_cast<double>(now_ms - at) / 1000.0;
    return pt;
}

}  // namespace

void North::write_status(TimePoint now) {
    const double dt = std::chrono::duration<double>(now - last_status_).count();
    last_status_ = now;
    const std::vector<store::Outbox::DeviceQueue> none;
    const auto& queues = store_ ? store_->per_device() : none;
    const std::int64_t now_ms = loop_.unix_ms();
    last_samples_sent_.resize(sessions_.size());
    AtomicFile status(cfg_->gateway.status_path() + "/status.json");
    AtomicFile prom(cfg_->gateway.status_path() + "/metrics.prom");
    status.print(R"({{"time_ms":{},"period_ms":{},"clock_trusted":{},"held_for_clock":{},"sessions_total":{},)"
                 R"("sessions_connected":{},"sessions":[)",
                 now_ms, status_period_.count(), clock_->trusted(), held_.size(), sessions_.size(), connected_);
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
        const std::string name = quoted(s.name());
        status.print(
            "{}\n{{\"name\":{},\"cloud\":{},\"connected\":{},\"queued_on_disk\":{},\"queued_in_memory\":{},"
            "\"in_flight\":{},\"oldest_queued_age_s\":{:.3f},\"samples_sent_per_s\":{:.3f},\"samples_sent\":{},"
            "\"messages_acked\":{},\"samples_dropped_budget\":{},\"samples_dropped_memory\":{},\"commands\":{},"
            "\"malformed\":{},\"error_replies\":{},\"connect_failures\":{},\"resolve_failures\":{},"
            "\"answers_retried\":{},\"answers_missing\":{},\"answers_unknown\":{},\"records_rejected\":{},"
            "\"values_superseded\":{},\"commands_refused\":{},\"writes_ok\":{},\"writes_failed\":{},"
            "\"rejected\":[",
            i ? "," : "", name, quoted(s.info().cloud->name), s.connected(), queued, s.queued_in_memory(),
            s.in_flight(), age_s, rate, c.samples_sent, c.messages_acked, dropped, c.samples_dropped, c.commands,
            c.malformed, c.error_replies, c.connect_failures, c.resolve_failures, c.answers_retried, c.answers_missing,
            c.answers_unknown, c.records_rejected, c.values_superseded, c.commands_refused, c.writes_ok,
            c.writes_failed);
        // What the platform refused for good: records per device and the platform's reason.
        bool first = true;
        for (const auto& [key, n] : s.rejected()) {
            status.print(R"({}{{"device":{},"reason":{},"records":{}}})", first ? "" : ",",
                         quoted(cfg_->devices[key.first].name), quoted(key.second), n);
            first = false;
        }
        status.print("]}}");
        prom.print(
            "fieldlink_session_connected{{session={}}} {}\n"
            "fieldlink_queued_batches{{session={}}} {}\n"
            "fieldlink_oldest_queued_age_seconds{{session={}}} {:.3f}\n"
            "fieldlink_samples_sent_total{{session={}}} {}\n"
            "fieldlink_samples_dropped_total{{session={}}} {}\n"
            "fieldlink_send_rate_samples_per_second{{session={}}} {:.3f}\n"
            "fieldlink_platform_requests_total{{session={}}} {}\n"
            "fieldlink_malformed_messages_total{{session={}}} {}\n"
            "fieldlink_messages_retried_total{{session={}}} {}\n"
            "fieldlink_records_rejected_total{{session={}}} {}\n"
            "fieldlink_values_superseded_total{{session={}}} {}\n"
            "fieldlink_commands_refused_total{{session={}}} {}\n"
            "fieldlink_writes_total{{session={},result=\"ok\"}} {}\n"
            "fieldlink_writes_total{{session={},result=\"failed\"}} {}\n",
            name, s.connected() ? 1 : 0, name, queued, name, age_s, name, c.samples_sent, name,
            dropped + c.samples_dropped, name, rate, name, c.commands, name, c.malformed, name, c.answers_retried, name,
            c.records_rejected, name, c.values_superseded, name, c.commands_refused, name, c.writes_ok, name,
            c.writes_failed);
    }
    status.print("]");
    // Devices with the latest value of each point: "fresh" when it came with the device's last
    // batch, else "held" (unchanged under report by exception, or not read since) with its age.
    status.print(",\n\"devices\":[");
    bool first = true;
    for (std::size_t d = 0; d < latest_.size() && d < cfg_->devices.size(); ++d) {
        const auto& dc = cfg_->devices[d];
        if (dc.retired) continue;
        const auto& l = latest_[d];
        nlohmann::json points = nlohmann::json::array();
        for (std::size_t p = 0; p < dc.points.size() && p < l.values.size(); ++p) {
            points.push_back(point_json(dc.points[p].name, l.values[p], l.at[p], l.time_ms, now_ms));
        }
        const nlohmann::json dev{
            {"name", dc.name}, {"bus", dc.bus},        {"cloud", dc.cloud},          {"unit", dc.unit},
            {"up", l.up},      {"last_ms", l.time_ms}, {"points", std::move(points)}};
        status.print("{}\n{}", first ? "" : ",", dev.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
        first = false;
    }
    status.print("]");
    if (store_) {
        const auto st = store_->stats();
        status.print(
            ",\n\"store\":{{\"path\":{},\"queued_batches\":{},\"bytes_used\":{},\"oldest_queued_age_s\":{:.3f},"
            "\"appended\":{},\"acked\":{},\"journaled\":{},\"folded\":{},\"dropped_budget\":{},"
            "\"dropped_unconfigured\":{},\"dropped_unwritable\":{},\"corrupt\":{},\"writable\":{},\"problem\":{}}}",
            quoted(store_->path()), st.records, st.bytes_used,
            oldest_all ? static_cast<double>(now_ms - oldest_all) / 1000.0 : 0.0, st.appended, st.acked, st.journaled,
            st.folded, st.dropped_budget, st.dropped_unknown, st.dropped_full, st.corrupt, store_->writable(),
            quoted(store_->problem()));
        prom.print(
            "fieldlink_store_bytes {}\nfieldlink_store_queued_batches {}\nfieldlink_store_corrupt_total {}\n"
            "fieldlink_store_dropped_unwritable_total {}\nfieldlink_store_journaled_total {}\n"
            "fieldlink_store_folded_total {}\n",
            st.bytes_used, st.records, st.corrupt, st.dropped_full, st.journaled, st.folded);
    }
    status.print("}}\n");
    prom.print("fieldlink_sessions {}\nfieldlink_sessions_connected {}\n", sessions_.size(), connected_);
    std::string why = status.finish();
    if (why.empty()) why = prom.finish();
    status_written(why);
}

// One line when the status files cannot be written (a full or read-only disk), one when they can
// again; the gateway goes on either way.
void North::status_written(const std::string& why) {
    if (why == status_trouble_) return;
    if (why.empty()) {
        core::logger("north")->info("status files are written again");
    } else if (status_trouble_.empty()) {
        core::logger("north")->error("{}; the status files keep their last content, retried every {} ms", why,
                                     status_period_.count());
    }
    status_trouble_ = why;
    update_disk_problem();
}

}  // namespace fieldlink::north
