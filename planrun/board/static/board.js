// planrun board: keeps the page live through server-sent events. No framework, no build.
// The server sends the live part of the page as HTML it rendered and escaped ("page"
// events) and log lines as JSON strings ("log" events), which are added as text only.
"use strict";
(function () {
  const source = document.body.dataset.events;
  const live = document.getElementById("live");
  const conn = document.getElementById("conn");
  const log = document.getElementById("log");
  const logAttempt = document.getElementById("log-attempt");
  let shownAt = Date.now();

  function duration(seconds) {
    if (seconds < 10) return seconds.toFixed(1) + "s";
    const whole = Math.floor(seconds);
    if (whole < 60) return whole + "s";
    const pad = (n) => String(n).padStart(2, "0");
    if (whole < 3600) return Math.floor(whole / 60) + "m" + pad(whole % 60) + "s";
    return Math.floor(whole / 3600) + "h" + pad(Math.floor((whole % 3600) / 60)) + "m";
  }

  // Running tasks' elapsed time ticks here; the server sends a page only when it changes.
  function tick() {
    const since = (Date.now() - shownAt) / 1000;
    for (const el of document.querySelectorAll("[data-elapsed]")) {
      el.textContent = duration(parseFloat(el.dataset.elapsed) + since);
    }
  }

  function say(state) {
    if (conn) {
      conn.textContent = state;
      conn.dataset.state = state;
    }
  }

  function addLines(message) {
    if (!log) return;
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    if (message.reset) log.textContent = "";
    if (logAttempt && message.title) logAttempt.textContent = message.title;
    if (message.lines.length) log.append(document.createTextNode(message.lines.join("\n") + "\n"));
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  if (!source) return;
  const events = new EventSource(source);
  events.addEventListener("open", () => say("live"));
  events.addEventListener("error", () => say(events.readyState === EventSource.CLOSED ? "closed" : "reconnecting"));
  events.addEventListener("page", (event) => {
    live.innerHTML = event.data; // rendered and escaped by the server's templates
    const titled = live.querySelector("[data-title]");
    if (titled) document.title = titled.dataset.title;
    shownAt = Date.now();
    tick();
  });
  events.addEventListener("log", (event) => addLines(JSON.parse(event.data)));
  setInterval(tick, 1000);
})();
