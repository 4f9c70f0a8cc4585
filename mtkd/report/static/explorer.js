// The static disagreement explorer: reads the JSON that mtkd.report.static_explorer embeds, filters rows, renders one
// example. Filters, causes and sort orders were computed in Python (mtkd.explorer); this only selects.
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("mtkd-data").textContent);
  const ROOT = document.getElementById("mtkd-explorer");
  const PAGE = 20;                                   // rows of the matching list per page
  const COLORS = {human: "#2ca02c", teacher: "#6b6b6b", fuser: "#8c564b", gate: "#9467bd", baseline: "#d08c00",
                  single: "#1f77b4", multi: "#d62728"};
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  const state = {task: null, split: null, method: null, seed: null, region: "any", correctness: "any",
                 category: "any", sort: "disagreement", extra: {}, rows: [], position: 0};

  function el(tag, attrs, html) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (html !== undefined) e.innerHTML = html;
    return e;
  }
  function select(name, label, options) {       // options: [[value, text], ...]
    const wrap = el("label", {}, esc(label));
    const s = el("select", {name: name, "data-filter": name});
    wrap.appendChild(s);
    setOptions(s, options);
    return [wrap, s];
  }
  function setOptions(s, options) {
    s.innerHTML = options.map(([v, t]) => `<option value="${esc(v)}">${esc(t)}</option>`).join("");
  }
  const tasks = [...new Set(DATA.tables.map((t) => t.task))];
  const table = () => DATA.tables.find((t) => t.task === state.task && t.split === state.split);
  const kindOf = (m) => (m === "baseline" ? "baseline" : m.split(":")[0]);

  // ------------------------------------------------------------------ controls
  const controls = el("div", {class: "mtkd-controls"});
  const C = {};
  const add = (name, label, options) => { const [w, s] = select(name, label, options); controls.appendChild(w); C[name] = s; };
  add("task", "task", tasks.map((t) => [t, t]));
  add("split", "split", []);
  add("method", "student", []);
  add("seed", "seed", []);
  add("region", "teachers", [["any", "any"], ...DATA.regions.map((r) => [r, DATA.region_labels[r]]), ["disagree", "any disagreement"]]);
  add("correctness", "student is", [["any", "any"], ["wrong", "wrong"], ["right", "right"]]);
  add("category", "error cause", [["any", "any"], ...DATA.causes.filter((c) => c !== "correct" && c !== "missing").map((c) => [c, DATA.cause_labels[c]])]);
  const extraNames = [];
  for (const t of DATA.tables) for (const f of t.extra_filters) if (!extraNames.includes(f.name)) {
    extraNames.push(f.name);
    add("extra-" + f.name, f.label, [["any", "any"], ...f.options.map((o, i) => [o, f.option_labels[i]])]);
  }
  add("sort", "sort by", DATA.sorts.map((s) => [s, DATA.sort_labels[s]]));
  const pager = el("div", {class: "mtkd-pager"});
  const prev = el("button", {type: "button", "data-action": "prev"}, "&#9664; Prev");
  const next = el("button", {type: "button", "data-action": "next"}, "Next &#9654;");
  const pos = el("input", {type: "number", min: "1", value: "1", "aria-label": "example", "data-filter": "position"});
  const count = el("span", {class: "mtkd-count"});
  pager.append(prev, next, el("span", {}, "example"), pos, count);
  const layout = el("div", {class: "mtkd-layout"});
  const list = el("div", {class: "mtkd-list-wrap"});
  const view = el("div", {class: "mtkd-explorer-view"});
  layout.append(list, view);
  ROOT.innerHTML = "";
  ROOT.append(controls, pager, layout);

  function onTask() {
    const splits = DATA.tables.filter((t) => t.task === state.task).map((t) => t.split);
    setOptions(C.split, splits.map((s) => [s, s]));
    state.split = splits.includes(state.split) ? state.split : splits[0];
    C.split.value = state.split;
    onSplit();
  }
  function onSplit() {
    const t = table();
    setOptions(C.method, t.methods.map((m) => [m, m]));
    const def = t.methods.find((m) => m.startsWith("multi:")) || t.methods[0] || null;
    state.method = t.methods.includes(state.method) ? state.method : def;
    if (state.method !== null) C.method.value = state.method;
    setOptions(C.seed, t.seeds.map((s) => [s, s === "majority" ? "majority over seeds" : "seed " + s]));
    state.seed = t.seeds.includes(state.seed) ? state.seed : t.seeds[0];
    C.seed.value = state.seed;
    for (const name of extraNames) {
      const has = t.extra_filters.some((f) => f.name === name);
      C["extra-" + name].disabled = !has;
      if (!has) { C["extra-" + name].value = "any"; state.extra[name] = "any"; }
    }
    refresh();
  }

  // ------------------------------------------------------------------ filtering (the rows were sorted in Python)
  function refresh() {
    const t = table();
    const order = t.orders[state.sort];
    const m = state.method, s = state.seed;
    const preds = m !== null ? t.preds[m][s] : null, causes = m !== null ? t.causes[m][s] : null;
    const region = state.region, corr = state.correctness, cat = state.category;
    const regionCode = DATA.regions.indexOf(region), catCode = String(DATA.causes.indexOf(cat));
    const extras = t.extra_filters.filter((f) => (state.extra[f.name] || "any") !== "any");
    state.rows = order.filter((p) => {
      if (region === "disagree" ? t.region[p] === 0 : (region !== "any" && t.region[p] !== regionCode)) return false;
      if (corr !== "any" || cat !== "any") {
        if (preds === null) return false;
        const right = preds[p] === t.label[p];
        if (corr === "wrong" && (right || preds[p] < 0)) return false;
        if (corr === "right" && !right) return false;
        if (cat !== "any" && causes[p] !== catCode) return false;
      }
      for (const f of extras) if (f.values[p] !== state.extra[f.name]) return false;
      return true;
    });
    state.position = 0;
    render();
  }

  // ------------------------------------------------------------------ rendering
  const bar = (v, color) => (v < 0 ? '<span class="muted">·</span>' :
    `<span class="bar"><span style="width:${v}%;background:${color}"></span></span> <span class="num">${(v / 100).toFixed(2)}</span>`);
  function probRow(label, kind, probs, y, names, pred, note) {
    const color = COLORS[kind] || "#555";
    if (pred === null && probs) pred = probs.indexOf(Math.max(...probs));     // fused targets: their argmax
    const cells = probs ? probs.map((v) => `<td>${bar(v, color)}</td>`).join("") : names.map(() => '<td class="muted">·</td>').join("");
    const mark = pred === null || pred < 0 ? "" : (pred === y ? '<span class="ok">&#10003;</span>' : '<span class="bad">&#10007;</span>');
    const name = pred === null || pred < 0 ? "&mdash;" : esc(names[pred]);
    return `<tr><td style="white-space:nowrap"><span style="color:${color}">&#9632;</span> ${esc(label)}</td>${cells}` +
           `<td>${name} ${mark}</td><td class="note">${esc(note || "")}</td></tr>`;
  }
  function example(t, p) {
    const C_ = t.label_names.length, K = t.teachers.length, y = t.label[p], names = t.label_names;
    const region = DATA.regions[t.region[p]];
    let h = `<div class="mtkd-explorer-example" data-idx="${t.idx[p]}" data-task="${esc(t.task)}" data-split="${esc(t.split)}">`;
    h += `<div><b>${esc(t.task)}</b> · ${esc(t.split)} · idx <b>${t.idx[p]}</b> · gold <b>${esc(names[y])}</b> · ` +
         `<span class="badge ${region}">${esc(DATA.region_labels[region])}</span> · teacher disagreement (mean pairwise JS) ` +
         `<span class="num">${t.disagreement[p].toFixed(3)}</span> nats</div>`;
    for (const f of t.extra_filters) h += `<div class="note">${esc(f.label)}: ${esc(f.option_labels[f.options.indexOf(f.values[p])])}</div>`;
    for (const f of t.text_fields) h += `<div><span class="field">${esc(f)}</span> <span class="text">${esc(t.texts[f][p])}</span></div>`;
    const head = names.map((n, c) => `<th class="${c === y ? "gold" : ""}">${esc(n)}${c === y ? " (gold)" : ""}</th>`).join("");
    let rows = "";
    if (t.human_probs && t.human_probs[p * C_] >= 0) {
      const lv = t.extra_filters.find((f) => f.name === "human");
      rows += probRow(`humans (${lv ? lv.values[p] : ""} agree)`, "human", t.human_probs.slice(p * C_, (p + 1) * C_), y, names, null);
    }
    for (let k = 0; k < K; k++) {
      const base = (p * K + k) * C_;
      rows += probRow("teacher " + t.teachers[k], "teacher", t.teacher_probs.slice(base, base + C_), y, names, t.teacher_preds[p * K + k]);
    }
    for (const f of t.fusers) rows += probRow("fused: " + f, "fuser", t.fused[f].slice(p * C_, (p + 1) * C_), y, names, null);
    for (const m of t.methods) {
      const pred = t.preds[m][state.seed][p];
      const seeds = t.seeds.filter((s) => s !== "majority");
      const nOk = seeds.filter((s) => t.preds[m][s][p] === y).length, nHave = seeds.filter((s) => t.preds[m][s][p] >= 0).length;
      let note = `${nOk}/${nHave} seeds right`;
      const cause = DATA.causes[Number(t.causes[m][state.seed][p])];
      if (cause !== "correct" && cause !== "missing") note += " · " + DATA.cause_labels[cause];
      rows += probRow((m === state.method ? "▶ " : "") + "student " + m, kindOf(m), null, y, names, pred, note);
    }
    h += `<table><tr><th>source</th>${head}<th>pred</th><th></th></tr>${rows}</table>`;
    h += `<div class="note">student predictions: ${state.seed === "majority" ? "majority over seeds" : "seed " + esc(state.seed)}; ` +
         "bars are probabilities at T = 1, rounded to 0.01 (students: predicted class only)</div>";
    const gateSeed = state.seed === "majority" ? t.seeds[0] : state.seed;
    let gates = "";
    for (const [m, bySeed] of Object.entries(t.gates)) {
      const w = bySeed[gateSeed];
      if (!w || w[p * K] < 0) continue;
      gates += `<tr><td>${esc(m)} (seed ${esc(gateSeed)})</td>` + t.teachers.map((_, k) => `<td>${bar(w[p * K + k], COLORS.gate)}</td>`).join("") + "</tr>";
    }
    if (gates) h += `<div style="margin-top:8px"><b>gate weights over teachers</b></div><table><tr><th>student</th>` +
                    t.teachers.map((n) => `<th>${esc(n)}</th>`).join("") + `</tr>${gates}</table>`;
    return h + "</div>";
  }
  function render() {
    const t = table(), n = state.rows.length;
    prev.disabled = n === 0 || state.position <= 0;
    next.disabled = n === 0 || state.position >= n - 1;
    pos.max = String(Math.max(1, n));
    pos.value = String(n ? state.position + 1 : 1);
    if (n === 0) {
      count.textContent = `0 of ${t.n} examples match`;
      count.setAttribute("data-matching", "0");
      view.innerHTML = `<div class="mtkd-explorer-example mtkd-explorer-empty" data-idx="" data-task="${esc(t.task)}" data-split="${esc(t.split)}">` +
                       "No examples match these filters. Loosen a filter (region, cause, right/wrong) to see examples.</div>";
      list.innerHTML = "";
      return;
    }
    count.textContent = `${state.position + 1} / ${n} matching (${(100 * n / t.n).toFixed(1)}% of ${t.n} in ${t.split})`;
    count.setAttribute("data-matching", String(n));
    view.innerHTML = example(t, state.rows[state.position]);
    const page = Math.floor(state.position / PAGE), start = page * PAGE, pages = Math.ceil(n / PAGE);
    const preds = state.method !== null ? t.preds[state.method][state.seed] : null;
    let rows = "";
    for (let i = start; i < Math.min(n, start + PAGE); i++) {
      const p = state.rows[i], pr = preds ? preds[p] : -1;
      const mark = pr < 0 ? "" : (pr === t.label[p] ? '<span class="ok">&#10003;</span>' : '<span class="bad">&#10007;</span>');
      rows += `<tr class="row${i === state.position ? " current" : ""}" data-row="${i}"><td>${i + 1}</td><td>${t.idx[p]}</td>` +
              `<td>${esc(t.label_names[t.label[p]])}</td><td class="num">${t.disagreement[p].toFixed(3)}</td><td>${mark}</td></tr>`;
    }
    list.innerHTML = `<div class="note">page ${page + 1} of ${pages}</div><table class="mtkd-list"><tr><th>#</th><th>idx</th>` +
                     `<th>gold</th><th>JS</th><th>student</th></tr>${rows}</table>`;
  }
  function go(step) {
    const n = state.rows.length;
    state.position = Math.min(Math.max(0, state.position + step), Math.max(0, n - 1));
    render();
  }

  // ------------------------------------------------------------------ events
  C.task.addEventListener("change", () => { state.task = C.task.value; onTask(); });
  C.split.addEventListener("change", () => { state.split = C.split.value; onSplit(); });
  for (const k of ["method", "seed", "region", "correctness", "category", "sort"]) {
    C[k].addEventListener("change", () => { state[k] = C[k].value; refresh(); });
  }
  for (const name of extraNames) C["extra-" + name].addEventListener("change", () => { state.extra[name] = C["extra-" + name].value; refresh(); });
  prev.addEventListener("click", () => go(-1));
  next.addEventListener("click", () => go(+1));
  pos.addEventListener("change", () => go((parseInt(pos.value, 10) || 1) - 1 - state.position));
  list.addEventListener("click", (ev) => {
    const tr = ev.target.closest("tr.row");
    if (tr) { state.position = Number(tr.getAttribute("data-row")); render(); }
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.target.tagName === "INPUT" || ev.target.tagName === "SELECT") return;
    if (ev.key === "ArrowRight" || ev.key === "j") go(+1);
    if (ev.key === "ArrowLeft" || ev.key === "k") go(-1);
  });
  state.task = tasks[0];
  C.task.value = state.task;
  onTask();
})();
