// The status files (north/status.hpp). Both are streamed session by session: no document of all
// sessions is built in memory (10,000 sessions would make a transient 20 MB that malloc keeps);
// the sessions' figures are kept as numbers (about 200 bytes a session) so that each metric
// family's lines come together, as the text format requires.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <system_error>
#include <type_traits>
#include <variant>

#include "config/diff.hpp"
#include "core/figures.hpp"
#include "core/log.hpp"
#include "north/status.hpp"

namespace fieldlink::north {

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

namespace {

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

// What status.json and /metrics show of one session: its counters with the store's part filled
// in, and its gauges.
struct SessionRow {
    SessionCounters c;
    bool connected = false;
    std::uint64_t queued = 0;  // batches of its devices in the store
    std::size_t in_memory = 0, in_flight = 0;
    double age_s = 0, rate = 0;
};

// A session's gauges in /metrics (its counters come from figures::kSession).
struct SessionGauge {
    std::string_view metric;
    std::string_view help;
    double (*value)(const SessionRow&);
};
constexpr std::array<SessionGauge, 4> kSessionGauges = {{
    {"fieldlink_session_connected", "1 when the session is connected to its platform.",
     [](const SessionRow& r) { return r.connected ? 1.0 : 0.0; }},
    {"fieldlink_queued_batches", "Batches of the session's devices waiting in the store.",
     [](const SessionRow& r) { return static_cast<double>(r.queued); }},
    {"fieldlink_oldest_queued_age_seconds", "Age of the oldest sample the session still has to deliver.",
     [](const SessionRow& r) { return r.age_s; }},
    {"fieldlink_send_rate_samples_per_second", "Samples sent per second over the last status period.",
     [](const SessionRow& r) { return r.rate; }},
}};

std::uint64_t figure_value(const SessionFigure& f, const SessionCounters& c) {
    return c.*(f.field) + (f.plus ? c.*(f.plus) : 0);
}

// The per-session families, each with its header, the sessions' lines grouped under it.
void print_session_metrics(AtomicFile& prom, const std::vector<std::unique_ptr<Session>>& sessions,
                           const std::vector<SessionRow>& rows) {
    std::vector<std::string> labels;
    labels.reserve(sessions.size());
    for (const auto& s : sessions) labels.push_back("session=" + core::metric_label(s->name()));
    for (const auto& g : kSessionGauges) {
        prom.print("{}", core::metric_header(g.metric, core::MetricType::gauge, g.help));
        for (std::size_t i = 0; i < rows.size(); ++i) {
            const double v = g.value(rows[i]);
            prom.print("{}", v == std::floor(v) && v < 1e15
                                 ? core::metric_line(g.metric, labels[i], static_cast<std::uint64_t>(v))
                                 : core::metric_line(g.metric, labels[i], v));
        }
    }
    core::print_families(
        figures::kSession, labels,
        [&rows](const SessionFigure& f, std::size_t i) { return figure_value(f, rows[i].c); },
        [&prom](const std::string& text) { prom.print("{}", text); });
}

// A stats struct's figures as JSON members: ,"key":n for every row with a status key.
template <typename Stats, typename Table>
void print_status_figures(AtomicFile& out, const Table& table, const Stats& s) {
    for (const auto& f : table) {
        if (!f.status.empty()) out.print(R"(,"{}":{})", f.status, s.*(f.field));
    }
}

SessionRow session_row(const StatusView& v, std::size_t i, const std::vector<store::Outbox::DeviceQueue>& queues,
                       double dt, std::uint64_t& last_sent) {
    const auto& s = *v.sessions[i];
    SessionRow r;
    r.c = s.counters();
    for (auto d : s.info().devices) {
        if (d >= queues.size()) continue;
        r.queued += queues[d].queued;
        r.c.samples_dropped_budget += queues[d].dropped;
    }
    r.connected = s.connected();
    r.in_memory = s.queued_in_memory();
    r.in_flight = s.in_flight();
    const std::int64_t oldest = s.oldest_waiting_ms();
    r.age_s = oldest ? static_cast<double>(v.now_ms - oldest) / 1000.0 : 0;
    r.rate = dt > 0 ? static_cast<double>(r.c.samples_sent - last_sent) / dt : 0;
    last_sent = r.c.samples_sent;
    return r;
}

void print_session_status(AtomicFile& status, const StatusView& v, std::size_t i, const SessionRow& r) {
    const auto& s = *v.sessions[i];
    status.print(
        "{}\n{{\"name\":{},\"cloud\":{},\"connected\":{},\"queued_on_disk\":{},\"queued_in_memory\":{},"
        "\"in_flight\":{},\"oldest_queued_age_s\":{:.3f},\"samples_sent_per_s\":{:.3f}",
        i ? "," : "", quoted(s.name()), quoted(s.info().cloud->name), r.connected, r.queued, r.in_memory, r.in_flight,
        r.age_s, r.rate);
    print_status_figures(status, figures::kSession, r.c);
    // What the platform refused for good: records per device and the platform's reason.
    status.print(",\"rejected\":[");
    bool first = true;
    for (const auto& [key, n] : s.rejected()) {
        status.print(R"({}{{"device":{},"reason":{},"records":{}}})", first ? "" : ",",
                     quoted(v.cfg.devices[key.first].name), quoted(key.second), n);
        first = false;
    }
    status.print("]}}");
}

void print_store(AtomicFile& status, AtomicFile& prom, store::Outbox& store, double oldest_age_s) {
    const auto st = store.stats();
    status.print(",\n\"store\":{{\"path\":{},\"oldest_queued_age_s\":{:.3f},\"writable\":{},\"problem\":{}",
                 quoted(store.path()), oldest_age_s, store.writable(), quoted(store.problem()));
    print_status_figures(status, store::figures::kStore, st);
    status.print("}}");
    core::print_families(
        store::figures::kStore, {""}, [&st](const auto& f, std::size_t) { return st.*(f.field); },
        [&prom](const std::string& text) { prom.print("{}", text); });
}

void print_gauge(AtomicFile& prom, std::string_view name, std::string_view help, std::uint64_t value) {
    prom.print("{}{}", core::metric_header(name, core::MetricType::gauge, help), core::metric_line(name, "", value));
}

}  // namespace

StatusWriter::Latest StatusWriter::none_yet(const config::DeviceConfig& dc) {
    Latest l;
    l.values.resize(dc.points.size());
    l.at.resize(dc.points.size(), 0);
    return l;
}

void StatusWriter::reset(const config::Config& cfg) {
    latest_.clear();
    for (const auto& dc : cfg.devices) latest_.push_back(none_yet(dc));
    last_samples_sent_.clear();
}

void StatusWriter::realign(const config::Config& old_cfg, const config::Config& next) {
    latest_.resize(next.devices.size());
    for (std::size_t d = 0; d < next.devices.size(); ++d) {
        if (d < old_cfg.devices.size() && config::same_device(old_cfg.devices[d], next.devices[d])) continue;
        latest_[d] = none_yet(next.devices[d]);
    }
    last_samples_sent_.clear();
}

void StatusWriter::remember(const core::SampleBatch& b) {
    if (b.device_index >= latest_.size()) return;
    auto& l = latest_[b.device_index];
    if (b.kind != core::SampleBatch::Kind::samples) {
        l.up = b.kind == core::SampleBatch::Kind::device_up;
        return;
    }
    l.up = true;
    l.time_ms = b.timestamp_ms;
    for (const auto& pv : b.values) {
        if (pv.point_index >= l.values.size()) continue;
        l.values[pv.point_index] = pv.value;
        l.at[pv.point_index] = b.timestamp_ms;
    }
}

// Devices with the latest value of each point: "fresh" when it came with the device's last
// batch, else "held" (unchanged under report by exception, or not read since) with its age.
void StatusWriter::print_devices(AtomicFile& status, const config::Config& cfg, std::int64_t now_ms) const {
    status.print(",\n\"devices\":[");
    bool first = true;
    for (std::size_t d = 0; d < latest_.size() && d < cfg.devices.size(); ++d) {
        const auto& dc = cfg.devices[d];
        if (dc.retired) continue;
        const auto& l = latest_[d];
        nlohmann::json points = nlohmann::json::array();
        for (std::size_t p = 0; p < dc.points.size() && p < l.values.size(); ++p) {
            points.push_back(point_json(dc.points[p].name, l.values[p], l.at[p], l.time_ms, now_ms));
            if (!dc.points[p].eng_unit.empty()) points.back()["unit"] = dc.points[p].eng_unit;
        }
        const nlohmann::json dev{
            {"name", dc.name}, {"bus", dc.bus},        {"cloud", dc.cloud},          {"unit", dc.unit},
            {"up", l.up},      {"last_ms", l.time_ms}, {"points", std::move(points)}};
        status.print("{}\n{}", first ? "" : ",", dev.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
        first = false;
    }
    status.print("]");
}

std::string StatusWriter::write(const StatusView& v, TimePoint now) {
    const double dt = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    const std::vector<store::Outbox::DeviceQueue> none;
    const auto& queues = v.store ? v.store->per_device() : none;
    last_samples_sent_.resize(v.sessions.size());
    AtomicFile status(v.cfg.gateway.status_path() + "/status.json");
    AtomicFile prom(v.cfg.gateway.status_path() + "/metrics.prom");
    status.print(R"({{"time_ms":{},"period_ms":{},"clock_trusted":{},"held_for_clock":{},"sessions_total":{},)"
                 R"("sessions_connected":{},"sessions":[)",
                 v.now_ms, v.period.count(), v.clock_trusted, v.held, v.sessions.size(), v.connected);
    std::vector<SessionRow> rows;
    rows.reserve(v.sessions.size());
    double oldest_age_s = 0;
    for (std::size_t i = 0; i < v.sessions.size(); ++i) {
        rows.push_back(session_row(v, i, queues, dt, last_samples_sent_[i]));
        oldest_age_s = std::max(oldest_age_s, rows.back().age_s);
        print_session_status(status, v, i, rows.back());
    }
    status.print("]");
    print_session_metrics(prom, v.sessions, rows);
    print_devices(status, v.cfg, v.now_ms);
    if (v.store) print_store(status, prom, *v.store, oldest_age_s);
    status.print("}}\n");
    print_gauge(prom, "fieldlink_sessions", "Sessions configured.", v.sessions.size());
    print_gauge(prom, "fieldlink_sessions_connected", "Sessions connected to their platform now.", v.connected);
    std::string why = status.finish();
    return why.empty() ? prom.finish() : why;
}

}  // namespace fieldlink::north
