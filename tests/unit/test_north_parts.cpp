// The north side's parts on their own (the session's outflow, in_flight, answers, downlink,
// presence, login_pacer; North's watchdog, disk trouble and hand-off): the rules each one keeps,
// without a session or a loop around it.
#include <doctest/doctest.h>

#include <thread>

#include "north/answers.hpp"
#include "north/disk_trouble.hpp"
#include "north/downlink.hpp"
#include "north/handoff.hpp"
#include "north/in_flight.hpp"
#include "north/login_pacer.hpp"
#include "north/outflow.hpp"
#include "north/presence.hpp"
#include "north/watchdog.hpp"

using namespace fieldlink;
using namespace std::chrono_literals;

namespace {

const north::TimePoint t0 = north::TimePoint{} + 1000h;

core::SampleBatch batch(std::int64_t record, std::int64_t ts, std::size_t values = 1) {
    core::SampleBatch b;
    b.record_id = record;
    b.timestamp_ms = ts;
    b.values.resize(values);
    return b;
}

}  // namespace

TEST_CASE(
    "outflow: a full window sends the oldest back to the store, or drops it once said; backlog and live take turns") {
    north::Outflow durable(true);
    for (std::int64_t i = 1; i <= 3; ++i) CHECK(durable.push(batch(i, 100 + i), 2, true).samples_dropped == 0);
    CHECK(durable.in_memory() == 2);  // record 1 is back on disk only
    CHECK(durable.oldest_ms() == 102);

    north::Outflow memory(false);
    memory.push(batch(0, 1, 3), 1, false);
    auto first = memory.push(batch(0, 2, 5), 1, false);
    CHECK(first.samples_dropped == 3);
    CHECK(first.first_drop);
    auto second = memory.push(batch(0, 3), 1, false);
    CHECK(second.samples_dropped == 5);
    CHECK_FALSE(second.first_drop);  // logged once

    // Turns: with both queues holding batches, packets alternate between them.
    north::Outflow turns(false);
    turns.push(batch(10, 10), 100, false);
    turns.push(batch(11, 11), 100, false);
    auto* q = turns.next();
    REQUIRE(q != nullptr);
    CHECK(q->front().record_id == 10);
    q->pop_front();
    q = turns.next();
    REQUIRE(q != nullptr);
    q->pop_front();
    CHECK(turns.next() == nullptr);
    CHECK_FALSE(turns.waiting());
}

TEST_CASE("outflow: records the store dropped are forgotten; a rate of 1/s lets one message go per second") {
    north::Outflow o(false);
    for (std::int64_t i = 1; i <= 4; ++i) o.push(batch(i, i), 10, false);
    o.forget_through(2);
    CHECK(o.in_memory() == 2);
    CHECK(o.oldest_ms() == 3);

    north::TokenBucket rate;
    rate.start(t0);
    CHECK(rate.available(1.0) == 0);  // empty at start: the first message waits one interval
    CHECK(rate.next_token(1.0) > t0 + 999ms);
    CHECK(rate.next_token(1.0) < t0 + 1001ms);
    rate.refill(t0 + 1s, 1.0);
    CHECK(rate.available(1.0) == 1);
    rate.take(1.0);
    CHECK(rate.available(1.0) == 0);
    rate.refill(t0 + 10s, 1.0);
    CHECK(rate.available(1.0) == 1);  // capacity 1: no burst after a quiet spell
    CHECK(rate.available(0) == SIZE_MAX);
    CHECK(rate.next_token(0) == north::TimePoint::max());
}

TEST_CASE("in flight: a packet's records are freed when its last message is finished; a refusal counts once") {
    north::InFlightBook f;
    const auto p = f.add_packet(2, {{0, 7}, {1, 8}}, 1234);
    f.sent(1, p, "");
    f.sent(2, p, "a1");
    CHECK(f.messages() == 2);
    CHECK(f.oldest_ms() == 1234);
    auto m = f.acknowledged(1);
    REQUIRE(m);
    CHECK(m->packet == p);
    CHECK_FALSE(f.acknowledged(1));  // not ours any more
    CHECK(f.finish_message(p).empty());
    CHECK(f.reject(p, "err_code 98") == 2);
    CHECK(f.reject(p, "err_code 98") == 0);
    CHECK(f.rejected().at({0, "err_code 98"}) == 1);
    const auto freed = f.finish_message(p);
    CHECK(freed == std::vector<north::RecordRef>{{0, 7}, {1, 8}});
    CHECK(f.oldest_ms() == 0);
}

TEST_CASE(
    "answers: awaited from PUBACK, overdue after 30 s, retried at once or later; on-connect requests go on reconnect") {
    north::AnswerBook book;
    north::Message data("t/data", "{}", 1, "7");
    auto& w = book.sending(data, 5);
    CHECK(book.data() == 1);
    book.acknowledged("7", 5, t0);
    CHECK(book.next_check() == t0 + north::kAnswerTimeout);
    CHECK(book.overdue(t0 + 29s).empty());
    CHECK(book.overdue(t0 + 30s) == std::vector<std::string>{"7"});
    book.again_now(w, t0 + 30s);
    CHECK(book.retry_ready());
    auto* again = book.next_retry(t0 + 30s);
    REQUIRE(again == &w);
    book.sending(again->message, again->packet);  // sent again: not due until its PUBACK
    CHECK(book.next_retry(t0 + 30s) == nullptr);
    CHECK_FALSE(book.retry_ready());

    book.again_later(w, t0);  // a transient refusal after the first attempt: 1 s
    CHECK(book.next_check() <= t0 + 1s);
    CHECK(book.finish("7") == 5);
    CHECK(book.answered_lately("7"));
    CHECK(book.data() == 0);

    north::Message gate("t/topo", "{}", 0, "g1");
    gate.gate = true;
    gate.otherwise.emplace_back("t/fallback", "{}");
    book.sending(gate, 0);
    CHECK(book.gates() == 1);
    auto& delivered = book.sending(north::Message("t/d", "{}", 1, "8"), 6);
    book.delivered(delivered, t0);
    book.reconnected(t0 + 1s);
    CHECK(book.gates() == 0);  // on-connect requests are made anew
    CHECK(book.find("g1") == nullptr);
    CHECK(book.retry_ready());  // a delivered message may have lost its answer
    CHECK(book.forget("nothing").topic.empty());
}

TEST_CASE("downlink: a write not started by 60% of the deadline is refused, one started is answered as unconfirmed") {
    north::Downlink d;
    north::Command c;
    c.device = 3;
    c.id = "w1";
    auto job = d.start(north::Command(c), t0, 10s, 42);
    CHECK(job->session == 42);
    CHECK(d.pending() == 1);
    CHECK(d.next_check() == t0 + 6s);
    CHECK(d.expired(t0 + 5s).empty());
    auto refused = d.expired(t0 + 6s);
    REQUIRE(refused.size() == 1);
    CHECK(refused[0].command.id == "w1");
    CHECK(refused[0].result.reason.find("nothing was written") != std::string::npos);
    CHECK(job->state.load() == core::WriteJob::expired);
    CHECK_FALSE(d.done(*job));  // answered by its deadline already

    auto started = d.start(north::Command(c), t0, 10s, 42);
    REQUIRE(started->claim());  // the bus has it
    CHECK(d.next_check() == t0 + 10s - 300ms);
    CHECK(d.expired(t0 + 9s).empty());
    auto unconfirmed = d.expired(t0 + 9700ms);
    REQUIRE(unconfirmed.size() == 1);
    CHECK(unconfirmed[0].result.reason.find("may have been applied") != std::string::npos);

    auto ok = d.start(north::Command(c), t0, 10s, 42);
    REQUIRE(ok->claim());
    ok->ok = true;
    auto answer = d.done(*ok);
    REQUIRE(answer);
    CHECK(answer->result.ok);
    CHECK(d.pending() == 0);
}

TEST_CASE("presence and login pacing") {
    north::PresenceBook p;
    CHECK_FALSE(p.change(1, false, false));  // offline while not connected: nothing to tell
    p.new_connection();
    CHECK(p.hold_login(1));          // its login waits for the unit
    CHECK(p.change(1, true, true));  // answers again: logged in now
    p.logged_in(1);
    CHECK(p.change(1, false, true));        // logged out
    CHECK_FALSE(p.change(1, false, true));  // said once

    north::LoginPacer pacer(std::chrono::milliseconds(2000));
    const north::LoginLimit limit{3, std::chrono::seconds(5)};
    pacer.restore({1'000'000 - 4000, 1'000'000 - 6000}, limit, t0, 1'000'000);  // one is too old to count
    CHECK(pacer.allowed_at(t0, limit) == t0);
    pacer.attempt(t0);
    pacer.attempt(t0 + 100ms);
    CHECK(pacer.allowed_at(t0 + 500ms, limit) == t0 - 4s + 5s + 50ms);  // once the oldest leaves the window
    CHECK(pacer.allowed_at(t0 + 1s, limit) == t0 + 1s);                 // it has
    CHECK(pacer.failed() <= 2000ms);
    CHECK(pacer.failures() == 1);
    pacer.succeeded();
    CHECK(pacer.failures() == 0);
    const std::vector<std::string> addresses{"a", "b"};
    CHECK(pacer.address(addresses) == "a");
    pacer.next_address();
    CHECK(pacer.address(addresses) == "b");
}

TEST_CASE("watchdog: pings only while nothing is stuck, and only when systemd asked; ticks at most every second") {
    north::Watchdog none;
    CHECK(none.tick_period() == 1000ms);
    CHECK(none.notification("STATUS=x") == "STATUS=x");

    std::string stuck;
    north::Watchdog w;
    w.set(10s, [&stuck] { return stuck; });
    CHECK(w.tick_period() == 1000ms);
    CHECK(w.notification("STATUS=x") == "STATUS=x\nWATCHDOG=1");
    stuck = "bus b: no progress for 30 s";
    CHECK(w.notification("STATUS=x") == "STATUS=x; bus b: no progress for 30 s");
    stuck.clear();
    CHECK(w.notification("STATUS=x") == "STATUS=x\nWATCHDOG=1");

    w.set(400ms, {});
    CHECK(w.tick_period() == 200ms);
    w.set(60ms, {});
    CHECK(w.tick_period() == 50ms);
    w.ask([] { return std::string("reloaded bus stuck"); });
    CHECK(w.notification("S") == "S; reloaded bus stuck");
}

TEST_CASE("disk trouble: one line of what the disk refuses; an unopened store outranks its writes") {
    north::DiskTrouble d;
    d.update("");
    CHECK(d.text().empty());
    d.update("database or disk is full");
    CHECK(d.text() == "the store cannot write: database or disk is full");
    CHECK(d.status_files("cannot write /var/lib/fieldlink/status.json: No space left on device"));
    CHECK_FALSE(d.status_files("cannot write /var/lib/fieldlink/status.json: No space left on device"));
    d.update("database or disk is full");
    CHECK(d.text() ==
          "the store cannot write: database or disk is full; cannot write /var/lib/fieldlink/status.json: No space "
          "left on device");
    d.store_unopened("cannot open /data/outbox.db: read-only file system");
    CHECK(d.status_files(""));
    d.update("");
    CHECK(d.text() == "the store could not be opened: cannot open /data/outbox.db: read-only file system");
}

TEST_CASE("hand-off: a task posted from another thread runs once, on the thread that runs it") {
    north::Handoff h;
    CHECK_FALSE(h.pending());
    h.run();  // nothing posted: nothing happens
    int runs = 0;
    std::thread poster([&] { h.post([&runs] { ++runs; }); });
    poster.join();
    CHECK(h.pending());
    h.run();
    CHECK_FALSE(h.pending());
    h.run();
    CHECK(runs == 1);
}
