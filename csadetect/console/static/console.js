// EU Centre review console: keyboard shortcuts, the two-step reveal of evidence and its automatic
// re-blur, the break reminder. No framework, nothing loaded from outside (CSP: self only).
(function () {
  "use strict";

  const body = document.body;
  const page = body.dataset.page;
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";
  const $ = (sel) => document.querySelector(sel);
  const $$ = (sel) => Array.from(document.querySelectorAll(sel));

  function post(url) {
    return fetch(url, {
      method: "POST", credentials: "same-origin", cache: "no-store",
      headers: { "X-CSRF-Token": csrf, "Accept": "application/json" },
    });
  }

  // ------------------------------------------------------------------ session timeout
  // The server ends an idle session; a page left open (with evidence on it) goes too.
  if (body.dataset.loggedIn === "yes") {
    const idle = parseInt(body.dataset.idleSeconds || "900", 10);
    setTimeout(() => { window.location.href = "/login?expired=1"; }, idle * 1000 + 1000);
  }

  // ------------------------------------------------------------------ overlays
  const help = $("#help");
  const breakBox = $("#break");
  function openHelp() { if (help) help.classList.remove("hidden"); }
  function closeHelp() { if (help) help.classList.add("hidden"); }
  $$("[data-open-help]").forEach((b) => b.addEventListener("click", openHelp));
  $$("[data-close-help]").forEach((b) => b.addEventListener("click", closeHelp));

  function showBreak(count) {
    if (!breakBox) return;
    const c = $("#break-count");
    if (c && count !== undefined) c.textContent = String(count);
    breakBox.classList.remove("hidden");
    const exp = $("#exposure");
    if (exp) exp.classList.add("due");
  }
  $$("[data-break-continue]").forEach((b) => b.addEventListener("click", async () => {
    const r = await post("/break");
    if (r.ok) {
      breakBox.classList.add("hidden");
      const exp = $("#exposure");
      if (exp) exp.classList.remove("due");
      window.location.reload();
    }
  }));

  // ------------------------------------------------------------------ queue
  const rows = $$("#queue tbody tr[data-href]");
  let selected = rows.length ? 0 : -1;
  function select(i) {
    if (!rows.length) return;
    selected = Math.max(0, Math.min(rows.length - 1, i));
    rows.forEach((r, j) => r.classList.toggle("selected", j === selected));
    rows[selected].scrollIntoView({ block: "nearest" });
  }
  if (page === "queue" && rows.length) select(0);
  rows.forEach((r, i) => r.addEventListener("click", (e) => {
    if (e.target.closest("a")) return;
    select(i);
    window.location.href = r.dataset.href;
  }));
  const filters = $("#filters");
  if (filters) {
    filters.querySelectorAll("select").forEach((s) => s.addEventListener("change", () => filters.submit()));
  }

  // ------------------------------------------------------------------ reveal
  const panel = $("#evidence-panel");
  const revealBtn = $("#reveal");
  const reblurBtn = $("#reblur");
  const colourBtn = $("#colour");
  const countdown = $("#countdown");
  const holder = $("#clear-holder");
  const blurred = $("#blurred");
  const hint = $("#reveal-hint");
  let armTimer = null, blurTimer = null, tickTimer = null, revealed = false;
  let greyscale = true;

  function disarm() {
    if (!revealBtn) return;
    revealBtn.classList.remove("armed");
    revealBtn.innerHTML = 'Reveal evidence <kbd>r</kbd>';
    clearTimeout(armTimer);
    armTimer = null;
  }

  function reblur() {
    clearTimeout(blurTimer);
    clearInterval(tickTimer);
    blurTimer = tickTimer = null;
    if (!revealed) return;
    revealed = false;
    if (holder) {
      holder.querySelectorAll("img, video").forEach((el) => { el.removeAttribute("src"); if (el.load) el.load(); });
      holder.replaceChildren();
      holder.classList.add("hidden");
    }
    if (blurred) blurred.classList.remove("hidden");
    $$(".bubble-text").forEach((el) => {
      if (el.dataset.placeholder !== undefined) {
        const span = document.createElement("span");
        span.className = "redacted";
        span.setAttribute("aria-label", "hidden text");
        span.textContent = el.dataset.placeholder;
        el.replaceChildren(span);
        delete el.dataset.placeholder;
      }
      el.classList.remove("revealed");
    });
    if (countdown) { countdown.classList.add("hidden"); countdown.textContent = ""; }
    if (reblurBtn) reblurBtn.classList.add("hidden");
    if (colourBtn) colourBtn.classList.add("hidden");
    if (revealBtn) revealBtn.classList.remove("hidden");
    if (hint) hint.classList.remove("hidden");
    if (panel) panel.dataset.state = "blurred";
  }

  function startTimer(seconds) {
    let left = seconds;
    if (countdown) { countdown.classList.remove("hidden"); countdown.textContent = `blurs again in ${left} s`; }
    tickTimer = setInterval(() => {
      left -= 1;
      if (countdown) countdown.textContent = `blurs again in ${Math.max(0, left)} s`;
    }, 1000);
    blurTimer = setTimeout(reblur, seconds * 1000);
  }

  function setExposure(n) {
    const c = $("#exposure-count");
    if (c) c.textContent = String(n);
  }

  async function doReveal() {
    disarm();
    const r = await post(revealBtn.dataset.url);
    let data = {};
    try { data = await r.json(); } catch (e) { data = {}; }
    if (r.status === 409 && data.error === "break_due") { showBreak(data.exposures); return; }
    if (r.status === 401) { window.location.href = "/login?expired=1"; return; }
    if (!r.ok) { alert(data.error || "The evidence cannot be revealed."); return; }
    setExposure(data.exposures);
    revealed = true;
    if (panel) panel.dataset.state = "revealed";
    revealBtn.classList.add("hidden");
    if (hint) hint.classList.add("hidden");
    if (reblurBtn) reblurBtn.classList.remove("hidden");
    if (data.kind === "image" || data.kind === "video") {
      const el = document.createElement(data.kind === "image" ? "img" : "video");
      el.id = "clear-evidence";
      if (data.kind === "image") el.alt = "Revealed evidence";
      else { el.controls = true; el.muted = true; }
      el.src = data.url;
      holder.classList.toggle("greyscale", greyscale);
      holder.replaceChildren(el);
      holder.classList.remove("hidden");
      if (blurred) blurred.classList.add("hidden");
      if (colourBtn) colourBtn.classList.remove("hidden");
    } else {
      const t = await fetch(data.url, { credentials: "same-origin", cache: "no-store", headers: { "Accept": "application/json" } });
      if (!t.ok) { reblur(); alert("The evidence link expired: reveal again."); return; }
      const texts = await t.json();
      const byIndex = new Map((texts.messages || []).map((m) => [String(m.index), m.text]));
      $$(".bubble-text").forEach((el) => {
        const text = byIndex.get(el.dataset.index);
        if (text === undefined) return;
        const span = el.querySelector(".redacted");
        el.dataset.placeholder = span ? span.textContent : "";
        el.textContent = text;  // text, never HTML
        el.classList.add("revealed");
      });
    }
    startTimer(data.seconds || 10);
    if (data.break_due) showBreak(data.exposures);
  }

  function arm() {
    if (!revealBtn || revealed) return;
    if (revealBtn.classList.contains("armed")) { doReveal(); return; }
    revealBtn.classList.add("armed");
    revealBtn.textContent = "Click again to reveal (recorded)";
    armTimer = setTimeout(disarm, 4000);
  }

  if (revealBtn) revealBtn.addEventListener("click", arm);
  if (reblurBtn) reblurBtn.addEventListener("click", reblur);
  function toggleColour() {
    if (!revealed || !holder) return;
    greyscale = !greyscale;
    holder.classList.toggle("greyscale", greyscale);
    if (colourBtn) colourBtn.innerHTML = (greyscale ? "Colour" : "Greyscale") + " <kbd>g</kbd>";
  }
  if (colourBtn) colourBtn.addEventListener("click", toggleColour);
  // leaving the tab or window blurs at once
  document.addEventListener("visibilitychange", () => { if (document.hidden) reblur(); });
  window.addEventListener("pagehide", reblur);

  // ------------------------------------------------------------------ verdict form
  const reason = $("#reason");
  function filterReasons() {
    if (!reason) return;
    const chosen = $('input[name="verdict"]:checked');
    const v = chosen ? chosen.value : null;
    reason.querySelectorAll("optgroup").forEach((g) => {
      const on = !v || g.dataset.verdict === v;
      g.disabled = !on;
      g.hidden = !on;
    });
    const opt = reason.selectedOptions[0];
    if (opt && opt.dataset.verdict && v && opt.dataset.verdict !== v) reason.value = "";
  }
  $$('input[name="verdict"]').forEach((r) => r.addEventListener("change", filterReasons));
  filterReasons();
  function chooseVerdict(v) {
    const r = $(`#v-${v}`);
    if (!r || r.disabled) return;
    r.checked = true;
    filterReasons();
    if (reason) reason.focus();
  }

  // ------------------------------------------------------------------ keys
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const tag = (e.target.tagName || "").toLowerCase();
    const typing = tag === "input" || tag === "textarea" || tag === "select" || e.target.isContentEditable;
    if (e.key === "Escape") {
      closeHelp();
      reblur();
      if (typing) e.target.blur();
      return;
    }
    if (typing) return;
    if (e.key === "?") { openHelp(); e.preventDefault(); return; }
    if (page === "queue") {
      if (e.key === "j") { select(selected + 1); e.preventDefault(); }
      else if (e.key === "k") { select(selected - 1); e.preventDefault(); }
      else if ((e.key === "Enter" || e.key === "o") && selected >= 0) { window.location.href = rows[selected].dataset.href; e.preventDefault(); }
      else if (e.key === "/") { const f = $("#f-detection_type"); if (f) { f.focus(); e.preventDefault(); } }
    } else if (page === "report") {
      if (e.key === "r") { arm(); e.preventDefault(); }
      else if (e.key === "x") { reblur(); }
      else if (e.key === "g") { toggleColour(); }
      else if (e.key === "c") { chooseVerdict("confirmed"); e.preventDefault(); }
      else if (e.key === "u") { chooseVerdict("manifestly_unfounded"); e.preventDefault(); }
      else if (e.key === "i") {
        const d = $("#info-request");
        if (d) { d.open = true; const first = d.querySelector("input[type=checkbox]"); if (first) first.focus(); e.preventDefault(); }
      }
      else if (e.key === "n") { const n = $("#next-link"); if (n) window.location.href = n.getAttribute("href"); }
      else if (e.key === "b") { window.location.href = "/"; }
    }
  });
})();
