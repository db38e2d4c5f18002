/* Dashboard: draws the page from a snapshot, first from the one embedded in the page, then
   from each poll of the JSON endpoint. One rendering path, one set of number formats.

   Every value of a snapshot is data from outside (per-process files, pg_stat_activity):
   it reaches the page only as text (textContent, createTextNode) or as a numeric SVG
   attribute, through el()/svg() below; nothing is ever parsed as HTML.
   A section is one function of the snapshot: window.dashboard.section(fn) adds one. */
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
  var points = [];
  var paused = false;
  var inflight = false;
  var KEEP = 300;
  var DASH = "\u2013";
  var SVG_NS = document.getElementById("gauge").namespaceURI;
  var STATES = [
    ["active", "s-active"], ["idle", "s-idle"], ["idle in transaction", "s-idle-tx"],
    ["idle in transaction (aborted)", "s-aborted"], ["other clients", "s-other"]
  ];
  var LINES = [
    ["requests_per_s", "c-req"], ["new_connections_per_s", "c-new"],
    ["transactions_per_s", "c-xact"], ["errors_5xx_per_s", "c-err"]
  ];

  /* --- number formats (the only ones: the page has no server-side formatting) ------- */
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
  /* A figure as text; a dash for unknown, and for anything that is not a number. */
  function fmt(v, kind) {
    if (v === null || v === undefined || v === "") return DASH;
    if (!kind) return String(v);
    return typeof v === "number" && isFinite(v) ? FORMATS[kind](v) : DASH;
  }
  function text(v) { return v === null || v === undefined || v === "" ? DASH : String(v); }
  function num(v) { return typeof v === "number" && isFinite(v) ? v : 0; }

  /* --- DOM building: text only ------------------------------------------------------- */
  function append(node, children) {
    children.forEach(function (child) {
      if (child === null || child === undefined || child === false) return;
      node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
    });
    return node;
  }
  /* el("td", {className: "x", title: t}, [child, "text", ...]): attributes set as
     properties (text), children appended as nodes or text nodes. */
  function el(tag, props, children) {
    var node = document.createElement(tag);
    Object.keys(props || {}).forEach(function (k) { node[k] = props[k]; });
    return append(node, children || []);
  }
  function svg(tag, attrs, children) {
    var node = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return append(node, children || []);
  }
  function row(values, props) {
    return el("tr", props, values.map(function (v) {
      return v !== null && typeof v === "object" && v.nodeType ? v : el("td", {}, [text(v)]);
    }));
  }
  function fill(selector, rows) {
    var node = document.querySelector(selector);
    node.replaceChildren.apply(node, rows);
  }
  function dig(obj, path) {
    return path.split(".").reduce(function (o, k) { return o === null || o === undefined ? o : o[k]; }, obj);
  }

  /* --- sections ------------------------------------------------------------------------ */
  function deployment(s) {
    var d = s.deployment;
    var line = text(d.server);
    if (d.processes) {
      line += " \u00b7 " + fmt(d.processes, "int") + " process" + (d.processes === 1 ? "" : "es") +
        " \u00d7 " + (d.threads ? fmt(d.threads, "int") : "?") + " thread" + (d.threads === 1 ? "" : "s");
    }
    document.getElementById("deployment").textContent =
      line + " \u00b7 backend " + text(d.backend_mode || d.engine) + " \u00b7 host " + text(d.host);
  }

  function fields(s) {
    root.querySelectorAll("[data-f]").forEach(function (node) {
      node.textContent = fmt(dig(s, node.dataset.f), node.dataset.k);
    });
  }

  function warnings(s) {
    fill("#warnings", s.warnings.map(function (w) {
      return el("li", { className: ["info", "warning", "critical"].indexOf(w.level) >= 0 ? w.level : "warning" },
        [text(w.message)]);
    }));
  }

  function processRow(p) {
    var st = p.connections.states;
    var pool = p.backend && p.backend["default"];
    var name = text(p.key) + (p.answering ? " \u2605" : "") + (p.alive === false ? " (not running)" : "");
    return row([
      el("td", { className: "name", title: text(p.key) }, [name]),
      fmt(p.uptime_seconds, "secs"),
      el("td", {}, [fmt(p.restarts, "int"), p.replaced_pid ? el("small", {}, [" (was " + text(p.replaced_pid) + ")"]) : null]),
      fmt(p.rss_bytes, "bytes"), fmt(p.cpu_percent, "cpu"),
      el("td", {}, [fmt(p.busy_threads, "int") + " / " + fmt(p.threads, "int") + " ", el("small", {}, [fmt(p.saturation, "pct")])]),
      fmt(p.requests.total, "int"), fmt(p.requests.per_s, "rate"), fmt(p.requests.errors_5xx, "int"),
      fmt(p.new_connections.total, "int"), fmt(p.new_connections.per_s, "rate"),
      fmt(p.requests_per_new_connection, "ratio"),
      el("td", { className: "conns" }, [fmt(p.connections.total, "int")]),
      fmt(st.active, "int"), fmt(st.idle, "int"), fmt(st["idle in transaction"], "int"),
      fmt(st["idle in transaction (aborted)"], "int"),
      fmt(p.connections.oldest_seconds, "secs"), fmt(p.connections.longest_transaction_seconds, "secs"),
      fmt(p.connections.blocked, "int"),
      pool ? fmt(pool.in_use, "int") + " / " + fmt(pool.idle, "int") + " / " + fmt(pool.max_size, "int") : DASH
    ], { className: (p.alive === false ? "gone" : "") + (p.answering ? " answering" : "") });
  }

  function processesTable(s) { fill("#processes tbody", s.processes.map(processRow)); }

  function connectionsTable(s) {
    document.getElementById("queries-note").hidden = s.queries_visible;
    var rows = [];
    s.processes.forEach(function (p) {
      p.connections.list.forEach(function (c) {
        var slug = typeof c.state === "string" ? c.state.replace(/[^a-z]+/g, "-").replace(/-$/, "") : "";
        rows.push(row([
          text(p.key), text(c.backend_pid), text(c.state), fmt(c.age_seconds, "secs"),
          fmt(c.state_seconds, "secs"), fmt(c.transaction_seconds, "secs"), fmt(c.query_seconds, "secs"),
          text(c.wait_event), c.blocked_by.length ? c.blocked_by.map(String).join(", ") : DASH,
          el("td", { className: "query" }, [s.queries_visible ? String(c.query || "") : el("i", {}, ["redacted"])])
        ], { className: "st-" + slug }));
      });
    });
    fill("#connections tbody", rows);
  }

  function othersTable(s) {
    fill("#others tbody", s.other_clients.map(function (o) {
      return row([text(o.application_name), text(o.user), text(o.address), text(o.database),
        fmt(o.total, "int"), fmt(o.states.active, "int"), fmt(o.states["idle in transaction"], "int")]);
    }));
  }

  function exitedTable(s) {
    fill("#exited tbody", s.exited.map(function (e) {
      return row([text(e.host) + ":" + text(e.pid), fmt(e.requests, "int"), fmt(e.seconds_ago, "secs") + " ago"]);
    }));
  }

  /* PgBouncer's side (SHOW POOLS / STATS / CLIENTS); the section is hidden without it. */
  function pgbouncer(s) {
    var b = s.pgbouncer;
    document.getElementById("pgbouncer").hidden = !b;
    if (!b) return;
    document.getElementById("pgbouncer-down").hidden = b.reachable;
    fill("#pgb-hosts tbody", b.hosts.map(function (h) {
      var per = h.by_process.map(function (p) { return text(p.pid) + ": " + fmt(p.clients, "int"); }).join(", ");
      return row([text(h.host), fmt(h.processes, "int"), fmt(h.clients, "int"), fmt(h.active, "int"),
        fmt(h.waiting, "int"), el("td", { className: "query" }, [per])]);
    }));
    fill("#pgb-pools tbody", b.pools.map(function (p) {
      return row([text(p.database), text(p.user), text(p.pool_mode), fmt(p.clients_active, "int"),
        fmt(p.clients_waiting, "int"), fmt(p.servers_active, "int"), fmt(p.servers_idle, "int"),
        fmt(p.max_wait_seconds, "secs")]);
    }));
  }

  function gauge(s) {
    var db = s.database;
    var scale = num(db.budget) > 0 ? 300 / db.budget : 0;
    var site = Math.min(300, num(db.site_connections) * scale);
    var other = Math.min(300 - site, num(db.other_connections) * scale);
    var rects = document.querySelectorAll("#gauge rect");
    rects[1].setAttribute("width", site);
    rects[2].setAttribute("x", site);
    rects[2].setAttribute("width", other);
  }

  /* --- SVG charts: x = last 5 minutes, y = 0..max ------------------------------------ */
  var W = 600, H = 200, L = 44, R = 8, T = 8, B = 20;
  function frame(max) {
    var out = [];
    [0, 0.5, 1].forEach(function (f) {
      var y = T + (H - T - B) * (1 - f);
      out.push(svg("line", { "class": "grid", x1: L, x2: W - R, y1: y, y2: y }));
      out.push(svg("text", { x: L - 4, y: y + 4, "text-anchor": "end" },
        [fmt(max * f, Number.isInteger(max * f) ? "int" : "rate")]));
    });
    out.push(svg("text", { x: L, y: H - 4 }, ["\u22125 min"]));
    out.push(svg("text", { x: W - R, y: H - 4, "text-anchor": "end" }, ["now"]));
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
      return Math.max.apply(null, LINES.map(function (l) { return num(p[l[0]]); }));
    }))));
    var at = xy(now, max);
    var lines = LINES.map(function (line) {
      var d = "", pen = "M";
      points.forEach(function (p) {
        if (typeof p[line[0]] !== "number") { pen = "M"; return; }
        d += pen + at(p.t, p[line[0]]) + " ";
        pen = "L";
      });
      return svg("path", { "class": "line " + line[1], d: d });
    });
    var throughput = document.getElementById("chart-throughput");
    throughput.replaceChildren.apply(throughput, frame(max).concat(lines));
    var totals = points.map(function (p) {
      return STATES.reduce(function (sum, s) { return sum + num(p.states[s[0]]); }, 0);
    });
    var smax = niceMax(Math.max.apply(null, [0].concat(totals)));
    var sat = xy(now, smax);
    var base = points.map(function () { return 0; });
    var areas = points.length < 2 ? [] : STATES.map(function (s) {
      var top = points.map(function (p, i) { return base[i] + num(p.states[s[0]]); });
      var d = "M" + points.map(function (p, i) { return sat(p.t, top[i]); }).join(" L") + " L" +
        points.slice().reverse().map(function (p, i) { return sat(p.t, base[points.length - 1 - i]); }).join(" L") + "Z";
      base = top;
      return svg("path", { "class": s[1], d: d });
    });
    var states = document.getElementById("chart-states");
    states.replaceChildren.apply(states, frame(smax).concat(areas));
  }

  /* The sections, in page order; window.dashboard.section(fn) appends one. */
  var SECTIONS = [deployment, fields, warnings, pgbouncer, gauge, charts, processesTable,
    connectionsTable, othersTable, exitedTable];

  function render(s) {
    SECTIONS.forEach(function (section) { section(s); });
    document.dispatchEvent(new CustomEvent("dashboard:snapshot", { detail: s }));  /* advice.js */
    updated.dataset.t = s.generated_at;
    tickAge();
  }

  /* --- polling ------------------------------------------------------------------------ */
  function banner(which, detail) {
    ["logged-out", "forbidden", "database", "server"].forEach(function (name) {
      var node = document.getElementById("banner-" + name);
      node.hidden = name !== which;
      var span = node.querySelector(".detail");
      if (span) span.textContent = name === which && detail ? "(" + detail + ")" : "";
    });
    figures.classList.toggle("stale", Boolean(which));
  }
  function merge(fresh) {
    var last = points.length ? points[points.length - 1].t : 0;
    fresh.forEach(function (p) {
      if (p && typeof p.t === "number" && p.t > last && p.states) { points.push(p); last = p.t; }
    });
    points = points.filter(function (p) { return p.t >= last - KEEP; });
  }
  function show(body) {
    snap = body;
    merge(body.history);
    render(body);
  }
  function poll() {
    if (paused || document.hidden || inflight) return;
    inflight = true;
    var since = points.length ? "?since=" + points[points.length - 1].t : "";
    fetch(api + since, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (r) {
        return r.json().catch(function () { return null; }).then(function (body) {
          if (r.ok && body) {
            banner(null);
            show(body);
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

  window.dashboard = {
    el: el, svg: svg, row: row, fill: fill, fmt: fmt, text: text,
    section: function (fn) { SECTIONS.push(fn); fn(snap); }
  };

  pauseButton.addEventListener("click", function () {
    paused = !paused;
    showStatus();
    if (!paused) poll();
  });
  document.addEventListener("visibilitychange", function () {
    showStatus();
    if (!document.hidden) poll();
  });
  show(snap);
  showStatus();
  setInterval(poll, every);
  setInterval(tickAge, 1000);
})();
