// One worker thread per bus: it alone owns the bus's driver instance, polls the bus's devices
// strictly one request at a time, decodes the responses and hands SampleBatches to the sink.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "bus/plan.hpp"
#include "bus/plugin_host.hpp"
#include "config/config.hpp"
#include "core/backoff.hpp"
#include "core/figures.hpp"
#include "core/value.hpp"
#include "core/write_job.hpp"
#include "mapping/report.hpp"
#include "mapping/window.hpp"

namespace spdlog {
class logger;
}

namespace fieldlink::bus {

struct DeviceCounters {
    std::atomic<std::uint64_t> polls{0};
    std::atomic<std::uint64_t> ok{0};
    std::atomic<std::uint64_t> timeouts{0};
    std::atomic<std::uint64_t> crc_errors{0};
    std::atomic<std::uint64_t> exceptions{0};
    std::atomic<std::uint64_t> link_errors{0};
    std::atomic<std::uint64_t> protocol_errors{0};
    std::atomic<std::uint64_t> skipped{0};  // cycles dropped because the north queue was full
    std::atomic<std::uint64_t> requests{0};
    std::atomic<std::uint64_t> writes{0};        // writes from the cloud confirmed by read-back
    std::atomic<std::uint64_t> write_errors{0};  // ... that failed on the bus or read back otherwise
    std::atomic<int> state{0};                   // BusWorker::State, for the status page
};

namespace figures {
using D = DeviceCounters;
using Row = core::Figure<DeviceCounters, std::atomic<std::uint64_t>>;
constexpr auto kCounter = core::MetricType::counter;
// A device's figures: /api/runtime's keys, the fieldlink_device_* families of /metrics, the
// worker's stop line.
inline constexpr std::array<Row, 10> kDevice = {{
    {&D::polls, "polls", "fieldlink_device_polls_total", "", kCounter, "Poll cycles of the device.", "polls"},
    {&D::ok, "ok", "", "", kCounter, "", "ok"},
    {&D::timeouts, "timeouts", "fieldlink_device_timeouts_total", "", kCounter,
     "Requests the unit did not answer in time.", "timeouts"},
    {&D::crc_errors, "", "fieldlink_device_crc_errors_total", "", kCounter, "Answers with a wrong checksum.",
     "CRC errors"},
    {&D::exceptions, "", "fieldlink_device_exceptions_total", "", kCounter, "Modbus exception answers.", "exceptions"},
    {&D::protocol_errors, "", "fieldlink_device_malformed_total", "", kCounter,
     "Answers that did not match the request (unit, function, length).", "malformed"},
    {&D::link_errors, "", "fieldlink_device_link_errors_total", "", kCounter,
     "Requests that failed on the link (connection lost, serial port error).", "link errors"},
    {&D::skipped, "", "fieldlink_device_skipped_total", "", kCounter,
     "Cycles dropped because the hand-off to the north side was full.", "skipped"},
    {&D::writes, "writes_ok", "fieldlink_device_writes_total", "result=\"ok\"", kCounter,
     "Writes from the platform on the bus, by result (ok: confirmed by read-back).", ""},
    {&D::write_errors, "writes_failed", "fieldlink_device_writes_total", "result=\"failed\"", kCounter, "", ""},
}};
}  // namespace figures

// The words for a DeviceCounters::state ("ok", "no response (timeout)", ...).
const char* device_state_name(int state);

// Takes the batches of one polling round from the front of the vector, as many as it can (the
// hand-off queue is bounded); what is left was not taken and is counted as skipped.
using SampleSink = std::function<void(std::vector<core::SampleBatch>&)>;

class BusWorker {
  public:
    BusWorker(const config::Config& cfg, std::size_t bus_index, std::unique_ptr<DriverInstance> driver,
              SampleSink sink);
    ~BusWorker();
    BusWorker(const BusWorker&) = delete;
    BusWorker& operator=(const BusWorker&) = delete;
    // Steady-clock milliseconds of the worker's last sign of progress: it beats at least once a
    // second while idle, and around every driver call; a worker stuck in its driver stops beating.
    // Shared, so a watchdog may keep reading it after the worker is gone.
    using Heartbeat = std::shared_ptr<const std::atomic<std::int64_t>>;
    Heartbeat heartbeat() const { return beat_; }
    const std::string& bus_name() const;

    void start();
    void stop();  // wakes the thread, interrupts blocking I/O, joins
    // A reload: pause() returns once the thread waits between two requests (true), or false
    // when it did not within `wait` (stuck in its driver: replace the worker). While paused,
    // rebase() moves it to `next` (aligned, the same bus settings): unchanged devices keep their
    // counters, state and schedule, changed and new ones start afresh, writes queued for changed
    // or removed devices are refused. resume() lets it go on; the link stays open throughout.
    bool pause(std::chrono::milliseconds wait);
    void rebase(const config::Config& next, std::size_t bus_index);
    void resume();
    // Thread-safe: queues a write from the cloud for one of this bus's devices. It goes ahead of
    // the polls still due (after the request in progress), then job->done is called on this
    // worker's thread. A job the north side gave up on (expired) is never written.
    void submit(core::WriteJobPtr job);
    const DeviceCounters& counters(std::size_t local_index) const { return *devices_[local_index].counters; }
    // The driver's own counters for this bus (late replies, dropped frames); thread-safe.
    std::vector<DriverCounter> driver_counters() const { return driver_->counters(); }
    std::size_t device_count() const { return devices_.size(); }
    std::size_t device_index(std::size_t local_index) const { return devices_[local_index].index; }
    // The line's measured use, thread-safe: time spent in driver requests (requests, replies,
    // silent intervals, timeouts) over the last window of 5 s or more, 0..1, and in all.
    double utilisation() const { return static_cast<double>(utilisation_ppm_.load(std::memory_order_relaxed)) / 1e6; }
    double busy_seconds() const { return static_cast<double>(busy_us_.load(std::memory_order_relaxed)) / 1e6; }

  private:
    enum class State { unknown, ok, timeout, crc, exception, link, protocol };
    struct Device {
        std::size_t index = 0;                                         // into Config::devices
        std::vector<PollGroup> groups;                                 // by poll class (`poll:`)
        std::vector<std::chrono::steady_clock::time_point> group_due;  // periodic groups: next read
        std::vector<bool> pending;                                     // once / on_write: read at the next poll
        std::map<std::uint64_t, std::vector<ReadRequest>> plans;       // by the groups read together (bit mask)
        std::chrono::steady_clock::time_point next_due;
        int failures = 0;
        State state = State::unknown;
        int state_code = 0;
        std::string why_down;  // the last failure that made a poll unanswered (device_down's reason)
        bool refused = false;  // this poll: a request answered with an error (exception, bad field)
        std::unique_ptr<DeviceCounters> counters;
        mapping::ReportFilter filter;   // what of a batch goes north (deadband, triggers)
        mapping::PublishWindow window;  // `publish:`: the properties held until the window ends
        std::chrono::steady_clock::time_point publish_due;
        std::int64_t link_point = -1;  // the device's link state point, or -1
    };

    void run();
    void measure_utilisation();
    // Runs one driver call, adding its duration to the line's busy time.
    template <typename Call>
    fl_status timed(Call call) {
        const auto t0 = std::chrono::steady_clock::now();
        const fl_status st = call();
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
        busy_us_.fetch_add(static_cast<std::uint64_t>(us.count()), std::memory_order_relaxed);
        return st;
    }
    Device make_device(std::size_t index, std::chrono::steady_clock::time_point now) const;
    bool pause_requested();
    void poll(Device& d, std::vector<core::SampleBatch>& round);
    // The groups due at `now` (bit i: groups[i]), the plan that reads them together, and when
    // the device is due next.
    static std::uint64_t due_groups(const Device& d, std::chrono::steady_clock::time_point now);
    const std::vector<ReadRequest>& plan_for(Device& d, std::uint64_t mask) const;
    static std::chrono::steady_clock::time_point next_due_of(const Device& d,
                                                             std::chrono::steady_clock::time_point now);
    static void schedule_done(Device& d, std::uint64_t mask, std::chrono::steady_clock::time_point now);
    void unanswered(Device& d, std::uint64_t mask, core::SampleBatch& batch, std::vector<core::SampleBatch>& round,
                    std::chrono::steady_clock::time_point now);
    void publish_window(Device& d, core::SampleBatch& batch, std::chrono::steady_clock::time_point now);
    void flush_window(Device& d, std::vector<core::SampleBatch>& round);
    void hand_over(std::vector<core::SampleBatch>& round);
    bool read_request(Device& d, const ReadRequest& r, core::SampleBatch& batch);
    void set_state(Device& d, State s, int code, const char* detail);
    void set_link(bool up, const char* detail);
    static void count_error(Device& d, unsigned kind);
    void run_writes(std::vector<core::SampleBatch>& round);
    void execute(core::WriteJob& job, std::vector<core::SampleBatch>& round);
    static std::uint64_t superseded_by(const std::vector<core::WriteJobPtr>& jobs, std::size_t i);
    bool read_back(const fl_write_v2& w, fl_error_v2& err);
    void raw_read(core::WriteJob& job, int unit);
    bool write_point(const config::PointConfig& p, int unit, const core::Value& v, core::WriteJob& job);

    const config::Config* cfg_;  // pointers: rebase() moves the worker to the next configuration
    const config::BusConfig* bus_;
    std::unique_ptr<DriverInstance> driver_;
    SampleSink sink_;
    std::vector<Device> devices_;
    // Devices by next due time (min-heap of (due, index into devices_)).
    std::priority_queue<std::pair<std::chrono::steady_clock::time_point, std::size_t>,
                        std::vector<std::pair<std::chrono::steady_clock::time_point, std::size_t>>, std::greater<>>
        due_;
    core::Backoff backoff_;
    std::shared_ptr<spdlog::logger> log_;
    bool link_down_ = false;  // the bus itself (connection, serial port) is down: logged once per bus
    std::vector<std::uint16_t> regs_;
    std::vector<std::uint8_t> bits_;
    // The poll's data as old as the driver says (fl_read_v2::taken_at_ns; 0: taken now).
    std::int64_t taken_at_ns_ = 0;

    std::mutex mutex_;
    std::condition_variable cv_;
    std::atomic<bool> stop_{false};
    std::atomic<std::uint64_t> busy_us_{0};
    std::atomic<std::uint32_t> utilisation_ppm_{0};
    std::chrono::steady_clock::time_point window_start_{};  // worker thread only
    std::uint64_t window_busy_us_ = 0;
    std::shared_ptr<std::atomic<std::int64_t>> beat_ = std::make_shared<std::atomic<std::int64_t>>(0);
    void beat();
    std::vector<core::WriteJobPtr> writes_;  // guarded by mutex_
    std::atomic<bool> writes_waiting_{false};
    bool pause_ = false;   // guarded by mutex_: a reload asks the thread to wait
    bool paused_ = false;  // guarded by mutex_: ... and it does
    std::thread thread_;
};

}  // namespace fieldlink::bus
