// The console's shell: login, the user's role, the router and the live connection.

import { ApiError, ERROR_FIELDS, Live, gql, result, setToken, token } from "./api.js";
import { errorSlot, failure, h, showError } from "./dom.js";
import * as dashboard from "./dashboard.js";
import * as inventory from "./inventory.js";
import * as target from "./target.js";
import * as job from "./job.js";
import * as sites from "./sites.js";
import * as network from "./network.js";
import * as discovery from "./discovery.js";

const RANK = { reader: 0, operator: 1, admin: 2 };

const ROUTES = {
  "": dashboard.render,
  sites: sites.render,
  foundations: inventory.foundations,
  structures: inventory.structures,
  foundation: target.foundation,
  structure: target.structure,
  jobs: job.list,
  job: job.render,
  blocks: network.blocks,
  block: network.block,
  zones: network.zones,
  discovered: (context) => (context.args.length ? discovery.machine(context) : discovery.list(context)),
  webhooks: network.webhooks,
};

let me = null;
let live = null;
let leaving = [];
let turn = 0; // which navigation is the newest: a slower, older page is never shown over it

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  const [route = "", ...args] = path.split("/").map(decodeURIComponent);
  return { route, args, params: Object.fromEntries(new URLSearchParams(query)) };
}

function leave() {
  for (const undo of leaving) undo();
  leaving = [];
}

async function show() {
  const mine = ++turn; // a login form or a newer page drawn meanwhile wins over this one
  leave();
  const main = document.getElementById("main");
  if (!token()) return showLogin(main);
  if (!me) {
    try {
      me = (await gql("{ me { username role } }")).me;
    } catch (error) {
      if (!token()) return showLogin(main);
      main.replaceChildren(failure(error));
      return;
    }
    startLive();
    showWho();
  }
  const undo = [];
  const { route, args, params } = parseHash();
  const render = ROUTES[route];
  markCurrent(route);
  const context = {
    args,
    params,
    me,
    live,
    can: (role) => RANK[me.role] >= RANK[role],
    onleave: (step) => undo.push(step),
    refresh: () => show(),
  };
  main.setAttribute("aria-busy", "true");
  let page;
  try {
    page = render ? await render(context) : failure(new ApiError(`there is no page "${route}"`));
  } catch (error) {
    page = failure(error);
  }
  if (mine !== turn) {
    for (const step of undo) step(); // another page was asked for meanwhile
    return;
  }
  leaving = undo;
  main.replaceChildren(page);
  main.removeAttribute("aria-busy");
  performance.mark("contractor:drawn", { detail: route }); // bench/console_bench.py reads it
  document.title = `${document.getElementById("page-title")?.textContent || "Console"} · Contractor`;
  const title = document.getElementById("page-title");
  if (title && document.activeElement?.closest?.("#main") == null) title.focus({ preventScroll: true });
}

function markCurrent(route) {
  for (const anchor of document.querySelectorAll("#nav a")) {
    const target = anchor.getAttribute("href").replace(/^#\/?/, "");
    const current = target === route || (target && route.startsWith(target.replace(/s$/, "")));
    if (current) anchor.setAttribute("aria-current", "page");
    else anchor.removeAttribute("aria-current");
  }
}

function startLive() {
  live = new Live();
  const status = h("span", { id: "live", class: "live", role: "status" }, "connecting");
  live.onstatus = (word) => {
    status.textContent = word;
    status.dataset.state = word;
  };
  document.getElementById("who").append(status);
}

function showWho() {
  document.getElementById("nav").hidden = false;
  const out = h("button", { type: "button", id: "logout" }, "Log out");
  out.addEventListener("click", logout);
  document
    .getElementById("who")
    .append(h("span", { class: "user" }, `${me.username} (${me.role})`), out);
}

function logout() {
  setToken(null);
  if (live) live.close();
  live = null;
  me = null;
  document.getElementById("who").replaceChildren();
  document.getElementById("nav").hidden = true;
  location.hash = "#/";
  show();
}

function showLogin(main) {
  document.getElementById("nav").hidden = true;
  const slot = errorSlot();
  const user = h("input", { id: "login-user", name: "username", autocomplete: "username", required: true });
  const password = h("input", {
    id: "login-password",
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const form = h(
    "form",
    { class: "login", "aria-labelledby": "page-title" },
    h("h1", { id: "page-title", tabindex: "-1" }, "Log in to Contractor"),
    h("label", { for: "login-user" }, "User name"),
    user,
    h("label", { for: "login-password" }, "Password"),
    password,
    h("div", { class: "buttons" }, h("button", { type: "submit", id: "login-submit" }, "Log in"), slot),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(slot, null);
    try {
      const answer = await gql(
        `mutation ($u: String!, $p: String!) { login(username: $u, password: $p) {
           __typename ... on NewToken { token user { username role } } ${ERROR_FIELDS} } }`,
        { u: user.value, p: password.value },
      );
      const created = result(answer.login);
      setToken(created.token);
      me = created.user;
      startLive();
      showWho();
      show();
    } catch (error) {
      showError(slot, error);
      password.select();
    }
  });
  main.replaceChildren(form);
  user.focus();
}

// `/ui/#token=...` (the demo prints one) logs in with that token; the fragment never
// reaches the server, and it is taken out of the address bar at once.
const given = /^#token=([^&]+)$/.exec(location.hash);
if (given) {
  setToken(decodeURIComponent(given[1]));
  history.replaceState(null, "", `${location.pathname}#/`);
}

window.addEventListener("hashchange", show);
window.addEventListener("contractor:logged-out", () => {
  me = null;
  if (live) live.close();
  live = null;
  document.getElementById("who").replaceChildren();
  show();
});
show();
