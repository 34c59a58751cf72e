#include "web.hpp"

#include <httplib.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

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
<h2>Buses</h2><table id="buses"><thead><tr><th>bus</th><th>driver</th><th>worker</th><th>device</th><th>unit</th><th>state</th><th>polls</th><th>ok</th><th>timeouts</th><th>errors</th></tr></thead><tbody></tbody></table>
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
    (rt.buses||[]).forEach(b=>(b.devices||[]).forEach(d=>buses.push([[b.name,b.driver,b.alive?'alive':'stuck',d.name,d.unit,d.state,d.polls,d.ok,d.timeouts,d.errors],[null,null,b.alive?'ok':'bad',null,null,d.state==='ok'?'ok':'bad']])));
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
    httplib::Server server;
    std::thread thread;
};

WebServer::WebServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

WebServer::~WebServer() {
    impl_->server.stop();
    if (impl_->thread.joinable()) impl_->thread.join();
}

std::unique_ptr<WebServer> WebServer::start(const std::string& host, int port, WebSources sources, std::string* error) {
    auto impl = std::make_unique<Impl>();
    auto& s = impl->server;
    s.new_task_queue = [] { return new httplib::ThreadPool(2); };  // a status page, not a web farm
    s.set_keep_alive_max_count(20);
    s.set_read_timeout(5, 0);
    s.set_write_timeout(5, 0);
    // Read-only: anything but GET and HEAD is refused before routing, on every path.
    s.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
        if (req.method == "GET" || req.method == "HEAD") return httplib::Server::HandlerResponse::Unhandled;
        res.status = 405;
        res.set_header("Allow", "GET, HEAD");
        res.set_content("method not allowed: this server is read-only (GET, HEAD)\n", "text/plain");
        return httplib::Server::HandlerResponse::Handled;
    });
    auto from = std::make_shared<WebSources>(std::move(sources));
    s.Get("/",
          [](const httplib::Request&, httplib::Response& res) { res.set_content(kPage, "text/html; charset=utf-8"); });
    s.Get("/metrics", [from](const httplib::Request&, httplib::Response& res) {
        bool ok = false;
        std::string text = read_file(from->data_dir + "/metrics.prom", &ok);
        if (from->device_metrics) text += from->device_metrics();
        text += "fieldlink_build_info{version=\"" FIELDLINK_VERSION "\"} 1\n";
        res.set_content(text, "text/plain; version=0.0.4; charset=utf-8");
    });
    s.Get("/api/status", [from](const httplib::Request&, httplib::Response& res) {
        bool ok = false;
        std::string text = read_file(from->data_dir + "/status.json", &ok);
        if (!ok) {
            res.status = 503;
            res.set_content("{\"error\":\"no status yet\"}\n", "application/json");
            return;
        }
        res.set_content(text, "application/json");
    });
    s.Get("/api/runtime", [from](const httplib::Request&, httplib::Response& res) {
        res.set_content(from->runtime_json ? from->runtime_json() : std::string("{}"), "application/json");
    });
    s.Get("/healthz", [from](const httplib::Request&, httplib::Response& res) {
        const std::string problem = from->unhealthy ? from->unhealthy() : std::string();
        res.status = problem.empty() ? 200 : 503;
        nlohmann::json body{{"healthy", problem.empty()}};
        if (!problem.empty()) body["problem"] = problem;
        res.set_content(body.dump() + "\n", "application/json");
    });
    errno = 0;
    if (!s.bind_to_port(host, port)) {
        const int e = errno;
        if (error) {
            *error = "gateway.http: cannot listen on " + host + ":" + std::to_string(port) +
                     (e ? std::string(": ") + std::strerror(e) : std::string(" (address in use or not on this host)"));
        }
        return nullptr;
    }
    auto* server = &impl->server;
    impl->thread = std::thread([server] {
        pthread_setname_np(pthread_self(), "fl-http");
        server->listen_after_bind();
    });
    return std::unique_ptr<WebServer>(new WebServer(std::move(impl)));
}

}  // namespace fieldlink
