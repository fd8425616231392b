// Small DOM helpers: elements are built with textContent only (no HTML from data), tables,
// state badges, pagers, confirmations and errors shown beside what caused them.

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "class") element.className = value;
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function link(href, ...children) {
  return h("a", { href }, ...children);
}

/** A state as a coloured badge; the word is always there (colour is never the only cue). */
export function badge(state) {
  const word = String(state ?? "").toLowerCase();
  return h("span", { class: `badge state-${word}` }, word || "—");
}

export function when(value) {
  if (!value) return "—";
  const date = new Date(value);
  return h("time", { datetime: value, title: value }, date.toLocaleString());
}

export function heading(text, ...extra) {
  return h("h1", { tabindex: "-1", id: "page-title" }, text, ...extra);
}

export function section(title, ...children) {
  const id = `s-${title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  return h("section", { "aria-labelledby": id }, h("h2", { id }, title), ...children);
}

/** A table: columns are [header, (row) => cell]. */
export function table(caption, columns, rows, empty = "nothing here") {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", {}, h("tr", {}, columns.map(([name]) => h("th", { scope: "col" }, name)))),
      h(
        "tbody",
        {},
        rows.map((row) => h("tr", {}, columns.map(([name, cell]) => h("td", { "data-label": name }, cell(row))))),
      ),
    ),
  );
}

/** Key/value pairs as a description list. */
export function fields(pairs) {
  return h(
    "dl",
    { class: "fields" },
    pairs.map(([name, value]) => [h("dt", {}, name), h("dd", {}, value ?? "—")]),
  );
}

export function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

/** Where an action's error goes: right after the control, announced to screen readers. */
export function errorSlot() {
  return h("span", { class: "error", role: "alert", "aria-live": "assertive" });
}

export function showError(slot, error) {
  slot.textContent = error ? (error.words || error.message || String(error)) : "";
}

/** The page-level error: the API's words instead of a blank page. */
export function failure(error) {
  return h(
    "div",
    { class: "failure", role: "alert" },
    h("h1", { tabindex: "-1", id: "page-title" }, "This page could not be shown"),
    h("p", {}, error.words || error.message || String(error)),
  );
}

/**
 * Ask before acting: `what` says what will happen. Resolves true when confirmed. A native
 * <dialog>: focus moves into it, Escape cancels, focus comes back to the button.
 */
export function confirmAction(title, what) {
  return new Promise((resolve) => {
    const ok = h("button", { type: "submit", value: "ok", class: "danger" }, "Yes, do it");
    const dialog = h(
      "dialog",
      { "aria-labelledby": "confirm-title", "aria-describedby": "confirm-what" },
      h(
        "form",
        { method: "dialog" },
        h("h2", { id: "confirm-title" }, title),
        h("p", { id: "confirm-what" }, what),
        h("div", { class: "buttons" }, h("button", { type: "submit", value: "cancel", autofocus: true }, "Cancel"), ok),
      ),
    );
    const before = document.activeElement;
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok");
      dialog.remove();
      if (before && before.focus) before.focus();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/**
 * An action button: confirm (`what` says what happens), run `act`, show the API's error
 * beside it, or call `done` with the result.
 */
export function action(label, title, what, act, done = () => {}, name = null) {
  const slot = errorSlot();
  const key = name || label.toLowerCase().replace(/[^a-z0-9]+/g, "-");
  const button = h("button", { type: "button", class: "action", "data-action": key }, label);
  button.addEventListener("click", async () => {
    showError(slot, null);
    if (!(await confirmAction(title, typeof what === "function" ? what() : what))) return;
    button.disabled = true;
    try {
      done(await act());
    } catch (error) {
      showError(slot, error);
    } finally {
      button.disabled = false;
    }
  });
  return h("span", { class: "action-wrap" }, button, slot);
}

/** Forward paging over a connection: "first page" and "next page" links. */
export function pager(route, params, pageInfo, page, shown, total) {
  const from = shown ? (page - 1) * pageSize(params) + 1 : 0;
  const range = shown ? `${from}–${from + shown - 1} of ${total}` : `none of ${total}`;
  const parts = [h("span", { class: "count", role: "status" }, range)];
  if (page > 1) parts.push(link(hashOf(route, { ...params, after: null, page: null }), "First page"));
  if (pageInfo.hasNextPage) {
    parts.push(link(hashOf(route, { ...params, after: pageInfo.endCursor, page: String(page + 1) }), "Next page"));
  }
  return h("nav", { class: "pager", "aria-label": "pages" }, parts);
}

export const PAGE = 50;

/** The rows per page the address asks for (`size=`, 1 to 200), else 50. */
export function pageSize(params) {
  const asked = Number.parseInt(params.size, 10);
  return asked >= 1 && asked <= 200 ? asked : PAGE;
}

export function hashOf(route, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value) query.set(key, value);
  const text = query.toString();
  return `#/${route}${text ? `?${text}` : ""}`;
}

/** Keys whose values are never shown, whatever the server sent. */
const SECRET = /(password|secret|token|private|credential|passphrase|_key$|^key$)/i;

export function scrub(value) {
  if (Array.isArray(value)) return value.map(scrub);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, SECRET.test(key) ? "(secret: not shown)" : scrub(item)]),
    );
  }
  return value;
}

export function isSecretKey(key) {
  return SECRET.test(key);
}
