#include "bus_worker.hpp"

#include <fmt/format.h>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <type_traits>
#include <utility>
#include <variant>

#include "config/diff.hpp"
#include "config/writes.hpp"
#include "core/clock.hpp"
#include "core/log.hpp"
#include "mapping/decode.hpp"

namespace fieldlink::bus {

using Clock = std::chrono::steady_clock;

namespace {

const char* exception_name(int code) {
    switch (code) {
        case 1:
            return "illegal function";
        case 2:
            return "illegal data address";
        case 3:
            return "illegal data value";
        case 4:
            return "server device failure";
        case 6:
            return "server device busy";
        case 10:
            return "gateway path unavailable";
        case 11:
            return "gateway target device failed to respond";
        default:
            return "exception";
    }
}

const char* state_name(int s) {
    static const char* names[] = {"unknown",          "ok",        "no response (timeout)", "CRC error",
                                  "Modbus exception", "link down", "malformed response"};
    return s >= 0 && s < 7 ? names[s] : "unknown";
}

}  // namespace

const char* device_state_name(int state) {
    return state_name(state);
}

BusWorker::BusWorker(const config::Config& cfg, std::size_t bus_index, std::unique_ptr<DriverInstance> driver,
                     SampleSink sink)
    : cfg_(&cfg),
      bus_(&cfg.buses[bus_index]),
      driver_(std::move(driver)),
      sink_(std::move(sink)),
      backoff_(std::chrono::milliseconds(1000), bus_->backoff_max),
      log_(core::logger("bus:" + bus_->name)),
      regs_(125),
      bits_(2000) {
    beat();
    const auto now = Clock::now();
    for (std::size_t i = 0; i < cfg.devices.size(); ++i) {
        if (cfg.devices[i].bus_index == bus_index) devices_.push_back(make_device(i, now));
    }
}

BusWorker::Device BusWorker::make_device(std::size_t index, Clock::time_point now) const {
    const auto& dc = cfg_->devices[index];
    Device d;
    d.index = index;
    d.groups = poll_groups(dc);
    d.group_due.assign(d.groups.size(), now);
    d.pending.assign(d.groups.size(), true);  // once and on_write points: read with the first poll
    d.next_due = now;
    d.window = mapping::PublishWindow(dc);
    d.publish_due = now + dc.publish;
    d.counters = std::make_unique<DeviceCounters>();
    d.filter = mapping::ReportFilter(dc);
    for (std::size_t p = 0; p < dc.points.size(); ++p) {
        if (dc.points[p].link) d.link_point = static_cast<std::int64_t>(p);
    }
    return d;
}

bool BusWorker::pause(std::chrono::milliseconds wait) {
    if (!thread_.joinable()) return true;
    std::unique_lock<std::mutex> lock(mutex_);
    pause_ = true;
    cv_.notify_all();
    if (cv_.wait_for(lock, wait, [this] { return paused_; })) return true;
    pause_ = false;  // stuck in its driver: the caller replaces it
    return false;
}

void BusWorker::resume() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        pause_ = false;
    }
    cv_.notify_all();
}

// While paused (or before start): the worker's thread waits, so its devices are this thread's.
void BusWorker::rebase(const config::Config& next, std::size_t bus_index) {
    const auto now = Clock::now();
    const auto* const old_cfg = std::exchange(cfg_, &next);
    bus_ = &next.buses[bus_index];
    // A device of this bus whose settings did not change (the configurations are aligned).
    const auto unchanged = [&](std::size_t i) {
        return i < next.devices.size() && i < old_cfg->devices.size() && next.devices[i].bus_index == bus_index &&
               config::same_device(old_cfg->devices[i], next.devices[i]);
    };
    std::vector<Device> devices;
    std::size_t kept = 0;
    for (std::size_t i = 0; i < next.devices.size(); ++i) {
        if (next.devices[i].bus_index != bus_index) continue;
        auto old = std::find_if(devices_.begin(), devices_.end(), [i](const Device& d) { return d.index == i; });
        if (old != devices_.end() && unchanged(i)) {
            devices.push_back(std::move(*old));
            ++kept;
        } else {
            devices.push_back(make_device(i, now));
        }
    }
    devices_ = std::move(devices);
    due_ = {};
    for (std::size_t i = 0; i < devices_.size(); ++i) due_.emplace(devices_[i].next_due, i);
    // Writes still queued for a device that changed or left: refused, never written with the old
    // meaning of its points.
    std::vector<core::WriteJobPtr> refused;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        auto keep = std::stable_partition(writes_.begin(), writes_.end(),
                                          [&](const core::WriteJobPtr& j) { return unchanged(j->device); });
        refused.assign(std::make_move_iterator(keep), std::make_move_iterator(writes_.end()));
        writes_.erase(keep, writes_.end());
    }
    for (auto& job : refused) core::refuse(job, "the device's configuration was reloaded while the write waited");
    log_->info("reload: {} of {} device(s) kept with their state and schedule", kept, devices_.size());
}

BusWorker::~BusWorker() {
    stop();
}

void BusWorker::start() {
    thread_ = std::thread([this] {
        const std::string name = ("fl-bus:" + bus_->name).substr(0, 15);  // the kernel keeps 15 characters
        pthread_setname_np(pthread_self(), name.c_str());
        run();
    });
}

void BusWorker::submit(core::WriteJobPtr job) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        writes_.push_back(std::move(job));
        writes_waiting_.store(true);
    }
    cv_.notify_all();
}

void BusWorker::stop() {
    if (!thread_.joinable()) return;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_.store(true);
    }
    cv_.notify_all();
    driver_->interrupt();
    thread_.join();
    for (const auto& d : devices_) {
        log_->info("device {}: {}", cfg_->devices[d.index].name, core::figure_words(figures::kDevice, *d.counters));
    }
    // "bus line1: 3 late replies, 0 mismatched replies, 21 discarded bytes"
    std::string line;
    for (const auto& c : driver_->counters()) {
        std::string words = c.name;
        std::replace(words.begin(), words.end(), '_', ' ');
        line += (line.empty() ? "" : ", ") + std::to_string(c.value) + " " + words;
    }
    if (!line.empty()) log_->info("bus {}: {}", bus_->name, line);
}

// Every device due is polled in one round, and the round's batches are handed to the north side
// together: one wake-up and one store transaction for many devices instead of one each. A long
// round (a slow serial line) hands over what it has every 50 ms.
void BusWorker::run() {
    log_->info("polling {} device(s) with driver {}", devices_.size(), bus_->driver);
    for (std::size_t i = 0; i < devices_.size(); ++i) due_.emplace(devices_[i].next_due, i);
    std::vector<core::SampleBatch> round;
    const auto woken = [this] { return stop_.load() || writes_waiting_.load() || pause_; };
    while (!stop_.load()) {
        beat();
        {
            // At most a second at a time, so an idle worker still shows it is alive.
            std::unique_lock<std::mutex> lock(mutex_);
            if (pause_) {  // a reload: wait between two rounds until it is done (rebase)
                paused_ = true;
                cv_.notify_all();
                cv_.wait(lock, [this] { return !pause_ || stop_.load(); });
                paused_ = false;
            }
            auto until = Clock::now() + std::chrono::seconds(1);
            if (!due_.empty()) until = std::min(until, due_.top().first);
            cv_.wait_until(lock, until, woken);
        }
        beat();
        if (stop_.load()) break;
        run_writes(round);
        const auto start = Clock::now();
        auto handed = start;
        while (!due_.empty() && due_.top().first <= start && !stop_.load() && !pause_requested()) {
            run_writes(round);  // writes go ahead of the polls still due
            const auto [when, at] = due_.top();
            due_.pop();
            Device& d = devices_[at];
            if (when != d.next_due) continue;  // rescheduled since (a write made it due sooner)
            poll(d, round);
            due_.emplace(d.next_due, static_cast<std::size_t>(&d - devices_.data()));
            if (!round.empty() && Clock::now() - handed >= std::chrono::milliseconds(50)) {
                hand_over(round);
                handed = Clock::now();
            }
        }
        hand_over(round);
        measure_utilisation();
    }
    // What publish windows still hold goes north (the north side stops after the workers).
    for (auto& d : devices_) flush_window(d, round);
    hand_over(round);
}

void BusWorker::measure_utilisation() {
    const auto now = Clock::now();
    const auto busy = busy_us_.load(std::memory_order_relaxed);
    if (window_start_ == Clock::time_point{}) {
        window_start_ = now;
        window_busy_us_ = busy;
        return;
    }
    const auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(now - window_start_).count();
    if (elapsed < 5'000'000) return;  // over 5 s at least, so one long request does not read as 100 %
    const auto used = busy - window_busy_us_;
    utilisation_ppm_.store(static_cast<std::uint32_t>(std::min<std::uint64_t>(used * 1'000'000 / elapsed, 1'000'000)),
                           std::memory_order_relaxed);
    window_start_ = now;
    window_busy_us_ = busy;
}

bool BusWorker::pause_requested() {
    std::lock_guard<std::mutex> lock(mutex_);
    return pause_;
}

void BusWorker::beat() {
    beat_->store(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count());
}

const std::string& BusWorker::bus_name() const {
    return bus_->name;
}

void BusWorker::hand_over(std::vector<core::SampleBatch>& round) {
    if (round.empty()) return;
    sink_(round);
    for (const auto& b : round) {  // not taken: the hand-off queue is full
        for (auto& d : devices_) {
            if (d.index != b.device_index) continue;
            ++d.counters->skipped;
            // An event, attribute or value reported by exception not handed over is reported
            // again by the next poll.
            for (const auto& pv : b.values) d.filter.forget(pv.point_index);
        }
    }
    round.clear();
}

namespace {

// A device_down / device_up batch: no values, never stored.
core::SampleBatch presence(core::SampleBatch::Kind kind, const core::SampleBatch& poll) {
    core::SampleBatch b;
    b.kind = kind;
    b.device_index = poll.device_index;
    b.timestamp_ms = poll.timestamp_ms;
    b.boot_ms = poll.boot_ms;
    return b;
}

}  // namespace

void BusWorker::count_error(Device& d, unsigned kind) {
    auto& c = *d.counters;
    switch (kind) {
        case FL_ERRK_TIMEOUT:
            ++c.timeouts;
            break;
        case FL_ERRK_CRC:
            ++c.crc_errors;
            break;
        case FL_ERRK_EXCEPTION:
            ++c.exceptions;
            break;
        case FL_ERRK_PROTOCOL:
            ++c.protocol_errors;
            break;
        default:
            ++c.link_errors;
            break;
    }
}

// The link is the bus's, not a device's: one line when it goes down and one when it is back,
// however many devices wait behind it.
void BusWorker::set_link(bool up, const char* detail) {
    if (up == !link_down_) return;
    link_down_ = !up;
    if (up) {
        log_->info("bus {}: link up again", bus_->name);
    } else {
        log_->warn("bus {}: link down: {}; its {} device(s) are retried with backoff (at most {}ms apart)", bus_->name,
                   detail, devices_.size(), bus_->backoff_max.count());
    }
}

void BusWorker::set_state(Device& d, State s, int code, const char* detail) {
    if (s == d.state && code == d.state_code) return;  // log once per state change, not per poll
    const auto& dc = cfg_->devices[d.index];
    if (s == State::ok) {
        if (d.state != State::unknown && d.state != State::link)
            log_->info("device {} (unit {}): responding again", dc.name, dc.unit);
    } else if (s != State::link) {
        log_->warn("device {} (unit {}): {}: {}", dc.name, dc.unit, state_name(static_cast<int>(s)), detail);
    }
    d.state = s;
    d.state_code = code;
    d.counters->state.store(static_cast<int>(s));
}

// Reads one planned request (with retries unless the device is backed off) and decodes its
// points into `batch`. Returns false when the device did not answer (link-level failure).
bool BusWorker::read_request(Device& d, const ReadRequest& r, core::SampleBatch& batch) {
    const auto& dc = cfg_->devices[d.index];
    fl_read_v2 req{};
    req.struct_size = sizeof req;
    req.unit = static_cast<std::uint8_t>(dc.unit);
    req.area = static_cast<std::uint8_t>(r.area);
    req.address = r.address;
    req.count = r.count;
    req.registers = regs_.data();
    req.bits = bits_.data();
    req.taken_at_ns = &taken_at_ns_;
    const int attempts = d.failures > 0 ? 1 : 1 + bus_->retries;
    fl_error_v2 err{};
    fl_status st = FL_RETRY;
    for (int a = 0; a < attempts && !stop_.load(); ++a) {
        err = fl_error_v2{};
        err.struct_size = sizeof err;
        ++d.counters->requests;
        beat();
        st = timed([&] { return driver_->read(&req, &err); });
        beat();
        if (st != FL_RETRY || stop_.load()) break;  // a read interrupted by stop() is no one's error
        count_error(d, err.kind);
    }
    if (st == FL_RETRY && stop_.load()) return false;  // interrupted by stop(): not a device's fault
    if (st == FL_RETRY) {
        const State s = err.kind == FL_ERRK_TIMEOUT    ? State::timeout
                        : err.kind == FL_ERRK_CRC      ? State::crc
                        : err.kind == FL_ERRK_PROTOCOL ? State::protocol
                                                       : State::link;
        if (s == State::link) set_link(false, err.message);
        set_state(d, s, 0, err.message);
        d.why_down = fmt::format("{}: {}", state_name(static_cast<int>(s)), err.message);
        return false;
    }
    set_link(true, "");
    if (st == FL_ERROR) {
        count_error(d, err.kind);
        std::string detail = std::string(err.message) + " reading " + config::to_string(r.area) + " " +
                             std::to_string(r.address) + ".." + std::to_string(r.address + r.count - 1);
        if (err.kind == FL_ERRK_EXCEPTION && (err.code == 10 || err.code == 11)) {
            // A Modbus gateway's "path unavailable" / "target device failed to respond": the unit
            // behind it does not answer (offline, backed off), not a refusal of these registers.
            set_state(d, State::exception, err.code, detail.c_str());
            d.why_down = fmt::format("Modbus exception {} ({})", err.code, exception_name(err.code));
            return false;
        }
        d.refused = true;
        // A Modbus exception, or a driver's refusal of what it read (a field a frame lacks)
        set_state(d, err.kind == FL_ERRK_PROTOCOL ? State::protocol : State::exception, err.code, detail.c_str());
        return true;  // the device answered; these points are bad this cycle
    }
    std::string derr;
    mapping::Response resp{r.area, r.address, r.count, regs_.data(), bits_.data()};
    if (mapping::decode_points(dc.points, r.points, resp, batch.values, &derr) > 0) {
        log_->debug("device {}: {}", dc.name, derr);
    }
    return true;
}

std::uint64_t BusWorker::due_groups(const Device& d, Clock::time_point now) {
    std::uint64_t mask = 0;
    for (std::size_t i = 0; i < d.groups.size(); ++i) {
        const bool due = d.groups[i].periodic() ? d.group_due[i] <= now : d.pending[i];
        if (due) mask |= std::uint64_t{1} << i;
    }
    return mask;
}

const std::vector<ReadRequest>& BusWorker::plan_for(Device& d, std::uint64_t mask) const {
    auto it = d.plans.find(mask);
    if (it != d.plans.end()) return it->second;
    const auto& dc = cfg_->devices[d.index];
    std::vector<std::uint32_t> points;
    for (std::size_t i = 0; i < d.groups.size(); ++i) {
        if ((mask >> i & 1U) != 0) points.insert(points.end(), d.groups[i].points.begin(), d.groups[i].points.end());
    }
    return d.plans.emplace(mask, plan_reads(dc.points, cost_model_for(*bus_, dc.max_gap), points)).first->second;
}

Clock::time_point BusWorker::next_due_of(const Device& d, Clock::time_point now) {
    auto next = Clock::time_point::max();
    for (std::size_t i = 0; i < d.groups.size(); ++i) {
        next = std::min(next, d.groups[i].periodic() ? d.group_due[i] : d.pending[i] ? now : next);
    }
    return next;
}

// After a poll that answered: each periodic group read is due one interval later (missed
// cycles skipped), and the device when its first group is.
void BusWorker::schedule_done(Device& d, std::uint64_t mask, Clock::time_point now) {
    for (std::size_t i = 0; i < d.groups.size(); ++i) {
        if ((mask >> i & 1U) == 0 || !d.groups[i].periodic()) continue;
        d.group_due[i] += d.groups[i].interval;
        if (d.group_due[i] <= now) d.group_due[i] = now + d.groups[i].interval;  // overrun: keep going
    }
    d.next_due = next_due_of(d, now);
}

// `publish:`: the poll's properties go into the window; when it ends, their aggregates go with
// this poll's other values.
void BusWorker::publish_window(Device& d, core::SampleBatch& batch, Clock::time_point now) {
    const auto& dc = cfg_->devices[d.index];
    if (dc.publish.count() <= 0) return;
    d.window.add(dc, batch);
    if (now < d.publish_due) return;
    d.window.take(dc, batch);
    d.publish_due += dc.publish;
    if (d.publish_due <= now) d.publish_due = now + dc.publish;
}

// What the window holds, as a batch of its own (the device stopped answering, or the worker stops).
void BusWorker::flush_window(Device& d, std::vector<core::SampleBatch>& round) {
    if (d.window.empty()) return;
    const auto& dc = cfg_->devices[d.index];
    core::SampleBatch b;
    b.device_index = static_cast<std::uint32_t>(d.index);
    d.window.take(dc, b);
    d.filter.apply(dc, b, Clock::now());
    if (!b.values.empty()) round.push_back(std::move(b));
}

// A poll the device did not answer: the link event and device_down once, then backoff.
void BusWorker::unanswered(Device& d, std::uint64_t mask, core::SampleBatch& batch,
                           std::vector<core::SampleBatch>& round, Clock::time_point now) {
    const auto& dc = cfg_->devices[d.index];
    ++d.failures;
    for (std::size_t i = 0; i < d.groups.size(); ++i) {  // once / on_write: read when it answers
        if ((mask >> i & 1U) != 0 && !d.groups[i].periodic()) d.pending[i] = true;
    }
    if (d.failures == 1) {       // the unit stopped answering: the north side logs it out
        flush_window(d, round);  // what the window holds was read before: it goes now
        round.push_back(presence(core::SampleBatch::Kind::device_down, batch));
        round.back().reason = d.why_down;
    }
    if (d.link_point >= 0) {  // the link event, when the device has one
        batch.values.clear();
        batch.values.push_back({static_cast<std::uint32_t>(d.link_point), core::Value(false)});
        d.filter.apply(dc, batch, Clock::now());
        if (!batch.values.empty()) round.push_back(std::move(batch));
    }
    const auto delay = backoff_.next(d.failures);
    if (d.failures == 1 && d.state != State::link) {
        log_->warn(
            "device {} (unit {}): backing off (retry in {}ms, at most {}ms apart) so the other "
            "devices on bus {} keep their rate",
            dc.name, dc.unit, delay.count(), bus_->backoff_max.count(), bus_->name);
    }
    d.next_due = now + delay;
}

void BusWorker::poll(Device& d, std::vector<core::SampleBatch>& round) {
    const auto& dc = cfg_->devices[d.index];
    const auto started = Clock::now();
    const std::uint64_t mask = due_groups(d, started);
    if (mask == 0) {  // woken for nothing due (a schedule moved): when it is
        d.next_due = next_due_of(d, started);
        return;
    }
    // once / on_write read now; a write during this poll asks for another read (pending again)
    for (std::size_t i = 0; i < d.groups.size(); ++i) {
        if ((mask >> i & 1U) != 0 && !d.groups[i].periodic()) d.pending[i] = false;
    }
    ++d.counters->polls;
    core::SampleBatch batch;
    batch.device_index = static_cast<std::uint32_t>(d.index);
    batch.timestamp_ms = core::unix_ms_now();
    batch.boot_ms = core::boot_ms();
    batch.values.reserve(dc.points.size());
    bool answered = true;
    d.refused = false;
    taken_at_ns_ = 0;
    for (const auto& r : plan_for(d, mask)) {
        run_writes(round);  // a device with many requests does not hold a write back
        if (!read_request(d, r, batch)) {
            answered = false;
            break;
        }
        if (stop_.load()) return;
    }
    if (stop_.load()) return;
    const auto now = Clock::now();
    if (answered && taken_at_ns_ > 0) {  // a frame that streamed in: stamped when it arrived
        const auto age = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch() -
                                                                               std::chrono::nanoseconds(taken_at_ns_));
        batch.timestamp_ms = core::unix_ms_now() - std::max<std::int64_t>(age.count(), 0);
        batch.boot_ms = core::boot_ms() - std::max<std::int64_t>(age.count(), 0);
    }
    if (!answered) {
        unanswered(d, mask, batch, round, now);
        return;
    }
    if (!d.refused) set_state(d, State::ok, 0, "");
    if (d.failures > 0) {  // answering again: logged in again before its data
        round.push_back(presence(core::SampleBatch::Kind::device_up, batch));
        d.publish_due = now + dc.publish;  // a window afresh
        // once / on_write: read again (a unit that restarted, or was replaced, may hold others)
        for (std::size_t i = 0; i < d.groups.size(); ++i) d.pending[i] = d.pending[i] || !d.groups[i].periodic();
    }
    d.failures = 0;
    if (d.link_point >= 0) batch.values.push_back({static_cast<std::uint32_t>(d.link_point), core::Value(true)});
    publish_window(d, batch, now);
    d.filter.apply(cfg_->devices[d.index], batch, Clock::now());
    ++d.counters->ok;
    schedule_done(d, mask, now);
    if (!batch.values.empty()) round.push_back(std::move(batch));
}

// ---- writes from the cloud -------------------------------------------------------------------

void BusWorker::run_writes(std::vector<core::SampleBatch>& round) {
    if (!writes_waiting_.load()) return;
    std::vector<core::WriteJobPtr> jobs;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        jobs.swap(writes_);
        writes_waiting_.store(false);
    }
    for (std::size_t i = 0; i < jobs.size(); ++i) {
        auto& job = jobs[i];
        if (stop_.load()) return;  // never answered: the north side's deadline replies
        if (const auto newer = superseded_by(jobs, i)) {
            core::refuse(job,
                         fmt::format("superseded: a newer write of the same points (request {}) came before the "
                                     "bus reached this one; it was not written",
                                     newer),
                         core::WriteJob::Failure::superseded);
            continue;
        }
        if (!job->claim()) continue;  // the north side gave up on it and has answered
        execute(*job, round);
        if (job->done) job->done(job);
    }
}

// A state write (a property, an attribute) queued behind a newer state write of the same device
// that sets at least its points: the newer one's request number, else 0. Actions never coalesce.
std::uint64_t BusWorker::superseded_by(const std::vector<core::WriteJobPtr>& jobs, std::size_t i) {
    const auto& old = *jobs[i];
    if (!old.sets_state) return 0;
    for (std::size_t j = jobs.size(); j-- > i + 1;) {
        const auto& newer = *jobs[j];
        if (!newer.sets_state || newer.device != old.device) continue;
        const bool covers = std::all_of(old.values.begin(), old.values.end(), [&](const core::PointValue& a) {
            return std::any_of(newer.values.begin(), newer.values.end(),
                               [&](const core::PointValue& b) { return b.point_index == a.point_index; });
        });
        if (covers) return newer.id;
    }
    return 0;
}

namespace {

core::WriteJob::Failure failure_of(unsigned kind) {
    switch (kind) {
        case FL_ERRK_TIMEOUT:
            return core::WriteJob::Failure::timeout;
        case FL_ERRK_EXCEPTION:
            return core::WriteJob::Failure::exception;
        default:
            return core::WriteJob::Failure::link;
    }
}

}  // namespace

// One point: FC05/FC15 for a coil, FC06 for one register, FC16 for anything wider (so a 32-bit
// value or a float changes at once); then the point is read back, and the write stands only if
// the device holds exactly the image written.
// Reads back what `w` wrote into regs_ / bits_, with the bus's retries.
bool BusWorker::read_back(const fl_write_v2& w, fl_error_v2& err) {
    fl_read_v2 r{};
    r.struct_size = sizeof r;
    r.unit = w.unit;
    r.area = w.area;
    r.address = w.address;
    r.count = w.count;
    r.registers = regs_.data();
    r.bits = bits_.data();
    fl_status st = FL_RETRY;
    for (int a = 0; a <= bus_->retries && st == FL_RETRY && !stop_.load(); ++a) {
        err = fl_error_v2{};
        err.struct_size = sizeof err;
        st = timed([&] { return driver_->read(&r, &err); });
    }
    return st == FL_OK;
}

// A diagnostics read of a raw range (remote commissioning): once, with the bus's retries; the
// device's points and schedule are not touched.
void BusWorker::raw_read(core::WriteJob& job, int unit) {
    fl_read_v2 r{};
    r.struct_size = sizeof r;
    r.unit = static_cast<std::uint8_t>(unit);
    r.area = job.raw_area;
    r.address = job.raw_address;
    r.count = job.raw_count;
    r.registers = regs_.data();
    r.bits = bits_.data();
    if (r.count > (config::is_bit_area(static_cast<config::Area>(r.area)) ? bits_.size() : regs_.size())) {
        job.failure = core::WriteJob::Failure::refused;
        job.reason = "more than one request can read";
        return;
    }
    fl_error_v2 err{};
    fl_status st = FL_RETRY;
    beat();
    for (int a = 0; a <= bus_->retries && st == FL_RETRY && !stop_.load(); ++a) {
        err = fl_error_v2{};
        err.struct_size = sizeof err;
        st = timed([&] { return driver_->read(&r, &err); });
    }
    beat();
    if (st != FL_OK) {
        job.failure = failure_of(err.kind);
        job.reason = err.kind == FL_ERRK_EXCEPTION
                         ? fmt::format("unit {} answered the read with Modbus exception {} ({})", unit, err.code,
                                       exception_name(err.code))
                         : fmt::format("reading unit {}: {}", unit, err.message);
        return;
    }
    job.ok = true;
    const bool bits = config::is_bit_area(static_cast<config::Area>(r.area));
    for (std::uint16_t i = 0; i < r.count; ++i) job.raw_values.push_back(bits ? bits_[i] : regs_[i]);
}

bool BusWorker::write_point(const config::PointConfig& p, int unit, const core::Value& v, core::WriteJob& job) {
    std::uint16_t regs[125] = {};
    std::uint8_t bit = 0;
    fl_write_v2 w{};
    w.struct_size = sizeof w;
    w.unit = static_cast<std::uint8_t>(unit);
    w.area = static_cast<std::uint8_t>(p.area);
    w.address = p.address;
    w.count = static_cast<std::uint16_t>(p.count());
    if (config::is_bit_area(p.area)) {
        bit = std::holds_alternative<bool>(v) && std::get<bool>(v) ? 1 : 0;
        w.bits = &bit;
    } else {
        std::string why;
        if (!mapping::encode_registers(mapping::codec_of(p), v, regs, &why)) {
            job.failure = core::WriteJob::Failure::refused;
            job.reason = "point " + p.name + ": " + why;
            return false;
        }
        w.registers = regs;
    }
    fl_error_v2 err{};
    err.struct_size = sizeof err;
    beat();
    const fl_status written = timed([&] { return driver_->write(&w, &err); });
    beat();
    if (written != FL_OK) {
        job.failure = failure_of(err.kind);
        job.reason = err.kind == FL_ERRK_EXCEPTION
                         ? fmt::format("unit {} answered the write of {} with Modbus exception {} ({})", unit, p.name,
                                       err.code, exception_name(err.code))
                         : fmt::format("writing {} to unit {}: {}", p.name, unit, err.message);
        return false;
    }
    ++job.written;
    if (!read_back(w, err)) {
        job.failure = failure_of(err.kind);
        job.reason = fmt::format("{} was written to unit {} but could not be read back: {}", p.name, unit, err.message);
        return false;
    }
    const bool same =
        config::is_bit_area(p.area) ? (bits_[0] != 0) == (bit != 0) : std::equal(regs, regs + w.count, regs_.begin());
    std::string derr;
    mapping::Response resp{p.area, p.address, w.count, regs_.data(), bits_.data()};
    const auto index = static_cast<std::uint32_t>(&p - cfg_->devices[job.device].points.data());
    const std::size_t before = job.read_back.size();
    mapping::decode_points(cfg_->devices[job.device].points, {index}, resp, job.read_back, &derr);
    if (!same) {
        job.failure = core::WriteJob::Failure::mismatch;
        job.reason = fmt::format("unit {} holds {} = {} after the write of {}", unit, p.name,
                                 job.read_back.size() > before ? config::describe(job.read_back.back().value) : "?",
                                 config::describe(v));
        return false;
    }
    return true;
}

// Writes every value of the job in order (stopping at the first failure), then hands the values
// read back to the north side at once, like a poll of those points.
void BusWorker::execute(core::WriteJob& job, std::vector<core::SampleBatch>& round) {
    const auto t0 = Clock::now();
    auto* d = &*std::find_if(devices_.begin(), devices_.end(), [&](const Device& x) { return x.index == job.device; });
    const auto& dc = cfg_->devices[job.device];
    const std::int64_t age_ms = core::boot_ms() - job.born_boot_ms;
    if (job.raw_count > 0) {
        if (t0 > job.deadline) {
            job.failure = core::WriteJob::Failure::expired;
            job.reason = "the bus was busy past the platform's deadline; nothing was read";
        } else {
            raw_read(job, dc.unit);
        }
        job.write_us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
        return;
    }
    if (t0 > job.deadline) {
        job.failure = core::WriteJob::Failure::expired;
        job.reason = "the bus was busy past the platform's deadline; nothing was written";
    } else if (job.ttl_ms > 0 && age_ms > job.ttl_ms) {
        job.failure = core::WriteJob::Failure::expired;
        job.reason = fmt::format(
            "expired: the command was {:.1f} s old when the bus reached it (command_ttl {:.1f} s); "
            "nothing was written",
            static_cast<double>(age_ms) / 1000.0, static_cast<double>(job.ttl_ms) / 1000.0);
    } else {
        job.ok = true;
        for (const auto& pv : job.values) {
            if (!write_point(dc.points[pv.point_index], dc.unit, pv.value, job)) {
                job.ok = false;
                break;
            }
        }
    }
    job.write_us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
    ++(job.ok ? d->counters->writes : d->counters->write_errors);
    if (job.written > 0) {  // `poll: on_write` points: read again now
        bool any = false;
        for (std::size_t i = 0; i < d->groups.size(); ++i) {
            if (d->groups[i].kind != config::PollClass::on_write) continue;
            d->pending[i] = true;
            any = true;
        }
        if (any) {
            d->next_due = Clock::now();
            due_.emplace(d->next_due, static_cast<std::size_t>(d - devices_.data()));
        }
    }
    if (!job.read_back.empty()) {
        core::SampleBatch b;
        b.device_index = job.device;
        b.timestamp_ms = core::unix_ms_now();
        b.boot_ms = core::boot_ms();
        b.values = job.read_back;
        for (const auto& pv : b.values) d->filter.forget_sent(pv.point_index);  // news, whatever its deadband
        d->filter.apply(cfg_->devices[d->index], b, Clock::now());
        if (!b.values.empty()) round.push_back(std::move(b));
        hand_over(round);  // the new value is published now, not after the round
    }
}

}  // namespace fieldlink::bus
