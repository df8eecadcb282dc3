// Shell: session, navigation and hash routes. Pages are loaded on demand (map and charts are large).
import "./styles.css";
import { api, errorText, setCsrf } from "./api.js";
import { h, toast } from "./ui.js";

const ROLE_ZH = { city_admin: "市级管理员", district: "区级用户", township: "乡镇(街道)用户", department: "部门用户", public: "公众" };

const ROUTES = {
  "/portal": { title: "公众门户", load: () => import("./pages/portal.js"), public: true },
  "/login": { title: "登录", load: () => import("./pages/login.js"), public: true },
  "/map": { title: "一张图", load: () => import("./pages/map.js") },
  "/dash/health": { title: "城市体检", load: () => import("./pages/dash-health.js") },
  "/dash/reduction": { title: "减量进度", load: () => import("./pages/dash-reduction.js") },
  "/dash/renewal": { title: "城市更新", load: () => import("./pages/dash-renewal.js") },
  "/dash/tasks": { title: "重点任务", load: () => import("./pages/dash-tasks.js") },
  "/forms/reduction": { title: "减量地块填报", load: () => import("./pages/form-reduction.js") },
  "/forms/renewal": { title: "更新单元推进", load: () => import("./pages/form-renewal.js") },
  "/forms/tasks": { title: "任务进度填报", load: () => import("./pages/form-tasks.js") },
};

const STAFF_NAV = [
  ["/map", "一张图"],
  ["/dash/health", "城市体检"],
  ["/dash/reduction", "减量进度"],
  ["/dash/renewal", "城市更新"],
  ["/dash/tasks", "重点任务"],
  ["/forms/reduction", "减量填报"],
  ["/forms/renewal", "单元推进"],
  ["/forms/tasks", "进度填报"],
  ["/portal", "公众门户"],
];

export const session = { me: { authenticated: false }, staff: false };
let current = null;
let navSeq = 0; // a later navigation wins over a slower earlier one

async function loadSession() {
  try {
    session.me = await api("/api/auth/me");
  } catch {
    session.me = { authenticated: false };
  }
  session.staff = !!session.me.authenticated && session.me.user && session.me.user.role !== "public";
  renderChrome();
}

function renderChrome() {
  const nav = document.getElementById("nav");
  const items = session.staff ? STAFF_NAV : [["/portal", "公众门户"]];
  nav.replaceChildren(...items.map(([p, t]) => h("a", { href: "#" + p, dataset: { path: p } }, t)));
  const box = document.getElementById("userbox");
  if (session.me.authenticated) {
    const u = session.me.user;
    box.replaceChildren(
      h("span", { class: "who", id: "who" }, `${u.display_name || u.username} · ${ROLE_ZH[u.role] || u.role} · 辖区 ${u.jurisdiction}`),
      h("button", { class: "link", onclick: logout }, "退出"),
    );
  } else {
    box.replaceChildren(h("a", { href: "#/login", class: "button" }, "登录"));
  }
  markNav();
}

function markNav() {
  const path = parse().path;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.path === path);
}

async function logout() {
  try {
    await api("/api/auth/logout", { method: "POST" });
  } catch (e) {
    toast(errorText(e), "error");
  }
  setCsrf(null);
  await loadSession();
  location.hash = "#/portal";
}

export async function afterLogin(body) {
  setCsrf(body.csrf_token);
  await loadSession();
}

function parse() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, qs] = raw.split("?");
  return { path, params: new URLSearchParams(qs || "") };
}

async function route() {
  const { path, params } = parse();
  if (path === "/" || !ROUTES[path]) {
    location.replace("#" + (session.staff ? "/map" : "/portal"));
    return;
  }
  const r = ROUTES[path];
  const app = document.getElementById("app");
  if (!r.public && !session.staff) {
    location.replace("#/login?next=" + encodeURIComponent(path));
    return;
  }
  markNav();
  if (current && current.destroy) {
    try {
      current.destroy();
    } catch {
      /* page already gone */
    }
  }
  current = null;
  document.title = `${r.title} · 一张图`;
  app.replaceChildren(h("p", { class: "muted pad" }, "正在加载…"));
  app.dataset.page = path;
  const seq = ++navSeq;
  try {
    const mod = await r.load();
    if (seq !== navSeq) return;
    const root = h("div", { class: "page", id: "page-" + path.replace(/\//g, "-").replace(/^-/, "") });
    app.replaceChildren(root);
    const page = (await mod.render(root, { params, session, afterLogin })) || mod;
    if (seq !== navSeq) {
      if (page.destroy) page.destroy();
      return;
    }
    current = page;
    app.dataset.ready = path;
  } catch (e) {
    if (seq !== navSeq) return;
    console.error(e);
    app.replaceChildren(h("div", { class: "card error" }, h("h2", {}, "页面加载失败"), h("p", {}, errorText(e))));
  }
}

window.addEventListener("hashchange", route);
loadSession().then(route);
