// 任务进度填报: pick a task, report progress on the version read; 409 shows the other user's report.
import { api, errorText } from "../api.js";
import { conflictView, fmt, h, section, table, toast } from "../ui.js";

export async function render(root, { params }) {
  const d = await api("/api/ui/tasks/states");
  root.append(h("h1", {}, "任务进度填报"));
  if (!d.available) {
    root.append(h("p", { class: "card muted" }, "本辖区没有任务台账。"));
    return;
  }
  const pick = h("select", { id: "task-pick" }, d.tasks.map((t) => h("option", { value: t.task_id }, `${t.task_id} · ${t.title.slice(0, 40)} · ${t.status_label}`)));
  if (params.get("task")) pick.value = params.get("task");
  const box = h("div", { id: "task-box" });
  root.append(h("div", { class: "card" }, h("label", { for: "task-pick" }, "任务"), pick), box);
  let tasks = d.tasks;

  const show = () => {
    const t = tasks.find((x) => x.task_id === pick.value);
    const pct = h("input", { id: "task-pct", type: "number", min: 0, max: 100, step: 1, value: t.progress_pct, required: true });
    const day = h("input", { id: "task-date", type: "date", value: new Date().toISOString().slice(0, 10) });
    const note = h("textarea", { id: "task-note", rows: 3, maxlength: 2000 });
    const msg = h("div", { id: "task-msg" });
    const form = h(
      "form",
      { id: "task-form" },
      h("label", { for: "task-pct" }, "完成进度 (%)"),
      pct,
      h("label", { for: "task-date" }, "报送日期"),
      day,
      h("label", { for: "task-note" }, "进展说明"),
      note,
      h("button", { type: "submit", class: "primary" }, "提交"),
      msg,
    );
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      msg.replaceChildren();
      try {
        const rec = await api(`/api/ui/tasks/${encodeURIComponent(t.task_id)}/progress`, {
          method: "POST",
          json: { progress_pct: +pct.value, reported_on: day.value, note: note.value, version: t.version },
        });
        toast(`已报送 ${t.task_id}: ${pct.value}% (版本 ${rec.version})`, "ok");
        tasks = (await api("/api/ui/tasks/states")).tasks;
        show();
        box.prepend(h("p", { class: "ok-text", id: "task-done" }, `已报送, 记录版本 ${rec.version}`));
      } catch (e) {
        msg.replaceChildren(h("p", { class: "error-text", role: "alert" }, errorText(e)));
        if (e.status === 409) {
          msg.append(conflictView(e.data), h("button", { type: "button", id: "task-reload", onclick: reload }, "读取最新版本"));
        }
      }
    });
    box.replaceChildren(
      section(
        `${t.task_id} ${t.title}`,
        h("p", {}, `牵头 ${t.lead} · ${t.start} 至 ${t.deadline} · 当前 ${fmt(t.progress_pct, 0)}% (按期应 ${fmt(t.expected_pct, 0)}%) · ${t.status_label} · 版本 ${t.version}`),
        t.targets.length ? table(t.targets, [{ key: "target", label: "量化目标" }, { key: "actual", label: "实际" }]) : null,
        form,
      ),
    );
  };
  async function reload() {
    tasks = (await api("/api/ui/tasks/states")).tasks;
    show();
  }
  pick.addEventListener("change", show);
  show();
}
