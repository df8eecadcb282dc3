// Small DOM helpers shared by the pages.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k === "html") el.innerHTML = v;
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function toast(msg, kind = "info") {
  const t = document.getElementById("toast");
  t.textContent = msg;
  t.className = "toast " + kind;
  t.hidden = false;
  clearTimeout(toast._t);
  toast._t = setTimeout(() => (t.hidden = true), kind === "error" ? 8000 : 4000);
}

const nf = new Intl.NumberFormat("zh-CN", { maximumFractionDigits: 2 });
export function fmt(v, digits) {
  if (v === null || v === undefined || v === "" || (typeof v === "number" && !Number.isFinite(v))) return "—";
  if (typeof v === "number") {
    if (digits !== undefined) return new Intl.NumberFormat("zh-CN", { maximumFractionDigits: digits, minimumFractionDigits: digits }).format(v);
    return nf.format(v);
  }
  if (typeof v === "boolean") return v ? "是" : "否";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

/** A table from rows and column specs [{key, label, fmt?, cls?}]. */
export function table(rows, columns, { empty = "没有数据", caption, rowClass } = {}) {
  const t = h("table", { class: "grid" });
  if (caption) t.append(h("caption", {}, caption));
  t.append(h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.label)))));
  const body = h("tbody");
  if (!rows.length) body.append(h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, empty)));
  for (const r of rows) {
    const tr = h("tr", { class: rowClass ? rowClass(r) : undefined });
    for (const c of columns) {
      const v = typeof c.key === "function" ? c.key(r) : r[c.key];
      const content = c.fmt ? c.fmt(v, r) : fmt(v);
      tr.append(h("td", { class: c.cls }, content instanceof Node ? content : String(content)));
    }
    body.append(tr);
  }
  t.append(body);
  return t;
}

export function badge(text, kind = "") {
  return h("span", { class: "badge " + kind }, text);
}

export function syntheticBadge(on) {
  return on ? badge("合成数据", "synthetic") : null;
}

export function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", {}, title), ...children);
}

export function areaText(m2) {
  if (!Number.isFinite(m2)) return "—";
  return `${fmt(m2, 1)} ㎡ · ${fmt(m2 / 1e4, 4)} 公顷 · ${fmt(m2 / (10000 / 15), 2)} 亩`;
}

/** What the other user changed, from a 409 response's ``data`` (records, renewal units, tasks). */
export function conflictView(data) {
  const d = data || {};
  const cur = d.current || {};
  const rows = [
    ["修改人", d.updated_by],
    ["修改时间", d.updated_at],
    ["当前版本", d.current_version ?? d.version],
    ["你所依据的版本", d.expected_version],
  ];
  if (cur.stage) rows.push(["当前阶段", cur.stage]);
  if (Array.isArray(d.fields_differing) && d.fields_differing.length) rows.push(["与你的修改不同的字段", d.fields_differing.join("、")]);
  if (Array.isArray(cur.progress) && cur.progress.length) {
    const p = cur.progress[cur.progress.length - 1];
    rows.push(["对方最近一次报送", `${p.reported_on} · ${p.progress_pct}% · ${p.note || ""} (${p.reporter || ""})`]);
  }
  for (const a of d.other_changes || []) rows.push(["其后的修改", `${a.action} · ${a.actor} · ${a.ts || a.at || ""}`]);
  return h(
    "div",
    { class: "conflict", id: "conflict" },
    h("h4", {}, "他人的修改"),
    table(
      rows.filter(([, v]) => v !== undefined && v !== null && v !== "").map(([k, v]) => ({ k, v })),
      [
        { key: "k", label: "项目" },
        { key: "v", label: "内容" },
      ],
    ),
  );
}
