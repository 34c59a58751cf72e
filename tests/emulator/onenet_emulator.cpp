// A mosquitto plugin that makes a local broker behave like a cloud platform towards devices, for
// tests: OneNET (default), OneNET legacy, DaShi AIoT or ThingsBoard (plugin_opt_platform).
//
// OneNET:
// It enforces what ../shared/docs/protocols.md documents (§1.3-1.6) and records every violation
// as one line in the violations file (tests assert that file stays empty):
//   - CONNECT: MQTT 3.1.1, clean session, keepalive 10..1800 s, clientId = device name,
//     username = product id, password = a token whose res is products/{pid}/devices/{dev}, whose
//     et is in the future and whose sign verifies against the device key (or product key);
//     at most 3 logins per 5 s per device.
//   - PUBLISH: only to the device's own $sys/{pid}/{dev}/... topics, QoS <= 1, retain 0, and at
//     most `rate` messages per second per device (averaged over a 5 s window).
//   - PUBLISH topics: only the documented uplink set (dp/post/json, cmd/response/{id}, thing/...);
//     anything else is a violation and disconnects the device, as on OneNET.
//   - Tokens: every value URL-encoded, et a number of Unix seconds (malformed numbers are refused,
//     never thrown).
//   - Datapoints: id an integer, dp an object of streams of [A-Za-z0-9_.] (<= 30 bytes), each an
//     array of {v, t} with t in seconds; answered on
//     dp/post/json/accepted or /rejected (err_code 98) like the platform.
//   - SUBSCRIBE: only the device's own topics, wildcards from the 5th level on.
//   - Thing model: request ids are digit strings of at most 13 characters; pack/post carries at
//     most 10 devices and 100 properties each, and only sub-devices added to the gateway's
//     topology (topo/add with a sasToken that verifies); the emulator answers every request on
//     its /reply topic with code 200 (or an error code for a violation), like the platform.
//     The topology outlives the gateway's sessions (and, with plugin_opt_state, the broker):
//     topo/get returns it, and adding a sub-device already in it is a violation (read it, add
//     what is missing). Events: event/post and the events of pack/post and history/post are
//     objects of {"value":{parameters},"time":ms}.
//   - Datapoints: one value per stream and second in a message (t has whole seconds).
//   - A will message is a violation (seen in the broker's log by the test harness).
// OneNET legacy: clientId = a numeric device id listed with its auth_info (the password), user
//   name = product id; publishes only to $dp (type 1 or 3 with a correct length header) and
//   $crsp/...
// DaShi AIoT: clientId "{cid}|securemode=N,signmethod=hmacX,timestamp=T|", user name
//   "{deviceId}&{productId}", password the hex HMAC of the sorted parameters with the secret;
//   publishes only under sys/{pid}/{did}/.
// ThingsBoard: user name = the gateway token; publishes only under v1/gateway/ and the gateway
//   device's own v1/devices/me/ (a gateway is a device too), payloads of at most 65,536 bytes
//   (the transport's default max_payload_size).
// Auth failures are refused (CONNACK 5); other violations are recorded but let through so the
// test sees the data and the violation together.
//
// Options (mosquitto.conf): plugin_opt_platform onenet|legacy|aiot|thingsboard,
// plugin_opt_devices FILE ("pid device key" per line; OneNET device "*" = product key; legacy:
// "pid device_id auth_info"; aiot: "pid device_id secret"; thingsboard: "- - token"),
// plugin_opt_violations FILE, plugin_opt_rate N, plugin_opt_observer USER:PASSWORD (a client
// that may read and write everything, for the test's subscriber and command sender).
// Answers to data, as the platforms send them: OneNET thing model .../reply, datapoints
// dp/post/json/accepted|rejected, DaShi .../properties/up/response. Faults, for the daemon's
// retry and drop paths: plugin_opt_busy N answers every Nth data message with the platform's
// transient failure (thing model code 303, datapoints err_code 100, DaShi 429);
// plugin_opt_unknown_property NAME refuses every data message carrying a property or stream NAME
// for good (thing model 309 identifier not exist, datapoints 98 Illegal Data, DaShi 460).
// plugin_opt_state FILE keeps what the platform keeps across broker restarts: each gateway's
// topology. (ThingsBoard's client attributes are not kept: a restart plays a platform that lost
// them, which attributes/request must repair.) The gateway device's own shared attributes, as
// the observer sets them on v1/devices/me/attributes, answer its attributes/request/{id}.
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using nlohmann::json;

namespace {

struct State {
    mosquitto_plugin_id_t* id = nullptr;
    std::string platform = "onenet";
    std::map<std::string, std::set<std::string>> topology;  // gateway client -> "pid/dev"
    std::map<std::string, std::map<std::string, json>> attributes;
    json own_shared = json::object();         // ThingsBoard: the gateway device's own shared attributes
    std::string state_file;                   // ThingsBoard: device -> client attributes
    std::set<std::string> legacy_clients;     // receive $creq without subscribing
    std::map<std::string, std::string> keys;  // "pid/dev" or "pid/*" -> base64 key
    std::string violations_file;
    std::string record_file;  // every accepted device PUBLISH: "<unix time> <topic> <payload>" (legacy: hex)
    double rate = 1.0;
    std::string observer_user, observer_password;
    std::map<std::string, std::deque<double>> logins, publishes;  // client -> timestamps
    long busy_every = 0;           // every Nth data message answered with a transient failure
    long data_messages = 0;        // data messages answered so far
    std::string unknown_property;  // data carrying it is refused for good
};

State g;

double now_s() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// The topology, one "gateway pid/device" line each, rewritten whole after every change.
void save_state() {
    if (g.state_file.empty()) return;
    std::ofstream out(g.state_file + ".tmp", std::ios::trunc);
    for (const auto& [gw, subs] : g.topology) {
        for (const auto& sub : subs) out << gw << ' ' << sub << '\n';
    }
    out.close();
    std::rename((g.state_file + ".tmp").c_str(), g.state_file.c_str());
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
        // Values are URL-encoded: res has '/', sign base64 has '+', '/' and '='.
        const std::string raw = part.substr(eq + 1);
        if (raw.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~%") !=
            std::string::npos) {
            return "1103 invalid token: the value of " + part.substr(0, eq) + " is not URL-encoded";
        }
        kv[part.substr(0, eq)] = url_decode(raw);
        order.push_back(part.substr(0, eq));
    }
    if (kv.size() != 5 || !kv.count("version") || !kv.count("res") || !kv.count("et") || !kv.count("method") ||
        !kv.count("sign")) {
        return "1103 invalid token: must contain exactly version, res, et, method, sign";
    }
    if (kv["version"] != "2018-10-31") return "1111 invalid version " + kv["version"];
    if (kv["res"] != "products/" + pid + "/devices/" + dev)
        return "1114 clientId/username do not match res " + kv["res"];
    const std::string& et = kv["et"];
    if (et.empty() || et.size() > 12 || et.find_first_not_of("0123456789") != std::string::npos)
        return "1103 invalid token: et must be Unix seconds, got '" + et + "'";
    if (std::strtoll(et.c_str(), nullptr, 10) < static_cast<long long>(std::time(nullptr))) return "1104 token expired";
    const EVP_MD* md = kv["method"] == "md5"      ? EVP_md5()
                       : kv["method"] == "sha1"   ? EVP_sha1()
                       : kv["method"] == "sha256" ? EVP_sha256()
                                                  : nullptr;
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

std::string hex(const unsigned char* p, unsigned n) {
    static const char* d = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < n; ++i) {
        out += d[p[i] >> 4];
        out += d[p[i] & 15];
    }
    return out;
}

// DaShi: independent check of protocols.md §4.1.
std::string check_aiot(const std::string& cid_full, const std::string& user, const std::string& pass) {
    auto bar = cid_full.find('|');
    if (bar == std::string::npos || cid_full.back() != '|')
        return "clientId must be {cid}|securemode=..,signmethod=..,timestamp=..|";
    const std::string cid = cid_full.substr(0, bar);
    std::map<std::string, std::string> kv;
    std::stringstream ss(cid_full.substr(bar + 1, cid_full.size() - bar - 2));
    std::string part;
    while (std::getline(ss, part, ',')) {
        auto eq = part.find('=');
        if (eq != std::string::npos) kv[part.substr(0, eq)] = part.substr(eq + 1);
    }
    auto amp = user.find('&');
    if (amp == std::string::npos) return "username must be {deviceId}&{productId}";
    const std::string did = user.substr(0, amp), pid = user.substr(amp + 1);
    auto it = g.keys.find(pid + "/" + did);
    if (it == g.keys.end()) return "unknown device " + did;
    const std::string m = kv["signmethod"];
    const EVP_MD* md = m == "hmacmd5"      ? EVP_md5()
                       : m == "hmacsha1"   ? EVP_sha1()
                       : m == "hmacsha256" ? EVP_sha256()
                                           : nullptr;
    if (!md) return "unknown signmethod " + m;
    if (kv["securemode"] != "2" && kv["securemode"] != "3") return "securemode must be 2 (TLS) or 3 (TCP)";
    const std::string content = "clientId" + cid + "deviceId" + did + "productId" + pid + "timestamp" + kv["timestamp"];
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    HMAC(md, it->second.data(), static_cast<int>(it->second.size()),
         reinterpret_cast<const unsigned char*>(content.data()), content.size(), out, &len);
    return hex(out, len) == pass ? "" : "sign mismatch";
}

std::string check_login(const char* cid, const std::string& user, const std::string& pass) {
    const std::string id = cid ? cid : "";
    if (g.platform == "aiot") return check_aiot(id, user, pass);
    if (g.platform == "thingsboard") return g.keys.count("-/-") && g.keys["-/-"] == user ? "" : "unknown gateway token";
    if (g.platform == "legacy") {
        if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos)
            return "clientId must be the numeric device id";
        auto it = g.keys.find(user + "/" + id);
        if (it == g.keys.end()) return "unknown device id " + id + " in product " + user;
        return it->second == pass ? "" : "wrong auth_info";
    }
    return check_token(user, id, pass);
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
    if (g.platform != "legacy" && g.platform != "thingsboard" && !mosquitto_client_clean_session(ed->client)) {
        violation(cid, "cleanSession must be 1");
    }
    const int ka = mosquitto_client_keepalive(ed->client);
    const int ka_min = g.platform == "legacy" ? 120 : 10, ka_max = g.platform == "legacy" ? 65535 : 1800;
    if (ka < ka_min || ka > ka_max)
        violation(cid, "keepalive " + std::to_string(ka) + " outside " + std::to_string(ka_min) + ".." +
                           std::to_string(ka_max));
    if (rate_exceeded(g.logins[cid ? cid : ""], 5.0, 3.0)) violation(cid, "more than 3 logins in 5 s");
    const std::string err = check_login(cid, user, pass);
    if (!err.empty()) {
        violation(cid, "auth refused: " + err);
        return MOSQ_ERR_AUTH;
    }
    // The topology outlives sessions, as on the platform (topo/get reads it back).
    if (g.platform == "legacy" && cid) g.legacy_clients.insert(cid);
    return MOSQ_ERR_SUCCESS;
}

// An event sample (protocols.md §2.1, §2.4): {"value":{output parameters},"time":ms}; time optional.
std::string check_event(const json& ev) {
    if (!ev.is_object() || !ev.contains("value") || !ev["value"].is_object())
        return "expected {\"value\":{parameters},\"time\":ms}";
    if (ev.contains("time") && (!ev["time"].is_number_integer() || ev["time"].get<long long>() < 100000000000LL))
        return "time must be Unix milliseconds";
    return "";
}

// history/post: an array of event samples, at most 100.
std::string check_event_samples(const json& evs) {
    if (!evs.is_array() || evs.empty() || evs.size() > 100) return "expected an array of 1..100 samples";
    for (const auto& ev : evs) {
        if (auto err = check_event(ev); !err.empty()) return err;
    }
    return "";
}

// OneNET topics a device publishes to (protocols.md §1.5, §2.7), after $sys/{pid}/{dev}/.
bool documented_uplink(const std::string& t) {
    static const std::set<std::string> exact = {"dp/post/json",
                                                "thing/property/post",
                                                "thing/event/post",
                                                "thing/pack/post",
                                                "thing/history/post",
                                                "thing/property/get_reply",
                                                "thing/property/set_reply",
                                                "thing/property/desired/get",
                                                "thing/property/desired/delete",
                                                "thing/sub/login",
                                                "thing/sub/logout",
                                                "thing/sub/topo/add",
                                                "thing/sub/topo/delete",
                                                "thing/sub/topo/get",
                                                "thing/sub/topo/get/result",
                                                "thing/sub/topo/change_reply",
                                                "thing/sub/property/get_reply",
                                                "thing/sub/property/set_reply",
                                                "thing/sub/service/invoke_reply"};
    if (exact.count(t)) return true;
    const auto starts = [&](const char* p) { return t.rfind(p, 0) == 0 && t.size() > std::strlen(p); };
    const auto ends = [&](const char* e) {
        return t.size() > std::strlen(e) && t.compare(t.size() - std::strlen(e), std::strlen(e), e) == 0;
    };
    if (starts("cmd/response/") && t.find('/', 13) == std::string::npos) return true;
    return starts("thing/service/") && ends("/invoke_reply");
}

std::string own_prefix(const char* cid, const std::string& user) {
    if (g.platform == "aiot") {
        auto amp = user.find('&');
        return "sys/" + user.substr(amp + 1) + "/" + user.substr(0, amp) + "/";
    }
    if (g.platform == "thingsboard") return "v1/gateway/";
    if (g.platform == "legacy") return "$";
    return "$sys/" + user + "/" + (cid ? cid : "") + "/";
}

int on_acl(int, void* event_data, void*) {
    auto* ed = static_cast<mosquitto_evt_acl_check*>(event_data);
    const char* cid = mosquitto_client_id(ed->client);
    const char* u = mosquitto_client_username(ed->client);
    const std::string user = u ? u : "";
    if (!g.observer_user.empty() && user == g.observer_user) return MOSQ_ERR_SUCCESS;
    std::string own = own_prefix(cid, user);
    const std::string topic = ed->topic ? ed->topic : "";
    if (g.platform == "thingsboard" && topic.rfind("v1/devices/me/", 0) == 0) own = "v1/devices/me/";
    if (ed->access == MOSQ_ACL_WRITE) {
        const bool legacy_ok = topic == "$dp" || topic.rfind("$crsp/", 0) == 0;
        if (g.platform == "legacy" ? !legacy_ok : topic.rfind(own, 0) != 0) {
            violation(cid, "publish to a foreign or non-system topic " + topic);
            return MOSQ_ERR_ACL_DENIED;
        }
        if (ed->qos > 1) violation(cid, "QoS 2 publish to " + topic);
        if (ed->retain) violation(cid, "retained publish to " + topic);
        if (ed->payloadlen > 256 * 1024) violation(cid, "payload larger than 256 KB");
        if (g.platform == "thingsboard" && ed->payloadlen > 65536)
            violation(cid, "payload larger than ThingsBoard's default max_payload_size (65536 bytes)");
        if (g.platform == "onenet" && !documented_uplink(topic.substr(own.size()))) {
            violation(cid, "publish to an undocumented topic " + topic + " (OneNET disconnects the device)");
            mosquitto_kick_client_by_clientid(cid, false);
            return MOSQ_ERR_ACL_DENIED;
        }
        if (rate_exceeded(g.publishes[cid ? cid : ""], 5.0, g.rate * 5.0 + 2.0)) {  // +1 burst, +1 clock jitter
            violation(cid, "uplink faster than " + std::to_string(g.rate) + " message(s)/s");
        }
        return MOSQ_ERR_SUCCESS;
    }
    if (ed->access == MOSQ_ACL_SUBSCRIBE && g.platform != "legacy" && topic.rfind(own, 0) != 0) {
        violation(cid, "subscribe to a foreign topic " + topic);
        return MOSQ_ERR_ACL_DENIED;
    }
    if (ed->access == MOSQ_ACL_SUBSCRIBE && g.platform == "onenet") {
        // Wildcards only from the 5th level ($sys/{pid}/{dev}/{function}/...), e.g. thing/#.
        std::size_t level = 1;
        for (std::size_t i = 0; i < topic.size(); ++i) {
            if (topic[i] == '/') ++level;
            if ((topic[i] == '+' || topic[i] == '#') && level < 5) {
                violation(cid, "subscribe with a wildcard at level " + std::to_string(level) + " in " + topic +
                                   " (OneNET allows them from the 5th level)");
                return MOSQ_ERR_ACL_DENIED;
            }
        }
    }
    return MOSQ_ERR_SUCCESS;
}

// Whether a data message's params carry property `name` (thing model: an object of properties, or
// an array of {identity, properties}; datapoints: an object of streams).
bool carries(const json& params, const std::string& name) {
    if (name.empty()) return false;
    if (params.is_object()) return params.contains(name);
    if (!params.is_array()) return false;
    for (const auto& e : params) {
        if (e.is_object() && e.contains("properties") && e["properties"].is_object() && e["properties"].contains(name))
            return true;
    }
    return false;
}

// Counts a data message; true for every busy_every-th one.
bool busy_now() {
    ++g.data_messages;
    return g.busy_every > 0 && g.data_messages % g.busy_every == 0;
}

void reply(const char* cid, const std::string& topic, const std::string& id, int code, const std::string& msg) {
    const std::string payload = json{{"id", id}, {"code", code}, {"msg", msg}}.dump();
    mosquitto_broker_publish_copy(cid, (topic + "/reply").c_str(), static_cast<int>(payload.size()), payload.data(), 0,
                                  false, nullptr);
}

// OneNET thing model: checks request shape and topology, answers on /reply like the platform.
void thing_model_message(const char* cid, const std::string& topic, const std::string& payload) {
    const std::string user_dev = topic.substr(0, topic.find("/thing/") + 7);
    const std::string suffix = topic.substr(user_dev.size());
    json j = json::parse(payload, nullptr, false);
    if (!j.is_object() || !j.contains("id") || !j["id"].is_string()) {
        violation(cid, "312 invalid msg id / json on " + topic);
        return;
    }
    const std::string id = j["id"];
    if (id.empty() || id.size() > 13 || id.find_first_not_of("0123456789") != std::string::npos) {
        violation(cid, "312 invalid msg id '" + id + "' (must be 1..13 digits)");
    }
    int code = 200;
    std::string msg = "success";
    const json& params = j.contains("params") ? j["params"] : json();
    if (suffix == "sub/topo/add") {
        const std::string pid = params.value("productID", ""), dev = params.value("deviceName", "");
        const std::string err = check_token(pid, dev, params.value("sasToken", ""));
        if (!err.empty()) {
            violation(cid, "topo/add " + pid + "/" + dev + ": " + err);
            code = 1106;
            msg = err;
        } else if (!g.topology[cid].insert(pid + "/" + dev).second) {
            violation(cid, "topo/add of " + pid + "/" + dev + ", already in the topology (topo/get lists it)");
        } else {
            save_state();
        }
    } else if (suffix == "pack/post" || suffix == "history/post" || suffix == "property/post") {
        if (suffix == "property/post" && (!params.is_object() || params.empty()))
            violation(cid, "property/post: params must be an object of properties");
        if (suffix != "property/post" && (!params.is_array() || params.size() > 10))
            violation(cid, suffix + ": params must be an array of at most 10 devices");
        for (const auto& e : params.is_array() && suffix != "property/post" ? params : json::array()) {
            if (e.contains("identity")) {
                const std::string key =
                    e["identity"].value("productID", "") + "/" + e["identity"].value("deviceName", "");
                if (!g.topology[cid].count(key)) {
                    violation(cid, suffix + ": sub-device " + key + " is not in the gateway's topology");
                    code = 307;
                    msg = "sub-device not in topology";
                }
            }
            // Each device: properties and/or events, at most 100 of each (protocols.md §2.4).
            const bool props = e.contains("properties"), events = e.contains("events");
            if ((!props && !events) ||
                (props && (!e["properties"].is_object() || e["properties"].empty() || e["properties"].size() > 100)) ||
                (events && (!e["events"].is_object() || e["events"].empty() || e["events"].size() > 100))) {
                violation(cid, suffix + ": each device needs properties and/or events, 1..100 of each");
            }
            if (events && e["events"].is_object()) {
                for (const auto& [name, ev] : e["events"].items()) {
                    const std::string err = suffix == "history/post" ? check_event_samples(ev) : check_event(ev);
                    if (!err.empty()) violation(cid, suffix + ": event " + name + ": " + err);
                }
            }
        }
    } else if (suffix == "event/post") {
        if (!params.is_object() || params.empty()) violation(cid, "event/post: params must be an object of events");
        if (params.is_object()) {
            for (const auto& [name, ev] : params.items()) {
                const std::string err = check_event(ev);
                if (!err.empty()) violation(cid, "event/post: event " + name + ": " + err);
            }
        }
    } else if (suffix == "sub/topo/get") {  // answered with the topology the platform keeps
        json list = json::array();
        for (const auto& key : g.topology[cid]) {
            const auto slash = key.find('/');
            list.push_back({{"deviceName", key.substr(slash + 1)}, {"productID", key.substr(0, slash)}});
        }
        const std::string answer = json{{"id", id}, {"code", 200}, {"msg", "success"}, {"data", list}}.dump();
        mosquitto_broker_publish_copy(cid, (topic + "/reply").c_str(), static_cast<int>(answer.size()), answer.data(),
                                      0, false, nullptr);
        return;
    } else if (suffix == "sub/login" || suffix == "sub/logout") {
        const std::string key = params.value("productID", "") + "/" + params.value("deviceName", "");
        if (!g.topology[cid].count(key)) {
            violation(cid, suffix + " of " + key + " before topo/add");
            code = 307;
            msg = "sub-device not in topology";
        }
    } else {
        return;  // *_reply answers from the device: nothing to acknowledge
    }
    if (code == 200 &&
        (suffix == "property/post" || suffix == "pack/post" || suffix == "history/post" || suffix == "event/post")) {
        const bool unknown = carries(params, g.unknown_property);
        if (unknown) {
            code = 309;
            msg = "identifier not exist";
        } else if (busy_now()) {
            code = 303;
            msg = "internal error";
        }
    }
    reply(cid, topic, id, code, msg);
}

// OneNET datapoints (protocols.md §2.7): {"id":N,"dp":{stream:[{"v":..,"t":seconds}]}}; answered on
// dp/post/json/accepted or /rejected like the platform.
void datapoints_message(const char* cid, const std::string& topic, const std::string& payload) {
    json j = json::parse(payload, nullptr, false);
    std::string err;
    if (!j.is_object() || !j.contains("id") || !j["id"].is_number_integer() || j["id"].get<long long>() <= 0 ||
        j["id"].get<long long>() > 0x7FFFFFFFLL) {
        err = "id must be an integer 1..2^31-1";
    } else if (!j.contains("dp") || !j["dp"].is_object() || j["dp"].empty()) {
        err = "dp must be an object of streams";
    } else {
        for (const auto& [name, values] : j["dp"].items()) {
            if (name.empty() || name.size() > 30 ||
                name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.$") !=
                    std::string::npos ||
                name.find('$', 1) != std::string::npos) {
                err = "stream name '" + name + "' (at most 30 of [A-Za-z0-9_.])";
            } else if (!values.is_array() || values.empty()) {
                err = "stream " + name + " must be a non-empty array";
            } else {
                std::set<long long> seconds;  // t has whole seconds: the platform keeps one value each
                for (const auto& e : values) {
                    if (!e.is_object() || !e.contains("v")) {
                        err = "stream " + name + ": every datapoint needs v";
                    } else if (e.contains("t") &&
                               (!e["t"].is_number_integer() || e["t"].get<long long>() > 99999999999LL)) {
                        err = "stream " + name + ": t must be Unix seconds";
                    } else if (e.contains("t") && !seconds.insert(e["t"].get<long long>()).second) {
                        err = "stream " + name + ": two values for second " + std::to_string(e["t"].get<long long>()) +
                              " (t has whole seconds; the platform keeps one)";
                    }
                }
            }
            if (!err.empty()) break;
        }
    }
    const long long id =
        j.is_object() && j.contains("id") && j["id"].is_number_integer() ? j["id"].get<long long>() : -1;
    std::string answer;
    if (!err.empty()) {
        violation(cid, "dp/post/json: " + err);
        answer = json{{"id", id}, {"err_code", 98}, {"err_msg", "Illegal Data"}}.dump();
    } else if (carries(j["dp"], g.unknown_property)) {
        err = "unknown stream";  // the product's rule, not a protocol violation
        answer = json{{"id", id}, {"err_code", 98}, {"err_msg", "Illegal Data"}}.dump();
    } else if (busy_now()) {
        err = "busy";
        answer = json{{"id", id}, {"err_code", 100}, {"err_msg", "internal error"}}.dump();
    } else {
        answer = json{{"id", id}}.dump();
    }
    const std::string to = topic + (err.empty() ? "/accepted" : "/rejected");
    mosquitto_broker_publish_copy(cid, to.c_str(), static_cast<int>(answer.size()), answer.data(), 0, false, nullptr);
}

// DaShi property report (protocols.md §4.2): answered on .../response when sys.ack is 1.
// DaShi property and event reports (protocols.md §4.2-4.3): answered on .../response when sys.ack is 1.
void aiot_message(const char* cid, const std::string& topic, const std::string& payload) {
    const auto ends = [&](const std::string& e) {
        return topic.size() >= e.size() && topic.compare(topic.size() - e.size(), e.size(), e) == 0;
    };
    const bool event = ends("/thing/event/up");
    if (!event && !ends("/thing/properties/up")) return;
    const std::string what = event ? "event/up" : "properties/up";
    json j = json::parse(payload, nullptr, false);
    std::string id = j.is_object() && j.contains("id") && j["id"].is_string() ? j["id"].get<std::string>() : "";
    int code = 200;
    std::string msg = "success";
    const bool params_ok = j.is_object() && j.contains("params") && j["params"].is_object() && !j["params"].empty();
    const std::string method = event ? "thing.event.up" : "thing.properties.up";
    if (id.empty() || id.size() > 10 || id.find_first_not_of("0123456789") != std::string::npos || !params_ok ||
        j.value("method", "") != method) {
        violation(cid, what + ": needs a decimal string id, an object of params and method " + method);
        code = 460;
        msg = "request parameter error!";
    } else if (event &&
               (!j.contains("identifier") || !j["identifier"].is_string() || !check_event(j["params"]).empty())) {
        violation(cid, "event/up: needs an identifier and params {\"value\":{..},\"time\":ms}");
        code = 460;
        msg = "request parameter error!";
    } else if (carries(j["params"], g.unknown_property)) {
        code = 460;
        msg = "request parameter error!";
    } else if (busy_now()) {
        code = 429;
        msg = "too many requests";
    }
    if (!j.is_object() || !j.contains("sys") || !j["sys"].is_object() || j["sys"].value("ack", 0) != 1) return;
    const std::string answer = json{{"code", code},   {"data", json::object()}, {"id", id},
                                    {"message", msg}, {"method", method},       {"version", "1.0"}}
                                   .dump();
    mosquitto_broker_publish_copy(cid, (topic + "/response").c_str(), static_cast<int>(answer.size()), answer.data(), 0,
                                  false, nullptr);
}

// ThingsBoard gateway API (protocols.md §5): client attributes are kept per device, as the
// platform does, and attributes/request is answered from them on attributes/response.
void thingsboard_message(const char* cid, const std::string& topic, const std::string& payload) {
    json j = json::parse(payload, nullptr, false);
    if (topic == "v1/gateway/attributes") {
        if (!j.is_object() || j.empty()) {
            violation(cid, "v1/gateway/attributes: expected {\"Device\":{\"key\":value,..},..}");
            return;
        }
        for (const auto& [device, attrs] : j.items()) {
            if (!attrs.is_object() || attrs.empty()) {
                violation(cid, "v1/gateway/attributes: device " + device + " needs an object of attributes");
                continue;
            }
            for (const auto& [k, v] : attrs.items()) g.attributes[device][k] = v;
        }
    } else if (topic == "v1/gateway/attributes/request") {
        if (!j.is_object() || !j.contains("id") || !j["id"].is_number_integer() || !j.contains("device") ||
            !j["device"].is_string() || !j.contains("client") || !j["client"].is_array()) {
            violation(cid, R"(v1/gateway/attributes/request: expected {"id":N,"device":"..","client":[keys]})");
            return;
        }
        const auto& held = g.attributes[j["device"].get<std::string>()];
        json answer = {{"id", j["id"]}, {"device", j["device"]}};
        if (j["client"].size() == 1) {
            const std::string key = j["client"][0].is_string() ? j["client"][0].get<std::string>() : "";
            if (held.count(key)) answer["value"] = held.at(key);
        } else {
            json values = json::object();
            for (const auto& k : j["client"]) {
                if (k.is_string() && held.count(k.get<std::string>())) values[k.get<std::string>()] = held.at(k);
            }
            answer["values"] = values;
        }
        const std::string text = answer.dump();
        mosquitto_broker_publish_copy(cid, "v1/gateway/attributes/response", static_cast<int>(text.size()), text.data(),
                                      0, false, nullptr);
    } else if (topic.rfind("v1/devices/me/attributes/request/", 0) == 0) {
        // The device API: {"sharedKeys":"k1,k2"} answered with {"shared":{..}} on .../response/{id}.
        if (!j.is_object() || !j.contains("sharedKeys") || !j["sharedKeys"].is_string()) {
            violation(cid, topic + R"(: expected {"sharedKeys":"key,.."})");
            return;
        }
        json shared = json::object();
        std::stringstream keys(j["sharedKeys"].get<std::string>());
        for (std::string k; std::getline(keys, k, ',');) {
            if (g.own_shared.contains(k)) shared[k] = g.own_shared[k];
        }
        const std::string text = json{{"shared", shared}}.dump();
        const std::string to =
            "v1/devices/me/attributes/response/" + topic.substr(std::strlen("v1/devices/me/attributes/request/"));
        mosquitto_broker_publish_copy(cid, to.c_str(), static_cast<int>(text.size()), text.data(), 0, false, nullptr);
    } else if (topic == "v1/gateway/telemetry") {
        if (!j.is_object()) violation(cid, "v1/gateway/telemetry: expected {\"Device\":[{\"ts\",\"values\"}..]}");
    }
}

void legacy_message(const char* cid, const std::string& topic, const std::string& payload) {
    if (topic != "$dp") return;
    if (payload.size() < 3 || (payload[0] != 1 && payload[0] != 3)) {
        violation(cid, "$dp payload must start with type byte 1 or 3");
        return;
    }
    const std::size_t len = (static_cast<unsigned char>(payload[1]) << 8) | static_cast<unsigned char>(payload[2]);
    if (len != payload.size() - 3)
        violation(cid,
                  "$dp length header " + std::to_string(len) + " but body is " + std::to_string(payload.size() - 3));
    const json body = json::parse(payload.substr(3), nullptr, false);
    if (body.is_discarded()) {
        violation(cid, "$dp body is not JSON");
        return;
    }
    // Type 1: "at" has whole seconds; the platform keeps one value per stream and second.
    if (payload[0] == 1 && body.is_object() && body.contains("datastreams") && body["datastreams"].is_array()) {
        for (const auto& st : body["datastreams"]) {
            if (!st.is_object() || !st.contains("datapoints") || !st["datapoints"].is_array()) continue;
            std::set<std::string> seconds;
            for (const auto& dp : st["datapoints"]) {
                if (dp.is_object() && dp.contains("at") && dp["at"].is_string() &&
                    !seconds.insert(dp["at"].get<std::string>()).second) {
                    violation(cid, "$dp type 1: two values of stream " + st.value("id", "?") + " at " +
                                       dp["at"].get<std::string>() + " (at has whole seconds)");
                }
            }
        }
    }
}

int on_message(int, void* event_data, void*) {
    auto* ed = static_cast<mosquitto_evt_message*>(event_data);
    const char* cid = mosquitto_client_id(ed->client);
    const char* u = mosquitto_client_username(ed->client);
    const std::string topic = ed->topic ? ed->topic : "";
    if (!g.observer_user.empty() && u && g.observer_user == u) {
        // ThingsBoard: a shared attribute of the gateway device set on the platform is kept, as
        // the platform keeps it, for the gateway's attributes/request after a reconnect.
        if (g.platform == "thingsboard" && topic == "v1/devices/me/attributes") {
            const json j =
                json::parse(std::string(static_cast<const char*>(ed->payload), ed->payloadlen), nullptr, false);
            if (j.is_object()) g.own_shared.update(j);
        }
        // A topology change made on the platform (the test plays the console): subList is the
        // whole topology afterwards. The gateway's client id is its device name.
        const std::string change = "/thing/sub/topo/change";
        if (g.platform == "onenet" && topic.size() > change.size() &&
            topic.compare(topic.size() - change.size(), change.size(), change) == 0) {
            const auto p1 = topic.find('/', 5), p2 = topic.find('/', p1 + 1);
            const std::string gw = topic.substr(p1 + 1, p2 - p1 - 1);
            const json j =
                json::parse(std::string(static_cast<const char*>(ed->payload), ed->payloadlen), nullptr, false);
            if (j.is_object() && j.contains("params") && j["params"].is_object() && j["params"].contains("subList") &&
                j["params"]["subList"].is_array()) {
                auto& topo = g.topology[gw];
                topo.clear();
                for (const auto& e : j["params"]["subList"]) {
                    if (e.is_object()) topo.insert(e.value("productID", "") + "/" + e.value("deviceName", ""));
                }
                save_state();
            }
        }
        // Legacy OneNET delivers $creq commands to the device without a subscription.
        if (g.platform == "legacy" && topic.rfind("$creq/", 0) == 0) {
            for (const auto& c : g.legacy_clients) {
                mosquitto_broker_publish_copy(c.c_str(), topic.c_str(), static_cast<int>(ed->payloadlen), ed->payload,
                                              0, false, nullptr);
            }
        }
        return MOSQ_ERR_SUCCESS;
    }
    const std::string payload(static_cast<const char*>(ed->payload), ed->payloadlen);
    if (!g.record_file.empty()) {
        // What the platform received, written before the broker acknowledges it; immune to
        // subscribers that miss messages while the broker restarts.
        timespec ts{};
        clock_gettime(CLOCK_REALTIME, &ts);
        std::string text = payload;
        if (g.platform == "legacy") {  // binary frames (a length header may hold NUL bytes): as hex
            static const char* const digits = "0123456789abcdef";
            text.clear();
            for (unsigned char c : payload) {
                text += digits[c >> 4];
                text += digits[c & 15];
            }
        }
        if (FILE* f = std::fopen(g.record_file.c_str(), "a")) {
            std::fprintf(f, "%ld.%09ld %s %s\n", static_cast<long>(ts.tv_sec), ts.tv_nsec, topic.c_str(), text.c_str());
            std::fclose(f);
        }
    }
    if (g.platform == "onenet" && topic.find("/thing/") != std::string::npos) thing_model_message(cid, topic, payload);
    if (g.platform == "legacy") legacy_message(cid, topic, payload);
    if (g.platform == "aiot") aiot_message(cid, topic, payload);
    if (g.platform == "thingsboard") thingsboard_message(cid, topic, payload);
    if (g.platform == "onenet" && topic.size() > 13 && topic.compare(topic.size() - 13, 13, "/dp/post/json") == 0)
        datapoints_message(cid, topic, payload);
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
        } else if (k == "state") {
            g.state_file = v;
            std::ifstream in(v);
            std::string gw, sub;
            while (in >> gw >> sub) g.topology[gw].insert(sub);
        } else if (k == "record") {
            g.record_file = v;
        } else if (k == "platform") {
            g.platform = v;
        } else if (k == "rate") {
            g.rate = std::stod(v);
        } else if (k == "busy") {
            g.busy_every = std::stol(v);
        } else if (k == "unknown_property") {
            g.unknown_property = v;
        } else if (k == "observer") {
            auto colon = v.find(':');
            g.observer_user = v.substr(0, colon);
            g.observer_password = colon == std::string::npos ? "" : v.substr(colon + 1);
        }
    }
    mosquitto_callback_register(id, MOSQ_EVT_BASIC_AUTH, on_auth, nullptr, nullptr);
    mosquitto_callback_register(id, MOSQ_EVT_ACL_CHECK, on_acl, nullptr, nullptr);
    mosquitto_callback_register(id, MOSQ_EVT_MESSAGE, on_message, nullptr, nullptr);
    return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void*, struct mosquitto_opt*, int) {
    mosquitto_callback_unregister(g.id, MOSQ_EVT_BASIC_AUTH, on_auth, nullptr);
    mosquitto_callback_unregister(g.id, MOSQ_EVT_ACL_CHECK, on_acl, nullptr);
    mosquitto_callback_unregister(g.id, MOSQ_EVT_MESSAGE, on_message, nullptr);
    return MOSQ_ERR_SUCCESS;
}

}  // extern "C"
