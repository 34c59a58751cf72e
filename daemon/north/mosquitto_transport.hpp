// The real transport: a libmosquitto client driven without its own loop thread (socket, read,
// write and misc from the north loop). It is given a numeric address (names are resolved off
// the loop by the Resolver), so TLS verifies the server against the configured host name
// through a per-cloud SSL_CTX, and the SNI of the configured name is restored at handshake.
#pragma once

#include <openssl/ssl.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "north/transport.hpp"

namespace fieldlink::north {

// One TLS client context per cloud, shared by all its sessions: the CA (or the system's), an
// optional client certificate, peer verification against the cloud's host name, TLS >= 1.2.
class TlsContexts {
  public:
    TlsContexts() = default;
    ~TlsContexts();
    TlsContexts(const TlsContexts&) = delete;
    TlsContexts& operator=(const TlsContexts&) = delete;

    // Creates the contexts of every cloud with `tls:`; false with `error` saying which file failed.
    bool load(const config::Config& cfg, std::string* error);
    // A reload: clouds with the same settings keep their context; changed and new ones get a new
    // one. Replaced contexts stay until destruction (clients of stopped sessions may still hold
    // them). False with `error` when a file of a changed cloud fails (nothing is changed then).
    bool reload(const config::Config& prev, const config::Config& next, std::string* error);
    SSL_CTX* find(const config::CloudConfig& cloud) const;

  private:
    std::map<std::string, SSL_CTX*> contexts_;  // by cloud name
    std::vector<SSL_CTX*> replaced_;
};

// Descriptors one libmosquitto client holds here: 1 (its socket) when its unused wake-up
// socket pair could be refused at creation, else 3.
int descriptors_per_client();

TransportFactory mosquitto_transports(const TlsContexts& tls);

}  // namespace fieldlink::north
