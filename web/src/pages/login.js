import { api, errorText } from "../api.js";
import { h } from "../ui.js";

export async function render(root, { params, afterLogin }) {
  const msg = h("p", { class: "error-text", role: "alert" });
  const user = h("input", { name: "username", id: "username", autocomplete: "username", required: true });
  const pass = h("input", { name: "password", id: "password", type: "password", autocomplete: "current-password", required: true });
  const form = h(
    "form",
    { class: "card narrow", id: "login-form" },
    h("h1", {}, "登录"),
    h("label", { for: "username" }, "用户名"),
    user,
    h("label", { for: "password" }, "密码"),
    pass,
    h("button", { type: "submit", class: "primary" }, "登录"),
    msg,
    h("p", { class: "muted" }, "不登录也可查看", h("a", { href: "#/portal" }, "公众门户"), "中已公开的图层与数据表。"),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    msg.textContent = "";
    try {
      const body = await api("/api/auth/login", { method: "POST", json: { username: user.value.trim(), password: pass.value } });
      await afterLogin(body);
      location.hash = "#" + (params.get("next") || "/map");
    } catch (e) {
      msg.textContent = errorText(e);
    }
  });
  root.append(form);
  user.focus();
}
