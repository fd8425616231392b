// The console's only way to the server: GraphQL over HTTP (POST /graphql) and its
// subscriptions over WebSocket (graphql-transport-ws), both with the user's own token.

const TOKEN_KEY = "contractor.token";

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Keep `value` as the tab's token; null forgets it and everything the console kept. */
export function setToken(value) {
  if (value) {
    sessionStorage.setItem(TOKEN_KEY, value);
    return;
  }
  for (const key of Object.keys(sessionStorage)) {
    if (key.startsWith("contractor.")) sessionStorage.removeItem(key);
  }
}

/** An answer the console cannot use: the server's words, and the field at fault if any. */
export class ApiError extends Error {
  constructor(message, { code = null, field = null, status = null } = {}) {
    super(message);
    this.code = code;
    this.field = field;
    this.status = status;
  }
  get words() {
    return this.field ? `${this.message} (field: ${this.field})` : this.message;
  }
}

/** Run one operation; its data, or an ApiError with the server's message. */
export async function gql(query, variables = {}) {
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  const bearer = token();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers,
      body: JSON.stringify({ query, variables }),
    });
  } catch (error) {
    throw new ApiError(`the server cannot be reached (${error.message})`, { code: "NETWORK" });
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (response.status === 401) {
    setToken(null);
    window.dispatchEvent(new CustomEvent("contractor:logged-out"));
    throw new ApiError(body?.errors?.[0]?.message || "please log in again", { status: 401 });
  }
  if (body?.errors?.length) {
    const first = body.errors[0];
    throw new ApiError(first.message, { code: first.extensions?.code || null, status: response.status });
  }
  if (!response.ok || !body) {
    throw new ApiError(`the server answered HTTP ${response.status}`, { status: response.status });
  }
  return body.data;
}

/** A mutation's union result: the object, or an ApiError from its typed error. */
export function result(answer) {
  if (answer && typeof answer.code === "string" && typeof answer.message === "string") {
    throw new ApiError(answer.message, { code: answer.code, field: answer.field ?? null });
  }
  return answer;
}

export const ERROR_FIELDS = "... on Error { code message field }";

/**
 * One WebSocket for every subscription of the page (graphql-transport-ws). Each subscription
 * names a `resume()` giving the variables to send again after a dropped connection (for
 * `events`, `after` = the last cursor received), so nothing is missed and nothing polls.
 */
// One run of `work` per burst of calls: the first call of a burst runs it `ms` later; an
// error is left for the next burst (live updates come in bursts while jobs run).
// `cancel()` drops a run not yet started (when the page is left).
export function coalesced(ms, work) {
  let pending = null;
  const call = () => {
    if (pending) return;
    pending = setTimeout(async () => {
      pending = null;
      try {
        await work();
      } catch {
        /* the next burst tries again */
      }
    }, ms);
  };
  call.cancel = () => {
    clearTimeout(pending);
    pending = null;
  };
  return call;
}

export class Live {
  constructor() {
    this.socket = null;
    this.acked = false;
    this.next = 1;
    this.subscriptions = new Map();
    this.retry = 0;
    this.closed = false;
    this.onstatus = () => {};
  }

  subscribe(query, resume, { next, error = () => {}, complete = () => {} }) {
    const id = String(this.next++);
    this.subscriptions.set(id, { query, resume, next, error, complete });
    if (this.acked) this.#send(id);
    else this.#connect();
    return () => {
      if (this.subscriptions.delete(id) && this.acked) {
        this.socket.send(JSON.stringify({ id, type: "complete" }));
      }
    };
  }

  close() {
    this.closed = true;
    this.subscriptions.clear();
    if (this.socket) this.socket.close(1000);
  }

  #send(id) {
    const entry = this.subscriptions.get(id);
    const payload = { query: entry.query, variables: entry.resume() };
    this.socket.send(JSON.stringify({ id, type: "subscribe", payload }));
  }

  #connect() {
    if (this.socket || this.closed) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/graphql`, "graphql-transport-ws");
    this.socket = socket;
    socket.onopen = () => {
      socket.send(
        JSON.stringify({ type: "connection_init", payload: { Authorization: `Bearer ${token()}` } }),
      );
    };
    socket.onmessage = (message) => {
      const frame = JSON.parse(message.data);
      const entry = frame.id ? this.subscriptions.get(frame.id) : null;
      if (frame.type === "connection_ack") {
        this.acked = true;
        this.retry = 0;
        this.onstatus("live");
        for (const id of this.subscriptions.keys()) this.#send(id);
      } else if (frame.type === "ping") {
        socket.send(JSON.stringify({ type: "pong" }));
      } else if (frame.type === "next" && entry) {
        if (frame.payload.errors?.length) entry.error(new ApiError(frame.payload.errors[0].message));
        else entry.next(frame.payload.data);
      } else if (frame.type === "error" && entry) {
        this.subscriptions.delete(frame.id);
        entry.error(new ApiError(frame.payload?.[0]?.message || "subscription refused"));
      } else if (frame.type === "complete" && entry) {
        this.subscriptions.delete(frame.id);
        entry.complete();
      }
    };
    socket.onclose = (event) => {
      this.socket = null;
      this.acked = false;
      if (this.closed) return;
      if (event.code === 4403) {
        this.onstatus("refused");
        return;
      }
      this.onstatus("reconnecting");
      // back off 0.5 s, 1 s, 2 s ... up to 10 s; each subscription resumes where it was
      const wait = Math.min(10000, 500 * 2 ** this.retry++);
      if (this.subscriptions.size) setTimeout(() => this.#connect(), wait);
    };
  }
}
