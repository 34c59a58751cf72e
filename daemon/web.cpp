#include "web.hpp"

#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <shared_mutex>
#include <sstream>

#include "core/figures.hpp"
#include "core/log.hpp"

#ifndef FIELDLINK_VERSION
#define FIELDLINK_VERSION "0.0.0"
#endif

namespace fieldlink {

namespace {

std::string read_file(const std::string& path, bool* ok) {
    std::ifstream f(path, std::ios::binary);
    *ok = static_cast<bool>(f);
    std::ostringstream s;
    if (f) s << f.rdbuf();
    return s.str();
}

// The status page: plain HTML and a little script that reads /api/status and /api/runtime every
// second. Everything shown is set as text (never as HTML), so a device or point name cannot
// inject markup.
const char* const kPage = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fieldlink status</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em;margin:0 0 .3em} h2{font-size:1.05em;margin:1.2em 0 .4em}
table{border-collapse:collapse;font-size:.9em} td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3} .bad{color:#b00020;font-weight:600} .ok{color:#137333} .held{color:#777}
#updated{color:#777;font-size:.85em} pre{background:#f7f7f7;padding:.5em;font-size:.8em;white-space:pre-wrap}
</style></head><body>
<h1>fieldlink gateway</h1><div id="updated">loading...</div>
<h2>Buses</h2><table id="buses"><thead><tr><th>bus</th><th>driver</th><th>worker</th><th>line busy</th><th>device</th><th>unit</th><th>state</th><th>polls</th><th>ok</th><th>timeouts</th><th>errors</th></tr></thead><tbody></tbody></table>
<h2>Devices</h2><table id="devices"><thead><tr><th>device</th><th>bus</th><th>cloud</th><th>point</th><th>value</th><th>quality</th><th>age</th></tr></thead><tbody></tbody></table>
<h2>Sessions</h2><table id="sessions"><thead><tr><th>session</th><th>cloud</th><th>connected</th><th>queued</th><th>sent/s</th><th>sent</th><th>dropped</th><th>writes ok/failed</th></tr></thead><tbody></tbody></table>
<h2>Store</h2><div id="store"></div>
<h2>Recent warnings and errors</h2><pre id="problems"></pre>
<script>
function row(tbody, cells, cls){const tr=document.createElement('tr');cells.forEach((c,i)=>{const td=document.createElement('td');td.textContent=(c===null||c===undefined)?'':String(c);if(cls&&cls[i])td.className=cls[i];tr.appendChild(td);});tbody.appendChild(tr);}
function fill(id, rows){const tb=document.querySelector('#'+id+' tbody');tb.replaceChildren();rows.forEach(r=>row(tb,r[0],r[1]));}
async function refresh(){
  try{
    const [st, rt] = await Promise.all([fetch('/api/status').then(r=>r.json()), fetch('/api/runtime').then(r=>r.json())]);
    const buses=[];
    (rt.buses||[]).forEach(b=>(b.devices||[]).forEach(d=>buses.push([[b.name,b.driver,b.alive?'alive':'stuck',Math.round(100*(b.utilisation||0))+'%',d.name,d.unit,d.state,d.polls,d.ok,d.timeouts,d.errors],[null,null,b.alive?'ok':'bad',(b.utilisation||0)>0.9?'bad':null,null,null,d.state==='ok'?'ok':'bad']])));
    fill('buses', buses);
    const devs=[];
    (st.devices||[]).forEach(d=>d.points.forEach(p=>devs.push([[d.name,d.bus,d.cloud,p.name,p.value,p.quality,p.age_s===undefined?'':p.age_s.toFixed(1)+' s'],[null,null,null,null,'value',p.quality==='fresh'?'ok':'held']])));
    fill('devices', devs);
    fill('sessions',(st.sessions||[]).map(s=>[[s.name,s.cloud,s.connected?'yes':'no',s.queued_on_disk+s.queued_in_memory,s.samples_sent_per_s.toFixed(1),s.samples_sent,s.samples_dropped_budget+s.samples_dropped_memory,s.writes_ok+'/'+s.writes_failed],[null,null,s.connected?'ok':'bad']]));
    const so=st.store; document.getElementById('store').textContent=so?(so.queued_batches+' batch(es) queued, '+so.bytes_used+' bytes, oldest '+so.oldest_queued_age_s.toFixed(1)+' s, '+so.dropped_budget+' dropped by the budget, '+so.corrupt+' corrupt'):'memory only';
    document.getElementById('problems').textContent=(rt.problems||[]).join('')||'none';
    document.getElementById('updated').textContent='updated '+new Date(st.time_ms).toLocaleTimeString();
  }catch(e){document.getElementById('updated').textContent='cannot reach the gateway: '+e;}
}
refresh(); setInterval(refresh, 1000);
</script></body></html>
)HTML";

}  // namespace

struct WebServer::Impl {
    MHD_Daemon* daemon = nullptr;
    std::string host;
    int port = 0;
    // The handlers hold it shared while they read the sources; pause() takes it exclusively.
    std::shared_mutex mutex;
    std::shared_ptr<const WebSources> sources;  // null while paused (a reload)
    std::atomic<std::uint64_t> refused{0};
    std::atomic<unsigned> open{0};
    std::atomic<bool> out_of_fds{false};
    std::atomic<bool> at_limit{false};
    std::shared_ptr<spdlog::logger> log = core::logger("http");
};

namespace {

struct Reply {
    unsigned status = 200;
    std::string body;
    const char* type = "text/plain; charset=utf-8";
    const char* allow = nullptr;
};

void answer(WebServer::Impl& impl, const std::string& url, Reply& r) {
    std::shared_lock<std::shared_mutex> lock(impl.mutex);
    const auto from = impl.sources;
    if (!from) {
        r.status = 503;
        r.type = "application/json";
        r.body = "{\"error\":\"reloading\"}\n";
        return;
    }
    if (url == "/") {
        r.type = "text/html; charset=utf-8";
        r.body = kPage;
    } else if (url == "/metrics") {
        bool ok = false;
        r.body = read_file(from->data_dir + "/metrics.prom", &ok);
        if (from->device_metrics) r.body += from->device_metrics();
        r.body += core::metric_header("fieldlink_http_connections", core::MetricType::gauge,
                                      "Connections open to this HTTP server.") +
                  core::metric_line("fieldlink_http_connections", "", std::uint64_t{impl.open.load()});
        r.body += core::metric_header("fieldlink_http_refused_total", core::MetricType::counter,
                                      "Connections refused: past the server's or one address's limit.") +
                  core::metric_line("fieldlink_http_refused_total", "", std::uint64_t{impl.refused.load()});
        r.body += core::metric_header("fieldlink_build_info", core::MetricType::gauge, "The gateway's version.") +
                  core::metric_line("fieldlink_build_info", "version=\"" FIELDLINK_VERSION "\"", std::uint64_t{1});
        r.type = "text/plain; version=0.0.4; charset=utf-8";
    } else if (url == "/api/status") {
        bool ok = false;
        r.type = "application/json";
        r.body = read_file(from->data_dir + "/status.json", &ok);
        if (!ok) {
            r.status = 503;
            r.body = "{\"error\":\"no status yet\"}\n";
        }
    } else if (url == "/api/runtime") {
        r.type = "application/json";
        r.body = from->runtime_json ? from->runtime_json() : std::string("{}");
    } else if (url == "/healthz") {
        const std::string problem = from->unhealthy ? from->unhealthy() : std::string();
        r.status = problem.empty() ? 200 : 503;
        nlohmann::json body{{"healthy", problem.empty()}};
        if (!problem.empty()) body["problem"] = problem;
        r.type = "application/json";
        r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    } else {
        r.status = 404;
        r.body = "not found\n";
    }
}

MHD_Result on_request(void* cls, MHD_Connection* c, const char* url, const char* method, const char*, const char*,
                      std::size_t*, void**) {
    auto& impl = *static_cast<WebServer::Impl*>(cls);
    Reply r;
    const std::string m = method ? method : "";
    if (m != "GET" && m != "HEAD") {
        // Read-only: refused before routing, on every path, without reading a body.
        r.status = 405;
        r.allow = "GET, HEAD";
        r.body = "method not allowed: this server is read-only (GET, HEAD)\n";
    } else {
        answer(impl, url ? url : "", r);
    }
    MHD_Response* res = MHD_create_response_from_buffer(r.body.size(), r.body.data(), MHD_RESPMEM_MUST_COPY);
    if (!res) return MHD_NO;
    MHD_add_response_header(res, MHD_HTTP_HEADER_CONTENT_TYPE, r.type);
    if (r.allow) MHD_add_response_header(res, MHD_HTTP_HEADER_ALLOW, r.allow);
    const MHD_Result rc = MHD_queue_response(c, r.status, res);
    MHD_destroy_response(res);
    return rc;
}

void on_connection(void* cls, MHD_Connection*, void**, MHD_ConnectionNotificationCode what) {
    auto& impl = *static_cast<WebServer::Impl*>(cls);
    if (what == MHD_CONNECTION_NOTIFY_STARTED) {
        static thread_local bool named = false;
        if (!named) {
            pthread_setname_np(pthread_self(), "fl-http");
            named = true;
        }
        const unsigned now_open = ++impl.open;
        if (impl.out_of_fds.exchange(false)) impl.log->info("HTTP: accepting connections again");
        if (now_open < WebServer::kMaxConnections / 2 && impl.at_limit.exchange(false)) {
            impl.log->info("HTTP: below the connection limit again; {} connection(s) refused so far",
                           impl.refused.load());
        }
    } else {
        --impl.open;
    }
}

// libmicrohttpd's own messages: the two that matter become one line per episode and a counter.
void on_message(void* cls, const char* fmt, va_list ap) {
    auto& impl = *static_cast<WebServer::Impl*>(cls);
    char text[512];
    std::vsnprintf(text, sizeof text, fmt, ap);
    if (std::strstr(text, "connection limit")) {
        ++impl.refused;
        if (!impl.at_limit.exchange(true)) {
            impl.log->warn(
                "HTTP: {} connections open (or {} from one address): further ones are refused and counted "
                "(fieldlink_http_refused_total)",
                WebServer::kMaxConnections, WebServer::kMaxPerIp);
        }
    } else if (std::strstr(text, "resource limit")) {
        if (!impl.out_of_fds.exchange(true)) {
            impl.log->error(
                "HTTP: out of file descriptors at {} connection(s): new connections wait (the sessions "
                "and buses keep theirs)",
                impl.open.load());
        }
    } else {
        std::string line(text);
        while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
        impl.log->debug("HTTP: {}", line);
    }
}

// The listening socket, made here so that a failure says why (address in use, not on this host).
int listen_on(const std::string& host, int port, std::string* error) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* found = nullptr;
    const std::string where = host + ":" + std::to_string(port);
    if (const int rc =
            ::getaddrinfo(host.empty() ? nullptr : host.c_str(), std::to_string(port).c_str(), &hints, &found);
        rc != 0) {
        *error = "gateway.http: cannot listen on " + where + ": " + ::gai_strerror(rc);
        return -1;
    }
    int fd = -1, err = 0;
    for (addrinfo* a = found; a && fd < 0; a = a->ai_next) {
        fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        const int one = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, 64) != 0) {
            err = errno;
            ::close(fd);
            fd = -1;
        }
    }
    ::freeaddrinfo(found);
    if (fd < 0) *error = "gateway.http: cannot listen on " + where + ": " + std::strerror(err);
    return fd;
}

}  // namespace

WebServer::WebServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

WebServer::~WebServer() {
    if (impl_->daemon) MHD_stop_daemon(impl_->daemon);  // joins its thread; closes every socket
}

void WebServer::pause() {
    std::unique_lock<std::shared_mutex> lock(impl_->mutex);  // waits for the requests being answered
    impl_->sources.reset();
}

void WebServer::resume(WebSources sources) {
    auto next = std::make_shared<const WebSources>(std::move(sources));
    std::unique_lock<std::shared_mutex> lock(impl_->mutex);
    impl_->sources = std::move(next);
}

const std::string& WebServer::host() const {
    return impl_->host;
}

int WebServer::port() const {
    return impl_->port;
}

std::unique_ptr<WebServer> WebServer::start(const std::string& host, int port, WebSources sources, std::string* error) {
    auto impl = std::make_unique<Impl>();
    impl->host = host;
    impl->port = port;
    impl->sources = std::make_shared<const WebSources>(std::move(sources));
    std::string err;
    const int fd = listen_on(host, port, &err);
    if (fd < 0) {
        if (error) *error = err;
        return nullptr;
    }
    Impl* cls = impl.get();
    impl->daemon =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, nullptr, nullptr,
                         &on_request, cls, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, kMaxConnections,
                         MHD_OPTION_PER_IP_CONNECTION_LIMIT, kMaxPerIp, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                         kHeaderBytes, MHD_OPTION_CONNECTION_TIMEOUT, kIdleSeconds, MHD_OPTION_NOTIFY_CONNECTION,
                         &on_connection, cls, MHD_OPTION_EXTERNAL_LOGGER, &on_message, cls, MHD_OPTION_END);
    if (!impl->daemon) {
        ::close(fd);
        if (error) *error = "gateway.http: cannot start the HTTP server on " + host + ":" + std::to_string(port);
        return nullptr;
    }
    return std::unique_ptr<WebServer>(new WebServer(std::move(impl)));
}

}  // namespace fieldlink
