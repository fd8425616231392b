// Jobs: the list, and a job's page with its progress bar, the script with the current line
// marked, its log, its tasks and the operator's actions, all following the `job(id)`
// subscription (and re-reading the log when an update arrives, never on a timer).

import { ERROR_FIELDS, coalesced, gql, result } from "./api.js";
import { action, badge, fields, h, heading, link, scrub, section, table, when, json } from "./dom.js";
import { jobTable } from "./dashboard.js";

const LIST = `{
  open: jobs { id state scriptName target targetKind progress message }
  recent: jobs(finished: true, first: 150) { id state scriptName target targetKind progress message finishedAt }
}`;

const JOB = `query ($id: Int!) {
  job(id: $id) {
    id state scriptName targetKind target message line creator created updated startedAt
    finishedAt progress script status
    foundation { locator } structure { id hostname } dependency { id }
    log { at actor action fromState toState message }
    tasks { id module function state attempt leaseHolder created }
  }
}`;

const FOLLOW = `subscription ($id: Int!) {
  job(id: $id) { jobId kind cursor at actor state progress line message finished }
}`;

const ACTIONS = [
  ["pause", "pauseJob", ["QUEUED"], "Pause", "The job stops before its next step; a task already handed out keeps running and its answer is kept for when the job is resumed."],
  ["resume", "resumeJob", ["PAUSED"], "Resume", "The job is queued again and goes on from where it paused."],
  ["reset", "resetJob", ["ERROR"], "Reset", "The failed step is tried again: a lost task is sent again to the subcontractor."],
  ["rollback", "rollbackJob", ["ERROR"], "Roll back", "The function that failed is undone and the job goes back to the step before it, queued to run again."],
  ["abort", "cancelJob", ["WAITING", "QUEUED", "PAUSED", "ERROR"], "Abort", "The job is cancelled for good: its open tasks are cancelled and its target keeps the state it has now."],
];

export async function list() {
  const data = await gql(LIST);
  const done = data.recent.filter((job) => job.finishedAt).slice(0, 100);
  return h(
    "div",
    {},
    heading("Jobs"),
    section(`Unfinished (${data.open.length})`, jobTable("unfinished jobs", data.open, "no unfinished job")),
    section("Recently finished", jobTable("finished jobs", done, "no finished job")),
  );
}

function scriptView(source, line) {
  const lines = source.replace(/\n+$/, "").split("\n");
  return h(
    "ol",
    { class: "script", id: "script", "aria-label": "the job's script" },
    lines.map((text, index) =>
      h("li", { class: index + 1 === line ? "current" : null, "aria-current": index + 1 === line ? "step" : null }, h("code", {}, text || " ")),
    ),
  );
}

function mark(view, line) {
  for (const item of view.querySelectorAll("li.current")) {
    item.classList.remove("current");
    item.removeAttribute("aria-current");
  }
  const current = line ? view.children[line - 1] : null;
  if (current) {
    current.classList.add("current");
    current.setAttribute("aria-current", "step");
  }
}

function logTable(log) {
  return table(
    "the job's log",
    [
      ["At", (entry) => when(entry.at)],
      ["Who", (entry) => entry.actor],
      ["What", (entry) => entry.action],
      ["State", (entry) => (entry.toState ? [entry.fromState ? `${entry.fromState.toLowerCase()} → ` : "", badge(entry.toState)] : "—")],
      ["Message", (entry) => entry.message || "—"],
    ],
    log,
    "nothing logged yet",
  );
}

function taskTable(tasks) {
  return table(
    "the job's subcontractor tasks",
    [
      ["Task", (task) => `#${task.id} ${task.module}.${task.function}`],
      ["State", (task) => badge(task.state)],
      ["Attempt", (task) => task.attempt],
      ["Held by", (task) => task.leaseHolder || "—"],
      ["Created", (task) => when(task.created)],
    ],
    tasks,
    "no task sent",
  );
}

export async function render(context) {
  const id = Number(context.args[0]);
  const job = (await gql(JOB, { id })).job;
  if (!job) throw new Error(`there is no job ${context.args[0]}`);
  const state = h("span", { id: "job-state" }, badge(job.state));
  const bar = h("progress", { id: "job-progress", max: "100", value: job.progress, "aria-labelledby": "progress-label" });
  const percent = h("span", { id: "job-percent" }, `${Math.round(job.progress)}%`);
  const message = h("p", { id: "job-message", class: "message" }, job.message || "");
  const view = scriptView(job.script, job.line);
  const log = h("div", { id: "job-log" }, logTable(job.log));
  const tasks = h("div", { id: "job-tasks" }, taskTable(job.tasks));
  const buttons = h("div", { class: "actions", role: "group", "aria-label": "job actions" });
  const status = h("div", { id: "job-status" }, json(scrub(job.status)));
  const target = job.foundation
    ? link(`#/foundation/${encodeURIComponent(job.foundation.locator)}`, job.target)
    : job.structure
      ? link(`#/structure/${job.structure.id}`, job.target)
      : job.target;
  const facts = (current) =>
    fields([
      ["Target", target],
      ["Created by", current.creator],
      ["Created", when(current.created)],
      ["Started", when(current.startedAt)],
      ["Finished", when(current.finishedAt)],
    ]);
  const about = h("div", { id: "job-fields" }, facts(job));

  const drawActions = (current) => {
    buttons.replaceChildren();
    if (!context.can("operator")) return;
    for (const [name, mutation, states, label, what] of ACTIONS) {
      if (!states.includes(current)) continue;
      buttons.append(
        action(
          label,
          `${label} job #${id}?`,
          `${what} (job #${id}, "${job.scriptName}" on ${job.target})`,
          async () =>
            result((await gql(`mutation ($id: Int!) { ${mutation}(id: $id) { ... on Job { id state } ${ERROR_FIELDS} } }`, { id }))[mutation]),
          (changed) => {
            state.replaceChildren(badge(changed.state));
            drawActions(changed.state);
          },
          name,
        ),
      );
    }
  };
  drawActions(job.state);

  const reread = coalesced(300, async () => {
    const fresh = (await gql(JOB, { id })).job;
    log.replaceChildren(logTable(fresh.log));
    tasks.replaceChildren(taskTable(fresh.tasks));
    status.replaceChildren(json(scrub(fresh.status)));
    about.replaceChildren(facts(fresh));
  });
  const stop = context.live.subscribe(FOLLOW, () => ({ id }), {
    next: ({ job: update }) => {
      bar.value = update.progress;
      percent.textContent = `${Math.round(update.progress)}%`;
      state.replaceChildren(badge(update.state));
      message.textContent = update.message || "";
      mark(view, update.line);
      drawActions(update.state);
      if (update.kind !== "current") reread();
    },
    error: (error) => {
      message.textContent = error.message;
    },
  });
  context.onleave(() => {
    stop();
    reread.cancel();
  });

  return h(
    "div",
    {},
    heading(`Job #${job.id} ${job.scriptName} `, state),
    h("div", { class: "progress" }, h("span", { id: "progress-label" }, "Progress"), bar, percent),
    message,
    buttons,
    section("Fields", about),
    section("Script", view),
    section("Log", log),
    section("Tasks", tasks),
    section("Status", status),
  );
}
