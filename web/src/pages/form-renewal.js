// 更新单元推进: pick a unit, see the rule findings of each possible move, confirm; 409 shows the other change.
import { api, errorText } from "../api.js";
import { badge, conflictView, h, section, table, toast } from "../ui.js";

export async function render(root, { params }) {
  const { units } = await api("/api/ui/renewal/units");
  root.append(h("h1", {}, "更新单元推进"));
  if (!units.length) {
    root.append(h("p", { class: "card muted" }, "本辖区没有更新单元。"));
    return;
  }
  const pick = h("select", { id: "unit-pick" }, units.map((u) => h("option", { value: u.unit_id }, `${u.unit_id} · ${u.name} · ${u.stage}`)));
  if (params.get("unit")) pick.value = params.get("unit");
  const at = h("input", { type: "date", id: "unit-at", value: params.get("at") || new Date().toISOString().slice(0, 10) });
  const detail = h("div", { id: "unit-detail" });
  root.append(h("div", { class: "card" }, h("label", { for: "unit-pick" }, "单元"), pick, h("label", { for: "unit-at" }, "日期"), at), detail);

  async function load() {
    detail.replaceChildren(h("p", { class: "muted" }, "正在读取…"));
    try {
      show(await api(`/api/ui/renewal/units/${encodeURIComponent(pick.value)}`, { query: { at: at.value } }));
    } catch (e) {
      detail.replaceChildren(h("p", { class: "error-text", role: "alert" }, errorText(e)));
    }
  }
  pick.addEventListener("change", load);
  at.addEventListener("change", load);

  function show(u) {
    const st = u.status;
    const note = h("input", { id: "advance-note", maxlength: 500, placeholder: "备注 (可选)" });
    const msg = h("div", { id: "advance-msg" });
    const moves = h("div", { id: "moves" });
    for (const step of st.next_steps) {
      const btn = h("button", { type: "button", class: step.allowed ? "primary" : "", disabled: !step.allowed, dataset: { to: step.to_stage } }, `推进到「${step.to_stage}」`);
      const findings = (step.findings || []).filter((f) => f.severity !== "info" || f.outcome !== "pass");
      moves.append(
        h(
          "div",
          { class: "move card" },
          h("h3", {}, `${st.stage} → ${step.to_stage} `, badge(step.allowed ? "规则允许" : "规则不允许", step.allowed ? "ok" : "bad")),
          findingsTable(findings.length ? findings : step.findings || []),
          btn,
        ),
      );
      btn.addEventListener("click", async () => {
        if (!confirm(`确认把单元 ${u.unit_id} 由「${st.stage}」推进到「${step.to_stage}」?`)) return;
        msg.replaceChildren();
        try {
          const r = await api(`/api/ui/renewal/units/${encodeURIComponent(u.unit_id)}/advance`, {
            method: "POST",
            json: { to_stage: step.to_stage, at: at.value, note: note.value, version: u.version },
          });
          toast(`已推进到「${r.to_stage}」(版本 ${r.version})`, "ok");
          await load();
          detail.prepend(h("p", { class: "ok-text", id: "advance-done" }, `已由「${r.from_stage}」推进到「${r.to_stage}」, 审计记录 #${r.audit_seq}`));
        } catch (e) {
          msg.replaceChildren(h("p", { class: "error-text", role: "alert" }, errorText(e)));
          if (e.status === 409) msg.append(conflictView(e.data), h("button", { type: "button", id: "unit-reload", onclick: load }, "读取最新版本"));
          else if (e.data && e.data.transition) msg.append(findingsTable(e.data.transition.findings || []));
        }
      });
    }
    detail.replaceChildren(
      section(
        `${u.unit_id} · ${u.name || ""}`,
        h("p", {}, `镇街 ${u.town || "—"} · 当前阶段「${st.stage}」· 版本 ${u.version} · 更新于 ${u.updated_at || "—"} (${u.updated_by || "—"})`),
        h("h3", {}, "当前规则发现"),
        findingsTable(st.findings.filter((f) => f.severity !== "info")),
      ),
      section("可推进的阶段 (推进前预览)", h("label", { for: "advance-note" }, "备注"), note, moves.childNodes.length ? moves : h("p", { class: "muted" }, "没有可去的阶段"), msg),
    );
  }
  await load();
}

function findingsTable(findings) {
  return table(
    findings,
    [
      { key: "severity_label", label: "级别", fmt: (v, r) => badge(v || r.severity, r.severity === "error" ? "bad" : r.severity === "warning" ? "warn" : "") },
      { key: "message", label: "说明" },
      { key: "clause", label: "依据" },
    ],
    { empty: "无" },
  );
}
