import Foundation
import Hummingbird
import KVRouteCore
import KVRouteDataLayer
import NIOCore

extension Gateway {
    /// `/dashboard/data`: everything the dashboard page draws, as JSON.
    func dashboardData() -> [String: Any] {
        let summary = dashboard.summary()
        let engines: [[String: Any]] = pool.members.map { m in
            let metrics = m.metrics
            let queries = metrics?.prefixQueries ?? 0
            let hits = metrics?.prefixHits ?? 0
            return [
                "address": m.address.description,
                "healthy": pool.isHealthy(m),
                "prefix_queries": queries,
                "prefix_hits": hits,
                "hit_rate": queries > 0 ? hits / queries : NSNull(),
                "kv_usage": metrics?.kvCacheUsage ?? NSNull(),
                "waiting": metrics?.waiting ?? NSNull(),
                "running": metrics?.running ?? NSNull(),
                "in_flight": router.scheduler.inFlight(m.address),
                "routed_total": summary.routedTotal[m.address] ?? 0,
                "routed_series": summary.series.map { $0[m.address] ?? 0 },
            ]
        }
        return [
            "mode": router.policyName,
            "engines": engines,
            "stickiness": summary.stickiness ?? NSNull(),
            "sessions": summary.sessionsSeen,
            "decision_p50_us": summary.decisionP50.map { $0 * 1e6 } ?? NSNull(),
            "decision_p99_us": summary.decisionP99.map { $0 * 1e6 } ?? NSNull(),
            "window_seconds": DashboardState.window,
        ]
    }

    /// The dashboard shows per-engine prefix-cache hits, routed counts and in-flight counts
    /// second by second: enough for a client to tell whether a prompt prefix it sends was
    /// cached, i.e. what other clients sent. So it is the operator's: off without an
    /// explain secret, and only for requests presenting it (`?key=SECRET` or the
    /// `x-kvroute-explain` header). Anyone else gets 404, as for an unknown route.
    func dashboardAllowed(_ req: Request) -> Bool {
        if explanationAllowed(req.headers) { return true }
        guard let secret = configuration.explainSecret, let key = req.uri.queryParameters.get("key") else { return false }
        return OperatorSecret.matches(key, secret)
    }

    func addDashboardRoutes(_ router: Router<BasicRequestContext>) {
        router.get("/dashboard") { req, _ in
            guard self.dashboardAllowed(req) else { throw GatewayError(.notFound, "Not Found: GET /dashboard") }
            return Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(string: DashboardPage.html)))
        }
        router.get("/dashboard/data") { req, _ in
            guard self.dashboardAllowed(req) else { throw GatewayError(.notFound, "Not Found: GET /dashboard/data") }
            let data = (try? JSONSerialization.data(withJSONObject: self.dashboardData(), options: [.sortedKeys])) ?? Data()
            return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
    }
}

/// The self-contained dashboard page: no external scripts, fonts or styles.
enum DashboardPage {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>kvroute dashboard</title>
<style>
  :root { --bg:#0f1419; --panel:#171d24; --text:#e6e6e6; --muted:#8a96a3; --ok:#3fb950; --bad:#f85149; --accent:#58a6ff; }
  * { box-sizing: border-box; }
  body { margin:0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; background:var(--bg); color:var(--text); }
  header { padding:16px 24px; display:flex; align-items:baseline; gap:16px; border-bottom:1px solid #222b35; }
  header h1 { font-size:18px; margin:0; }
  header .muted { color:var(--muted); }
  main { padding:16px 24px; display:grid; gap:16px; }
  .cards { display:grid; grid-template-columns: repeat(auto-fit, minmax(180px, 1fr)); gap:12px; }
  .card { background:var(--panel); border-radius:8px; padding:12px 16px; }
  .card .label { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
  .card .value { font-size:26px; font-weight:600; margin-top:4px; }
  table { width:100%; border-collapse:collapse; background:var(--panel); border-radius:8px; overflow:hidden; }
  th, td { padding:8px 12px; text-align:right; border-bottom:1px solid #222b35; font-variant-numeric: tabular-nums; }
  th:first-child, td:first-child { text-align:left; }
  th { color:var(--muted); font-weight:500; font-size:12px; text-transform:uppercase; }
  .dot { display:inline-block; width:9px; height:9px; border-radius:50%; margin-right:8px; }
  .bar { height:6px; background:#26303b; border-radius:3px; overflow:hidden; margin-top:4px; }
  .bar > span { display:block; height:100%; background:var(--accent); }
  .panel { background:var(--panel); border-radius:8px; padding:12px 16px; }
  .panel h2 { font-size:13px; color:var(--muted); margin:0 0 8px; font-weight:500; text-transform:uppercase; }
  svg text { fill: var(--muted); font-size: 11px; }
  .legend span { margin-right:16px; color:var(--muted); }
  #error { color:var(--bad); }
</style>
</head>
<body>
<header><h1>kvroute</h1><span class="muted">policy <b id="mode">–</b></span><span class="muted" id="updated">connecting…</span><span id="error"></span></header>
<main>
  <section class="cards">
    <div class="card"><div class="label">Prefix-cache hit rate</div><div class="value" id="hit-rate">–</div></div>
    <div class="card"><div class="label">Session stickiness</div><div class="value" id="stickiness">–</div></div>
    <div class="card"><div class="label">Decision p50 / p99</div><div class="value" id="decision">–</div></div>
    <div class="card"><div class="label">Healthy engines</div><div class="value" id="healthy">–</div></div>
  </section>
  <table id="engines">
    <thead><tr><th>Engine</th><th>Hit rate</th><th>Routed</th><th>In flight</th><th>Running</th><th>Waiting</th><th>KV usage</th></tr></thead>
    <tbody></tbody>
  </table>
  <section class="panel">
    <h2>Requests routed per second, per engine (last 2 minutes)</h2>
    <svg id="chart" viewBox="0 0 900 220" width="100%" height="220" preserveAspectRatio="none"></svg>
    <div class="legend" id="legend"></div>
  </section>
</main>
<script>
const colors = ["#58a6ff","#3fb950","#d29922","#f778ba","#a371f7","#79c0ff","#ffa657","#56d4dd"];
const pct = v => v == null ? "–" : (100 * v).toFixed(1) + "%";
const us = v => v == null ? "–" : (v < 1000 ? v.toFixed(0) + " µs" : (v / 1000).toFixed(2) + " ms");
function cell(engine, field, text) {
  const td = document.createElement("td");
  td.dataset.engine = engine; td.dataset.field = field; td.textContent = text; return td;
}
function render(d) {
  document.getElementById("mode").textContent = d.mode;
  let q = 0, h = 0, healthy = 0;
  for (const e of d.engines) { q += e.prefix_queries; h += e.prefix_hits; if (e.healthy) healthy++; }
  document.getElementById("hit-rate").textContent = q > 0 ? pct(h / q) : "–";
  document.getElementById("stickiness").textContent = pct(d.stickiness);
  document.getElementById("decision").textContent = us(d.decision_p50_us) + " / " + us(d.decision_p99_us);
  document.getElementById("healthy").textContent = healthy + " / " + d.engines.length;
  const tbody = document.querySelector("#engines tbody");
  tbody.replaceChildren();
  d.engines.forEach((e, i) => {
    const tr = document.createElement("tr");
    tr.dataset.engine = e.address;
    const name = document.createElement("td");
    const dot = document.createElement("span");
    dot.className = "dot"; dot.style.background = e.healthy ? colors[i % colors.length] : "#f85149";
    name.append(dot, e.address + (e.healthy ? "" : " (down)"));
    tr.append(name,
      cell(e.address, "hit_rate", pct(e.hit_rate)),
      cell(e.address, "routed_total", String(e.routed_total)),
      cell(e.address, "in_flight", String(e.in_flight)),
      cell(e.address, "running", e.running == null ? "–" : String(e.running)),
      cell(e.address, "waiting", e.waiting == null ? "–" : String(e.waiting)));
    const kv = cell(e.address, "kv_usage", pct(e.kv_usage));
    const bar = document.createElement("div"); bar.className = "bar";
    const fill = document.createElement("span"); fill.style.width = (100 * (e.kv_usage || 0)) + "%";
    bar.append(fill); kv.append(bar); tr.append(kv);
    tbody.append(tr);
  });
  drawChart(d);
}
function drawChart(d) {
  const svg = document.getElementById("chart"), W = 900, H = 200, n = d.window_seconds;
  let max = 1;
  for (const e of d.engines) for (const v of e.routed_series) max = Math.max(max, v);
  const parts = [];
  for (let g = 0; g <= 4; g++) {
    const y = H - g * H / 4 + 10;
    parts.push(`<line x1="40" x2="${W}" y1="${y}" y2="${y}" stroke="#222b35"/>`, `<text x="0" y="${y + 4}">${Math.round(g * max / 4)}</text>`);
  }
  d.engines.forEach((e, i) => {
    const pts = e.routed_series.map((v, k) => `${40 + k * (W - 40) / (n - 1)},${H - v * H / max + 10}`).join(" ");
    parts.push(`<polyline fill="none" stroke="${colors[i % colors.length]}" stroke-width="2" points="${pts}"/>`);
  });
  svg.innerHTML = parts.join("");
  document.getElementById("legend").innerHTML = d.engines.map((e, i) => `<span style="color:${colors[i % colors.length]}">■ ${e.address}</span>`).join("");
}
async function tick() {
  try {
    const r = await fetch("/dashboard/data" + location.search, {cache: "no-store"});
    if (!r.ok) throw new Error("HTTP " + r.status);
    render(await r.json());
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.getElementById("error").textContent = "";
  } catch (err) {
    document.getElementById("error").textContent = "cannot reach the gateway: " + err.message;
  }
}
tick();
setInterval(tick, 1000);
</script>
</body>
</html>
"""#
}
