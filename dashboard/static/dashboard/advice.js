/* The "What to change" panel: redrawn from every snapshot that dashboard.js renders (it
   dispatches "dashboard:snapshot"). Built with createElement and textContent only: the
   advice text holds figures from pg_stat_activity and must never be parsed as HTML. */
(function () {
  "use strict";
  function draw(advice) {
    var section = document.getElementById("advice");
    var list = document.getElementById("advice-list");
    if (!section || !list) return;
    var lines = Array.isArray(advice) ? advice : [];
    while (list.firstChild) list.removeChild(list.firstChild);
    lines.forEach(function (line) {
      var item = document.createElement("li");
      item.className = "info";
      item.setAttribute("data-rule", String(line.rule));
      item.textContent = String(line.message);
      list.appendChild(item);
    });
    section.hidden = lines.length === 0;
  }
  document.addEventListener("dashboard:snapshot", function (event) {
    draw(event.detail && event.detail.advice);
  });
})();
