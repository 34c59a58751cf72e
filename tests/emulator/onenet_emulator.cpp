// A mosquitto plugin that makes a local broker behave like OneNET towards devices, for tests.
//
// It enforces what ../shared/docs/protocols.md documents (§1.3-1.6) and records every violation
// as one line in the violations file (tests assert that file stays empty):
//   - CONNECT: MQTT 3.1.1, clean session, keepalive 10..1800 s, clientId = device name,
//     username = product id, password = a token whose res is products/{pid}/devices/{dev}, whose
//     et is in the future and whose sign verifies against the device key (or product key);
//     at most 3 logins per 5 s per device.
//   - PUBLISH: only to the device's own $sys/{pid}/{dev}/... topics, QoS <= 1, retain 0, and at
//     most `rate` messages per second per device (averaged over a 5 s window).
//   - SUBSCRIBE: only the device's own topics, wildcards from the 5th level on.
// Auth failures are refused (CONNACK 5); other violations are recorded but let through so the
// test sees the data and the violation together.
//
// Options (mosquitto.conf): plugin_opt_devices FILE ("pid device key_base64" per line; device
// "*" = product key), plugin_opt_violations FILE, plugin_opt_rate N, plugin_opt_observer
// USER:PASSWORD (a client that may read everything, for the test's subscriber).
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct State {
    mosquitto_plugin_id_t* id = nullptr;
    std::map<std::string, std::string> keys;  // "pid/dev" or "pid/*" -> base64 key
    std::string violations_file;
    double rate = 1.0;
    std::string observer_user, observer_password;
    std::map<std::string, std::deque<double>> logins, publishes;  // client -> timestamps
};

State g;

double now_s() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

void violation(const char* client, const std::string& what) {
    FILE* f = std::fopen(g.violations_file.c_str(), "a");
    if (f) {
        std::fprintf(f, "%s: %s\n", client ? client : "?", what.c_str());
        std::fclose(f);
    }
    mosquitto_log_printf(MOSQ_LOG_WARNING, "onenet-emulator: %s: %s", client ? client : "?", what.c_str());
}

std::string url_decode(const std::string& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size()) {
            out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

std::string b64_decode(const std::string& in) {
    std::vector<unsigned char> out(in.size());
    int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
    if (n < 0) return {};
    std::size_t pad = (!in.empty() && in.back() == '=') + (in.size() > 1 && in[in.size() - 2] == '=');
    return std::string(reinterpret_cast<char*>(out.data()), static_cast<std::size_t>(n) - pad);
}

std::string b64_encode(const unsigned char* p, unsigned n) {
    std::vector<unsigned char> out(4 * ((n + 2) / 3) + 1);
    int len = EVP_EncodeBlock(out.data(), p, static_cast<int>(n));
    return std::string(reinterpret_cast<char*>(out.data()), static_cast<std::size_t>(len));
}

// Independent check of the token (written from protocols.md §1.4, not shared with the daemon).
std::string check_token(const std::string& pid, const std::string& dev, const std::string& token) {
    std::map<std::string, std::string> kv;
    std::vector<std::string> order;
    std::stringstream ss(token);
    std::string part;
    while (std::getline(ss, part, '&')) {
        auto eq = part.find('=');
        if (eq == std::string::npos) return "token part without '=': " + part;
        kv[part.substr(0, eq)] = url_decode(part.substr(eq + 1));
        order.push_back(part.substr(0, eq));
    }
    if (kv.size() != 5 || !kv.count("version") || !kv.count("res") || !kv.count("et") || !kv.count("method") ||
        !kv.count("sign")) {
        return "1103 invalid token: must contain exactly version, res, et, method, sign";
    }
    if (kv["version"] != "2018-10-31") return "1111 invalid version " + kv["version"];
    if (kv["res"] != "products/" + pid + "/devices/" + dev) return "1114 clientId/username do not match res " + kv["res"];
    if (std::stoll(kv["et"]) < static_cast<long long>(std::time(nullptr))) return "1104 token expired";
    const EVP_MD* md = kv["method"] == "md5" ? EVP_md5() : kv["method"] == "sha1" ? EVP_sha1()
                       : kv["method"] == "sha256" ? EVP_sha256() : nullptr;
    if (!md) return "1110 sign method unsupported: " + kv["method"];
    const std::string msg = kv["et"] + "\n" + kv["method"] + "\n" + kv["res"] + "\n" + kv["version"];
    for (const std::string& k : {pid + "/" + dev, pid + "/*"}) {
        auto it = g.keys.find(k);
        if (it == g.keys.end()) continue;
        const std::string key = b64_decode(it->second);
        unsigned char out[EVP_MAX_MD_SIZE];
        unsigned len = 0;
        HMAC(md, key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(msg.data()),
             msg.size(), out, &len);
        if (b64_encode(out, len) == kv["sign"]) return "";
    }
    if (!g.keys.count(pid + "/" + dev) && !g.keys.count(pid + "/*")) return "1107 device not found";
    return "1106 sign mismatch";
}

bool rate_exceeded(std::deque<double>& q, double window, double max_in_window) {
    const double t = now_s();
    q.push_back(t);
    while (!q.empty() && q.front() < t - window) q.pop_front();
    return static_cast<double>(q.size()) > max_in_window;
}

int on_auth(int, void* event_data, void*) {
    auto* ed = static_cast<mosquitto_evt_basic_auth*>(event_data);
    const char* cid = mosquitto_client_id(ed->client);
    const std::string user = ed->username ? ed->username : "";
    const std::string pass = ed->password ? ed->password : "";
    if (!g.observer_user.empty() && user == g.observer_user) {
        return pass == g.observer_password ? MOSQ_ERR_SUCCESS : MOSQ_ERR_AUTH;
    }
    if (mosquitto_client_protocol_version(ed->client) != 4) violation(cid, "protocol is not MQTT 3.1.1");
    if (!mosquitto_client_clean_session(ed->client)) violation(cid, "cleanSession must be 1");
    const int ka = mosquitto_client_keepalive(ed->client);
    if (ka < 10 || ka > 1800) violation(cid, "keepalive " + std::to_string(ka) + " outside 10..1800");
    if (rate_exceeded(g.logins[cid ? cid : ""], 5.0, 3.0)) violation(cid, "more than 3 logins in 5 s");
    const std::string err = check_token(user, cid ? cid : "", pass);
    if (!err.empty()) {
        violation(cid, "auth refused: " + err);
        return MOSQ_ERR_AUTH;
    }
    return MOSQ_ERR_SUCCESS;
}

int on_acl(int, void* event_data, void*) {
    auto* ed = static_cast<mosquitto_evt_acl_check*>(event_data);
    const char* cid = mosquitto_client_id(ed->client);
    const char* u = mosquitto_client_username(ed->client);
    const std::string user = u ? u : "";
    if (!g.observer_user.empty() && user == g.observer_user) return MOSQ_ERR_SUCCESS;
    const std::string own = "$sys/" + user + "/" + (cid ? cid : "") + "/";
    const std::string topic = ed->topic ? ed->topic : "";
    if (ed->access == MOSQ_ACL_WRITE) {
        if (topic.rfind(own, 0) != 0) {
            violation(cid, "publish to a foreign or non-system topic " + topic);
            return MOSQ_ERR_ACL_DENIED;
        }
        if (ed->qos > 1) violation(cid, "QoS 2 publish to " + topic);
        if (ed->retain) violation(cid, "retained publish to " + topic);
        if (ed->payloadlen > 256 * 1024) violation(cid, "payload larger than 256 KB");
        if (rate_exceeded(g.publishes[cid ? cid : ""], 5.0, g.rate * 5.0 + 1.0)) {
            violation(cid, "uplink faster than " + std::to_string(g.rate) + " message(s)/s");
        }
        return MOSQ_ERR_SUCCESS;
    }
    if (ed->access == MOSQ_ACL_SUBSCRIBE && topic.rfind(own, 0) != 0) {
        violation(cid, "subscribe to a foreign topic " + topic);
        return MOSQ_ERR_ACL_DENIED;
    }
    return MOSQ_ERR_SUCCESS;
}

}  // namespace

extern "C" {

int mosquitto_plugin_version(int count, const int* versions) {
    for (int i = 0; i < count; ++i) {
        if (versions[i] == 5) return 5;
    }
    return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t* id, void** userdata, struct mosquitto_opt* opts, int n) {
    g.id = id;
    *userdata = &g;
    for (int i = 0; i < n; ++i) {
        const std::string k = opts[i].key, v = opts[i].value;
        if (k == "devices") {
            std::ifstream in(v);
            std::string pid, dev, key;
            while (in >> pid >> dev >> key) g.keys[pid + "/" + dev] = key;
        } else if (k == "violations") {
            g.violations_file = v;
        } else if (k == "rate") {
            g.rate = std::stod(v);
        } else if (k == "observer") {
            auto colon = v.find(':');
            g.observer_user = v.substr(0, colon);
            g.observer_password = colon == std::string::npos ? "" : v.substr(colon + 1);
        }
    }
    mosquitto_callback_register(id, MOSQ_EVT_BASIC_AUTH, on_auth, nullptr, nullptr);
    mosquitto_callback_register(id, MOSQ_EVT_ACL_CHECK, on_acl, nullptr, nullptr);
    return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void*, struct mosquitto_opt*, int) {
    mosquitto_callback_unregister(g.id, MOSQ_EVT_BASIC_AUTH, on_auth, nullptr);
    mosquitto_callback_unregister(g.id, MOSQ_EVT_ACL_CHECK, on_acl, nullptr);
    return MOSQ_ERR_SUCCESS;
}

}  // extern "C"
