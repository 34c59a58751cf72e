// The real transport (libmosquitto) against a scripted MQTT peer on loopback: what happens to a
// QoS 1 message published into a connection the broker has just reset.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "north/mosquitto_transport.hpp"

namespace north = fieldlink::north;

namespace {

struct Events final : north::TransportEvents {
    std::vector<int> connacks, disconnects, pubacks;
    void on_connack(int rc) override { connacks.push_back(rc); }
    void on_disconnect(int rc) override { disconnects.push_back(rc); }
    void on_puback(int mid) override { pubacks.push_back(mid); }
    void on_message(const std::string&, const std::string&) override {}
};

bool wait_readable(int fd, int ms) {
    pollfd p{fd, POLLIN, 0};
    return poll(&p, 1, ms) > 0;
}

// One MQTT control packet from `fd` (fixed header, remaining length, body); empty on EOF or
// when nothing comes within 2 s.
std::string read_packet(int fd) {
    std::string out;
    auto byte = [&](unsigned char* c) { return wait_readable(fd, 2000) && read(fd, c, 1) == 1; };
    unsigned char c = 0;
    if (!byte(&c)) return {};
    out += static_cast<char>(c);
    std::size_t length = 0;
    for (int shift = 0; shift < 28; shift += 7) {
        if (!byte(&c)) return {};
        out += static_cast<char>(c);
        length |= static_cast<std::size_t>(c & 0x7f) << shift;
        if (!(c & 0x80)) break;
    }
    for (std::size_t i = 0; i < length; ++i) {
        if (!byte(&c)) return {};
        out += static_cast<char>(c);
    }
    return out;
}

void send_bytes(int fd, const std::string& b) {
    REQUIRE(write(fd, b.data(), b.size()) == static_cast<ssize_t>(b.size()));
}

// Drives the client until `done` or 2 s pass, as the north loop would.
template <typename Done>
void drive(north::Transport& t, Done done) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (!done() && std::chrono::steady_clock::now() < until) {
        const int fd = t.socket();
        if (fd < 0) break;
        pollfd p{fd, static_cast<short>(POLLIN | (t.want_write() ? POLLOUT : 0)), 0};
        if (poll(&p, 1, 50) > 0) {
            if (p.revents & POLLOUT) t.on_writable();
            if (p.revents & (POLLIN | POLLERR | POLLHUP)) t.on_readable();
        }
        t.on_timer();
    }
}

int accept_connect(int listener, north::Transport& t, std::string* connect_packet = nullptr) {
    int peer = -1;
    drive(t, [&] {
        if (peer < 0 && wait_readable(listener, 10)) peer = accept(listener, nullptr, nullptr);
        return peer >= 0;
    });
    REQUIRE(peer >= 0);
    std::string connect;
    drive(t, [&] { return wait_readable(peer, 10); });
    connect = read_packet(peer);
    REQUIRE(!connect.empty());
    CHECK(static_cast<unsigned char>(connect[0]) == 0x10);  // CONNECT
    if (connect_packet) *connect_packet = connect;
    send_bytes(peer, std::string("\x20\x02\x00\x00", 4));  // CONNACK, accepted
    return peer;
}

}  // namespace

TEST_CASE("mosquitto transport: a QoS 1 message published into a reset connection goes once, after the reconnect") {
    const int listener = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(listener >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(listen(listener, 4) == 0);
    socklen_t len = sizeof a;
    REQUIRE(getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    const int port = ntohs(a.sin_port);

    north::TlsContexts tls;
    auto factory = north::mosquitto_transports(tls);
    fieldlink::config::CloudConfig cloud;
    cloud.name = "c";
    Events ev;
    auto t = factory(ev, cloud, "meter-1");
    REQUIRE(t);
    const north::Credentials creds{"meter-1", "", "", 0, std::nullopt};

    REQUIRE(t->connect(creds, "127.0.0.1", port, 60) == 0);
    int peer = accept_connect(listener, *t);
    drive(*t, [&] { return !ev.connacks.empty(); });
    REQUIRE(ev.connacks == std::vector<int>{0});

    // The broker goes away with a reset; the client has not read it yet when it publishes.
    const linger hard{1, 0};
    REQUIRE(setsockopt(peer, SOL_SOCKET, SO_LINGER, &hard, sizeof hard) == 0);
    close(peer);
    REQUIRE(wait_readable(t->socket(), 2000));
    int mid = 0;
    CHECK(t->publish("fieldlink/meter-1", "{\"v\":1}", 1, &mid, false) == 0);  // held: the client sends it later
    CHECK(mid > 0);
    drive(*t, [&] { return !ev.disconnects.empty(); });
    REQUIRE(!ev.disconnects.empty());  // (reported by the read, and maybe again by the write)

    // The session reconnects the same client: the message goes by itself, once.
    REQUIRE(t->connect(creds, "127.0.0.1", port, 60) == 0);
    peer = accept_connect(listener, *t);
    drive(*t, [&] { return ev.connacks.size() == 2; });
    drive(*t, [&] { return wait_readable(peer, 10); });
    const std::string publish = read_packet(peer);
    REQUIRE(publish.size() > 4);
    CHECK((static_cast<unsigned char>(publish[0]) & 0xf6) == 0x32);  // PUBLISH, QoS 1 (DUP either way)
    CHECK(publish.find("fieldlink/meter-1") != std::string::npos);
    const std::string id = publish.substr(2 + 2 + std::string("fieldlink/meter-1").size(), 2);
    CHECK((static_cast<unsigned char>(id[0]) << 8 | static_cast<unsigned char>(id[1])) == mid);
    send_bytes(peer, std::string("\x40\x02", 2) + id);  // PUBACK
    drive(*t, [&] { return !ev.pubacks.empty(); });
    CHECK(ev.pubacks == std::vector<int>{mid});
    drive(*t, [&] { return wait_readable(peer, 10); });
    CHECK(!wait_readable(peer, 200));  // nothing more: no second copy

    t.reset();
    close(peer);
    close(listener);
}

namespace {

// The strings of a CONNECT's payload after the client id: will topic and message when the will
// flag is set (MQTT 3.1.1, 3.1.3), as (flags, [topic, message]).
std::pair<unsigned, std::vector<std::string>> connect_will(const std::string& c) {
    // fixed header (2 bytes here), "\0\4MQTT", level, flags, keepalive (2)
    const unsigned flags = static_cast<unsigned char>(c.at(9));
    std::size_t at = 12;
    auto field = [&c, &at] {
        const std::size_t n = static_cast<unsigned char>(c.at(at)) << 8 | static_cast<unsigned char>(c.at(at + 1));
        std::string s = c.substr(at + 2, n);
        at += 2 + n;
        return s;
    };
    field();  // client id
    std::vector<std::string> will;
    if (flags & 0x04) {
        will.push_back(field());
        will.push_back(field());
    }
    return {flags, will};
}

}  // namespace

TEST_CASE("mosquitto transport: the will goes with each CONNECT as the credentials have it, and is cleared") {
    const int listener = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(listener >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(listen(listener, 4) == 0);
    socklen_t len = sizeof a;
    REQUIRE(getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    const int port = ntohs(a.sin_port);

    north::TlsContexts tls;
    auto factory = north::mosquitto_transports(tls);
    fieldlink::config::CloudConfig cloud;
    cloud.name = "c";
    Events ev;
    auto t = factory(ev, cloud, "node-1");
    REQUIRE(t);
    north::Credentials creds{"node-1", "", "", 0, std::nullopt};
    creds.will = north::Will{"spBv1.0/plant/NDEATH/node-1",
                             std::string("\x12\x00"
                                         "bd0",
                                         5),
                             1, false};

    std::string connect;
    REQUIRE(t->connect(creds, "127.0.0.1", port, 60) == 0);
    int peer = accept_connect(listener, *t, &connect);
    auto [flags, will] = connect_will(connect);
    CHECK((flags & 0x04) != 0);     // will
    CHECK((flags & 0x18) == 0x08);  // will QoS 1
    CHECK((flags & 0x20) == 0);     // not retained
    REQUIRE(will.size() == 2);
    CHECK(will[0] == "spBv1.0/plant/NDEATH/node-1");
    CHECK(will[1] == std::string("\x12\x00"
                                 "bd0",
                                 5));  // binary, NUL included
    close(peer);
    drive(*t, [&] { return !ev.disconnects.empty(); });

    // The next CONNECT carries the will as it is now (the next bdSeq).
    creds.will->payload = "bd1";
    REQUIRE(t->connect(creds, "127.0.0.1", port, 60) == 0);
    peer = accept_connect(listener, *t, &connect);
    std::tie(flags, will) = connect_will(connect);
    REQUIRE(will.size() == 2);
    CHECK(will[1] == "bd1");
    close(peer);
    ev.disconnects.clear();
    drive(*t, [&] { return !ev.disconnects.empty(); });

    // Credentials without a will: none is sent.
    creds.will.reset();
    REQUIRE(t->connect(creds, "127.0.0.1", port, 60) == 0);
    peer = accept_connect(listener, *t, &connect);
    std::tie(flags, will) = connect_will(connect);
    CHECK((flags & 0x04) == 0);
    CHECK(will.empty());

    t.reset();
    close(peer);
    close(listener);
}
