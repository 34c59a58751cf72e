// One MQTT client connection as a session drives it. MosquittoTransport is the real one
// (libmosquitto, non-blocking, driven by the north loop); unit tests use a fake to play the
// broker (CONNACK, PUBACK, drops) on a fake clock.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "north/profile.hpp"

namespace fieldlink::north {

// What the transport reports, from inside its read/write/timer calls.
class TransportEvents {
  public:
    virtual ~TransportEvents() = default;
    virtual void on_connack(int rc) = 0;
    virtual void on_disconnect(int rc) = 0;
    virtual void on_puback(int mid) = 0;
    virtual void on_message(const std::string& topic, const std::string& payload) = 0;
    // The broker answered barrier() `mid`: it has handled every packet sent before it.
    virtual void on_barrier(int /*mid*/) {}
};

class Transport {
  public:
    virtual ~Transport() = default;
    // Starts connecting to `address` (numeric: name resolution is the session's business) with
    // these credentials; 0 or a MOSQ_ERR_* code.
    virtual int connect(const Credentials& c, const std::string& address, int port, int keepalive_s) = 0;
    // 0 once the message is sent, or held by the client to be sent when the connection is back
    // (QoS > 0: its PUBACK comes under *mid either way); an error means it will never go.
    virtual int publish(const std::string& topic, const std::string& payload, int qos, int* mid, bool retain) = 0;
    virtual int subscribe(const std::string& topic, int qos) = 0;
    // A round trip the broker answers (on_barrier) only after handling what was sent before it:
    // what confirms QoS 0 messages. 0 or an error code; -1 where the transport has none.
    virtual int barrier(int* /*mid*/) { return -1; }
    virtual void disconnect() = 0;
    virtual int socket() const = 0;  // -1 while there is none
    virtual bool want_write() const = 0;
    virtual int on_readable() = 0;
    virtual int on_writable() = 0;
    virtual int on_timer() = 0;  // keepalive and timeouts
    // Text of an error code (for logs).
    virtual std::string error_text(int rc) const = 0;
};

// Makes the transport of one session; `client_id` stays the same for its lifetime.
using TransportFactory = std::function<std::unique_ptr<Transport>(
    TransportEvents& events, const config::CloudConfig& cloud, const std::string& client_id)>;

}  // namespace fieldlink::north
