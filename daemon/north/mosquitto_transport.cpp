#include "mosquitto_transport.hpp"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <mosquitto.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "config/diff.hpp"

namespace {

// libmosquitto creates a socket pair in every client (mosquitto_new) to wake its own loop
// thread, and writes a byte into it for every packet it queues. fieldlinkd never runs that
// loop, so nothing reads the pair: it costs two descriptors per session, a write() per publish
// and, once its buffer fills, about 100 KB of kernel memory per session. While a client is
// created here, socketpair() is refused; libmosquitto then works without the pair (its
// documented fallback: only a threaded loop would be woken later).
// NOLINTBEGIN(cppcoreguidelines-avoid-non-const-global-variables): a per-thread flag and a counter
thread_local bool t_refuse_socketpair = false;
std::atomic<unsigned long> g_refused{0};
// NOLINTEND(cppcoreguidelines-avoid-non-const-global-variables)

}  // namespace

// NOLINTNEXTLINE(readability-inconsistent-declaration-parameter-name): glibc names them with reserved identifiers
extern "C" int socketpair(int domain, int type, int protocol, int sv[2]) {
    if (t_refuse_socketpair) {
        g_refused.fetch_add(1, std::memory_order_relaxed);
        errno = EMFILE;
        return -1;
    }
    using Fn = int (*)(int, int, int, int*);
    static const Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "socketpair"));
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    return real(domain, type, protocol, sv);
}

namespace fieldlink::north {
namespace {

mosquitto* new_client(const std::string& client_id, void* self) {
    t_refuse_socketpair = true;
    mosquitto* m = mosquitto_new(client_id.c_str(), true, self);  // clean session, always
    t_refuse_socketpair = false;
    return m;
}

bool is_ip_literal(const std::string& host) {
    unsigned char buf[sizeof(in6_addr)];
    return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

int g_host_index = -1;  // NOLINT(cppcoreguidelines-avoid-non-const-global-variables): OpenSSL's ex_data index, set once

// libmosquitto sets SNI to the address it was given (numeric here); put the configured name
// back before the ClientHello is written.
void restore_sni(const SSL* ssl, int where, int) {
    if (!(where & SSL_CB_HANDSHAKE_START)) return;
    const auto* host = static_cast<const std::string*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), g_host_index));
    if (!host) return;
    // The info callback gets a const SSL*, yet this is the documented moment to set the SNI.
    SSL* s = const_cast<SSL*>(ssl);  // NOLINT(cppcoreguidelines-pro-type-const-cast)
    SSL_set_tlsext_host_name(s, host->c_str());
}

std::string ssl_error() {
    const unsigned long e = ERR_get_error();
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return e ? buf : "unknown error";
}

SSL_CTX* make_context(const config::CloudConfig& c, std::string* error) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        *error = "cannot create a TLS context: " + ssl_error();
        return nullptr;
    }
    auto fail = [&](const std::string& what) {
        *error = "cloud " + c.name + ": TLS: " + what + ": " + ssl_error();
        SSL_CTX_free(ctx);
        return nullptr;
    };
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);  // thousands of idle sessions: no idle buffers
    const auto& t = *c.tls;
    if (!t.ca_file.empty()) {
        if (SSL_CTX_load_verify_locations(ctx, t.ca_file.c_str(), nullptr) != 1)
            return fail("cannot load ca_file " + t.ca_file);
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        return fail("cannot load the system's CA certificates");
    }
    if (!t.cert_file.empty()) {
        if (SSL_CTX_use_certificate_chain_file(ctx, t.cert_file.c_str()) != 1)
            return fail("cannot load cert_file " + t.cert_file);
        if (SSL_CTX_use_PrivateKey_file(ctx, t.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
            return fail("cannot load key_file " + t.key_file);
        if (SSL_CTX_check_private_key(ctx) != 1) return fail("key_file does not match cert_file");
    }
    // Verification is always on, against the configured host name (or address).
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    X509_VERIFY_PARAM* param = SSL_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (is_ip_literal(c.host)) {
        X509_VERIFY_PARAM_set1_ip_asc(param, c.host.c_str());
    } else {
        X509_VERIFY_PARAM_set1_host(param, c.host.c_str(), 0);
        // ex_data takes void*; the string outlives the context and is only read.
        SSL_CTX_set_ex_data(ctx, g_host_index,
                            const_cast<std::string*>(&c.host));  // NOLINT(cppcoreguidelines-pro-type-const-cast)
        SSL_CTX_set_info_callback(ctx, restore_sni);
    }
    return ctx;
}

class MosquittoTransport final : public Transport {
  public:
    MosquittoTransport(TransportEvents& events, mosquitto* m) : events_(events), m_(m) {
        mosquitto_int_option(m_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
        // A reply to a platform's command is one small packet: Nagle's algorithm would hold it
        // until the broker acknowledges the previous one (up to its 40 ms delayed ACK).
        mosquitto_int_option(m_, MOSQ_OPT_TCP_NODELAY, 1);
        mosquitto_connect_callback_set(m_, on_connect);
        mosquitto_disconnect_callback_set(m_, on_disconnect);
        mosquitto_publish_callback_set(m_, on_publish);
        mosquitto_message_callback_set(m_, on_message);
        mosquitto_unsubscribe_callback_set(m_, on_unsubscribe);
        mosquitto_will_clear(m_);  // OneNET refuses wills; no platform here needs one
    }
    ~MosquittoTransport() override { mosquitto_destroy(m_); }
    MosquittoTransport(const MosquittoTransport&) = delete;
    MosquittoTransport& operator=(const MosquittoTransport&) = delete;

    int connect(const Credentials& c, const std::string& address, int port, int keepalive_s) override {
        mosquitto_username_pw_set(m_, c.username.empty() ? nullptr : c.username.c_str(),
                                  c.password.empty() ? nullptr : c.password.c_str());
        // The will goes with each CONNECT as it is now (Sparkplug's NDEATH carries the bdSeq of
        // this connection); a client that had one and no longer should is cleared.
        if (c.will) {
            const int rc = mosquitto_will_set(m_, c.will->topic.c_str(), static_cast<int>(c.will->payload.size()),
                                              c.will->payload.data(), c.will->qos, c.will->retain);
            if (rc != MOSQ_ERR_SUCCESS) return rc;
        } else {
            mosquitto_will_clear(m_);
        }
        return mosquitto_connect_async(m_, address.c_str(), port, keepalive_s);
    }
    int publish(const std::string& topic, const std::string& payload, int qos, int* mid, bool retain) override {
        const int rc =
            mosquitto_publish(m_, mid, topic.c_str(), static_cast<int>(payload.size()), payload.data(), qos, retain);
        // With QoS > 0 libmosquitto queues the message before its first write: a connection
        // error from that write leaves it queued, and the client sends it again after the
        // reconnect and reports its PUBACK under the same mid. Reporting the error would make
        // the session send it a second time, and the platform would get it twice.
        if (qos > 0 && (rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST || rc == MOSQ_ERR_ERRNO)) {
            return MOSQ_ERR_SUCCESS;
        }
        return rc;
    }
    int subscribe(const std::string& topic, int qos) override {
        return mosquitto_subscribe(m_, nullptr, topic.c_str(), qos);
    }
    // An UNSUBSCRIBE of a filter nobody subscribes to: it changes nothing, and its UNSUBACK
    // comes after the broker handled every earlier packet of this connection.
    int barrier(int* mid) override { return mosquitto_unsubscribe(m_, mid, "fieldlink/barrier"); }
    void disconnect() override {
        mosquitto_disconnect(m_);
        mosquitto_loop_write(m_, 1);
    }
    int socket() const override { return mosquitto_socket(m_); }
    bool want_write() const override { return mosquitto_want_write(m_); }
    int on_readable() override { return mosquitto_loop_read(m_, 16); }
    int on_writable() override { return mosquitto_loop_write(m_, 16); }
    int on_timer() override { return mosquitto_loop_misc(m_); }
    std::string error_text(int rc) const override {
        if (rc == MOSQ_ERR_ERRNO) return std::strerror(errno);
        if (rc == MOSQ_ERR_TLS) return "TLS handshake or certificate verification failed";
        return mosquitto_strerror(rc);
    }

  private:
    static TransportEvents& events(void* self) { return static_cast<MosquittoTransport*>(self)->events_; }
    static void on_connect(mosquitto*, void* self, int rc) { events(self).on_connack(rc); }
    static void on_disconnect(mosquitto*, void* self, int rc) { events(self).on_disconnect(rc); }
    static void on_publish(mosquitto*, void* self, int mid) { events(self).on_puback(mid); }
    static void on_unsubscribe(mosquitto*, void* self, int mid) { events(self).on_barrier(mid); }
    static void on_message(mosquitto*, void* self, const mosquitto_message* msg) {
        const std::string topic = msg->topic ? msg->topic : "";
        const std::string payload(static_cast<const char*>(msg->payload),
                                  static_cast<std::size_t>(std::max(0, msg->payloadlen)));
        events(self).on_message(topic, payload);
    }

    TransportEvents& events_;
    mosquitto* m_;
};

}  // namespace

TlsContexts::~TlsContexts() {
    for (auto& [cloud, ctx] : contexts_) SSL_CTX_free(ctx);
    for (auto* ctx : replaced_) SSL_CTX_free(ctx);
}

bool TlsContexts::load(const config::Config& cfg, std::string* error) {
    if (g_host_index < 0) g_host_index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return std::all_of(cfg.clouds.begin(), cfg.clouds.end(), [this, error](const config::CloudConfig& c) {
        if (!c.tls) return true;
        SSL_CTX* ctx = make_context(c, error);
        if (ctx) contexts_[c.name] = ctx;
        return ctx != nullptr;
    });
}

bool TlsContexts::reload(const config::Config& prev, const config::Config& next, std::string* error) {
    std::map<std::string, SSL_CTX*> fresh;
    for (const auto& c : next.clouds) {
        if (!c.tls) continue;
        const auto old = std::find_if(prev.clouds.begin(), prev.clouds.end(),
                                      [&c](const config::CloudConfig& p) { return p.name == c.name; });
        const auto kept = contexts_.find(c.name);
        if (old != prev.clouds.end() && kept != contexts_.end() && config::same_cloud(*old, c)) {
            fresh[c.name] = kept->second;
            continue;
        }
        SSL_CTX* ctx = make_context(c, error);
        if (!ctx) {
            for (auto& [name, made] : fresh) {
                if (contexts_.count(name) == 0 || contexts_[name] != made) SSL_CTX_free(made);
            }
            return false;
        }
        fresh[c.name] = ctx;
    }
    for (auto& [name, ctx] : contexts_) {
        auto it = fresh.find(name);
        if (it == fresh.end() || it->second != ctx) replaced_.push_back(ctx);
    }
    contexts_ = std::move(fresh);
    return true;
}

SSL_CTX* TlsContexts::find(const config::CloudConfig& cloud) const {
    auto it = contexts_.find(cloud.name);
    return it == contexts_.end() ? nullptr : it->second;
}

int descriptors_per_client() {
    static const int n = [] {
        mosquitto_lib_init();
        const unsigned long before = g_refused.load();
        mosquitto* m = new_client("probe", nullptr);
        const bool refused = g_refused.load() > before;
        if (m) mosquitto_destroy(m);
        return refused ? 1 : 3;
    }();
    return n;
}

TransportFactory mosquitto_transports(const TlsContexts& tls) {
    return [&tls](TransportEvents& events, const config::CloudConfig& cloud,
                  const std::string& client_id) -> std::unique_ptr<Transport> {
        mosquitto* m = new_client(client_id, nullptr);
        if (!m) return nullptr;
        auto transport = std::make_unique<MosquittoTransport>(events, m);
        mosquitto_user_data_set(m, transport.get());
        if (SSL_CTX* ctx = tls.find(cloud)) {
            mosquitto_int_option(m, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0);  // ours as it is: CA, verification, SNI
            mosquitto_void_option(m, MOSQ_OPT_SSL_CTX, ctx);
        }
        return transport;
    };
}

}  // namespace fieldlink::north
