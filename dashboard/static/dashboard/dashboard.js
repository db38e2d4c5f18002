/* Dashboard: polls the JSON snapshot and redraws figures, tables and SVG charts in place. */
(function () {
  "use strict";
  var root = document.getElementById("dashboard");
  var api = root.dataset.api;
  var every = Number(root.dataset.interval) * 1000;
  var figures = document.getElementById("figures");
  var pauseButton = document.getElementById("pause");
  var statusText = document.getElementById("status");
  var updated = document.querySelector("#updated time");
  var snap = JSON.parse(document.getElementById("dashboard-data").textContent);
  var points = snap.history.slice();
  var paused = false;
  var inflight = false;
  var KEEP = 300;
  var DASH = "\u2013";
  var STATES = [
    ["active", "s-active"], ["idle", "s-idle"], ["idle in transaction", "s-idle-tx"],
    ["idle in transaction (aborted)", "s-aborted"], ["other clients", "s-other"]
  ];
  var LINES = [
    ["requests_per_s", "c-req"], ["new_connections_per_s", "c-new"],
    ["transactions_per_s", "c-xact"], ["errors_5xx_per_s", "c-err"]
  ];

  function fixed(v, digits) {
    return v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }
  function secs(v) {
    if (v < 1) return (v * 1000).toFixed(0) + " ms";
    if (v < 120) return v.toFixed(1) + " s";
    if (v < 7200) return (v / 60).toFixed(0) + " min";
    return (v / 3600).toFixed(1) + " h";
  }
  var FORMATS = {
    int: function (v) { return fixed(Math.trunc(v), 0); },
    rate: function (v) { return fixed(v, 1); },
    pct: function (v) { return (v * 100).toFixed(0) + "%"; },
    cpu: function (v) { return v.toFixed(0) + "%"; },
    bytes: function (v) { return fixed(v / 1048576, 1) + " MiB"; },
    ms: function (v) { return fixed(v * 1000, 1) + " ms"; },
    secs: secs,
    ratio: function (v) { return fixed(v, 1); }
  };
  /* Same rules as the dfmt template filter, so the first paint and the refreshes agree. */
  function fmt(v, kind) {
    if (v === null || v === undefined || v === "") return DASH;
    return kind ? FORMATS[kind](v) : String(v);
  }
  function esc(v) {
    return String(v === null || v === undefined ? DASH : v).replace(/[&<>"']/g, function (c) {
      return "&#" + c.charCodeAt(0) + ";";
    });
  }
  function dig(obj, path) {
    return path.split(".").reduce(function (o, k) { return o === null || o === undefined ? o : o[k]; }, obj);
  }
  function cells(values) {
    return values.map(function (v) { return "<td>" + v + "</td>"; }).join("");
  }

  function deployment(d) {
    var text = d.server;
    if (d.processes) {
      text += " \u00b7 " + d.processes + " process" + (d.processes === 1 ? "" : "es") + " \u00d7 " +
        (d.threads || "?") + " thread" + (d.threads === 1 ? "" : "s");
    }
    return text + " \u00b7 backend " + (d.backend_mode || d.engine) + " \u00b7 host " + d.host;
  }

  function processRow(p) {
    var st = p.connections.states;
    var pool = p.backend && p.backend["default"];
    var name = esc(p.key) + (p.answering ? " \u2605" : "") + (p.alive === false ? " (not running)" : "");
    var restarts = fmt(p.restarts, "int") + (p.replaced_pid ? " <small>(was " + p.replaced_pid + ")</small>" : "");
    var cls = (p.alive ? "" : "gone") + (p.answering ? " answering" : "");
    return "<tr class=\"" + cls + "\"><td class=\"name\" title=\"" + esc(p.key) + "\">" + name + "</td>" + cells([
      fmt(p.uptime_seconds, "secs"), restarts, fmt(p.rss_bytes, "bytes"), fmt(p.cpu_percent, "cpu"),
      fmt(p.busy_threads, "int") + " / " + fmt(p.threads, "int") + " <small>" + fmt(p.saturation, "pct") + "</small>",
      fmt(p.requests.total, "int"), fmt(p.requests.per_s, "rate"), fmt(p.requests.errors_5xx, "int"),
      fmt(p.new_connections.total, "int"), fmt(p.new_connections.per_s, "rate"),
      fmt(p.requests_per_new_connection, "ratio")
    ]) + "<td class=\"conns\">" + p.connections.total + "</td>" + cells([
      st.active, st.idle, st["idle in transaction"], st["idle in transaction (aborted)"],
      fmt(p.connections.oldest_seconds, "secs"), fmt(p.connections.longest_transaction_seconds, "secs"),
      p.connections.blocked + " blocked",
      pool ? pool.in_use + " / " + pool.idle + " / " + fmt(pool.max_size) : DASH
    ]) + "</tr>";
  }

  function connectionRows(s) {
    return s.processes.map(function (p) {
      return p.connections.list.map(function (c) {
        var query = s.queries_visible ? esc(c.query || "") : "<i>redacted</i>";
        var slug = (c.state || "").replace(/[^a-z]+/g, "-").replace(/-$/, "");
        return "<tr class=\"st-" + slug + "\">" + cells([
          esc(p.key), c.backend_pid, esc(c.state), fmt(c.age_seconds, "secs"), fmt(c.state_seconds, "secs"),
          fmt(c.transaction_seconds, "secs"), fmt(c.query_seconds, "secs"), esc(c.wait_event),
          c.blocked_by.length ? c.blocked_by.join(", ") : DASH
        ]) + "<td class=\"query\">" + query + "</td></tr>";
      }).join("");
    }).join("");
  }

  function render(s) {
    root.querySelectorAll("[data-f]").forEach(function (el) {
      var f = el.dataset.f;
      el.textContent = f === "deployment" ? deployment(s.deployment) : fmt(dig(s, f), el.dataset.k);
    });
    document.getElementById("warnings").innerHTML = s.warnings.map(function (w) {
      return "<li class=\"" + esc(w.level) + "\">" + esc(w.message) + "</li>";
    }).join("");
    document.querySelector("#processes tbody").innerHTML = s.processes.map(processRow).join("");
    document.querySelector("#connections tbody").innerHTML = connectionRows(s);
    document.querySelector("#others tbody").innerHTML = s.other_clients.map(function (o) {
      return "<tr>" + cells([esc(o.application_name || DASH), esc(o.user), esc(o.address), esc(o.database),
        o.total, o.states.active, o.states["idle in transaction"]]) + "</tr>";
    }).join("");
    document.querySelector("#exited tbody").innerHTML = s.exited.map(function (e) {
      return "<tr>" + cells([esc(e.host + ":" + e.pid), fmt(e.requests, "int"), fmt(e.seconds_ago, "secs") + " ago"]) + "</tr>";
    }).join("");
    pgbouncer(s.pgbouncer);
    document.dispatchEvent(new CustomEvent("dashboard:snapshot", { detail: s }));  /* advice.js */
    gauge(s.database);
    charts();
    updated.dataset.t = s.generated_at;
    tickAge();
  }

  /* PgBouncer's side (SHOW POOLS / STATS / CLIENTS); the section is hidden without it. */
  function pgbouncer(b) {
    var section = document.getElementById("pgbouncer");
    section.hidden = !b;
    if (!b) return;
    document.getElementById("pgbouncer-down").hidden = b.reachable;
    document.querySelector("#pgb-hosts tbody").innerHTML = b.hosts.map(function (h) {
      var per = h.by_process.map(function (p) { return p.pid + ": " + p.clients; }).join(", ");
      return "<tr>" + cells([esc(h.host), h.processes, h.clients, h.active, h.waiting]) +
        "<td class=\"query\">" + esc(per) + "</td></tr>";
    }).join("");
    document.querySelector("#pgb-pools tbody").innerHTML = b.pools.map(function (p) {
      return "<tr>" + cells([esc(p.database), esc(p.user), esc(p.pool_mode), p.clients_active,
        p.clients_waiting, p.servers_active, p.servers_idle, fmt(p.max_wait_seconds, "secs")]) + "</tr>";
    }).join("");
  }

  function gauge(db) {
    var scale = db.budget > 0 ? 300 / db.budget : 0;
    var site = Math.min(300, db.site_connections * scale);
    var other = Math.min(300 - site, db.other_connections * scale);
    var rects = document.querySelectorAll("#gauge rect");
    rects[1].setAttribute("width", site);
    rects[2].setAttribute("x", site);
    rects[2].setAttribute("width", other);
  }

  /* --- SVG charts: x = last 5 minutes, y = 0..max ------------------------------------ */
  var W = 600, H = 200, L = 44, R = 8, T = 8, B = 20;
  function frame(max) {
    var out = "";
    [0, 0.5, 1].forEach(function (f) {
      var y = T + (H - T - B) * (1 - f);
      out += "<line class=\"grid\" x1=\"" + L + "\" x2=\"" + (W - R) + "\" y1=\"" + y + "\" y2=\"" + y + "\"/>";
      out += "<text x=\"" + (L - 4) + "\" y=\"" + (y + 4) + "\" text-anchor=\"end\">" + fmt(max * f, Number.isInteger(max * f) ? "int" : "rate") + "</text>";
    });
    out += "<text x=\"" + L + "\" y=\"" + (H - 4) + "\">\u22125 min</text>";
    out += "<text x=\"" + (W - R) + "\" y=\"" + (H - 4) + "\" text-anchor=\"end\">now</text>";
    return out;
  }
  function xy(now, max) {
    return function (t, v) {
      var x = L + (W - L - R) * (1 - (now - t) / KEEP);
      var y = T + (H - T - B) * (1 - v / max);
      return x.toFixed(1) + "," + y.toFixed(1);
    };
  }
  function niceMax(v) {
    if (!(v > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    return [1, 2, 2.5, 5, 10].map(function (m) { return m * p; }).find(function (m) { return m >= v; });
  }
  function charts() {
    var now = points.length ? points[points.length - 1].t : Date.now() / 1000;
    var max = niceMax(Math.max.apply(null, [0].concat(points.map(function (p) {
      return Math.max.apply(null, LINES.map(function (l) { return p[l[0]] || 0; }));
    }))));
    var at = xy(now, max);
    var svg = document.getElementById("chart-throughput");
    svg.innerHTML = frame(max) + LINES.map(function (line) {
      var d = "", pen = "M";
      points.forEach(function (p) {
        if (p[line[0]] === null || p[line[0]] === undefined) { pen = "M"; return; }
        d += pen + at(p.t, p[line[0]]) + " ";
        pen = "L";
      });
      return "<path class=\"line " + line[1] + "\" d=\"" + d + "\"/>";
    }).join("");
    var totals = points.map(function (p) {
      return STATES.reduce(function (sum, s) { return sum + (p.states[s[0]] || 0); }, 0);
    });
    var smax = niceMax(Math.max.apply(null, [0].concat(totals)));
    var sat = xy(now, smax);
    var base = points.map(function () { return 0; });
    var areas = STATES.map(function (s) {
      if (points.length < 2) return "";
      var top = points.map(function (p, i) { return base[i] + (p.states[s[0]] || 0); });
      var d = "M" + points.map(function (p, i) { return sat(p.t, top[i]); }).join(" L") + " L" +
        points.slice().reverse().map(function (p, i) { return sat(p.t, base[points.length - 1 - i]); }).join(" L") + "Z";
      base = top;
      return "<path class=\"" + s[1] + "\" d=\"" + d + "\"/>";
    }).join("");
    document.getElementById("chart-states").innerHTML = frame(smax) + areas;
  }

  /* --- polling ------------------------------------------------------------------------ */
  function banner(which, detail) {
    ["logged-out", "forbidden", "database", "server"].forEach(function (name) {
      var el = document.getElementById("banner-" + name);
      el.hidden = name !== which;
      var span = el.querySelector(".detail");
      if (span) span.textContent = name === which && detail ? "(" + detail + ")" : "";
    });
    figures.classList.toggle("stale", Boolean(which));
  }
  function merge(fresh) {
    var last = points.length ? points[points.length - 1].t : 0;
    fresh.forEach(function (p) { if (p.t > last) { points.push(p); last = p.t; } });
    points = points.filter(function (p) { return p.t >= last - KEEP; });
  }
  function poll() {
    if (paused || document.hidden || inflight) return;
    inflight = true;
    var since = points.length ? "?since=" + points[points.length - 1].t : "";
    fetch(api + since, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (r) {
        return r.json().catch(function () { return null; }).then(function (body) {
          if (r.ok && body) {
            snap = body;
            merge(body.history);
            banner(null);
            render(body);
          } else if (r.status === 403 && body && body.error === "not_authenticated") {
            banner("logged-out");
          } else if (r.status === 403) {
            banner("forbidden");
          } else if (r.status === 503) {
            banner("database", body && body.message);
          } else {
            banner("server", "HTTP " + r.status);
          }
        });
      })
      .catch(function (e) { banner("server", e.message); })
      .then(function () { inflight = false; });
  }
  function showStatus() {
    var hidden = document.hidden;
    statusText.textContent = paused ? "paused" : hidden ? "paused while the tab is hidden" : "live, every " + every / 1000 + " s";
    statusText.classList.toggle("paused", paused || hidden);
    pauseButton.textContent = paused ? "Resume" : "Pause";
    pauseButton.setAttribute("aria-pressed", String(paused));
  }
  function tickAge() {
    var t = Number(updated.dataset.t) * 1000;
    var age = Math.max(0, Math.round((Date.now() - t) / 1000));
    updated.textContent = new Date(t).toLocaleTimeString() + " (" + age + " s ago)";
  }
  pauseButton.addEventListener("click", function () {
    paused = !paused;
    showStatus();
    if (!paused) poll();
  });
  document.addEventListener("visibilitychange", function () {
    showStatus();
    if (!document.hidden) poll();
  });
  render(snap);
  showStatus();
  setInterval(poll, every);
  setInterval(tickAge, 1000);
})();
